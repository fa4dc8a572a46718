"""The one chunk engine: every trained thing runs, resumes and reads its chunks back here.

Chunk ``k`` warm-starts from chunk ``k-1``'s checkpoint once it is checked to be the same
:class:`Run`'s, and is written atomically: a killed job resumes at the first missing chunk and
ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sparseae.config import describe_difference
from sparseae.data.download import remove_stale_temporaries
from sparseae.errors import ForeignResultError, ResultFileError
from sparseae.model.train import (
    FIRST,
    RECORD_FIELDS,
    ChunkResult,
    LBFGSOptions,
    lbfgs_chunk,
    load_checkpoint,
    save_checkpoint,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Problem:
    """What a run minimizes: ``cost_fn(theta, data, **cost_kwargs)`` from ``initial()``,
    ``iterations`` per chunk; ``summarize(theta)`` adds figures to each checkpoint's meta."""

    initial: Callable[[], np.ndarray]
    cost_fn: Callable
    data: Any
    cost_kwargs: Mapping
    iterations: int
    summarize: Callable[[np.ndarray], dict] | None = None

    def minimize(self, optimizer: Mapping) -> ChunkResult:
        """The whole run at once, without checkpoints (a baseline that is never resumed)."""
        options = LBFGSOptions(**optimizer, maxiter=self.iterations)
        theta0, kwargs = self.initial(), {"cost_kwargs": self.cost_kwargs, "options": options}
        return lbfgs_chunk(self.cost_fn, theta0, self.data, self.iterations, **kwargs)


@dataclasses.dataclass(frozen=True)
class Run:
    """Whose checkpoints these are: ``trajectory``, its ``fingerprint`` and the theta ``length``
    (explained by ``shape``) must match; ``owner`` names the run in messages, ``folder`` is what
    to delete to retrain, ``meta`` goes into every checkpoint's metadata."""

    owner: str
    trajectory: Mapping
    fingerprint: str
    length: int
    shape: str
    folder: str
    meta: Mapping = dataclasses.field(default_factory=dict)

    def check(self, path, theta: np.ndarray, meta: Mapping, k: int) -> None:
        """Refuse the checkpoint ``path`` unless it is chunk ``k`` of this run."""
        found = meta.get("fingerprint")
        if found != self.fingerprint:
            differences = describe_difference(
                _by_layer(meta.get("trajectory", {})), _by_layer(self.trajectory)
            )
            raise ForeignResultError(
                f"{path} belongs to trajectory {found or '(none recorded)'}, but {self.owner} "
                f"now has trajectory {self.fingerprint} (differences, file != now: "
                f"{differences}): it was copied from another experiment or written with other "
                f"settings; delete it (or {self.folder}) and rerun to retrain from there, or "
                f"restore the settings that wrote it"
            )
        if theta.size != self.length:
            raise ForeignResultError(
                f"checkpoint {path} holds a theta of length {theta.size}, but {self.owner} "
                f"{self.shape} needs {self.length}; delete the checkpoint or restore the "
                f"configuration that wrote it"
            )
        if meta.get("chunk") != int(k):
            raise ForeignResultError(
                f"{path} holds chunk {meta.get('chunk')}, not chunk {k}: it was renamed or "
                f"copied; delete it and rerun to retrain chunk {k}"
            )


def refuse_foreign(path, what: str, found, expected: str, name: str, remedy: str) -> None:
    """Refuse the result file ``path`` unless its recorded ``what`` (a key) is ``expected``."""
    if found != expected:
        raise ForeignResultError(
            f"{path} belongs to {what} {found or '(none recorded)'}, but experiment '{name}' "
            f"now has {what} {expected}: it was copied from another experiment or written "
            f"with other settings; {remedy}"
        )


def _by_layer(trajectory: Mapping) -> Mapping:
    """A stacked trajectory's list of layers as ``layer1``, ``layer2``, … (readable diffs)."""
    if not isinstance(trajectory.get("layers"), list):
        return trajectory
    layers = {f"layer{i}": x for i, x in enumerate(trajectory["layers"], start=1)}
    return {**trajectory, "layers": layers}


