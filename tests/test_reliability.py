"""Reliability: faults provoked for real on the Snakemake workflow, bad inputs as users
meet them through ``snakemake``, determinism and the recorded thread settings.

Reuses the helpers of tests/tiny_pipeline.py (the workflow copied into a temporary folder, run
with ``snakemake --cores 2`` as a subprocess). What the other test files already prove is not
repeated here; docs/errors.md maps every known failure to the test that covers it.

Faults here:

* ``kill -9`` of the training job at three points: right after the job of chunk 2 started
  (Python still importing), in the middle of chunk 3's L-BFGS iterations, and while a
  checkpoint is being written (its ``.{k}.npz.tmp-*`` file exists, the rename has not
  happened). Each run starts from a copy of the uninterrupted run without the chunks from the
  one to kill on (without every chunk for the write). Each time the rerun resumes at the
  killed chunk, earlier chunks, the patches and the gradient check keep their inode and mtime,
  and every checkpoint's theta and records and the final theta are bit-identical to the
  uninterrupted run's.
* Disk and permission trouble: a file where the results folder or the MLflow artifact folder
  should be, and a read-only log folder, stop the run before any job with a message naming
  the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tiny_pipeline as pipeline
import yaml
from PIL import Image
from workflow_helpers import workflow_environment

pytestmark = [pytest.mark.full, pytest.mark.slow]

CHUNKS, PER_CHUNK, HIDDEN, VISIBLE = 3, 8, 1500, 64
# A wide hidden layer makes theta 1.5 MB, so a checkpoint write takes milliseconds and can be
# caught in the act; few patches and a short L-BFGS memory keep an iteration cheap.
KILL_CONFIG = {
    "patches": {"count": 400},
    "model": {"visible_size": VISIBLE, "hidden_size": HIDDEN},
    "optimizer": {"maxcor": 5},
    "training": {"chunks": CHUNKS, "iterations_per_chunk": PER_CHUNK, "progress_every": 1},
    "gradcheck": {"num_examples": 5, "hidden_size": 3},
}
TARGET = "results/natural/theta.npz"
RECORD_KEYS = ("theta", "iteration", "cost", "grad_norm", "fun_evals")


def kill_workdir(folder: Path) -> Path:
    return pipeline.make_workdir(folder, json.loads(json.dumps(KILL_CONFIG)))


def stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_ino, info.st_mtime_ns


def training_jobs(process: subprocess.Popen) -> list[int]:
    """PIDs under snakemake running the train_chunk script (the shell and its Python)."""
    found = []
    for pid in pipeline.descendants(process.pid):
        try:
            if b"train_chunk" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:  # ended meanwhile
            continue
    return found


def _is_python(pid: int) -> bool:
    try:
        program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return b"python" in Path(program.decode(errors="replace")).name.encode()


def signal_all(pids, sig) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run of KILL_CONFIG, up to the final theta."""
    workdir = kill_workdir(tmp_path_factory.mktemp("reliability") / "reference")
    started = time.monotonic()
    pipeline.run(workdir, TARGET)
    print(f"uninterrupted run: {time.monotonic() - started:.1f} s")
    return workdir


# ------------------------------------------------------------------ kill -9 at several points


def _kill_at_start(workdir: Path, process: subprocess.Popen) -> int:
    """SIGKILL chunk 2's job as soon as it exists (before it read its input)."""
    chunks, early = workdir / "results" / "natural" / "chunks", set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, "snakemake ended before chunk 2 started"
        jobs = training_jobs(process)
        if not (chunks / "1.npz").exists():
            early.update(jobs)  # chunk 1's job, possibly still shutting down later
        else:
            fresh = [pid for pid in jobs if pid not in early]
            # Wait for the Python process itself, not only its shell: killing the shell just
            # before it starts Python would leave an orphan that trains on unobserved.
            if any(_is_python(pid) for pid in fresh):
                signal_all(fresh, signal.SIGKILL)
                return 2
        time.sleep(0.002)
    raise AssertionError("chunk 2's job did not start within 300 s")


