"""Configuration of stacked experiments (``stacked_experiments`` in the workflow config).

A stacked experiment is a separate kind from the single-layer ``experiments``: it has its own
top-level key, its own schema (``$defs/stacked_experiment``) and its own rules, so existing
experiments are unaffected. Its name may be listed in ``run`` like any experiment.

This module adds what the schema cannot check (:func:`check_stacked_experiment`), expands the
per-layer settings (:func:`layer_settings`) and defines what decides each stage's result
(:func:`stage_trajectory`, :func:`stage_fingerprint`): a checkpoint of a stage is resumed only
by a configuration with the same fingerprint, and Snakemake reruns a stage exactly when its
trajectory changed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from sparseae.errors import ConfigError
from sparseae.identity import key_of

__all__ = [
    "MNIST_SIZES",
    "NUM_CLASSES",
    "INPUT_SIZE",
    "check_stacked_experiment",
    "image_range",
    "layer_settings",
    "num_layers",
    "stage_trajectory",
    "stage_fingerprint",
    "fingerprint_of",
    "gradcheck_settings",
]

#: Images in each MNIST split (the IDX headers say so; checked again when loading).
MNIST_SIZES = {"train": 60_000, "test": 10_000}
#: Digits 0-9, 28 x 28 pixels.
NUM_CLASSES, INPUT_SIZE = 10, 784
PER_LAYER = ("rho", "lambda_", "beta")


def num_layers(experiment: Mapping) -> int:
    return len(experiment["layers"]["hidden_sizes"])


def image_range(experiment: Mapping, part: str) -> tuple[int, int]:
    """``(start, stop)`` of the ``train`` or ``test`` images in their split (stop resolved)."""
    spec = experiment["dataset"][part]
    stop = spec["stop"] if spec["stop"] is not None else MNIST_SIZES[spec["split"]]
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


def check_stacked_experiment(name: str, experiment: Mapping) -> None:
    """Cross-field checks a schema cannot express, for one stacked experiment with defaults."""
    key = f"stacked_experiments.{name}"
    problems = []
    count = num_layers(experiment)
    for setting in PER_LAYER:
        value = experiment["layers"][setting]
        if isinstance(value, list) and len(value) != count:
            problems.append(
                f"config key '{key}.layers.{setting}' lists {len(value)} values for {count} "
                f"layers (layers.hidden_sizes); allowed: one number for every layer, or a list "
                f"of {count}"
            )
    ranges = {}
    for part in ("train", "test"):
        spec = experiment["dataset"][part]
        size = MNIST_SIZES[spec["split"]]
        start, stop = image_range(experiment, part)
        if stop > size:
            problems.append(
                f"config key '{key}.dataset.{part}.stop' = {stop}, but the {spec['split']} split "
                f"has {size} images; allowed: {part}.start < stop <= {size} (or null for all)"
            )
        if start >= stop:
            problems.append(
                f"config key '{key}.dataset.{part}.start' = {start} leaves no images before "
                f"stop = {stop}; allowed: 0 <= start < stop"
            )
        ranges[part] = (spec["split"], start, stop)
    (s1, a1, b1), (s2, a2, b2) = ranges["train"], ranges["test"]
    if s1 == s2 and max(a1, a2) < min(b1, b2):
        problems.append(
            f"config key '{key}.dataset.test' ({s2} images {a2}..{b2 - 1}) overlaps "
            f"'{key}.dataset.train' ({s1} images {a1}..{b1 - 1}); allowed: disjoint ranges of "
            f"one split, e.g. train start 0 stop 5000 and test start 5000 (stop null)"
        )
    for stage in ("pretraining", "finetuning"):
        # The stacked costs (fine-tuning and softmax) run in float64 only.
        dtype = experiment[stage].get("dtype", "float64")
        if dtype != "float64":
            problems.append(
                f"config key '{key}.{stage}.dtype' = {dtype!r}; allowed: 'float64' (stacked "
                f"experiments train in float64; float32 is for experiments); remove the key"
            )
    problems += _training_problems(key, experiment, b1 - a1)
    examples = experiment["gradcheck"]["num_examples"]
    if examples > b1 - a1:
        problems.append(
            f"config key '{key}.gradcheck.num_examples' = {examples} exceeds the {b1 - a1} "
            f"training images; allowed: 1 <= num_examples <= {b1 - a1}"
        )
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


def _training_problems(key: str, experiment: Mapping, examples: int) -> list[str]:
    """The optimizer, chunk, weight and memory rules experiments have, for every stage."""
    from sparseae.config.checks import (
        WEIGHT_MAX,
        chunk_problems,
        optimizer_problems,
        stacked_memory_problem,
    )

    stages = {
        stage: experiment[stage]["chunks"] * experiment[stage]["iterations_per_chunk"]
        for stage in ("pretraining", "finetuning")
    }
    stages["softmax"] = experiment["softmax"]["max_iter"]
    stage, planned = max(stages.items(), key=lambda item: item[1])
    plan = f"stage {stage}" if stage == "softmax" else f"{stage}.chunks x iterations_per_chunk"
    problems = optimizer_problems(key, experiment["optimizer"], planned, plan)
    problems += chunk_problems(f"{key}.pretraining", experiment["pretraining"]["chunks"])
    problems += chunk_problems(f"{key}.finetuning", experiment["finetuning"]["chunks"])
    weights = {
        f"layers.{setting}": experiment["layers"][setting] for setting in ("lambda_", "beta")
    }
    weights["softmax.lambda_"] = experiment["softmax"]["lambda_"]
    for setting, value in weights.items():
        values = value if isinstance(value, list) else [value]
        if any(v > WEIGHT_MAX for v in values):
            problems.append(
                f"config key '{key}.{setting}' = {value} is too large (the cost overflows or "
                f"ignores the data); allowed: 0 <= {setting.split('.')[-1]} <= {WEIGHT_MAX:g}"
            )
    sizes = [INPUT_SIZE, *experiment["layers"]["hidden_sizes"]]
    memory = stacked_memory_problem(key, sizes, examples, experiment["optimizer"]["maxcor"])
    return problems + ([memory] if memory else [])


def stage_trajectory(experiment: Mapping, stage: str) -> dict:
    """The settings that decide the result of one stage (and, through it, of later stages).

    Stages are ``layer1`` … ``layerL`` (pretraining of each autoencoder), ``softmax`` and
    ``finetune``. Each stage's trajectory contains the training data, the seed, the L-BFGS options
    and everything of the earlier stages; ``iterations_per_chunk`` of a chunked stage is part
    of it (a chunk boundary restarts L-BFGS), the number of chunks is not (raising it extends
    a finished run). Resources, progress lines, gradient-check settings and descriptions are
    left out.
    """
    count = num_layers(experiment)
    if stage.startswith("layer"):
        depth = int(stage[len("layer") :])
        if not 1 <= depth <= count:
            raise ValueError(f"stage {stage!r}: the experiment has layers 1..{count}")
    elif stage in ("softmax", "finetune"):
        depth = count
    else:
        raise ValueError(f"unknown stage {stage!r}; known: layer1..layer{count}, softmax, finetune")
    dataset = experiment["dataset"]
    trajectory = {
        # The test images never shape any stage: only the evaluation reads them.
        "dataset": {"source": dataset["source"], "train": copy.deepcopy(dict(dataset["train"]))},
        "seed": experiment["seed"],
        "optimizer": copy.deepcopy(dict(experiment["optimizer"])),
        "layers": [layer_settings(experiment, layer) for layer in range(1, depth + 1)],
        "pretraining": {
            "iterations_per_chunk": experiment["pretraining"]["iterations_per_chunk"],
        },
    }
    if depth > 1 or stage in ("softmax", "finetune"):
        # The earlier layers' final parameters (their features) depend on their chunk count.
        trajectory["pretraining"]["chunks"] = experiment["pretraining"]["chunks"]
    if stage in ("softmax", "finetune"):
        trajectory["softmax"] = copy.deepcopy(dict(experiment["softmax"]))
    if stage == "finetune":
        trajectory["finetuning"] = {
            "iterations_per_chunk": experiment["finetuning"]["iterations_per_chunk"],
        }
    return trajectory


def fingerprint_of(trajectory: Mapping) -> str:
    """16-hex-digit sha256 of a stage trajectory (canonical JSON)."""
    return key_of(trajectory)


def stage_fingerprint(experiment: Mapping, stage: str) -> str:
    """:func:`fingerprint_of` the stage's :func:`stage_trajectory`."""
    return fingerprint_of(stage_trajectory(experiment, stage))


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
