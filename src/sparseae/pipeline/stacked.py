"""The steps of a stacked experiment, one function per workflow rule (same name as the rule).

Files and stages: docs/stacked.md. Chunked stages (layers, softmax, fine-tuning) are runs of
the one chunk engine (:mod:`sparseae.pipeline.chunks`), so they resume bit-identically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from sparseae.config import PURPOSES, rng
from sparseae.config.stacked import (
    INPUT_SIZE,
    NUM_CLASSES,
    image_range,
    num_layers,
    stage_fingerprint,
)
from sparseae.errors import ResultFileError
from sparseae.identity import key_of
from sparseae.io import (
    ParameterFileError,
    atomic_path,
    load_theta_npz,
    read_npz,
    save_theta_npz,
    write_json,
)
from sparseae.model import autoencoder, softmax, stacked
from sparseae.pipeline.chunks import Problem, Run, read_checkpoint, read_chunks, run_chunk
from sparseae.pipeline.experiment import cost_settings

log = logging.getLogger("sparseae.stacked")


def write_stacked_config(path, name: str, experiment: Mapping) -> dict:
    """``stacked_config.json``: name, the resolved config and every stage's fingerprint."""
    stages = [f"layer{i}" for i in range(1, num_layers(experiment) + 1)] + ["softmax", "finetune"]
    record = {
        "name": name,
        "kind": "stacked",
        "fingerprints": {s: stage_fingerprint(experiment, s) for s in stages},
        "experiment": dict(experiment),
    }
    write_json(path, record)
    log.info("wrote %s (stage fingerprints %s)", path, record["fingerprints"])
    return record


def write_finetune_trajectory(path, *, name: str, trajectory: Mapping) -> dict:
    """``finetune/trajectory.json``: fine-tuning's stage trajectory and its fingerprint."""
    record = {
        "name": name,
        "stage": "finetune",
        "fingerprint": key_of(trajectory),
        "trajectory": dict(trajectory),
    }
    write_json(path, record)
    log.info("wrote %s (fine-tuning fingerprint %s)", path, record["fingerprint"])
    return record


def prepare_stacked_data(path, source: str, images: Mapping, folder=None) -> tuple:
    """``stacked_{train,test}.npz``: ``images`` (784 × m, pixels / 255) and ``labels`` (m)."""
    from sparseae.data import load_mnist

    split = images["split"]
    start, stop = image_range({"dataset": {"part": images}}, "part")
    pixels, labels = load_mnist(folder or f"resources/{source}", split, stop)
    # np.savez writes a slice's values in C order, as a contiguous copy would be written.
    arrays = {"images": pixels[:, start:stop], "labels": labels[start:stop]}
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    shape, where = arrays["images"].shape, (split, start, stop - 1, stop - start)
    log.info("wrote %s: %s images %d..%d (%d), array %s", path, *where, shape)
    return shape


def _load(path, *keys):
    try:
        members = read_npz(path, keys, label=f"result file {path}", finite=keys)
    except (FileNotFoundError, ParameterFileError) as err:
        raise ResultFileError(f"{err}; delete it and rerun to recompute it") from None
    return [members[k] for k in keys]


def check_stacked_gradient(data_path, path, name: str, settings: Mapping) -> dict:
    """Check the fine-tuning gradient on a small stack and layer 1's autoencoder gradient."""
    from sparseae.model.gradcheck import check_gradient, require_passed

    check = settings["gradcheck"]
    images, labels = _load(data_path, "images", "labels")
    count, hidden = check["num_examples"], check["hidden_size"]
    # One generator, drawn from in this order: the fine-tuning check, then layer 1's.
    common = {"rng": rng(settings["seed"], "stacked_gradcheck"), "epsilon": check["epsilon"]}
    common["bound"] = check["bound"]
    sizes = [hidden] * settings["num_layers"]
    finetune = {"hidden_sizes": sizes, "num_classes": NUM_CLASSES, **common}
    data = images[:, :count]
    lambda_ = settings["softmax_lambda"]
    result = stacked.check_finetune_gradient(data, labels[:count], lambda_=lambda_, **finetune)
    ae = check_gradient(hidden_size=hidden, data=data, **settings["layer1"], **common)
    result.update(autoencoder=ae["autoencoder"], quadratic=ae["quadratic"])
    result["passed"] = bool(result["passed"] and ae["passed"])
    require_passed(
        result,
        {"fine-tuning": result["finetune"], "layer-1 autoencoder": result["autoencoder"]},
        what=f"stacked experiment '{name}'",
        config_key=f"stacked_experiments.{name}.gradcheck.bound",
    )
    metrics = {f"gradcheck_{k}": result[k] for k in ("finetune", "autoencoder")}
    write_json(path, {**result, "metrics": metrics})
    return result