def _kill_mid_iterations(workdir: Path, process: subprocess.Popen) -> int:
    """SIGKILL chunk 3's job after it logged 3 of its 8 iterations."""
    log = workdir / "logs" / "natural" / "train_chunk-3.log"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, "snakemake ended before chunk 3 made progress"
        if log.exists() and log.read_text().count("\n") >= 2 + 3:  # 2 header lines
            signal_all(training_jobs(process), signal.SIGKILL)
            return 3
        time.sleep(0.01)
    raise AssertionError("chunk 3 made no progress within 300 s")


def _kill_while_writing(workdir: Path, process: subprocess.Popen) -> int | None:
    """SIGKILL a job while its checkpoint's temporary file exists and is not yet renamed.

    On seeing ``.{k}.npz.tmp-*`` the job is frozen with SIGSTOP first, then the final name is
    checked: absent means the write was caught in the act, and SIGKILL follows.
    """
    chunks = workdir / "results" / "natural" / "chunks"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (chunks / f"{CHUNKS}.npz").exists():
            return None  # every chunk finished its rename: the caller tries again
        assert process.poll() is None, "snakemake ended before a checkpoint write was caught"
        try:
            names = os.listdir(chunks)
        except FileNotFoundError:
            names = []
        for name in names:
            if ".npz.tmp-" in name:
                k = int(name[1:].split(".", 1)[0])
                jobs = training_jobs(process)
                signal_all(jobs, signal.SIGSTOP)
                if not (chunks / f"{k}.npz").exists() and (chunks / name).exists():
                    signal_all(jobs, signal.SIGKILL)
                    return k
                signal_all(jobs, signal.SIGCONT)  # renamed meanwhile: catch the next one
        time.sleep(0.0002)
    raise AssertionError("no checkpoint was written within 300 s")


POINTS = {
    "start-of-chunk": _kill_at_start,
    "mid-iterations": _kill_mid_iterations,
    "writing-checkpoint": _kill_while_writing,
}
#: The first chunk each point's run trains (``tiny_pipeline.without_chunks``): the one it
#: kills, and for the write every chunk, so that one of three writes is caught and the chunks
#: before it come from a run of their own.
FIRST_CHUNK = {"start-of-chunk": 2, "mid-iterations": 3, "writing-checkpoint": 1}


