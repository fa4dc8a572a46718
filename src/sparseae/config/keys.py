"""What each experiment key decides: seeds, what a change recomputes, the trajectory key.

Seeds
-----
Each experiment has one integer ``seed``. Every random choice draws from its own
:class:`numpy.random.Generator`, derived by :func:`rng` as the *named child* ``i`` of
``numpy.random.SeedSequence(seed)`` (``SeedSequence(seed, spawn_key=(i,))``, identical to
``SeedSequence(seed).spawn(i + 1)[i]``), with the fixed purpose indices in :data:`PURPOSES`.
Adding a purpose later never changes the streams of the existing ones.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from sparseae.errors import ConfigError
from sparseae.identity import key_of

#: Purpose -> child index of ``SeedSequence(seed)``; never renumber, only append.
PURPOSES = {
    "patches": 0,
    "init": 1,
    "gradcheck": 2,
    "split": 3,
    "stacked_init": 4,  # stacked experiments: layer l's autoencoder from child l of this one
    "stacked_gradcheck": 5,
    "diagnostics": 6,  # the random examples of the per-unit diagnostics' baseline
}

#: What a change of each experiment key recomputes, by dotted path under
#: ``experiments.<name>`` (an entry covers every key below it). This table is the one
#: definition of an experiment's trajectory: the keys marked "trajectory" are what
#: :func:`trajectory_config` selects and :func:`fingerprint` hashes. A test walks the schema and
#: fails for a key that is not classified here. Meanings (config/README.md shows them per key):
#:
#: - ``trajectory``: the numbers change: patches (where the data settings change), the gradient
#:   check, every training chunk and everything after them; a new MLflow run.
#: - ``chunks``: only the chunks added are trained (raising), or the final result is taken
#:   from an earlier chunk without training (lowering); the MLflow run is extended.
#: - ``gradcheck``: the gradient check reruns; training waits for it but is not redone.
#: - ``evaluation``: the self-taught evaluation reruns (digit experiments).
#: - ``record``: nothing is recomputed; ``config.json`` and the MLflow run's params follow.
RECOMPUTES = {
    "description": "record",
    "dataset": "trajectory",
    "patches": "trajectory",
    "model": "trajectory",
    "optimizer": "trajectory",
    "optimizer.method": "trajectory",
    "seed": "trajectory",
    "training.iterations_per_chunk": "trajectory",
    "training.dtype": "trajectory",
    "training.chunks": "chunks",
    "training.progress_every": "record",
    "gradcheck": "gradcheck",
    "evaluation": "evaluation",
    "resources": "record",
}

#: The kinds of :data:`RECOMPUTES`, in order of what they redo.
RECOMPUTE_KINDS = ("trajectory", "chunks", "gradcheck", "evaluation", "record")


def rng(seed: int, purpose: str) -> np.random.Generator:
    """The Generator for one purpose of an experiment (child of ``SeedSequence(seed)``)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown random purpose {purpose!r}; known: {', '.join(PURPOSES)}")
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(PURPOSES[purpose],)))


def recomputes(path: str) -> str:
    """What a change of the experiment key ``path`` (dotted) recomputes (:data:`RECOMPUTES`).

    Raises
    ------
    KeyError
        For a key no entry of :data:`RECOMPUTES` covers.
    """
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        kind = RECOMPUTES.get(".".join(parts[:n]))
        if kind is not None:
            return kind
    raise KeyError(f"experiment key {path!r} is not classified in sparseae.config.RECOMPUTES")


def trajectory_config(experiment: Mapping) -> dict:
    """The settings that decide the training trajectory (what :func:`fingerprint` hashes).

    The keys :data:`RECOMPUTES` marks "trajectory", e.g. ``training.iterations_per_chunk`` (a
    chunk boundary restarts L-BFGS) but not ``training.chunks``, so raising it extends a
    finished run without retraining. Works on a trajectory too (it selects itself).
    """
    subset: dict = {}
    for path, kind in RECOMPUTES.items():
        if kind != "trajectory":
            continue
        *parents, leaf = path.split(".")
        source, target = experiment, subset
        for part in parents:
            source = source[part]
            target = target.setdefault(part, {})
        if leaf in source:
            target[leaf] = copy.deepcopy(source[leaf])
    return subset


def fingerprint(experiment: Mapping) -> str:
    """Stable 16-hex-digit hash of :func:`trajectory_config` (canonical JSON, sha256)."""
    return key_of(trajectory_config(experiment))


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: obj}


def describe_difference(a: Mapping, b: Mapping) -> str:
    """``key: a-value != b-value`` for every differing leaf of two nested configs."""
    fa, fb = _flatten(a), _flatten(b)
    diffs = [
        f"{k}: {json.dumps(fa.get(k), default=str)} != {json.dumps(fb.get(k), default=str)}"
        for k in sorted(set(fa) | set(fb))
        if fa.get(k) != fb.get(k)
    ]
    return "; ".join(diffs) if diffs else "(no differing keys)"


def check_resume(
    path: str | os.PathLike, meta: Mapping, name: str, experiment: Mapping, theta_length: int
) -> None:
    """Refuse a checkpoint whose theta has the wrong length for ``experiment``'s model (the
    chunk's trajectory key is compared by its reader, ``pipeline.experiment.load_chunks``)."""
    from sparseae.model.autoencoder import parameter_count

    h, v = experiment["model"]["hidden_size"], experiment["model"]["visible_size"]
    expected = parameter_count(v, h)
    if theta_length != expected:
        raise ConfigError(
            f"checkpoint {path} holds a theta of length {theta_length}, but experiment "
            f"'{name}' (hidden_size {h}, visible_size {v}) needs {expected}; delete the "
            f"checkpoint or restore the configuration that wrote it"
        )


def experiment_record(name: str, experiment: Mapping) -> dict:
    """What ``results/{name}/config.json`` holds: name, fingerprint and the resolved config."""
    return {
        "name": name,
        "fingerprint": fingerprint(experiment),
        "experiment": copy.deepcopy(dict(experiment)),
    }


def write_config(path: str | os.PathLike, name: str, experiment: Mapping) -> dict:
    """Write :func:`experiment_record` atomically to ``path`` and return it."""
    from sparseae.io import write_json

    record = experiment_record(name, experiment)
    write_json(path, record)
    return record
