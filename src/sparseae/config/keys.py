"""What each experiment key decides: seeds, what a change recomputes, the trajectory key.

Every random choice draws from its own Generator, :func:`rng` (child ``PURPOSES[purpose]`` of
``SeedSequence(seed)``); config/README.md documents seeds and what each key recomputes.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

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

#: What a change of each experiment key recomputes, by dotted path under ``experiments.<name>``
#: (an entry covers every key below it; config/README.md explains each kind). The keys marked
#: "trajectory" are what :func:`trajectory_config` selects and :func:`fingerprint` hashes.
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
    "training.device": "trajectory",
    "training.chunks": "chunks",
    "training.progress_every": "record",
    "gradcheck": "gradcheck",
    "evaluation": "evaluation",
    "cnn": "pooled",
    "cnn.softmax": "softmax",
    "resources": "record",
}

#: The kinds of :data:`RECOMPUTES`, in order of what they redo.
RECOMPUTE_KINDS = ("trajectory", "chunks", "gradcheck", "evaluation", "pooled", "softmax", "record")


def rng(seed: int, purpose: str) -> np.random.Generator:
    """The Generator for one purpose of an experiment (child of ``SeedSequence(seed)``)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown random purpose {purpose!r}; known: {', '.join(PURPOSES)}")
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(PURPOSES[purpose],)))


def recomputes(path: str) -> str:
    """What a change of the experiment key ``path`` (dotted) recomputes; KeyError if none."""
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        kind = RECOMPUTES.get(".".join(parts[:n]))
        if kind is not None:
            return kind
    raise KeyError(f"experiment key {path!r} is not classified in sparseae.config.RECOMPUTES")


def trajectory_config(experiment: Mapping) -> dict:
    """The settings :data:`RECOMPUTES` marks "trajectory" (what :func:`fingerprint` hashes);
    a trajectory selects itself."""
    subset: dict = {}
    for path in (path for path, kind in RECOMPUTES.items() if kind == "trajectory"):
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


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{dotted path: value}`` of every leaf of a nested mapping."""
    if not isinstance(obj, Mapping):
        return {prefix[:-1]: obj}
    return {
        k: v for key, value in obj.items() for k, v in flatten(value, f"{prefix}{key}.").items()
    }


def describe_difference(a: Mapping, b: Mapping) -> str:
    """``key: a-value != b-value`` for every differing leaf of two nested configs."""
    fa, fb = flatten(a), flatten(b)
    diffs = [
        f"{k}: {json.dumps(fa.get(k), default=str)} != {json.dumps(fb.get(k), default=str)}"
        for k in sorted(set(fa) | set(fb))
        if fa.get(k) != fb.get(k)
    ]
    return "; ".join(diffs) if diffs else "(no differing keys)"


def write_config(path: str | os.PathLike, name: str, experiment: Mapping) -> dict:
    """Write ``config.json`` (name, fingerprint, resolved experiment) atomically; return it."""
    from sparseae.io import write_json

    record = {"name": name, "fingerprint": fingerprint(experiment)}
    record["experiment"] = copy.deepcopy(dict(experiment))
    write_json(path, record)
    return record