@pytest.mark.parametrize("point", list(POINTS))
def test_kill9_of_training_resumes_at_that_chunk_bit_identical(reference, tmp_path, point):
    # A checkpoint's write takes milliseconds: on a loaded machine the watcher can miss every
    # one of a run, so each point gets up to three runs to be caught.
    for attempt in range(3):
        workdir = pipeline.without_chunks(
            reference, tmp_path / f"work-{attempt}", FIRST_CHUNK[point]
        )
        process = subprocess.Popen(
            pipeline.command(TARGET),
            cwd=workdir,
            env=workflow_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            killed = POINTS[point](workdir, process)
            if killed is not None:
                process.wait(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if killed is not None:
            break
    else:
        pytest.fail("no checkpoint write was caught in the act in 3 runs (all renamed in time)")
    assert process.returncode != 0, "snakemake must report the killed job"
    res = workdir / "results" / "natural"
    chunks = res / "chunks"
    assert not (chunks / f"{killed}.npz").exists()
    if point == "writing-checkpoint":
        assert list(chunks.glob(f".{killed}.npz.tmp-*")), "the half-written file is the evidence"
    kept = [res / "patches.npz", res / "gradcheck.json"]
    kept += [chunks / f"{k}.npz" for k in range(1, killed)]
    before = {path.name: stamp(path) for path in kept}

    result = pipeline.run(workdir, TARGET)
    output = result.stdout + result.stderr
    assert f"training chunk {killed} of {CHUNKS}" in output
    for k in range(1, killed):
        assert f"training chunk {k} of {CHUNKS}" not in output, f"chunk {k} was recomputed"
    assert "prepare images and sample patches" not in output
    assert "gradient check" not in output
    assert {path.name: stamp(path) for path in kept} == before

    # Determinism as well: the chunks from the first one this folder trained come from a
    # separate run of the same config and seed, those from the killed one on from the resumed
    # one; all match the reference.
    expected = reference / "results" / "natural"
    patches = pipeline.load(res / "patches.npz")["data"]
    assert patches.tobytes() == pipeline.load(expected / "patches.npz")["data"].tobytes()
    for k in range(1, CHUNKS + 1):
        mine, theirs = (
            pipeline.load(chunks / f"{k}.npz"),
            pipeline.load(expected / "chunks" / f"{k}.npz"),
        )
        for key in RECORD_KEYS:
            assert mine[key].tobytes() == theirs[key].tobytes(), (k, key)
        meta, meta_ref = (json.loads(str(m["meta"][()])) for m in (mine, theirs))
        assert meta["fingerprint"] == meta_ref["fingerprint"] and meta["terms"] == meta_ref["terms"]
    final = pipeline.load(res / "theta.npz")["theta"]
    assert final.tobytes() == pipeline.load(expected / "theta.npz")["theta"].tobytes()
    columns = [0, 1, 2, 3]  # iteration, cost, grad_norm, fun_evals (column 4 is wall time)
    history = np.loadtxt(res / "history.tsv", skiprows=1)[:, columns]
    assert history.shape == (CHUNKS * PER_CHUNK, 4)
    assert (
        history.tobytes() == np.loadtxt(expected / "history.tsv", skiprows=1)[:, columns].tobytes()
    )
    assert not list(res.rglob(".*.tmp-*")), "a stale temporary file was left behind"
    if point == "writing-checkpoint":
        log = (workdir / "logs" / "natural" / f"train_chunk-{killed}.log").read_text()
        assert "left by a killed earlier attempt" in log
    print(f"{point}: killed during chunk {killed}; resumed there, bit-identical")


# ------------------------------------------------------------------ determinism, environment


def test_thread_settings_are_recorded_in_checkpoints_and_mlflow(reference, sqlite_store):
    from mlflow.tracking import MlflowClient

    from sparseae.tracking import log_results

    res = reference / "results" / "natural"
    for k in range(1, CHUNKS + 1):
        meta = json.loads(str(pipeline.load(res / "chunks" / f"{k}.npz")["meta"][()]))
        environment = meta["environment"]
        # Snakemake sets the BLAS variables to the job's threads (resources.train.threads: 2).
        assert meta["threads"] == 2
        assert environment["env.OPENBLAS_NUM_THREADS"] == "2"
        assert environment["env.OMP_NUM_THREADS"] == "2"
        pools = [key for key in environment if key.startswith("threads.")]
        assert any(key.endswith(".num_threads") for key in pools), environment
        assert environment["version.numpy"] == np.__version__

    # The reference run stops at theta.npz, before config.json (whose fingerprint is the
    # run key): the key is given.
    run_id = log_results(
        res,
        experiment_name="natural",
        tracking_uri=sqlite_store,
        log_dir=reference / "logs",
        run_key="reference",
    )
    # Threads and versions are one JSON tag, not params (params are the science settings).
    tags = MlflowClient(sqlite_store).get_run(run_id).data.tags
    logged = json.loads(tags["sparseae.environment"])
    first = json.loads(str(pipeline.load(res / "chunks" / "1.npz")["meta"][()]))["environment"]
    for key in ("env.OPENBLAS_NUM_THREADS", "env.MKL_NUM_THREADS", "cpu_count"):
        assert logged[key] == first[key], key
    assert any(k.startswith("threads.") and k.endswith(".num_threads") for k in logged), logged


def test_every_npz_the_pipeline_writes_loads_without_pickle(reference):
    files = sorted((reference / "results").rglob("*.npz"))
    assert len(files) == 1 + CHUNKS + 1  # patches, chunks, theta
    for path in files:
        with np.load(path, allow_pickle=False) as archive:
            for key in archive.files:
                assert archive[key].dtype != object, (path, key)  # reading it would fail first


# ------------------------------------------------------------------ disk and permission trouble


def _assert_nothing_ran(workdir: Path, result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "sparseae: cannot start, nothing was run" in output
    assert "Traceback" not in output
    assert not list(workdir.glob("results/natural/*")), "a job ran"
    assert not list(workdir.glob("resources/*/fetched-*.json")), "a job ran"
    return output


def test_file_in_place_of_results_folder_stops_before_any_job(tmp_path):
    workdir = pipeline.make_workdir(tmp_path / "work")
    (workdir / "results").write_text("not a folder")
    output = _assert_nothing_ran(workdir, pipeline.run(workdir, TARGET, check=False))
    assert (
        f"results folder {workdir / 'results'} cannot be used: {workdir / 'results'} is a file, "
        "not a folder; move that file away (or run in another folder)"
    ) in output
    # A dry run says the same: it is the same parse.
    dry = subprocess.run(
        [*pipeline.command(TARGET), "-n"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env=workflow_environment(),
    )
    assert dry.returncode != 0 and "results is a file, not a folder" in dry.stdout + dry.stderr


def test_unusable_mlflow_locations_stop_before_training(tmp_path):
    workdir = pipeline.make_workdir(tmp_path / "work")
    (workdir / "mlartifacts").write_text("the local store's artifact folder should be here")
    output = _assert_nothing_ran(workdir, pipeline.run(workdir, TARGET, check=False))
    assert f"MLflow artifact location {workdir / 'mlartifacts'} cannot be used" in output

    (workdir / "mlartifacts").unlink()
    (workdir / "blocker").write_text("a file")
    config = yaml.safe_load((workdir / "config" / "test.yaml").read_text())
    config["tracking"] = {"uri": f"sqlite:///{workdir / 'blocker' / 'store' / 'mlflow.db'}"}
    (workdir / "config" / "test.yaml").write_text(yaml.safe_dump(config))
    output = _assert_nothing_ran(workdir, pipeline.run(workdir, TARGET, check=False))
    assert f"folder of the MLflow database {workdir / 'blocker' / 'store'} cannot be used" in output


def _make_read_only(folder: Path) -> None:
    """chmod for normal users; root ignores permission bits, so it gets the immutable flag."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    chattr = shutil.which("chattr")
    done = chattr and subprocess.run([chattr, "+i", str(folder)], capture_output=True)
    if not done or done.returncode != 0:
        pytest.skip(f"cannot make {folder} read-only as root here (chattr +i unsupported)")


def _make_writable(folder: Path) -> None:
    if os.geteuid() != 0:
        folder.chmod(0o755)
    else:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)


def test_read_only_log_folder_stops_before_any_job(tmp_path):
    workdir = pipeline.make_workdir(tmp_path / "work")
    logs = workdir / "logs"
    logs.mkdir()
    _make_read_only(logs)
    try:
        result = pipeline.run(workdir, TARGET, check=False)
    finally:
        _make_writable(logs)
    output = _assert_nothing_ran(workdir, result)
    assert f"log folder {logs} is not writable" in output
    assert "fix the path or its permissions before training" in output
    # Fixed: the same command runs (the lock was released).
    pipeline.run(workdir, "results/natural/patches.npz")


# ------------------------------------------------------------------ bad data through the workflow


def _grey(path: Path, shape, value=128) -> None:
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode="L").save(path)


def _bad_folders(root: Path) -> dict[str, tuple[Path, str]]:
    """Image folders, each wrong in one way, and the message sample_patches must give."""
    cases = {}
    empty = root / "empty"
    empty.mkdir(parents=True)
    cases["empty"] = (empty, "holds no images")
    mixed = root / "mixed"
    mixed.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), mode="L").save(mixed / "a.png")
    Image.fromarray(rng.integers(0, 256, (16, 20), dtype=np.uint8), mode="L").save(mixed / "b.png")
    cases["mixed"] = (mixed, "different sizes (a.png 16×16, b.png 16×20)")
    broken = root / "broken"
    broken.mkdir()
    _grey(broken / "a.png", (16, 16))
    (broken / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cases["broken"] = (broken, f"cannot read image file {broken / 'b.png'}")
    nan = root / "nan"
    nan.mkdir()
    pixels = rng.random((16, 16)).astype(np.float32)
    pixels[3, 4] = np.nan
    Image.fromarray(pixels).save(nan / "a.tif")
    cases["nan"] = (nan, "a.tif contains 1 non-finite values")
    small = root / "small"
    small.mkdir()
    Image.fromarray(rng.integers(0, 256, (6, 7), dtype=np.uint8), mode="L").save(small / "a.png")
    cases["small"] = (
        small,
        "config key 'experiments.small.patches.size' = 8 is larger than the images of source "
        "'image-folder' (6x7); allowed: 1 <= patches.size <= 6",
    )
    return cases


def test_bad_image_folders_fail_their_experiment_with_the_reason(tmp_path):
    """Five experiments on five broken folders. What the files' headers show (no images, mixed
    sizes, an undecodable file, images smaller than the patches) stops the workflow while it is
    read, every folder named at once, before any job; what only decoding shows (a NaN pixel)
    fails that experiment's sample_patches job, whose log and the console name the file,
    without a traceback."""
    workdir = pipeline.make_workdir(tmp_path / "work")
    cases = _bad_folders(tmp_path / "images")

    def run(names):
        config = {
            "run": list(names),
            "experiments": {
                name: {
                    "dataset": {"source": "image-folder", "path": str(folder), "whiten": False},
                    "patches": {"count": 50},
                    "gradcheck": {"num_examples": 5, "hidden_size": 3},
                }
                for name, (folder, _) in cases.items()
            },
        }
        (workdir / "config" / "test.yaml").write_text(yaml.safe_dump(config))
        targets = [f"results/{name}/patches.npz" for name in names]
        result = pipeline.run(workdir, *targets, check=False)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        return result.stdout + result.stderr

    early = [name for name in cases if name != "nan"]
    output = run(early)
    for name in early:
        assert cases[name][1] in output, name
        assert f"experiments.{name}." in output, name
    assert not (workdir / "results").exists() and not (workdir / "logs").exists()

    output = run(["nan"])
    log = (workdir / "logs" / "nan" / "sample_patches.log").read_text()
    assert cases["nan"][1] in log and cases["nan"][1] in output
    assert not (workdir / "results" / "nan" / "patches.npz").exists()


# ------------------------------------------------------------------ checkpoints of another config


def test_resume_refuses_a_checkpoint_of_another_configuration(reference, tmp_path):
    """Chunk 1 exists; the config then changes while Snakemake is told to look at file times
    only (``--rerun-triggers mtime``, as after copying results around): chunk 2 must refuse
    chunk 1, naming both trajectory keys and the keys that differ, and write nothing."""
    workdir = tmp_path / "work"
    shutil.copytree(reference, workdir, symlinks=True)  # copy2: times kept, nothing is stale
    chunks = workdir / "results" / "natural" / "chunks"
    for k in range(2, CHUNKS + 1):
        (chunks / f"{k}.npz").unlink()
    chunk1 = chunks / "1.npz"
    meta = json.loads(str(pipeline.load(chunk1)["meta"][()]))
    before = stamp(chunk1)

    def attempt(model: dict) -> str:
        config = yaml.safe_load((workdir / "config" / "test.yaml").read_text())
        config["experiments"]["natural"]["model"] = model
        (workdir / "config" / "test.yaml").write_text(yaml.safe_dump(config))
        result = subprocess.run(
            [*pipeline.command("results/natural/chunks/2.npz"), "--rerun-triggers", "mtime"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=300,
            env=workflow_environment(),
        )
        assert result.returncode != 0
        assert not (chunks / "2.npz").exists()
        assert stamp(chunk1) == before
        output = result.stdout + result.stderr
        assert "training chunk 1 of" not in output
        # The job's log holds the same message (Snakemake's error report points there).
        log = (workdir / "logs" / "natural" / "train_chunk-2.log").read_text()
        # One line, no traceback (sparseae.rulelog: a project error, not a bug).
        assert "failed: results/natural/chunks/1.npz belongs to trajectory" in log
        assert "sparseae: error: results/natural/chunks/1.npz belongs to trajectory" in output
        assert "Traceback" not in log and "Traceback" not in output
        return output

    output = attempt({"visible_size": VISIBLE, "hidden_size": HIDDEN, "rho": 0.05})
    assert f"belongs to trajectory {meta['fingerprint']}" in output
    assert "model.rho: 0.01 != 0.05" in output
    other = output.split("now has trajectory ", 1)[1][:16]
    assert len(other) == 16 and other != meta["fingerprint"]

    # Another model size is another trajectory too: the message names the key, not a length.
    hidden = HIDDEN - 1
    output = attempt({"visible_size": VISIBLE, "hidden_size": hidden})
    assert f"belongs to trajectory {meta['fingerprint']}" in output
    assert f"model.hidden_size: {HIDDEN} != {hidden}" in output