def read_checkpoint(path, run: Run | None = None, k: int | None = None):
    """``(theta, records, meta)`` of a checkpoint; with ``run``, checked to be its chunk ``k``."""
    try:
        theta, records, meta = load_checkpoint(path)
    except (OSError, ValueError) as err:
        raise ResultFileError(f"{err}; delete {path} and rerun to recompute it") from None
    if run is not None:
        run.check(path, theta, meta, k)
    return theta, records, meta


def read_chunks(paths: Sequence, run: Run | None = None):
    """``(last theta, all records, every meta)`` of chunks 1..K (K >= 1), checked."""
    records, metas = [], []
    for k, path in enumerate(paths, start=1):
        theta, chunk_records, meta = read_checkpoint(path, run, k)
        records += chunk_records
        metas.append(meta)
    return theta, records, metas


def run_chunk(output, k: int, previous, run: Run, problem: Problem, threads=1, progress_every=10):
    """Chunk ``k`` of ``run``: resume check, warm start, L-BFGS, atomic checkpoint ``output``.

    Chunk 1 starts from ``problem.initial()``, chunk ``k`` from ``previous``; the optimizer
    settings, dtype and device come from the run's trajectory. Returns the metadata.
    """
    output = Path(output)
    remove_stale_temporaries(output, older_than=0)  # only this job writes chunk k
    started = time.perf_counter()
    k = int(k)
    if k == 1:
        theta0, last = problem.initial(), FIRST
    elif previous is None:
        raise ValueError(f"chunk {k} needs the checkpoint of chunk {k - 1}")
    else:
        theta0, records, meta = read_checkpoint(previous, run, k - 1)
        # Counters continue across chunks; an empty chunk (converged) carries its start on.
        last = records[-1] if records else meta["last"]
    last = {key: last[key] for key in FIRST}
    first = int(last["iteration"])
    iterations = problem.iterations
    options = LBFGSOptions(**run.trajectory["optimizer"], maxiter=first + int(iterations))
    label = f"{run.owner}, chunk {k}"
    text = "%s: %d iterations from iteration %d; %d threads; theta length %d"
    log.info(text, label, iterations, first, threads, np.size(theta0))
    log.info("%9s %14s %12s %9s %9s", *RECORD_FIELDS)

    def progress(record):
        done = int(record["iteration"]) - first
        if done % progress_every == 0 or done == iterations:
            log.info("%9d %14.8f %12.4e %9d %9.2f", *(record[f] for f in RECORD_FIELDS))

    # Only a single experiment's trajectory has a `training` section (dtype, device).
    training = run.trajectory.get("training", {})
    hooks = {"start": last, "progress": progress, "dtype": training.get("dtype")}
    hooks.update(device=training.get("device", "cpu"), cost_kwargs=problem.cost_kwargs)
    result = lbfgs_chunk(
        problem.cost_fn, theta0, problem.data, iterations, options=options, **hooks
    )
    if result.reason != "budget":
        why = (result.iterations, iterations, result.reason, result.message)
        log.warning("WARNING %s stopped after %d of %d iterations: %s (%s)", label, *why)
    from sparseae.environment import environment_info

    meta = {
        **run.meta,
        "chunk": k,
        "fingerprint": run.fingerprint,
        "trajectory": copy.deepcopy(dict(run.trajectory)),
        "threads": int(threads),
        "options": options.to_dict(),
        "stop": result.stop,
        **(problem.summarize(result.theta) if problem.summarize else {}),
        "wall_seconds": time.perf_counter() - started,
        "last": {key: result.records[-1][key] for key in FIRST} if result.records else last,
        "environment": environment_info(),
    }
    save_checkpoint(output, result.theta, result.records, meta)
    cost = f"{result.records[-1]['cost']:.8f}" if result.records else "unchanged"
    text = "wrote %s: %d iterations in this chunk, cost %s; optimizer stopped (%s): %s"
    log.info(text, output, result.iterations, cost, result.reason, result.message)
    return meta
