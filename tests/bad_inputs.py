"""The table of bad inputs: every entry point, each value a user can get wrong, and what must
be named in the one message it gets.

Each :class:`Case` is run by ``tests/test_bad_inputs.py`` in a fresh folder:

- ``config``: a YAML file merged over the shipped ``config/config.yaml`` and checked by
  ``sparseae check-config`` (the same checks the workflow applies while it is read, dry runs
  too); the YAML is written as text, so YAML's own reading (``1e-2``, ``.nan``) is part of it;
- ``env``: environment variables, with the shipped config;
- ``cli``: ``sparseae ARGS`` (``fetch``, ``check-config``, ``log``, ``tracking-init``);
- ``file``: a loader or reader on a bad file, as a rule script calls it; its error must be one
  the rule scripts print without a traceback (``sparseae.rulelog.failure_line``);
- ``api``: a library function given a bad argument (raises, naming it).

``{tmp}`` in a case stands for that folder, ``{html}`` for a loopback server answering web
pages, ``{closed}`` for a loopback port nobody listens on. The same table, with the messages of
a real run, is docs/errors.md's "Every bad input" section.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image
from workflow_helpers import REPO


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # config, env, cli, file, api
    what: str  # the case, for the table
    names: tuple[str, ...]  # what the message must contain ({tmp} replaced)
    text: str = ""  # config: YAML merged over the shipped config
    argv: tuple[str, ...] = ()  # cli: sparseae arguments
    env: dict = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None
    call: Callable[[Path], object] | None = None  # file/api: raises
    documented: bool = False  # one of the cases docs/errors.md listed before this table

    @property
    def shown(self) -> str:
        """The input as the table shows it."""
        if self.kind == "config":
            return self.text.strip()
        if self.kind == "env":
            return " ".join(f"{k}={v}" for k, v in self.env.items())
        if self.kind == "cli":
            return "sparseae " + " ".join(self.argv)
        return self.names[0]  # the file read (or the value given)


# ------------------------------------------------------------------ files the cases need


def grey_png(path: Path, shape=(16, 16), value=128, mode="L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if mode == "I;16" else np.uint8
    Image.fromarray(np.full(shape, value, dtype=dtype)).save(path)


def folder(*files: tuple[str, tuple[int, int]]) -> Callable[[Path], None]:
    """prepare(): {tmp}/images with 8-bit grey PNGs of the given (rows, cols)."""

    def make(tmp: Path) -> None:
        for name, shape in files:
            grey_png(tmp / "images" / name, shape)
        (tmp / "images").mkdir(exist_ok=True)

    return make


def huge_png(tmp: Path) -> None:
    """A valid PNG whose header says 20000 x 20000 (the pixels are never decoded)."""
    grey_png(tmp / "images" / "a.png", (16, 16))
    path = tmp / "images" / "huge.png"
    grey_png(path, (1, 1))
    data = bytearray(path.read_bytes())
    start = 8 + 8  # signature, then length and type of IHDR
    header = struct.pack(">II", 20000, 20000) + bytes(data[start + 8 : start + 13])
    data[start : start + 13] = header
    crc = zlib.crc32(b"IHDR" + header) & 0xFFFFFFFF
    data[start + 13 : start + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def multi_frame_tiff(tmp: Path) -> None:
    frames = [Image.fromarray(np.full((16, 16), v, dtype=np.uint8)) for v in (10, 200)]
    (tmp / "images").mkdir(parents=True)
    frames[0].save(tmp / "images" / "stack.tif", save_all=True, append_images=frames[1:])


def idx_bytes(magic: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in shape) + payload


def checkpoint(tmp: Path, theta: np.ndarray, meta: dict | None = None) -> Path:
    from sparseae.model.train import save_checkpoint

    path = tmp / "results" / "natural" / "chunks" / "1.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, theta, [], meta or {"last": {"iteration": 0}})
    return path


def resolved_natural() -> dict:
    import yaml

    from sparseae.config import resolve_config

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    return resolve_config(config)["experiments"]["natural"].to_dict()


# ------------------------------------------------------------------ the file/api calls


def _load_folder(tmp: Path):
    from sparseae.data import load_images

    return load_images("image-folder", path=tmp / "images", whiten=False)


def _sample_folder(**change) -> Callable[[Path], None]:
    """call(): the sample_patches step of 'natural' on the image folder {tmp}/images."""

    def call(tmp: Path):
        from sparseae.pipeline.experiment import data_config, sample_patches

        experiment = resolved_natural()
        experiment["dataset"].update(source="image-folder", path=str(tmp / "images"))
        for section, values in change.items():
            experiment[section].update(values)
        output = tmp / "results" / "natural" / "patches.npz"
        return sample_patches(output, name="natural", data=data_config(experiment))

    return call


def _grey_pngs(*shape_and_values) -> Callable[[Path], None]:
    """prepare(): {tmp}/images/{i}.png, one 8-bit grey image per (height, width, value)."""

    def make(tmp: Path) -> None:
        (tmp / "images").mkdir()
        for i, (height, width, value) in enumerate(shape_and_values):
            pixels = np.full((height, width), value, dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(tmp / "images" / f"{i}.png")

    return make


def _odd_folder_entries(tmp: Path) -> None:
    (tmp / "images").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.gif"):
        Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(tmp / "images" / name)
    (tmp / "images" / "c.png").mkdir()
    (tmp / "images" / "d.png").symlink_to("nowhere.png")


def _load_mat(tmp: Path):
    from sparseae.data import load_images

    return load_images("ufldl-images", path=tmp / "IMAGES.mat")


def _stl10_patches(tmp: Path):
    from sparseae.data import load_images

    return load_images("stl10", path=tmp / "stlSampledPatches.mat")


def _stl10_subset(tmp: Path):
    from sparseae.data.stl10 import TUTORIAL_CLASSES, load_mat_subset

    return load_mat_subset(tmp / "stlTrainSubset.mat", "train", TUTORIAL_CLASSES, 64)


def _subset_mat(**variables):
    """A small stlTrainSubset.mat: 4 images of 64x64x3, labels 1..4; ``variables`` replace
    (None: leave out) these."""
    given = {"trainImages": np.zeros((64, 64, 3, 4)), "trainLabels": np.arange(1.0, 5.0)[:, None]}
    given = {name: value for name, value in {**given, **variables}.items() if value is not None}
    return lambda tmp: scipy.io.savemat(tmp / "stlTrainSubset.mat", given)


V73 = b"MATLAB 7.3 MAT-file" + b" " * 493 + b"\x89HDF\r\n\x1a\n" + b"\0" * 64


def _read_idx(name: str, magic: int | None = None):
    def call(tmp: Path):
        from sparseae.data.idx import read_idx

        return read_idx(tmp / name, magic)

    return call


CHUNK = "results/natural/chunks/1.npz"
PATCHES = "results/natural/patches.npz"
THETA = "results/natural/theta.npz"


def _written_by(
    change: dict | None, length_delta: int = 0, chunk: int = 1
) -> Callable[[Path], None]:
    """prepare(): results/natural/chunks/1.npz, written as chunk ``chunk`` by the shipped
    'natural' with ``change`` to its model."""

    def make(tmp: Path) -> None:
        from sparseae.config import fingerprint, trajectory_config

        written = resolved_natural()
        written["model"].update(change or {})
        theta = np.zeros(2 * 25 * 64 + 25 + 64 + length_delta)
        trajectory = trajectory_config(written)
        meta = {"fingerprint": fingerprint(trajectory), "trajectory": trajectory, "chunk": chunk}
        checkpoint(tmp, theta, meta)

    return make


def _trajectory() -> dict:
    from sparseae.config import trajectory_config

    return trajectory_config(resolved_natural())


def _load_chunks(tmp: Path):
    """What finalize (and train_chunk, for chunk k-1) reads: chunk 1 of 'natural'."""
    from sparseae.pipeline.experiment import load_chunks

    return load_chunks([tmp / CHUNK], name="natural", trajectory=_trajectory())


def _foreign_patches(tmp: Path) -> None:
    path = tmp / PATCHES
    path.parent.mkdir(parents=True)
    np.savez(path, data=np.zeros((64, 10)), data_key=np.array("0123456789abcdef"))


def _load_patches(tmp: Path):
    from sparseae.pipeline.experiment import load_patches

    return load_patches(tmp / PATCHES, name="natural", experiment=_trajectory())


def _foreign_theta(tmp: Path) -> None:
    from sparseae.io import save_theta_npz

    path = tmp / THETA
    path.parent.mkdir(parents=True)
    save_theta_npz(
        path, np.zeros(3289), config={"name": "other", "fingerprint": "0123456789abcdef"}
    )


def _load_theta(tmp: Path):
    from sparseae.pipeline.experiment import load_theta

    return load_theta(tmp / THETA, name="natural", trajectory=_trajectory())


def _checkpoint_with(**replace) -> Callable[[Path], None]:
    """prepare(): a valid chunk-1 checkpoint whose members ``replace`` overrides."""

    def make(tmp: Path) -> None:
        path = checkpoint(tmp, np.zeros(3289))
        with np.load(path, allow_pickle=False) as archive:
            members = {k: archive[k] for k in archive.files}
        np.savez(path, **{**members, **replace})

    return make


def _npy_checkpoint(tmp: Path) -> None:
    path = tmp / CHUNK
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:  # np.save would append .npy to a path
        np.save(handle, np.zeros(3289))


def _damaged_compressed_theta(tmp: Path) -> None:
    np.savez_compressed(tmp / "theta.npz", theta=np.random.default_rng(0).random(5000))
    data = bytearray((tmp / "theta.npz").read_bytes())
    data[200:260] = bytes(60)  # inside the deflated member, past its local header
    (tmp / "theta.npz").write_bytes(bytes(data))


def _junk_checkpoint(tmp: Path) -> None:
    path = tmp / CHUNK
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 cut off")


def _theta_npz(tmp: Path):
    from sparseae.io import load_theta_npz

    return load_theta_npz(tmp / "theta.npz")


def _theta_mat(tmp: Path):
    from sparseae.io import load_theta_mat

    return load_theta_mat(tmp / "opttheta.mat")


def _sampler_nan(tmp: Path):
    from sparseae.data.patches import sample_patches

    images = np.zeros((8, 8, 2))
    images[2, 7, 1] = np.nan
    return sample_patches(images, 8, 5, np.random.default_rng(0))


# ------------------------------------------------------------------ integrity: results, data


RESULTS = "results/natural"


def _results(**files: bytes | str) -> Callable[[Path], None]:
    """prepare(): results/natural with a config.json and ``files`` (name -> content)."""

    def make(tmp: Path) -> None:
        folder = tmp / RESULTS
        folder.mkdir(parents=True)
        (folder / "config.json").write_text('{"name": "natural"}\n')
        for name, content in files.items():
            path = folder / name.replace("__", ".")
            if isinstance(content, str):
                path.write_text(content)
            else:
                path.write_bytes(content)

    return make


# ------------------------------------------------------------------ the MLflow store (store)


def _store(change: str = "", *, cut: float = 0.0, damage: bool = False):
    """prepare(): ``{tmp}/mlflow.db``, a real empty MLflow store; then SQL ``change`` run in
    it, the file ``cut`` to that fraction, or a page in its middle overwritten."""

    def make(tmp: Path) -> None:
        import sqlite3

        from sparseae.tracking.store import prepare_sqlite_store

        db = tmp / "mlflow.db"
        prepare_sqlite_store(db)
        with sqlite3.connect(db) as connection:
            connection.executescript(change)
        connection.close()
        data = bytearray(db.read_bytes())
        if damage:
            page = 4096 * (len(data) // 8192)
            data[page : page + 4096] = b"\xa5" * 4096
        db.write_bytes(bytes(data[: int(len(data) * cut)] if cut else data))

    return make


def _png_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


HISTORY = "iteration\tcost\tgrad_norm\tfun_evals\tseconds\n1\t0.9\t0.1\t1\t0.1\n"
SUMMARY = '{"chunk_ends": [2], "iterations": 2, "rhohat": [0.01, 0.02]}\n'


def _plot_curves(tmp: Path):
    """The plot_curves step: history.tsv and summary.json read back."""
    from sparseae.pipeline.experiment import plot_curves

    folder = tmp / RESULTS
    figures = {"cost": folder / "cost_curve.png", "rhohat": folder / "rhohat.png"}
    history, summary = folder / "history.tsv", folder / "summary.json"
    return plot_curves(history, summary, **figures, name="natural", rho=0.01)


def _read_results(tmp: Path):
    """What log_mlflow reads and uploads from results/natural."""
    from sparseae.tracking.results import read_result_folder

    return read_result_folder(tmp / RESULTS)


def _patches_with(value: float) -> Callable[[Path], None]:
    """prepare(): patches.npz of the shipped 'natural' with one entry set to ``value``."""

    def make(tmp: Path) -> None:
        from sparseae.pipeline.experiment import data_key

        data = np.random.default_rng(0).random((64, 100))
        data[5, 17] = value
        (tmp / RESULTS).mkdir(parents=True)
        np.savez(tmp / PATCHES, data=data, data_key=np.array(data_key(_trajectory())))

    return make


def _spot_pngs(tmp: Path) -> None:
    """Two 128x128 grey images, constant but for one bright pixel: 99.6 % of 8x8 patches flat."""
    (tmp / "images").mkdir()
    for i in range(2):
        pixels = np.full((128, 128), 90, dtype=np.uint8)
        pixels[40 + i, 70] = 250
        Image.fromarray(pixels, mode="L").save(tmp / "images" / f"{i}.png")


def _constant_mat(tmp: Path) -> None:
    scipy.io.savemat(tmp / "IMAGES.mat", {"IMAGES": np.full((32, 32, 3), 0.25)})


def _sample_mat(tmp: Path):
    """The sample_patches step of 'natural' on {tmp}/IMAGES.mat, normalize off."""
    from sparseae.pipeline.experiment import data_config, sample_patches

    experiment = resolved_natural()
    experiment["dataset"].update(source="ufldl-images", path=str(tmp / "IMAGES.mat"))
    experiment["patches"]["normalize"] = False
    return sample_patches(tmp / PATCHES, name="natural", data=data_config(experiment))


def _exif_turned(tmp: Path) -> None:
    """a.jpg stored 16x24; b.jpg stored 24x16 with EXIF orientation 6 (shown 16x24)."""
    (tmp / "images").mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((16, 24)) * 255).astype(np.uint8)).save(tmp / "images" / "a.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6
    turned = Image.fromarray((rng.random((24, 16)) * 255).astype(np.uint8))
    turned.save(tmp / "images" / "b.jpg", exif=exif)


def _foreign_sqlite(tmp: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp / "notes.db") as connection:
        connection.execute("CREATE TABLE notes (id INTEGER, body TEXT)")
    connection.close()


STORE_URI = ("--tracking-uri", "sqlite:///{tmp}/mlflow.db")
LOG_HERE = ["log", "{tmp}", "--experiment", "x", *STORE_URI]


# ------------------------------------------------------------------ the table


def config(id, what, text, *names, prepare=None, documented=False):
    return Case(id, "config", what, names, text=text, prepare=prepare, documented=documented)


def env(id, what, variables, *names, prepare=None):
    return Case(id, "env", what, names, env=variables, prepare=prepare)


def cli(id, what, argv, *names, prepare=None, documented=False):
    return Case(id, "cli", what, names, argv=tuple(argv), prepare=prepare, documented=documented)


def file(id, what, call, *names, prepare=None, documented=False, kind="file"):
    return Case(id, kind, what, names, call=call, prepare=prepare, documented=documented)


NAT = "experiments: {natural: %s}"
BASE = ("--base", str(REPO / "config" / "config.yaml"))
KEY = "experiments.natural."
STL10_PATCHES = "patches: {channels: 3}, model: {visible_size: 192}"
FOLDER = "experiments: {natural: {dataset: {source: image-folder, path: '{tmp}/images'}%s}}"

CASES: list[Case] = [
    # ---------------------------------------------------------------- config: as documented
    config("unknown-key-nested", "unknown key (nested)", NAT % "{model: {hiden_size: 25}}",
           "'hiden_size'", "experiments.natural.model", documented=True),
    config("unknown-key-top", "unknown key (top level)", "trackng: {uri: x}", "'trackng'",
           documented=True),
    config("wrong-type-str", "wrong type: text for an integer",
           NAT % "{model: {hidden_size: '25'}}", KEY + "model.hidden_size", documented=True),
    config("wrong-type-float", "wrong type: fraction for an integer",
           NAT % "{patches: {count: 2.5}}", KEY + "patches.count", documented=True),
    config("wrong-type-quoted", "wrong type: a quoted number", NAT % "{model: {rho: '0.01'}}",
           KEY + "model.rho", documented=True),
    config("rho-above", "rho >= 1", NAT % "{model: {rho: 1.5}}", KEY + "model.rho", "0 < rho < 1",
           documented=True),
    config("rho-zero", "rho = 0", NAT % "{model: {rho: 0}}", KEY + "model.rho", documented=True),
    config("rho-one", "rho = 1", NAT % "{model: {rho: 1}}", KEY + "model.rho", documented=True),
    config("lambda-negative", "lambda negative", NAT % "{model: {lambda_: -1e-4}}",
           KEY + "model.lambda_", documented=True),
    config("beta-negative", "beta negative", NAT % "{model: {beta: -3}}", KEY + "model.beta",
           documented=True),
    config("hidden-zero", "hidden size < 1", NAT % "{model: {hidden_size: 0}}",
           KEY + "model.hidden_size", documented=True),
    config("visible-zero", "visible size < 1", NAT % "{model: {visible_size: 0}}",
           KEY + "model.visible_size", documented=True),
    config("patch-squared", "patch size squared != visible size", NAT % "{patches: {size: 10}}",
           KEY + "patches.size", KEY + "model.visible_size", documented=True),
    config("patch-larger-photos", "patch larger than the images (sample photos)",
           NAT % "{patches: {size: 200, count: 100}, model: {visible_size: 40000}}",
           KEY + "patches.size", "<= 128", documented=True),
    config("patch-larger-folder", "patch larger than the images (folder)", FOLDER % "",
           KEY + "patches.size", "(6x7)", prepare=folder(("a.png", (6, 7))), documented=True),
    config("chunks-zero", "chunk count < 1", NAT % "{training: {chunks: 0}}",
           KEY + "training.chunks", documented=True),
    config("iterations-zero", "iterations < 1", NAT % "{training: {iterations_per_chunk: 0}}",
           KEY + "training.iterations_per_chunk", documented=True),
    config("run-unknown", "experiment to run not defined", "run: [nope]", "'run'", "'nope'",
           documented=True),
    config("several", "several problems at once", NAT % "{model: {rho: 1.5, beta: -3}}",
           KEY + "model.rho", KEY + "model.beta", documented=True),
    config("folder-mixed-sizes", "images of mixed sizes", FOLDER % "",
           "a.png 16×16, b.png 16×20", KEY + "dataset.path",
           prepare=folder(("a.png", (16, 16)), ("b.png", (16, 20))), documented=True),
    config("folder-empty", "empty image folder", FOLDER % "", "holds no images",
           KEY + "dataset.path", prepare=folder(), documented=True),
    config("folder-unreadable", "unreadable image file", FOLDER % "",
           "cannot read image file {tmp}/images/b.png",
           prepare=lambda tmp: (folder(("a.png", (16, 16)))(tmp),
                                (tmp / "images" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")),
           documented=True),
    # ---------------------------------------------------------------- config: non-finite
    config("rho-nan", "rho .nan", NAT % "{model: {rho: .nan}}", KEY + "model.rho", ".nan"),
    config("beta-inf", "beta .inf", NAT % "{model: {beta: .inf}}", KEY + "model.beta", ".inf"),
    config("lambda-nan", "lambda .nan", NAT % "{model: {lambda_: .nan}}", KEY + "model.lambda_"),
    config("zca-epsilon-inf", "ZCA epsilon .inf",
           NAT % "{patches: {whitening: {method: zca, epsilon: .inf}}}",
           KEY + "patches.whitening.epsilon"),
    config("gtol-nan", "gtol .nan", NAT % "{optimizer: {gtol: .nan}}", KEY + "optimizer.gtol"),
    config("softmax-lambda-ninf", "softmax lambda -.inf",
           NAT % "{evaluation: {softmax: {lambda_: -.inf}}}", KEY + "evaluation.softmax.lambda_"),
    config("fraction-nan", "train_fraction .nan", NAT % "{evaluation: {train_fraction: .nan}}",
           KEY + "evaluation.train_fraction"),
    config("grid-nan", "a sweep value .nan", "sweeps: {sparsity: {grid: {rho: [0.01, .nan]}}}",
           "sweeps.sparsity.grid.rho.1"),
    config("gradcheck-eps-nan", "gradient-check step .nan", NAT % "{gradcheck: {epsilon: .nan}}",
           KEY + "gradcheck.epsilon"),
    # ---------------------------------------------------------------- config: ranges
    config("gtol-huge", "gtol that stops L-BFGS at the start",
           NAT % "{optimizer: {gtol: 1e9}}", KEY + "optimizer.gtol", "gtol < 0.01"),
    config("ftol-one", "ftol >= 1", NAT % "{optimizer: {ftol: 1}}", KEY + "optimizer.ftol"),
    config("maxfun-short", "maxfun smaller than the planned iterations",
           NAT % "{optimizer: {maxfun: 1}, training: {chunks: 3}}", KEY + "optimizer.maxfun",
           "150 iterations"),
    config("chunks-huge", "more chunks than jobs can be scheduled",
           NAT % "{training: {chunks: 100000, iterations_per_chunk: 1}, "
           "optimizer: {maxfun: 1000000}}", KEY + "training.chunks"),
    config("lambda-huge", "weight decay overflowing the cost", NAT % "{model: {lambda_: 1e9}}",
           KEY + "model.lambda_"),
    config("beta-huge", "sparsity weight 1e300", NAT % "{model: {beta: 1.0e+300}}",
           KEY + "model.beta"),
    config("gradcheck-eps-big", "gradient-check step >= 1", NAT % "{gradcheck: {epsilon: 2}}",
           KEY + "gradcheck.epsilon"),
    config("gradcheck-bound-big", "gradient-check bound >= 1", NAT % "{gradcheck: {bound: 1.5}}",
           KEY + "gradcheck.bound"),
    config("seed-negative", "seed < 0", NAT % "{seed: -1}", KEY + "seed"),
    config("seed-text", "seed as text", NAT % "{seed: abc}", KEY + "seed"),
    config("maxls-zero", "line-search steps < 1", NAT % "{optimizer: {maxls: 0}}",
           KEY + "optimizer.maxls"),
    config("threads-zero", "threads < 1", NAT % "{resources: {train: {threads: 0}}}",
           KEY + "resources.train.threads"),
    config("progress-zero", "progress_every < 1", NAT % "{training: {progress_every: 0}}",
           KEY + "training.progress_every"),
    # ---------------------------------------------------------------- config: memory
    config("count-memory", "patches.count 1e11 (memory)", NAT % "{patches: {count: 1e11}}",
           KEY + "patches.count = 100000000000", "MB"),
    config("hidden-memory", "hidden_size 1e9 (memory)", NAT % "{model: {hidden_size: 1e9}}",
           KEY + "model.hidden_size = 1000000000", "MB"),
    config("maxcor-memory", "maxcor 1e7 (memory)", NAT % "{optimizer: {maxcor: 1e7}}",
           KEY + "optimizer.maxcor = 10000000", "MB"),
    config("mnist-memory", "MNIST with a huge hidden layer (memory)",
           "run: [mnist]\nexperiments: {mnist: {model: {hidden_size: 2e6}}}",
           "experiment 'mnist'", "experiments.mnist.model.hidden_size = 2000000"),
    # ---------------------------------------------------------------- config: data settings
    config("num-images-photos", "num_images larger than the source",
           NAT % "{dataset: {num_images: 1000}}", KEY + "dataset.num_images", "(8)"),
    config("num-images-mnist", "num_images larger than the MNIST split",
           "run: [mnist]\nexperiments: {mnist: {dataset: {num_images: 70000}}}",
           "experiments.mnist.dataset.num_images", "(60000)"),
    config("num-images-folder", "num_images larger than the folder",
           "experiments: {natural: {dataset: {source: image-folder, path: '{tmp}/images', "
           "num_images: 5}}}",
           KEY + "dataset.num_images", "holds (2)",
           prepare=folder(("a.png", (16, 16)), ("b.png", (16, 16)))),
    config("path-ignored", "dataset.path for a source that reads no path",
           NAT % "{dataset: {path: /data/photos}}", KEY + "dataset.path"),
    config("split-ignored", "dataset.split for a source without splits",
           NAT % "{dataset: {split: test}}", KEY + "dataset.split"),
    config("folder-missing", "image folder that does not exist",
           "experiments: {natural: {dataset: {source: image-folder, path: '{tmp}/nothere'}}}",
           KEY + "dataset.path", "{tmp}/nothere"),
    config("yaml-duplicate-key", "a key given twice in a config file",
           "experiments:\n  natural:\n    model: {rho: 0.05}\n    model: {beta: 1}\n",
           "experiments.natural.model", "given twice", "line 4"),
    config("yaml-octal", "a number with a leading zero (YAML 1.1 octal)",
           NAT % "{seed: 010}", KEY + "seed", "octal", "write 8"),
    config("yaml-base60", "a number with a colon (YAML 1.1 base 60)",
           NAT % "{training: {chunks: 1:30}}", KEY + "training.chunks", "base-60", "90"),
    config("folder-home", "image folder written with '~'",
           "experiments: {natural: {dataset: {source: image-folder, path: '~/photos'}}}",
           KEY + "dataset.path", "'~/photos'", "not expanded"),
    config("folder-is-file", "image folder that is a file",
           "experiments: {natural: {dataset: {source: image-folder, path: '{tmp}/images'}}}",
           KEY + "dataset.path", "not a folder",
           prepare=lambda tmp: (tmp / "images").write_text("x")),
    config("mat-missing", ".mat file that does not exist",
           NAT % "{dataset: {source: ufldl-images, path: '{tmp}/IMAGES.mat'}}",
           KEY + "dataset.path", "no such file"),
    config("stl10-mat-missing", "stlSampledPatches.mat that does not exist",
           NAT % ("{dataset: {source: stl10, path: '{tmp}/stlSampledPatches.mat'}, "
                  + STL10_PATCHES + "}"), KEY + "dataset.path", "no such file"),
    config("folder-huge-image", "a 20000x20000 image", FOLDER % "", "{tmp}/images/huge.png",
           "20000×20000", prepare=huge_png),
    config("folder-multi-frame", "a multi-page TIFF", FOLDER % "", "{tmp}/images/stack.tif",
           "2 frames", prepare=multi_frame_tiff),
    config("source-unknown", "unknown dataset source", NAT % "{dataset: {source: imagenet}}",
           KEY + "dataset.source"),
    config("source-mnist-patches", "digit patches larger than the digits",
           NAT % "{dataset: {source: mnist}, patches: {size: 30}, model: {visible_size: 900}}",
           KEY + "patches.size", "<= 28"),
    config("output-unknown", "an unknown output layer", NAT % "{model: {output: tanh}}",
           KEY + "model.output", "linear"),
    config("channels-two", "two colour channels", NAT % "{patches: {channels: 2}}",
           KEY + "patches.channels"),
    config("channels-mnist", "colour patches of grey digits",
           NAT % "{dataset: {source: mnist}, patches: {channels: 3}, model: {visible_size: 192}}",
           KEY + "patches.channels", "sample-photos"),
    config("whitening-unknown", "an unknown patch whitening",
           NAT % "{patches: {whitening: {method: pca}}}", KEY + "patches.whitening.method",
           "zca-mean-patch"),
    config("evaluation-photos", "evaluation on a source without labels",
           NAT % "{evaluation: {enabled: true}}", KEY + "evaluation.enabled"),
    config("cnn-pool-divides", "a pool size that does not divide the convolved side",
           NAT % "{cnn: {pool_size: 5}}", KEY + "cnn.pool_size", "divisor of 21"),
    config("cnn-pool-zero", "pool size 0", NAT % "{cnn: {pool_size: 0}}", KEY + "cnn.pool_size"),
    config("cnn-chunk-zero", "no features per pooled chunk",
           NAT % "{cnn: {features_per_chunk: 0}}", KEY + "cnn.features_per_chunk"),
    config("cnn-softmax-iterations", "softmax of 0 iterations on pooled features",
           NAT % "{cnn: {softmax: {max_iter: 0}}}", KEY + "cnn.softmax.max_iter"),
    config("cnn-source", "convolved images without labels",
           NAT % "{cnn: {images: {source: sample-photos}}}", KEY + "cnn.images.source"),
    config("cnn-range", "convolved images beyond the split",
           NAT % "{cnn: {images: {train: {stop: 20000}}}}", KEY + "cnn.images.train", "10000"),
    config("cnn-overlap", "test images among the training images",
           NAT % "{cnn: {images: {test: {start: 4000}}}}", KEY + "cnn.images.test", "overlaps"),
    config("cnn-whole-digits", "pooling 1x1 convolved whole digits",
           "experiments: {mnist: {cnn: {pool_size: 7}}}", "experiments.mnist.cnn.pool_size",
           "convolved side 1"),
    config("stl10-all-unlabeled", "all 100,000 unlabeled STL-10 images (22 GB)",
           NAT % ("{dataset: {source: stl10, split: unlabeled}, " + STL10_PATCHES + "}"),
           KEY + "dataset.num_images", "22 GB"),
    config("stl10-grey", "grey patches of STL-10's colour images",
           NAT % "{dataset: {source: stl10, split: unlabeled, num_images: 10}}",
           KEY + "patches.channels", "allowed: 3"),
    config("cnn-stl10-split", "a split for STL-10's convolved images",
           NAT % ("{dataset: {source: stl10, split: unlabeled, num_images: 10}, " + STL10_PATCHES
                  + ", cnn: {images: {source: stl10, split: test}}}"),
           KEY + "cnn.images.split", "mnist only"),
    config("cnn-stl10-pool", "a pool size that does not divide STL-10's convolved side",
           NAT % ("{dataset: {source: stl10, split: unlabeled, num_images: 10}, " + STL10_PATCHES
                  + ", cnn: {images: {source: stl10, size: 64}, pool_size: 7}}"),
           KEY + "cnn.pool_size", "divisor of 57"),
    config("cnn-mnist-mat", "a UFLDL .mat file for convolved digits",
           NAT % "{cnn: {images: {train: {path: stlTrainSubset.mat}}}}",
           KEY + "cnn.images.train.path", "stl10 only"),
    config("cnn-stl10-mat-missing", "stlTrainSubset.mat that does not exist",
           NAT % ("{dataset: {source: stl10, split: unlabeled, num_images: 10}, " + STL10_PATCHES
                  + ", cnn: {images: {source: stl10, size: 64, test: {start: 0}, train: {stop: "
                  + "10, path: '{tmp}/stlTrainSubset.mat'}}, pool_size: 19}}"),
           KEY + "cnn.images.train.path", "no such file", "trainImages"),
    config("cnn-mnist-classes", "classes of convolved digits",
           NAT % "{cnn: {images: {classes: [cat, dog]}}}", KEY + "cnn.images.classes",
           "stl10 only"),
    config("digit-out-of-range", "a digit label of 10",
           "experiments: {mnist: {dataset: {digits: [3, 10]}}}",
           "experiments.mnist.dataset.digits"),
    # ---------------------------------------------------------------- config: sources, names
    config("sources-typo", "misspelt source under sources:",
           "sources: {mnsit: {mirrors: ['http://example.org/']}}", "sources.mnsit",
           "did you mean 'mnist'"),
    config("sources-scheme", "mirror with a misspelt scheme",
           "sources: {mnist: {mirrors: ['htps://example.org/']}}", "sources.mnist.mirrors.0",
           "'htps'"),
    config("sources-local", "mirror for a local source",
           "sources: {sample-photos: {mirrors: ['http://example.org/']}}",
           "sources.sample-photos.mirrors"),
    config("sources-key", "unknown key under a source", "sources: {mnist: {mirorrs: []}}",
           "'mirorrs'", "sources.mnist"),
    config("sources-nohost", "mirror without host", "sources: {mnist: {mirrors: ['https://']}}",
           "sources.mnist.mirrors.0", "names no valid host"),
    config("sources-port", "mirror with a port out of range",
           "sources: {mnist: {mirrors: ['http://example.org:99999/']}}",
           "sources.mnist.mirrors.0", "invalid port"),
    config("sources-space", "mirror URL with a space in the host",
           "sources: {mnist: {mirrors: ['http://exa mple.org/']}}", "sources.mnist.mirrors.0",
           "no valid host"),
    config("sources-home", "mirror folder written with '~'",
           "sources: {mnist: {mirrors: ['~/mnist']}}", "sources.mnist.mirrors.0", "not expanded"),
    config("experiment-name", "experiment name with a space", "experiments: {'my exp': {}}",
           "'my exp'"),
    config("run-empty", "run: []", "run: []", "'run'"),
    config("sweep-base", "sweep based on an undefined experiment",
           "sweeps: {s: {base: nope, grid: {rho: [0.1]}}}", "sweeps.s.base"),
    config("sweep-grid-empty", "sweep grid with an empty list",
           "sweeps: {s: {grid: {rho: []}}}", "sweeps.s.grid.rho"),
    config("sweep-bad-member", "sweep value out of range",
           "run: [s]\nsweeps: {s: {grid: {rho: [0.05, 2]}}}", "s-rho2", "model.rho"),
    config("sweep-hides-experiment", "sweep named like an experiment",
           "sweeps: {natural: {grid: {rho: [0.05]}}}", "sweeps.natural", "experiments.natural"),
    config("sweep-override-and-grid", "a setting both in a sweep's overrides and its grid",
           "sweeps: {s: {overrides: {model: {rho: 0.2}}, grid: {rho: [0.05]}}}",
           "sweeps.s.overrides", "sweeps.s.grid"),
    config("sweep-grid-text", "sweep grid over description (names with spaces)",
           "sweeps: {s: {grid: {description: ['a b', 'c/d']}}}", "sweeps.s.grid.description"),
    # ---------------------------------------------------------------- config: tracking
    config("tracking-prefix-control", "experiment prefix with a tab",
           'tracking: {experiment_prefix: "a\\tb/"}', "tracking.experiment_prefix", "printable"),
    config("tracking-folder", "tracking.uri a plain folder", "tracking: {uri: mlruns}",
           "tracking.uri", "'mlruns'"),
    config("tracking-nohost", "tracking.uri without host", "tracking: {uri: 'http://:5000'}",
           "tracking.uri", "http(s)://HOST:PORT"),
    config("tracking-badport", "tracking.uri with a bad port",
           "tracking: {uri: 'http://localhost:port'}", "tracking.uri"),
    config("tracking-sqlite-two-slashes", "sqlite URI with two slashes",
           "tracking: {uri: 'sqlite://mlflow.db'}", "tracking.uri", "sqlite:///"),
    config("tracking-scheme", "tracking.uri with a misspelt scheme",
           "tracking: {uri: 'htp://host:5000'}", "tracking.uri", "did you mean 'http'"),
    config("tracking-file-store", "tracking.uri naming MLflow's file store",
           "tracking: {uri: 'file:///{tmp}/mlruns'}", "tracking.uri", "file store",
           "sqlite:///PATH"),
    config("tracking-no-driver", "tracking.uri of a database whose driver is not installed",
           "tracking: {uri: 'postgresql://u:p@127.0.0.1:1/db'}", "tracking.uri", "psycopg2"),
    config("tracking-not-sqlite", "tracking file that is not SQLite",
           "tracking: {uri: 'sqlite:///{tmp}/notes.db'}", "{tmp}/notes.db",
           "not an SQLite database", prepare=lambda tmp: (tmp / "notes.db").write_text("a,b\n")),
    config("tracking-db-folder", "tracking database path that is a folder",
           "tracking: {uri: 'sqlite:///{tmp}/store'}", "{tmp}/store", "is a folder",
           prepare=lambda tmp: (tmp / "store").mkdir()),
    # ---------------------------------------------------------------- environment variables
    env("env-uri-folder", "MLFLOW_TRACKING_URI a folder", {"MLFLOW_TRACKING_URI": "mlruns"},
        "MLFLOW_TRACKING_URI", "'mlruns'"),
    env("env-uri-blank", "MLFLOW_TRACKING_URI set to blanks", {"MLFLOW_TRACKING_URI": "   "},
        "MLFLOW_TRACKING_URI", "blank"),
    env("env-uri-nohost", "MLFLOW_TRACKING_URI without host",
        {"MLFLOW_TRACKING_URI": "http://:5000"}, "MLFLOW_TRACKING_URI"),
    env("env-uri-not-sqlite", "MLFLOW_TRACKING_URI naming a non-SQLite file",
        {"MLFLOW_TRACKING_URI": "sqlite:///{tmp}/runs.csv"}, "MLFLOW_TRACKING_URI",
        "{tmp}/runs.csv", prepare=lambda tmp: (tmp / "runs.csv").write_text("id,loss\n1,2\n")),
    env("env-timeout-text", "MLflow HTTP timeout not a number",
        {"MLFLOW_HTTP_REQUEST_TIMEOUT": "abc"}, "MLFLOW_HTTP_REQUEST_TIMEOUT", "'abc'"),
    env("env-retries-negative", "MLflow HTTP retries negative",
        {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "-1"}, "MLFLOW_HTTP_REQUEST_MAX_RETRIES"),
    env("env-backoff-nan", "MLflow HTTP backoff nan",
        {"MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "nan"}, "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"),
    env("env-cert-missing", "TLS certificate file missing",
        {"MLFLOW_TRACKING_SERVER_CERT_PATH": "{tmp}/ca.pem"}, "MLFLOW_TRACKING_SERVER_CERT_PATH",
        "{tmp}/ca.pem"),
    env("env-cache-file", "XDG_CACHE_HOME a file", {"XDG_CACHE_HOME": "{tmp}/cache"},
        "XDG_CACHE_HOME", prepare=lambda tmp: (tmp / "cache").write_text("x")),
    # ---------------------------------------------------------------- command line: config files
    cli("configfile-missing", "config file that does not exist",
        ["check-config", *BASE, "{tmp}/nope.yaml"], "{tmp}/nope.yaml", "does not exist"),
    cli("configfile-folder", "config file that is a folder", ["check-config", *BASE, "{tmp}"],
        "{tmp}", "is a folder"),
    cli("configfile-yaml", "config file that is not YAML", ["check-config", *BASE, "{tmp}/c.yaml"],
        "{tmp}/c.yaml", "not valid YAML",
        prepare=lambda tmp: (tmp / "c.yaml").write_text("run: [natural\n")),
    cli("configfile-list", "config file holding a list", ["check-config", *BASE, "{tmp}/c.yaml"],
        "{tmp}/c.yaml", "mapping", prepare=lambda tmp: (tmp / "c.yaml").write_text("- a\n")),
    # ---------------------------------------------------------------- command line: fetch
    cli("fetch-timeout-zero", "fetch --timeout 0", ["fetch", "mnist", "--timeout", "0"],
        "--timeout", "0 < value"),
    cli("fetch-timeout-negative", "fetch --timeout -1", ["fetch", "mnist", "--timeout=-1"],
        "--timeout"),
    cli("fetch-timeout-nan", "fetch --timeout nan", ["fetch", "mnist", "--timeout", "nan"],
        "--timeout", "finite"),
    cli("fetch-timeout-text", "fetch --timeout 10s", ["fetch", "mnist", "--timeout", "10s"],
        "--timeout", "'10s'"),
    cli("fetch-retries-negative", "fetch --retries -1", ["fetch", "mnist", "--retries=-1"],
        "--retries", "0..20"),
    cli("fetch-retries-text", "fetch --retries two", ["fetch", "mnist", "--retries", "two"],
        "--retries"),
    cli("fetch-mirror-scheme", "fetch --mirror with a bad scheme",
        ["fetch", "mnist", "--mirror", "htps://example.org/"], "--mirror", "'htps'"),
    cli("fetch-dest-file", "fetch --dest that is a file", ["fetch", "mnist", "--dest", "{tmp}/d"],
        "--dest", prepare=lambda tmp: (tmp / "d").write_text("x")),
    cli("fetch-source", "fetch an unknown source", ["fetch", "mnsit"], "mnsit", "choose from"),
    cli("fetch-split", "fetch an unknown split", ["fetch", "mnist", "--split", "validation"],
        "validation"),
    cli("fetch-file", "fetch an unknown file", ["fetch", "mnist", "--file", "x.gz"], "x.gz"),
    cli("fetch-split-and-file", "fetch --split and --file",
        ["fetch", "mnist", "--split", "test", "--file", "x.gz"], "--split", "--file"),
    cli("fetch-config-missing", "fetch --config that does not exist",
        ["fetch", "mnist", "--config", "{tmp}/c.yaml"], "{tmp}/c.yaml"),
    cli("fetch-config-list", "fetch --config holding a list",
        ["fetch", "mnist", "--config", "{tmp}/c.yaml"], "{tmp}/c.yaml",
        prepare=lambda tmp: (tmp / "c.yaml").write_text("- a\n")),
    cli("fetch-all-mirrors-fail", "download fails on every mirror (404 / missing)",
        ["fetch", "mnist", "--split", "test", "--retries", "0", "--mirror", "{tmp}/mirror"],
        "t10k-images-idx3-ubyte.gz", "To place it by hand",
        prepare=lambda tmp: (tmp / "mirror").mkdir(), documented=True),
    cli("fetch-mirror-corrupt", "mirror serving other bytes",
        ["fetch", "mnist", "--file", "t10k-labels-idx1-ubyte.gz", "--retries", "0", "--mirror",
         "{tmp}/mirror"], "t10k-labels-idx1-ubyte.gz", "wrong size",
        prepare=lambda tmp: ((tmp / "mirror").mkdir(),
                             (tmp / "mirror" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"x" * 99)),
        documented=True),
    cli("fetch-cache-corrupt", "corrupted file in the download cache",
        ["fetch", "mnist", "--file", "t10k-labels-idx1-ubyte.gz", "--dest", "{tmp}/mnist"],
        "{tmp}/mnist/t10k-labels-idx1-ubyte.gz", "expected",
        prepare=lambda tmp: ((tmp / "mnist").mkdir(),
                             (tmp / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"x")),
        documented=True),
    # ---------------------------------------------------------------- command line: tracking
    cli("log-missing-folder", "log a result folder that does not exist",
        ["log", "{tmp}/results/nope", "--experiment", "x", "--tracking-uri",
         "sqlite:///{tmp}/m.db"], "{tmp}/results/nope"),
    cli("log-tag", "log --tag without '='",
        ["log", "{tmp}", "--experiment", "x", "--tag", "oops", "--tracking-uri",
         "sqlite:///{tmp}/m.db"], "--tag", "'oops'"),
    cli("log-bad-uri", "log --tracking-uri without host",
        ["log", "{tmp}", "--experiment", "x", "--tracking-uri", "http://:1"], "'http://:1'"),
    cli("init-empty-name", "tracking-init with an empty experiment name",
        ["tracking-init", "", "--tracking-uri", "sqlite:///{tmp}/m.db"], "EXPERIMENT", "''"),
    cli("sweep-member", "log-sweep member that is neither folder nor run id",
        ["log-sweep", "s", "{tmp}/nothere", "--tracking-uri", "sqlite:///{tmp}/m.db"],
        "RESULTS_DIR_OR_RUN_ID", "{tmp}/nothere"),
    cli("init-not-sqlite", "tracking-init on a file that is not SQLite",
        ["tracking-init", "natural", "--tracking-uri", "sqlite:///{tmp}/notes.db"],
        "{tmp}/notes.db", "not an SQLite database",
        prepare=lambda tmp: (tmp / "notes.db").write_text("hello\n")),
    cli("init-html", "tracking URI that answers web pages",
        ["tracking-init", "natural", "--tracking-uri", "{html}"], "{html}",
        "does not answer like an MLflow server"),
    cli("init-down", "tracking server down", ["tracking-init", "natural", "--tracking-uri",
        "{closed}"], "{closed}", "not reachable", documented=True),
    cli("init-artifacts-blocked", "local MLflow artifact location unusable",
        ["tracking-init", "natural", "--tracking-uri", "sqlite:///{tmp}/m.db",
         "--artifact-location", "{tmp}/blocker/mlartifacts"], "--artifact-location",
        "{tmp}/blocker", prepare=lambda tmp: (tmp / "blocker").write_text("x"), documented=True),
    cli("init-db-folder-blocked", "folder of the MLflow database unusable",
        ["tracking-init", "natural", "--tracking-uri", "sqlite:///{tmp}/blocker/store/m.db"],
        "folder of the MLflow database", "{tmp}/blocker",
        prepare=lambda tmp: (tmp / "blocker").write_text("x"), documented=True),
    # ---------------------------------------------------------------- the MLflow store (store)
    cli("store-foreign", "tracking store that is another application's SQLite database",
        ["tracking-init", "natural", "--tracking-uri", "sqlite:///{tmp}/notes.db"],
        "{tmp}/notes.db", "another application", prepare=_foreign_sqlite),
    cli("store-newer", "tracking store of a newer MLflow schema",
        ["tracking-init", "natural", *STORE_URI], "{tmp}/mlflow.db", "MLflow newer than",
        prepare=_store("UPDATE alembic_version SET version_num = 'ffffffffffff'")),
    cli("store-older", "tracking store of an older MLflow schema holding runs",
        ["tracking-init", "natural", *STORE_URI], "{tmp}/mlflow.db", "mlflow db upgrade",
        prepare=_store("UPDATE alembic_version SET version_num = '0c779009ac13';"
                       "INSERT INTO experiments (experiment_id, name) VALUES (7, 'kept')")),
    cli("store-damaged-page", "tracking store with a damaged page",
        ["tracking-init", "natural", *STORE_URI], "{tmp}/mlflow.db", "damaged",
        prepare=_store(damage=True)),
    config("store-truncated", "tracking store cut short (check-config)",
           "tracking: {uri: 'sqlite:///{tmp}/mlflow.db'}", "tracking.uri", "{tmp}/mlflow.db",
           "damaged", prepare=_store(cut=0.5)),
    cli("store-read-only-uri", "tracking store opened read-only (?mode=ro)",
        ["tracking-init", "natural", "--tracking-uri", "sqlite:///{tmp}/mlflow.db?mode=ro"],
        "mode=ro", prepare=_store()),
    cli("store-copied", "tracking store of a project folder copied elsewhere",
        ["tracking-init", "natural", *STORE_URI], "{tmp}/mlflow.db", "/original",
        "copied project", prepare=_store(
               "INSERT INTO experiment_tags VALUES ('sparseae.store_folder', '/original', 0)")),
    cli("log-parent-unknown", "log --parent-run-id naming no run of the store",
        [*LOG_HERE, "--parent-run-id", "0123456789abcdef0123456789abcdef"],
        "--parent-run-id", "0123456789abcdef0123456789abcdef", "no run in", prepare=_store()),
    cli("log-tag-project", "log --tag setting a project-owned tag",
        [*LOG_HERE, "--tag", "sparseae.status=bogus"], "--tag", "sparseae.status",
        "project-owned"),
    cli("init-artifacts-no-client", "artifact location whose client library is missing",
        ["tracking-init", "natural", *STORE_URI, "--artifact-location", "s3://bucket/runs"],
        "--artifact-location", "s3://bucket/runs", "boto3"),
    # ---------------------------------------------------------------- files read by jobs
    file("mat-variable", ".mat without the expected variable", _load_mat,
         "{tmp}/IMAGES.mat", "IMAGESr",
         prepare=lambda tmp: scipy.io.savemat(tmp / "IMAGES.mat", {"IMAGESr": np.zeros((9, 9, 2))}),
         documented=True),
    file("mat-garbage", ".mat that is not a MATLAB file", _load_mat, "{tmp}/IMAGES.mat",
         prepare=lambda tmp: (tmp / "IMAGES.mat").write_bytes(b"hello" * 40), documented=True),
    file("mat-v73", "MATLAB v7.3 (HDF5) .mat", _load_mat, "{tmp}/IMAGES.mat", "7.3",
         prepare=lambda tmp: (tmp / "IMAGES.mat").write_bytes(
             b"MATLAB 7.3 MAT-file" + b" " * 493 + b"\x89HDF\r\n\x1a\n" + b"\0" * 64),
         documented=True),
    file("mat-nan", ".mat with non-finite values", _load_mat, "{tmp}/IMAGES.mat", "non-finite",
         prepare=lambda tmp: scipy.io.savemat(
             tmp / "IMAGES.mat", {"IMAGES": np.where(np.eye(9)[:, :, None] > 0, np.nan, 0.0)}),
         documented=True),
    file("stl10-mat-v73", "UFLDL stlSampledPatches.mat saved as v7.3 (HDF5)", _stl10_patches,
         "{tmp}/stlSampledPatches.mat", "7.3", "save -v7 file.mat patches",
         prepare=lambda tmp: (tmp / "stlSampledPatches.mat").write_bytes(V73)),
    file("stl10-mat-shape", "stlSampledPatches.mat of grey 8x8 patches", _stl10_patches,
         "{tmp}/stlSampledPatches.mat", "'patches'", "(64, 10)", "192 × n",
         prepare=lambda tmp: scipy.io.savemat(tmp / "stlSampledPatches.mat",
                                              {"patches": np.zeros((64, 10))})),
    file("stl10-mat-variable", "stlTrainSubset.mat without its labels", _stl10_subset,
         "{tmp}/stlTrainSubset.mat", "'trainLabels'", "trainImages",
         prepare=_subset_mat(trainLabels=None)),
    file("stl10-mat-labels", "stlTrainSubset.mat with labels 0..3", _stl10_subset,
         "{tmp}/stlTrainSubset.mat", "trainLabels", "outside 1..4: [0.0]",
         prepare=_subset_mat(trainLabels=np.arange(4.0)[:, None])),
    file("stl10-mat-count", "stlTrainSubset.mat with fewer labels than images", _stl10_subset,
         "{tmp}/stlTrainSubset.mat", "(64, 64, 3, 4)", "3 trainLabels",
         prepare=_subset_mat(trainLabels=np.ones((3, 1)))),
    file("image-nan", "image file with a NaN pixel", _load_folder, "{tmp}/images/a.tif",
         "non-finite", prepare=lambda tmp: ((tmp / "images").mkdir(), Image.fromarray(
             np.where(np.eye(8) > 0, np.nan, 0.5).astype(np.float32)).save(tmp / "images/a.tif")),
         documented=True),
    file("image-float-range", "floating-point image outside [0, 1]", _load_folder,
         "{tmp}/images/a.tif", "[0, 255]",
         prepare=lambda tmp: ((tmp / "images").mkdir(), Image.fromarray(
             np.linspace(0, 255, 64, dtype=np.float32).reshape(8, 8)).save(tmp / "images/a.tif"))),
    file("image-int32-range", "32-bit integer image beyond 16 bits", _load_folder,
         "{tmp}/images/a.tif", "0..65535",
         prepare=lambda tmp: ((tmp / "images").mkdir(), Image.fromarray(
             np.full((8, 8), 70000, dtype=np.int32), mode="I").save(tmp / "images/a.tif"))),
    file("image-transparent", "image with transparent pixels", _load_folder,
         "{tmp}/images/a.png", "transparent",
         prepare=lambda tmp: ((tmp / "images").mkdir(), Image.fromarray(
             np.zeros((8, 8, 4), dtype=np.uint8), mode="RGBA").save(tmp / "images/a.png"))),
    file("image-folder-constant", "image folder of constant (all-black) images",
         _sample_folder(), "{tmp}/images", "no usable patches", "experiments.natural.patches",
         prepare=_grey_pngs((32, 32, 0), (32, 32, 0))),
    file("image-folder-1x1", "image folder of 1x1 images", _sample_folder(
         patches={"size": 1, "count": 20}, model={"visible_size": 1}), "{tmp}/images",
         "no usable patches", prepare=_grey_pngs((1, 1, 10), (1, 1, 200))),
    file("image-folder-skipped", "image folder with a folder, a broken link and a GIF",
         _load_folder, "{tmp}/images", "c.png", "d.png", "b.gif", prepare=_odd_folder_entries),
    file("image-huge-decode", "a 20000x20000 image (loader)", _load_folder,
         "{tmp}/images/huge.png", "20000×20000", prepare=huge_png),
    file("idx-magic", "IDX labels file given for images", _read_idx("x.idx", 2049),
         "{tmp}/x.idx", "2051",
         prepare=lambda tmp: (tmp / "x.idx").write_bytes(idx_bytes(0x803, (1, 1, 1), b"\0")),
         documented=True),
    file("idx-not-idx", "file that is no IDX file", _read_idx("bad.idx"), "{tmp}/bad.idx",
         "not an IDX file", prepare=lambda tmp: (tmp / "bad.idx").write_bytes(b"\x01\x00\x08\x02"
                                                                          + b"\0" * 8),
         documented=True),
    file("idx-short", "IDX file shorter than its header says", _read_idx("short.idx"),
         "{tmp}/short.idx", "truncated",
         prepare=lambda tmp: (tmp / "short.idx").write_bytes(idx_bytes(0x801, (10,), b"\0" * 7)),
         documented=True),
    file("idx-gzip", "damaged .gz", _read_idx("d.gz"), "{tmp}/d.gz", "damaged gzip",
         prepare=lambda tmp: (tmp / "d.gz").write_bytes(
             gzip.compress(idx_bytes(0x801, (5000,), bytes(range(256)) * 20))[:60]),
         documented=True),
    file("checkpoint-other-config", "checkpoint of another trajectory (settings changed)",
         _load_chunks, "{tmp}/results/natural/chunks/1.npz", "model.rho",
         prepare=_written_by({"rho": 0.05}), documented=True),
    file("checkpoint-other-size", "checkpoint of another model size", _load_chunks,
         "{tmp}/results/natural/chunks/1.npz", "model.hidden_size: 24 != 25",
         prepare=_written_by({"hidden_size": 24}, -129)),
    file("checkpoint-length", "checkpoint theta of the wrong length", _load_chunks,
         "{tmp}/results/natural/chunks/1.npz", "3000", prepare=_written_by(None, -289),
         documented=True),
    file("checkpoint-renamed", "checkpoint of another chunk (renamed or copied)", _load_chunks,
         "{tmp}/results/natural/chunks/1.npz", "chunk 2", prepare=_written_by(None, 0, 2)),
    file("checkpoint-chunk-text", "checkpoint whose chunk number is text", _load_chunks,
         "{tmp}/results/natural/chunks/1.npz", "chunk one", prepare=_written_by(None, 0, "one")),
    file("checkpoint-damaged", "damaged checkpoint", _load_chunks,
         "{tmp}/results/natural/chunks/1.npz", "not a readable", prepare=_junk_checkpoint,
         documented=True),
    file("checkpoint-pickled", "checkpoint with a pickled member",
         _load_chunks, "{tmp}/results/natural/chunks/1.npz", documented=True,
         prepare=_checkpoint_with(meta=np.array([{"pickled": True}], dtype=object))),
    file("checkpoint-nan", "checkpoint with NaN parameters", _load_chunks,
         "{tmp}/results/natural/chunks/1.npz", "non-finite",
         prepare=_checkpoint_with(theta=np.full(3289, np.nan))),
    file("checkpoint-text-theta", "checkpoint whose theta is text", _load_chunks,
         "{tmp}/results/natural/chunks/1.npz", "'theta' must hold real numbers",
         prepare=_checkpoint_with(theta=np.array(["0.5"] * 3289))),
    file("checkpoint-meta-list", "checkpoint whose meta is JSON but not an object",
         _load_chunks, "{tmp}/results/natural/chunks/1.npz", "'meta' must be a JSON dict",
         prepare=_checkpoint_with(meta=np.array("[1, 2]"))),
    file("checkpoint-npy", "a single .npy array saved under the checkpoint's name",
         _load_chunks, "{tmp}/results/natural/chunks/1.npz", "single array",
         prepare=_npy_checkpoint),
    file("patches-foreign", "patches.npz of other data settings", _load_patches,
         "{tmp}/results/natural/patches.npz", "data settings", prepare=_foreign_patches),
    file("patches-damaged", "damaged patches.npz", _load_patches,
         "{tmp}/results/natural/patches.npz", "not a readable .npz file",
         prepare=lambda tmp: ((tmp / "results/natural").mkdir(parents=True),
                              (tmp / PATCHES).write_bytes(b"PK\x03\x04 cut off"))),
    file("theta-foreign", "theta.npz of another trajectory", _load_theta,
         "{tmp}/results/natural/theta.npz", "0123456789abcdef", prepare=_foreign_theta),
    file("theta-npz-key", "theta.npz without 'theta'", _theta_npz, "{tmp}/theta.npz",
         "lacks key 'theta'", documented=True,
         prepare=lambda tmp: np.savez(tmp / "theta.npz", weights=np.zeros(3))),
    file("theta-npz-damaged-member", "theta.npz whose compressed member is damaged",
         _theta_npz, "{tmp}/theta.npz", "not a readable .npz file",
         prepare=_damaged_compressed_theta),
    file("theta-mat-variable", ".mat parameter file without 'opttheta'", _theta_mat,
         "{tmp}/opttheta.mat", "'opttheta'", documented=True,
         prepare=lambda tmp: scipy.io.savemat(tmp / "opttheta.mat", {"theta": np.zeros((5, 1))})),
    file("sampler-nan", "array with NaN given to the patch sampler", _sampler_nan,
         "row 2", "column 7", "image 1", documented=True, kind="api"),
    # ---------------------------------------------------------------- result files read back
    file("summary-cut", "summary.json cut off (read back by plot_curves)", _plot_curves,
         "{tmp}/results/natural/summary.json", "not readable JSON", "delete it and rerun",
         prepare=_results(history__tsv=HISTORY, summary__json='{"chunk_ends": [2], "iter')),
    file("history-cut", "history.tsv cut off mid-row", _plot_curves,
         "{tmp}/results/natural/history.tsv", "cut off", "delete it and rerun",
         prepare=_results(history__tsv=HISTORY + "2\t0.8\t0.0", summary__json=SUMMARY)),
    file("history-short", "history.tsv with fewer rows than summary.json's iterations",
         _plot_curves, "{tmp}/results/natural/history.tsv", "1 rows, not the 2 expected",
         prepare=_results(history__tsv=HISTORY, summary__json=SUMMARY)),
    file("diagnostics-cut", "diagnostics.json cut off (logged to MLflow)", _read_results,
         "{tmp}/results/natural/diagnostics.json", "delete it and rerun",
         prepare=_results(diagnostics__json='{"metrics": {"dead_units": 0')),
    file("evaluation-foreign", "evaluation.json of another trajectory (logged to MLflow)",
         _read_results, "{tmp}/results/natural/evaluation.json", "belongs to trajectory 0123",
         prepare=_results(config__json='{"name": "natural", "fingerprint": "abcd"}\n',
                          evaluation__json='{"trajectory_key": "0123"}\n')),
    file("png-cut", "filters.png cut off (uploaded to MLflow)", _read_results,
         "{tmp}/results/natural/filters.png", "not a complete PNG",
         prepare=_results(filters__png=_png_bytes()[:40])),
    file("patches-nan", "patches.npz with a NaN (training data)", _load_patches,
         "{tmp}/results/natural/patches.npz", "'data'", "NaN or inf", "(5, 17)",
         prepare=_patches_with(np.nan)),
    file("patches-inf", "patches.npz with an inf (training data)", _load_patches,
         "{tmp}/results/natural/patches.npz", "NaN or inf", prepare=_patches_with(np.inf)),
    # ---------------------------------------------------------------- degenerate training data
    file("constant-raw", "constant images, no whitening, normalize off", _sample_folder(
         dataset={"whiten": False}, patches={"normalize": False}), "experiments.natural",
         "10000 are constant", "patches.normalize False",
         prepare=_grey_pngs((32, 32, 90), (32, 32, 200))),
    file("constant-zca", "constant images, ZCA whitening", _sample_folder(
         dataset={"whiten": False},
         patches={"normalize": False, "whitening": {"method": "zca", "epsilon": 0.1}}),
         "experiments.natural", "are constant", "patches.whitening.method 'zca'",
         prepare=_grey_pngs((32, 32, 90), (32, 32, 200))),
    file("almost-constant", "images constant but for one pixel (99.6 % flat patches)",
         _sample_folder(dataset={"whiten": False}, patches={"normalize": False}),
         "experiments.natural", "are constant", prepare=_spot_pngs),
    file("constant-mat", "IMAGES.mat of constant images, normalize off", _sample_mat,
         "experiments.natural", "dataset.source 'ufldl-images'", prepare=_constant_mat),
    # ---------------------------------------------------------------- the operating system
    cli("configfile-latin1", "config file with a Latin-1 byte", ["check-config", *BASE,
        "{tmp}/c.yaml"], "{tmp}/c.yaml", "not UTF-8", "position 9",
        prepare=lambda tmp: (tmp / "c.yaml").write_bytes(b"run: [caf\xe9]\n")),
    cli("configfile-empty", "empty config file", ["check-config", *BASE, "{tmp}/c.yaml"],
        "{tmp}/c.yaml", "is empty", prepare=lambda tmp: (tmp / "c.yaml").write_text("")),
    cli("configfile-device", "config file that is a device", ["check-config", "--base",
        "/dev/null", "{tmp}/c.yaml"], "/dev/null", "a device",
        prepare=lambda tmp: (tmp / "c.yaml").write_text("run: [natural]\n")),
    cli("path-too-long", "a path with a name too long for the file system",
        ["fetch", "mnist", "--dest", "{tmp}/" + "d" * 300], "{tmp}/ddd", "File name too long"),
    config("name-too-long", "experiment name too long for a file name",
           "experiments: {%s: {}}" % ("n" * 300), "experiments.nnn", "300 bytes long"),
    config("name-periodic", "experiment name with a periodic tail",
           "experiments: {natural-%s: {}}" % ("a" * 24), "experiments.natural-aaa",
           "PeriodicWildcardError"),
    config("folder-exif-turned", "images of one size, one turned by its EXIF tag", FOLDER % "",
           "b.jpg", "EXIF orientation", prepare=_exif_turned),
    config("device-cuda-missing", "training.device cuda without PyTorch or a GPU",
           NAT % "{training: {device: cuda}}", KEY + "training.device", "'cuda'",
           "training.device: cpu"),
]  # fmt: skip


def by_id() -> dict[str, Case]:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return {case.id: case for case in CASES}