def _hidden_sizes(trajectory) -> list[int]:
    return [int(layer["hidden_size"]) for layer in trajectory["layers"]]


def _run(name: str, trajectory: Mapping, output) -> Run:
    """The chunked run of one stage (checkpoints in ``output``'s folder)."""
    hidden = _hidden_sizes(trajectory)
    if "finetuning" in trajectory:
        stage, length = "finetune", stacked.stack_parameter_count(INPUT_SIZE, hidden, NUM_CLASSES)
    elif "softmax" in trajectory:
        stage, length = "softmax", NUM_CLASSES * hidden[-1]
    else:
        stage = f"layer{len(hidden)}"
        length = autoencoder.parameter_count(trajectory["layers"][-1]["visible_size"], hidden[-1])
    return Run(
        owner=f"stage {stage} of stacked experiment '{name}'",
        trajectory=trajectory,
        fingerprint=key_of(trajectory),
        length=length,
        shape=f"(hidden sizes {hidden})",
        folder=f"{Path(output).parent}/",
        meta={"experiment": name, "stage": stage},
    )


def _layer_data(data_path, trajectory: Mapping):
    """The last layer's number, settings and training data (layer 1: images, else features)."""
    layer, model = len(trajectory["layers"]), trajectory["layers"][-1]
    (data,) = _load(data_path, "images" if layer == 1 else "features")
    if data.shape[0] != model["visible_size"]:
        raise ResultFileError(
            f"{data_path} has {data.shape[0]} rows, layer {layer} needs {model['visible_size']}; "
            f"delete it and rerun to recompute it"
        )
    return layer, model, data


def train_layer_chunk(
    data_path, previous, output, *, name, trajectory, chunk: int, progress_every=10, threads=1
):
    """Chunk ``chunk`` of the autoencoder of the last layer of stage trajectory ``trajectory``."""
    autoencoder.set_num_threads(threads)
    layer, model, data = _layer_data(data_path, trajectory)
    v, h = model["visible_size"], model["hidden_size"]
    seed = np.random.SeedSequence(trajectory["seed"], spawn_key=(PURPOSES["stacked_init"], layer))
    problem = Problem(
        initial=lambda: autoencoder.initialize_parameters(h, v, np.random.default_rng(seed)),
        cost_fn=autoencoder.cost_and_grad,
        data=data,
        cost_kwargs=cost_settings(model),
        iterations=trajectory["pretraining"]["iterations_per_chunk"],
    )
    run = _run(name, trajectory, output)
    return run_chunk(output, chunk, previous, run, problem, threads, progress_every)


def finalize_layer(
    chunk_paths, data_path, theta_path, features_path, *, name, trajectory, threads=1
):
    """A layer's final parameters (``theta.npz``) and its features of the training set."""
    autoencoder.set_num_threads(threads)
    theta, records, _ = read_chunks(chunk_paths, _run(name, trajectory, chunk_paths[-1]))
    layer, model, data = _layer_data(data_path, trajectory)
    save_theta_npz(theta_path, theta, config={"layer": layer, "model": model})
    features = autoencoder.hidden_activations(
        theta, data, visible_size=model["visible_size"], hidden_size=model["hidden_size"]
    )
    with atomic_path(features_path, suffix=".npz") as tmp:
        np.savez(tmp, features=features)
    stats = (len(records), records[-1]["cost"] if records else float("nan"), features.shape)
    text = "layer %d: %d iterations, final cost %.8f; features %s, mean activation %.4f (rho %g)"
    log.info(text, layer, *stats, features.mean(), model["rho"])
    return theta


