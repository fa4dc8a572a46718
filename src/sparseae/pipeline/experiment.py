"""The steps of one experiment, one function per workflow rule (same name), and their files.

Every file a step writes carries the key of its settings (``patches.npz`` the *data key*, the
others the *trajectory key*); a file of another key stops with :class:`ForeignResultError`.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from sparseae import data as datasets
from sparseae.config import ConfigError, checks, fingerprint, rng
from sparseae.data.stl10 import patch_matrix
from sparseae.errors import ForeignResultError, ResultFileError
from sparseae.identity import key_of
from sparseae.io import (
    ParameterFileError,
    atomic_path,
    atomic_write,
    load_theta_npz,
    read_npz,
    save_theta_npz,
    write_json,
)
from sparseae.model import autoencoder
from sparseae.model.train import RECORD_FIELDS
from sparseae.pipeline.chunks import Problem, Run, read_chunks, refuse_foreign, run_chunk

log = logging.getLogger(__name__)

#: Files of a finished experiment in ``results/{experiment}/`` (chunks apart).
RESULT_FILES = (
    "config.json",
    "trajectory.json",
    "patches.npz",
    "gradcheck.json",
    "theta.npz",
    "history.tsv",
    "summary.json",
    "filters.png",
    "cost_curve.png",
    "rhohat.png",
    "diagnostics.json",
    "units.png",
)

#: What the evaluation of a digit experiment adds (``evaluation.enabled``).
EVALUATION_FILES = ("evaluation.json", "confusion_features.png", "confusion_raw.png")

#: summary.json figures logged as MLflow metrics under the same names; the final cost, its
#: terms and rhohat statistics are the last points of the chunk series, so not repeated here.
SUMMARY_METRICS = (
    "rhohat_median",
    "iterations",
    "chunks",
    # 1 when the optimizer stopped on its tolerances in some chunk (stop reason "converged").
    "converged",
    "train_seconds",
    "optimizer_seconds",
)
#: gradcheck.json measurements, logged as metrics ``gradcheck_<key>``.
GRADCHECK_METRICS = ("quadratic", "autoencoder", "max_abs_diff", "passed")


def data_config(experiment: Mapping) -> dict:
    """The settings that decide ``patches.npz`` (stored in ``training.dtype``)."""
    return {
        "dataset": copy.deepcopy(experiment["dataset"]),
        "patches": copy.deepcopy(experiment["patches"]),
        "model": {"visible_size": experiment["model"]["visible_size"]},
        "seed": experiment["seed"],
        "training": {"dtype": experiment["training"]["dtype"]},
    }


def data_key(experiment: Mapping) -> str:
    """16-hex-digit hash of :func:`data_config` (canonical JSON, sha256)."""
    return key_of(data_config(experiment))


def cost_settings(model: Mapping) -> dict:
    """The keyword arguments of :func:`~sparseae.model.autoencoder.cost_and_grad` of a model."""
    settings = {k: model[k] for k in ("visible_size", "hidden_size", "lambda_", "beta", "rho")}
    return {**settings, "output": model.get("output", "sigmoid")}


def write_trajectory(output: str | Path, *, name: str, trajectory: Mapping) -> dict:
    """Rule ``write_trajectory``: ``trajectory.json`` (retraining follows its changes)."""
    record = {
        "name": name,
        "trajectory_key": fingerprint(trajectory),
        "data_key": data_key(trajectory),
        "trajectory": copy.deepcopy(dict(trajectory)),
    }
    write_json(output, record)
    log.info("wrote %s (trajectory key %s)", output, record["trajectory_key"])
    return record


def sample_patches(output, *, name: str, data: Mapping, resources="resources") -> np.ndarray:
    """Rule ``sample_patches``: ``patches.npz`` (``data``, visible × m, and ``data_key``; for
    ``zca-mean-patch`` also the fitted ``zca`` (v × v) and ``zca_mean`` (v,))."""
    dataset, patch_cfg = data["dataset"], data["patches"]
    source = dataset["source"]
    dest = Path(resources) / source
    fitted = {}
    if patch_cfg["size"] is None:
        X, labels = datasets.load_mnist(dest, dataset["split"], dataset["num_images"])
        if dataset["digits"] is not None:
            X = X[:, np.isin(labels, dataset["digits"])]
            checks.check_examples_left(name, data, X.shape[1])
        checks.check_image_inputs(name, data, X.shape[0])
        log.info("%s: %d whole images of %d pixels", source, X.shape[1], X.shape[0])
    else:
        try:
            X, fitted = _image_patches(name, data, dest)
        except ConfigError:
            raise
        except ValueError as err:
            # Degenerate images (constant, or too small to whiten): the data, not the code.
            where = dataset["path"] or f"source {source!r}"
            raise ConfigError(
                f"experiment '{name}': the images of {where} give no usable patches: {err}; "
                f"use images with contrast, or change experiments.{name}.patches (size, "
                f"whitening, normalize) or experiments.{name}.dataset.whiten"
            ) from None
    X = np.ascontiguousarray(X, dtype=data["training"]["dtype"])
    checks.check_training_data(name, data, X)
    with atomic_path(output, suffix=".npz") as tmp:
        np.savez(tmp, data=X, data_key=np.array(data_key(data)), **fitted)
    stats = (X.shape, X.dtype, X.min(), X.max(), X.mean())
    log.info("wrote %s: data %s %s, min %.4f max %.4f mean %.4f", output, *stats)
    return X


def _image_patches(name: str, data: Mapping, dest: Path) -> tuple[np.ndarray, dict]:
    """The patches of an image source (or of digits): load (and 1/f-whiten), sample, ZCA,
    normalizeData; and the members a fitted ``zca-mean-patch`` transform adds to the file."""
    from sparseae.data import patches as patch_tools
    from sparseae.data.whitening import ZCA

    dataset, patch_cfg = data["dataset"], data["patches"]
    source, whiten = dataset["source"], dataset["whiten"]
    if datasets.get_source(source).loader == "mnist":
        X = datasets.load_mnist(dest, dataset["split"], dataset["num_images"])[0]
        images = X.reshape(28, 28, -1, order="F")  # columns are column-major 28x28 digits
    else:
        # "auto": the source's own setting (raw photographs are 1/f-whitened, IMAGES.mat not).
        images = datasets.load_images(
            source,
            dest if dataset["path"] is None else dataset["path"],
            path=dataset["path"],
            whiten=None if whiten == "auto" else bool(whiten),
            channels=patch_cfg.get("channels", 1),
            split=dataset["split"],
            count=dataset["num_images"],  # stl10: read only these (100,000 would take 22 GB)
        )
    checks.check_loaded_images(name, data, images.shape, dataset["path"] or f"source {source!r}")
    if dataset["num_images"] is not None:
        images = images[..., : dataset["num_images"]]
    log.info("%s: images %s (whiten: %s)", source, images.shape, whiten)
    generator = rng(data["seed"], "patches")
    if dataset["path"] and source == "stl10":  # stlSampledPatches.mat: sampled already
        X = patch_matrix(images, patch_cfg["size"], patch_cfg["count"], dataset["path"])
    else:
        X = patch_tools.sample_patches(images, patch_cfg["size"], patch_cfg["count"], generator)
    method, fitted = patch_cfg["whitening"]["method"], {}
    if method != "none":
        centre = "pixel" if method == "zca-mean-patch" else "patch"
        zca = ZCA(epsilon=patch_cfg["whitening"]["epsilon"], centre=centre).fit(X)
        X = zca.transform(X)
        if centre == "pixel":  # an affine map later steps fold into the weights
            fitted = {"zca": zca.matrix_, "zca_mean": zca.mean_}
    if patch_cfg["normalize"]:
        X = patch_tools.normalize_patches(X)
    return X, fitted


def load_patches(path: str | Path, *, name: str, experiment: Mapping) -> np.ndarray:
    """The training data of ``patches.npz``, after checking it was sampled for ``experiment``."""
    try:
        label = f"patches file {path}"
        members = read_npz(path, ["data"], optional=["data_key"], label=label, finite=["data"])
    except (FileNotFoundError, ParameterFileError) as err:
        raise ResultFileError(f"{err}; delete it and rerun") from None
    data = members["data"]
    found = str(members["data_key"][()]) if "data_key" in members else None
    refuse_foreign(
        path, "data settings", found, data_key(experiment), name, "delete it and rerun to resample"
    )
    return data


def check_gradient(patches, output, *, name: str, trajectory: Mapping, gradcheck: Mapping) -> dict:
    """Rule ``check_gradient``: ``gradcheck.json``, written only when the check passes."""
    from sparseae.model import gradcheck as gradient_check

    model = trajectory["model"]
    data = load_patches(patches, name=name, experiment=trajectory)[:, : gradcheck["num_examples"]]
    # float64 whatever training.dtype: the check compares gradients to about 1e-9.
    data = data.astype(np.float64)
    # The check's own hidden_size replaces the model's (visible_size is the data's).
    settings = {**cost_settings(model), "data": data, "rng": rng(trajectory["seed"], "gradcheck")}
    settings.update({k: gradcheck[k] for k in ("hidden_size", "epsilon", "bound")})
    result = gradient_check.check_gradient(**settings)
    log.info("quadratic sanity check: %.4e (expected about 2.1e-12)", result["quadratic"])
    gradient_check.require_passed(
        result,
        {"autoencoder": result["autoencoder"]},
        what=f"experiment '{name}'",
        config_key=f"experiments.{name}.gradcheck.bound",
    )
    result = {**result, "trajectory_key": fingerprint(trajectory), "data_key": data_key(trajectory)}
    write_json(output, {**result, **gradcheck_blocks(result)})
    return result


def gradcheck_blocks(result: Mapping) -> dict:
    """The ``metrics`` block of ``gradcheck.json``: what MLflow shows of it."""
    return {"metrics": {f"gradcheck_{k}": result[k] for k in GRADCHECK_METRICS if k in result}}


def _run(name: str, trajectory: Mapping) -> Run:
    """The chunked run of experiment ``name``: what its checkpoints must match."""
    model = trajectory["model"]
    v, h = model["visible_size"], model["hidden_size"]
    return Run(
        owner=f"experiment '{name}'",
        trajectory=trajectory,
        fingerprint=fingerprint(trajectory),
        length=autoencoder.parameter_count(v, h),
        shape=f"(hidden_size {h}, visible_size {v})",
        folder=f"results/{name}/chunks/",
        meta={"experiment": name, "data_key": data_key(trajectory)},
    )


def initial_theta(model: Mapping, seed: int) -> np.ndarray:
    """The training's random start, drawn from the experiment's seed (chunk 1 starts here)."""
    h, v = model["hidden_size"], model["visible_size"]
    return autoencoder.initialize_parameters(h, v, rng(seed, "init"))


def train_chunk(
    output, *, k: int, previous, patches, name: str, trajectory, threads=1, progress_every=10
) -> dict:
    """Rule ``train_chunk``: chunk ``k`` of the L-BFGS training (:func:`.chunks.run_chunk`)."""
    model = trajectory["model"]
    # Same thread count, same summation order: bit-identical reruns.
    autoencoder.set_num_threads(threads)
    data = load_patches(patches, name=name, experiment=trajectory)
    problem = Problem(
        initial=lambda: initial_theta(model, trajectory["seed"]),
        cost_fn=autoencoder.cost_and_grad,
        data=data,
        cost_kwargs=cost_settings(model),
        iterations=trajectory["training"]["iterations_per_chunk"],
        summarize=lambda theta: _chunk_summary(theta, data, model),
    )
    return run_chunk(output, k, previous, _run(name, trajectory), problem, threads, progress_every)


def _terms(theta, data, model: Mapping) -> tuple[dict, np.ndarray]:
    """The cost's four terms at ``theta`` (floats) and the hidden units' mean activations."""
    terms = autoencoder.cost_terms(theta, data, **cost_settings(model))
    parts = ("reconstruction", "weight_decay", "sparsity", "total")
    return {t: float(terms[t]) for t in parts}, np.asarray(terms["rhohat"], dtype=np.float64)


def _chunk_summary(theta, data, model: Mapping) -> dict:
    """What each checkpoint's metadata records of its end point (tracking logs it per chunk)."""
    terms, rhohat = _terms(theta, data, model)
    return {
        "terms": terms,
        "rhohat": {s: float(getattr(rhohat, s)()) for s in ("mean", "min", "max")},
    }


