"""Settings of stacked experiments (schema ``$defs/stacked_experiment``): per-layer settings
and each stage's trajectory and fingerprint (a stage resumes or reruns exactly when it changed).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from sparseae.identity import key_of

#: Digits 0-9, 28 x 28 pixels.
NUM_CLASSES, INPUT_SIZE = 10, 784
PER_LAYER = ("rho", "lambda_", "beta")


def num_layers(experiment: Mapping) -> int:
    """Autoencoder layers of a stacked experiment."""
    return len(experiment["layers"]["hidden_sizes"])


def image_range(experiment: Mapping, part: str) -> tuple[int, int]:
    """``(start, stop)`` of the ``train`` or ``test`` images in their split (stop resolved)."""
    from sparseae.data import SOURCES

    spec = experiment["dataset"][part]
    stop = spec["stop"] if spec["stop"] is not None else SOURCES["mnist"].images_held(spec["split"])
    return int(spec["start"]), int(stop)


def layer_settings(experiment: Mapping, layer: int) -> dict:
    """Sparse-autoencoder settings of layer ``layer`` (1-based), as ``model`` of an experiment."""
    layers = experiment["layers"]
    sizes = [INPUT_SIZE, *layers["hidden_sizes"]]
    settings = {"visible_size": sizes[layer - 1], "hidden_size": sizes[layer]}
    for key in PER_LAYER:
        value = layers[key]
        settings[key] = value[layer - 1] if isinstance(value, list) else value
    return settings


def stage_trajectory(experiment: Mapping, stage: str) -> dict:
    """The settings that decide the result of stage ``layer1`` … ``layerL``, ``softmax`` or
    ``finetune``: training data, seed, L-BFGS options, earlier stages and
    ``iterations_per_chunk`` (a chunk boundary restarts L-BFGS), not the own chunk count."""
    count = num_layers(experiment)
    depth = count if stage in ("softmax", "finetune") else int(stage.removeprefix("layer"))
    if not 1 <= depth <= count:  # an unknown name fails in int() with a ValueError too
        raise ValueError(f"stage {stage!r}: known are layer1..layer{count}, softmax, finetune")
    dataset = experiment["dataset"]
    trajectory = {
        # The test images never shape any stage: only the evaluation reads them.
        "dataset": {"source": dataset["source"], "train": copy.deepcopy(dict(dataset["train"]))},
        "seed": experiment["seed"],
        "optimizer": copy.deepcopy(dict(experiment["optimizer"])),
        "layers": [layer_settings(experiment, layer) for layer in range(1, depth + 1)],
        "pretraining": {"iterations_per_chunk": experiment["pretraining"]["iterations_per_chunk"]},
    }
    if depth > 1 or stage in ("softmax", "finetune"):
        # The earlier layers' final parameters (their features) depend on their chunk count.
        trajectory["pretraining"]["chunks"] = experiment["pretraining"]["chunks"]
    if stage in ("softmax", "finetune"):
        trajectory["softmax"] = copy.deepcopy(dict(experiment["softmax"]))
    if stage == "finetune":
        trajectory["finetuning"] = {
            "iterations_per_chunk": experiment["finetuning"]["iterations_per_chunk"]
        }
    return trajectory


def stage_fingerprint(experiment: Mapping, stage: str) -> str:
    """The key (:func:`sparseae.identity.key_of`) of the stage's :func:`stage_trajectory`."""
    return key_of(stage_trajectory(experiment, stage))


def gradcheck_settings(experiment: Mapping) -> dict:
    """What the gradient check reads: seed, layer count, layer 1's ρ λ β, softmax λ, checks."""
    first = layer_settings(experiment, 1)
    return {
        "seed": experiment["seed"],
        "num_layers": num_layers(experiment),
        "layer1": {key: first[key] for key in PER_LAYER},
        "softmax_lambda": experiment["softmax"]["lambda_"],
        "gradcheck": copy.deepcopy(dict(experiment["gradcheck"])),
    }