def _softmax_problem(features, labels, trajectory: Mapping) -> Problem:
    """UFLDL's softmax from 0 on ``features``: the stage ``softmax`` and the raw-pixel baseline."""
    settings = trajectory["softmax"]
    return Problem(
        initial=lambda: np.zeros(NUM_CLASSES * features.shape[0]),
        cost_fn=softmax.cost_and_grad,
        data=features,
        cost_kwargs={"labels": labels, "num_classes": NUM_CLASSES, "lambda_": settings["lambda_"]},
        iterations=settings["max_iter"],
    )


def train_stacked_softmax(features_path, data_path, output, *, name, trajectory):
    """``softmax.npz``: UFLDL's softmax on the last layer's features, a one-chunk run from 0."""
    (features,) = _load(features_path, "features")
    (labels,) = _load(data_path, "labels")
    problem = _softmax_problem(features, labels, trajectory)
    return run_chunk(output, 1, None, _run(name, trajectory, output), problem)


def _pretrained_stack(layer_thetas, softmax_path, hidden):
    softmax_theta, _, _ = read_checkpoint(softmax_path)
    weights = softmax_theta.reshape((NUM_CLASSES, hidden[-1]), order="F")
    thetas = [load_theta_npz(path)[0] for path in layer_thetas]
    return stacked.stack_from_autoencoders(weights, thetas, INPUT_SIZE, hidden)


def finetune_chunk(
    data_path, layers, softmax_path, previous, output, *, name, trajectory, chunk, progress_every=10
):
    """Chunk ``chunk`` of fine-tuning the whole stack (chunk 1 from the pretrained stack of the
    ``layers``' theta files and ``softmax_path``)."""
    images, labels = _load(data_path, "images", "labels")
    hidden = _hidden_sizes(trajectory)
    cost_kwargs = {"labels": labels, "lambda_": trajectory["softmax"]["lambda_"]}
    cost_kwargs.update(input_size=INPUT_SIZE, hidden_sizes=hidden, num_classes=NUM_CLASSES)
    problem = Problem(
        initial=lambda: _pretrained_stack(layers, softmax_path, hidden),
        cost_fn=stacked.finetune_cost_and_grad,
        data=images,
        cost_kwargs=cost_kwargs,
        iterations=trajectory["finetuning"]["iterations_per_chunk"],
    )
    run = _run(name, trajectory, output)
    return run_chunk(output, chunk, previous, run, problem, 1, progress_every)


def finalize_stacked(layer_thetas, softmax_path, chunk_paths, output, *, name, trajectory):
    """``stack.npz``: ``pretrained`` and ``finetuned`` stack parameters, and ``config``."""
    import json

    hidden = _hidden_sizes(trajectory)
    pretrained = _pretrained_stack(layer_thetas, softmax_path, hidden)
    finetuned, _, _ = read_chunks(chunk_paths, _run(name, trajectory, chunk_paths[-1]))
    layout = {
        "name": name,
        "input_size": INPUT_SIZE,
        "hidden_sizes": hidden,
        "num_classes": NUM_CLASSES,
        "layout": "[softmaxTheta(:); W1(:); b1; W2(:); b2; ...] column-major",
    }
    config = np.array(json.dumps(layout, sort_keys=True))
    with atomic_path(output, suffix=".npz") as tmp:
        np.savez(tmp, pretrained=pretrained, finetuned=finetuned, config=config)
    return pretrained, finetuned