def load_chunks(paths: Sequence[str | Path], *, name: str, trajectory: Mapping):
    """Chunks 1..K of experiment ``name`` as ``(theta, records, metas)``, checked."""
    return read_chunks(paths, _run(name, trajectory))


def finalize(
    chunks, patches, *, theta, history, summary, name, trajectory, threads=1, resources="resources"
) -> dict:
    """Rule ``finalize``: ``theta.npz``, ``history.tsv`` and ``summary.json`` from chunks 1..K."""
    autoencoder.set_num_threads(threads)
    final, records, metas = load_chunks(chunks, name=name, trajectory=trajectory)
    checks.check_trained(name, len(records))  # e.g. a gtol above the starting gradient
    data = load_patches(patches, name=name, experiment=trajectory)
    key = fingerprint(trajectory)
    record = {"name": name, "fingerprint": key, "trajectory": copy.deepcopy(dict(trajectory))}
    save_theta_npz(theta, final, config=record)
    with atomic_write(history) as handle:
        handle.write("\t".join(RECORD_FIELDS) + "\n")
        for r in records:
            handle.write(
                f"{int(r['iteration'])}\t{float(r['cost']):.17g}\t{float(r['grad_norm']):.17g}\t"
                f"{int(r['fun_evals'])}\t{float(r['seconds']):.6f}\n"
            )
    model = trajectory["model"]
    terms, rhohat = _terms(final, data, model)
    dataset = trajectory["dataset"]
    source = datasets.get_source(dataset["source"])
    # Which data, wherever it lies: sha256 over the source's files (and the photo recipe).
    checksum = datasets.dataset_checksum(
        source,
        dataset["path"] or Path(resources) / source.name,
        path=dataset["path"],
        split=dataset["split"] if source.splits else None,
    )
    # Chunks written before stops were recorded count as having used their budget.
    stops = [m.get("stop") or {"reason": "budget", "message": "(not recorded)"} for m in metas]
    result = {
        "experiment": name,
        "fingerprint": key,
        "trajectory_key": key,
        "dataset_checksum": checksum,
        "final_cost": terms["total"],
        **{t: terms[t] for t in ("reconstruction", "weight_decay", "sparsity")},
        "rho": float(model["rho"]),
        "rhohat": rhohat.tolist(),
        **{f"rhohat_{s}": float(getattr(np, s)(rhohat)) for s in ("min", "max", "mean", "median")},
        "iterations": int(records[-1]["iteration"]) if records else 0,
        "fun_evals": int(records[-1]["fun_evals"]) if records else 0,
        "num_examples": int(data.shape[1]),
        "chunks": len(metas),
        "final_chunk": len(metas),
        "chunk_ends": [int(m["last"]["iteration"]) for m in metas],
        "stop": stops[-1],
        "chunk_stops": stops,
        "converged": any(s.get("reason") == "converged" for s in stops),
        # Wall time of the chunk jobs (imports excluded) and of the optimizer alone: figures
        # of the executions that wrote the chunks, not part of the result's identity.
        "train_seconds": float(sum(m["wall_seconds"] for m in metas)),
        "optimizer_seconds": float(records[-1]["seconds"]) if records else 0.0,
        "chunk_wall_seconds": [float(m["wall_seconds"]) for m in metas],
    }
    write_json(summary, {**result, **summary_blocks(result)})
    terms = ("final_cost", "reconstruction", "weight_decay", "sparsity")
    shown = (*terms, "iterations", "final_chunk")
    text = "final cost %.8f = reconstruction %.6f + weight decay %.6f + sparsity %.6f after %d "
    text += "iterations (chunk %d; optimizer stop: %s)"
    log.info(text, *(result[k] for k in shown), result["stop"].get("reason"))
    return result