def evaluate_stacked(
    train_path, test_path, stack_path, stage_chunks: Mapping, outputs: Mapping, *, trajectory
):
    """Test accuracy before and after fine-tuning, and of softmax on raw pixels."""
    from sparseae.analysis.evaluate import plot_confusions, scores

    train_x, train_y = _load(train_path, "images", "labels")
    test_x, test_y = _load(test_path, "images", "labels")
    pretrained, finetuned = _load(stack_path, "pretrained", "finetuned")
    shape = {"input_size": INPUT_SIZE, "hidden_sizes": _hidden_sizes(trajectory)}
    shape["num_classes"] = NUM_CLASSES
    result = {"n_train": int(train_y.size), "n_test": int(test_y.size), **shape}
    result["classes"] = list(range(NUM_CLASSES))
    for when, theta in (("before", pretrained), ("after", finetuned)):
        predicted = stacked.predict(theta, test_x, **shape)
        result.update(scores(when, test_y, predicted, result["classes"]))
        trained = stacked.predict(theta, train_x, **shape)
        result[f"train_accuracy_{when}"] = float(np.mean(trained == train_y))
    # Softmax on the raw pixels: the same objective, λ, iterations and optimizer settings.
    started = time.perf_counter()
    raw = _softmax_problem(train_x, train_y, trajectory).minimize(trajectory["optimizer"])
    raw_weights = raw.theta.reshape((NUM_CLASSES, INPUT_SIZE), order="F")
    result["accuracy_raw"] = float(np.mean(softmax.predict(raw_weights, test_x) == test_y))
    seconds, iterations = {}, {}
    for stage, paths in stage_chunks.items():
        _, records, metas = read_chunks(paths)
        seconds[stage] = float(sum(m["wall_seconds"] for m in metas))
        iterations[stage] = int(records[-1]["iteration"]) if records else 0
    seconds["softmax_raw"] = time.perf_counter() - started
    iterations["softmax_raw"] = raw.iterations
    result.update(seconds=seconds, iterations=iterations)
    plot_confusions(result, {"before": "pretrained stack", "after": "fine-tuned stack"}, outputs)
    # What MLflow shows of it: the accuracies and stage times (metrics), the counts (params).
    metrics = {key: value for key, value in result.items() if "accuracy_" in key}
    metrics.update({f"seconds_{stage}": value for stage, value in seconds.items()})
    params = {f"evaluation.{k}": result[k] for k in ("n_train", "n_test")}
    # last: its presence means the figures exist
    write_json(outputs["evaluation"], {**result, "metrics": metrics, "params": params})
    shown = ("accuracy_before", "accuracy_after", "accuracy_raw", "n_train", "n_test")
    log.info(
        "test accuracy: before fine-tuning %.4f, after %.4f, softmax on raw pixels %.4f "
        "(n_train %d, n_test %d)",
        *(result[key] for key in shown),
    )
    return result


def plot_stacked(stack_path, stage_chunks: Mapping, outputs: Mapping, *, name, hidden_sizes):
    """Layer 1's filter grid before and after fine-tuning, and every stage's cost curve."""
    from sparseae.analysis.visualize import display_network, new_figure, save_figure, save_png

    pretrained, finetuned = _load(stack_path, "pretrained", "finetuned")
    hidden = list(hidden_sizes)
    for when, theta in (("before", pretrained), ("after", finetuned)):
        _, layers = stacked.unpack_stack(theta, INPUT_SIZE, hidden, NUM_CLASSES)
        save_png(display_network(np.asarray(layers[0][0]).T), outputs[f"filters_{when}"], 2)
    n = len(stage_chunks)
    fig, axes = new_figure((4.0 * n, 3.6), 1, n, squeeze=False)
    for ax, (stage, paths) in zip(axes[0], stage_chunks.items(), strict=True):
        _, records, metas = read_chunks(paths)
        iterations = [r["iteration"] for r in records]
        costs = [r["cost"] for r in records]
        ax.plot(iterations, costs, color="tab:blue", linewidth=1.2)
        for end in [meta["last"]["iteration"] for meta in metas[:-1]]:
            ax.axvline(end, color="tab:gray", linestyle="--", linewidth=0.8)
        if costs and min(costs) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("L-BFGS iteration")
        ax.set_title(f"{stage}: final {costs[-1]:.4g}" if costs else stage, fontsize=10)
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"{name}: cost per iteration of each stage (dashed: chunk boundaries)")
    save_figure(fig, outputs["curves"])