def summary_blocks(summary: Mapping) -> dict:
    """The ``metrics`` block of ``summary.json`` (:data:`SUMMARY_METRICS`)."""
    return {"metrics": {k: summary[k] for k in SUMMARY_METRICS if k in summary}}


def load_theta(path: str | Path, *, name: str, trajectory: Mapping) -> np.ndarray:
    """The final parameters of ``theta.npz``, after checking they belong to ``trajectory``."""
    try:
        theta, record = load_theta_npz(path)
    except (OSError, ValueError) as err:
        raise ResultFileError(f"{err}; delete {path} and rerun to finalize again") from None
    found = record.get("fingerprint") if isinstance(record, Mapping) else None
    remedy = "delete it and rerun to finalize again"
    refuse_foreign(path, "trajectory", found, fingerprint(trajectory), name, remedy)
    return theta


def plot_filters(theta, output, *, array, name: str, trajectory: Mapping, patches=None):
    """Rule ``plot_filters``: ``filters.png`` (enlarged, numbered) and ``filters_array.npy``
    (the exact ``display_network`` of W1ᵀ; of ``(W1 · ZCAWhite)ᵀ`` when ``patches`` holds a
    fitted ZCA, colour tiles for RGB patches, as the linear-decoder exercise shows them)."""
    from sparseae.analysis.visualize import save_filter_grid

    model = trajectory["model"]
    params = load_theta(theta, name=name, trajectory=trajectory)
    W1 = autoencoder.unpack(params, model["visible_size"], model["hidden_size"])[0]
    if patches is not None:
        label = f"patches file {patches}"
        W1 = W1 @ read_npz(patches, ["zca"], label=label, finite=["zca"])["zca"]
    colour = trajectory["patches"].get("channels", 1) == 3
    grid = save_filter_grid(W1.T, output, array, colour=colour)
    log.info("filter grid of %d units: %s pixels -> %s", W1.shape[0], grid.shape, output)
    return grid


def plot_curves(history, summary, *, cost, rhohat, name: str, rho: float) -> None:
    """Rule ``plot_curves``: ``cost_curve.png`` (chunk boundaries marked) and ``rhohat.png``."""
    from sparseae.analysis.visualize import plot_cost_curve, plot_rhohat
    from sparseae.io import read_json, read_tsv

    result = read_json(summary)
    table = read_tsv(history, rows=result["iterations"])
    title, ends = f"{name}: sparse autoencoder training cost", result["chunk_ends"][:-1]
    plot_cost_curve(table["iteration"], table["cost"], cost, chunk_boundaries=ends, title=title)
    title = f"{name}: mean activation of each hidden unit"
    plot_rhohat(np.asarray(result["rhohat"]), rho, rhohat, title=title)
    log.info("wrote %s and %s", cost, rhohat)


def diagnose(
    theta, patches, *, json_path, png_path, name: str, trajectory: Mapping, settings: Mapping
) -> dict:
    """Rule ``diagnose``: ``diagnostics.json`` and ``units.png``, what each hidden unit does."""
    from sparseae.analysis.diagnostics import write_diagnostics

    params = load_theta(theta, name=name, trajectory=trajectory)
    data = load_patches(patches, name=name, experiment=trajectory)
    paths = {"json_path": json_path, "png_path": png_path, "settings": settings}
    run = {"model": trajectory["model"], "seed": trajectory["seed"], "experiment": name}
    record = write_diagnostics(params, data, trajectory_key=fingerprint(trajectory), **paths, **run)
    log.info("%s", ", ".join(f"{k} {v:.4g}" for k, v in record["metrics"].items()))
    return record


def _index_digest(indices) -> str:
    """sha256 of an index array (little-endian int64): the split, comparable across runs."""
    return hashlib.sha256(np.ascontiguousarray(indices, dtype="<i8").tobytes()).hexdigest()


def evaluate(
    theta, patches, evaluation, *, name: str, trajectory, settings, resources="resources"
) -> dict:
    """Rule ``evaluate``: self-taught evaluation -> evaluation.json and two confusion matrices."""
    from sparseae.analysis import evaluate as evaluation_tools

    key = f"experiments.{name}"
    dataset = trajectory["dataset"]
    images, labels = datasets.load_mnist(
        Path(resources) / dataset["source"], dataset["split"], dataset["num_images"]
    )
    try:
        split = evaluation_tools.self_taught_split(
            labels,
            unlabeled_digits=dataset["digits"],
            labeled_digits=settings["labeled_digits"],
            train_fraction=settings["train_fraction"],
            rng=rng(trajectory["seed"], "split"),
        )
    except ValueError as error:
        raise ConfigError(
            f"experiment '{name}': the self-taught split of the {labels.size} images of "
            f"{dataset['source']} ({dataset['split']}) is impossible: {error}; check "
            f"'{key}.dataset.digits', '{key}.dataset.num_images', "
            f"'{key}.evaluation.labeled_digits' and '{key}.evaluation.train_fraction'"
        ) from None
    parts = evaluation_tools.take_split(images, labels, split)
    del images
    # The features must come from unlabeled digits only: patches.npz is the autoencoder's data.
    trained_on = load_patches(patches, name=name, experiment=trajectory)  # in training.dtype
    unlabeled = parts["unlabeled"].astype(trained_on.dtype)
    if trained_on.shape != unlabeled.shape or not np.array_equal(trained_on, unlabeled):
        raise ForeignResultError(
            f"{patches} (shape {trained_on.shape}) is not the unlabeled set of experiment "
            f"'{name}' ({parts['unlabeled'].shape}: digits {dataset['digits']} of the first "
            f"{dataset['num_images'] or 'all'} {dataset['split']} images); delete it and rerun"
        )
    del trained_on
    model = trajectory["model"]
    params = load_theta(theta, name=name, trajectory=trajectory)
    counts = (split["unlabeled"].size, dataset["digits"], split["train"].size, split["test"].size)
    text = "%s: %d unlabeled (digits %s), %d train / %d test labeled (digits %s, train_fraction %g)"
    log.info(text, name, *counts, settings["labeled_digits"], settings["train_fraction"])
    arrays = [parts[k] for k in ("X_train", "y_train", "X_test", "y_test")]
    sizes = {k: model[k] for k in ("visible_size", "hidden_size")}
    result = evaluation_tools.evaluate_features(params, *arrays, **sizes, **settings["softmax"])
    # Settings go in a nested block: config.json already gives them to MLflow as params.
    extra = {
        "trajectory_key": fingerprint(trajectory),
        "n_unlabeled": int(split["unlabeled"].size),
        "protocol": {
            "source": dataset["source"],
            "split": dataset["split"],
            "num_images": dataset["num_images"],
            "unlabeled_digits": list(dataset["digits"]),
            "labeled_digits": list(settings["labeled_digits"]),
            "train_fraction": settings["train_fraction"],
            "seed": trajectory["seed"],
            "seed_purpose": "split",
            "train_indices_sha256": _index_digest(split["train"]),
            "test_indices_sha256": _index_digest(split["test"]),
        },
    }
    evaluation_tools.save_evaluation(result, Path(evaluation).parent, extra=extra)
    log.info(
        "test accuracy: features %.4f, raw pixels %.4f (n_train %d, n_test %d); softmax "
        "iterations features %d (converged %s), raw %d (converged %s)",
        *(result[k] for k in ("accuracy_features", "accuracy_raw", "n_train", "n_test")),
        *(result["softmax"][k] for k in ("n_iter_features", "converged_features")),
        *(result["softmax"][k] for k in ("n_iter_raw", "converged_raw")),
    )
    return result
