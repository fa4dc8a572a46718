"""One chunk of L-BFGS training (minFunc-style or scipy's L-BFGS-B, from the previous chunk's
``theta``), its records (numbered across chunks) and its ``.npz`` checkpoint; ``maxiter`` and
``maxfun`` are budgets of the whole run (chaining: :mod:`sparseae.pipeline.chunks`)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping

import numpy as np
from threadpoolctl import threadpool_limits

from sparseae.io import ParameterFileError, atomic_path, json_member, numeric_member, read_npz
from sparseae.model import arrays, autoencoder
from sparseae.model.lbfgs import minimize_lbfgs

__all__ = [
    "LBFGSOptions",
    "ChunkResult",
    "METHODS",
    "DTYPES",
    "RECORD_FIELDS",
    "FIRST",
    "train_chunk",
    "lbfgs_chunk",
    "save_checkpoint",
    "load_checkpoint",
    "records_to_arrays",
]

METHODS = ("lbfgs", "scipy-lbfgsb")
"""Optimizers: minFunc-style L-BFGS (:mod:`sparseae.model.lbfgs`) and scipy's L-BFGS-B."""

DTYPES = ("float64", "float32")
"""Precisions of the cost evaluation (the optimizer is float64 in both)."""

RECORD_FIELDS = ("iteration", "cost", "grad_norm", "fun_evals", "seconds")
"""Fields of one training record (one per L-BFGS iteration)."""

_COUNTERS = ("iteration", "fun_evals")
_RECORD_DTYPES = {k: np.int64 if k in _COUNTERS else np.float64 for k in RECORD_FIELDS}

FIRST = {"iteration": 0, "fun_evals": 0, "seconds": 0.0}
"""The counters a run's first chunk starts from (``start`` of :func:`lbfgs_chunk`)."""


@dataclasses.dataclass(frozen=True)
class LBFGSOptions:
    """Optimizer options, set explicitly; the defaults mirror minFunc (docs/model.md).
    ``maxiter`` and ``maxfun`` are budgets of the whole run."""

    method: str = "lbfgs"
    maxcor: int = 100
    maxiter: int = 400
    maxfun: int = 1000
    gtol: float = 1e-9
    ftol: float = 1e-12
    maxls: int = 20

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(
                f"LBFGSOptions.method must be one of {list(METHODS)}, got {self.method!r}"
            )
        for name in ("maxcor", "maxiter", "maxfun", "maxls"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"LBFGSOptions.{name} must be a positive integer, got {value!r}")
        for name in ("gtol", "ftol"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"LBFGSOptions.{name} must be finite and >= 0, got {value!r}")

    def to_dict(self) -> dict:
        """Plain dict for logging (``{"maxcor": 100, ...}``)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ChunkResult:
    """What one chunk of L-BFGS gives: the parameters, its records and why it stopped.

    ``theta`` is the last finite point; ``records`` one dict of :data:`RECORD_FIELDS` per
    iteration; ``reason`` is ``"budget"`` (the normal end), ``"evaluations"``, ``"converged"``
    or ``"abnormal"`` for both methods, ``status`` scipy's code for it; ``fun_evals`` counts
    this chunk's cost evaluations."""

    theta: np.ndarray
    records: list[dict]
    reason: str
    status: int
    message: str
    fun_evals: int

    @property
    def iterations(self) -> int:
        """This chunk's iterations."""
        return len(self.records)

    @property
    def stop(self) -> dict:
        """How the optimizer stopped, as a checkpoint's ``meta["stop"]`` stores it."""
        fields = ("status", "message", "iterations", "fun_evals", "reason")
        return {name: getattr(self, name) for name in fields}


class _Objective:
    """The cost, counting evaluations and caching the last point (L-BFGS-B's accepted one)."""

    def __init__(self, cost_fn, data, kwargs):
        self.cost_fn, self.data, self.kwargs = cost_fn, data, kwargs
        self.count = 0
        self.x = self.f = self.g = None

    def __call__(self, x):
        f, g = self.cost_fn(x, self.data, **self.kwargs)
        self.count += 1
        # scipy may reuse x's buffer: keep a copy (minimize_lbfgs passes a new array each time).
        self.x = x if arrays.foreign(x) else np.array(x, dtype=np.float64)
        self.f, self.g = float(f), g
        return f, g

    def value_at(self, x):
        """Cost and gradient at ``x``: cached if ``x`` was the last point, else evaluated."""
        if self.x is not None and np.array_equal(self.x, x):
            return self.f, self.g
        f, g = self.cost_fn(x, self.data, **self.kwargs)
        return float(f), g


def train_chunk(theta0, data, iterations, *, options=None, cost_fn=None, **settings):
    """Up to ``iterations`` L-BFGS iterations of the sparse autoencoder from ``theta0`` (its
    length is checked by the cost); ``settings``: the model's ``visible_size``, ``hidden_size``,
    ``lambda_``, ``beta``, ``rho``, and :func:`lbfgs_chunk`'s ``start``, ``progress``, ``dtype``
    and ``device``. Returns a :class:`ChunkResult`."""
    model = {k: settings.pop(k) for k in ("visible_size", "hidden_size", "lambda_", "beta", "rho")}
    cost, run = cost_fn or autoencoder.cost_and_grad, {"options": options or LBFGSOptions()}
    return lbfgs_chunk(cost, theta0, data, iterations, cost_kwargs=model, **run, **settings)


def lbfgs_chunk(
    cost_fn: Callable,
    theta0,
    data,
    iterations,
    *,
    cost_kwargs: Mapping,
    options: LBFGSOptions,
    start: Mapping = FIRST,
    progress: Callable[[dict], None] | None = None,
    dtype=None,
    device: str = "cpu",
) -> ChunkResult:
    """One chunk of L-BFGS on any ``cost_fn(theta, data, **cost_kwargs) -> (cost, grad)``.

    ``start``: the previous chunk's last record's counters, so records continue globally.
    ``device`` (:data:`.arrays.DEVICES`): where the data, the cost and the optimizer's state
    live; only the records and the final float64 numpy ``theta`` leave it."""
    if device not in arrays.DEVICES:
        raise ValueError(f"device must be one of {list(arrays.DEVICES)}, got {device!r}")
    if device != "cpu" and options.method != "lbfgs":
        raise ValueError(f"device {device!r} needs method 'lbfgs', got {options.method!r}")
    theta0 = np.array(theta0, dtype=np.float64, copy=True)
    if theta0.ndim != 1 or not np.all(np.isfinite(theta0)):
        raise ValueError(f"theta0 must be a finite 1-D vector, got shape {theta0.shape}")
    if dtype is not None:
        if np.dtype(dtype).name not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        data = np.ascontiguousarray(data, dtype=np.dtype(dtype))
    iterations = int(iterations)
    first, evals0, seconds0 = int(start["iteration"]), int(start["fun_evals"]), start["seconds"]
    budget_iter = min(iterations, options.maxiter - first)
    budget_fun = options.maxfun - evals0
    if budget_iter <= 0 or budget_fun <= 0:
        exhausted = "iterations" if budget_iter <= 0 else "function evaluations"
        message = f"the run's budget of {exhausted} was used up before this chunk"
        reason = "budget" if budget_iter <= 0 else "evaluations"
        return ChunkResult(theta0, [], reason, 1, message, 0)

    objective = _Objective(cost_fn, arrays.on_device(data, device), dict(cost_kwargs))
    records: list[dict] = []
    clock0 = time.perf_counter()
    last_finite = [theta0]
    non_finite: list[int] = []

    def record(x, f, g):
        if not arrays.finite(float(f), g):
            # scipy's L-BFGS-B goes on from a NaN cost as if nothing happened; stop here and
            # keep the last point whose cost and gradient were finite.
            non_finite.append(first + len(records) + 1)
            raise StopIteration
        last_finite[0] = arrays.namespace(x)[0].asarray(x, copy=True)  # scipy reuses x
        entry = {
            "iteration": first + len(records) + 1,
            "cost": float(f),
            # sqrt(gᵀg), as numpy's norm computes it, in any array library.
            "grad_norm": math.sqrt(float(g @ g)),
            "fun_evals": evals0 + objective.count,
            "seconds": float(seconds0) + (time.perf_counter() - clock0),
        }
        records.append(entry)
        if progress is not None:
            progress(entry)

    limits = {"maxcor": options.maxcor, "maxiter": budget_iter, "maxfun": budget_fun}
    limits.update(gtol=options.gtol, ftol=options.ftol, maxls=options.maxls)
    # One BLAS thread: cost_and_grad runs its own workers; a threaded BLAS would make the
    # optimizer's sums (the trajectory) depend on the thread count; slower too (bench/README.md).
    with threadpool_limits(limits=1, user_api="blas"):
        if options.method == "lbfgs":
            # minimize_lbfgs accepts only points of finite cost and gradient (its line search
            # backs off from non-finite trial points); it reports a search that found none.
            x0 = arrays.on_device(theta0, device)
            result = minimize_lbfgs(objective, x0, callback=record, **limits)
            status, message = _LBFGS_STATUS[result.reason], result.message
            if result.non_finite:
                non_finite.append(first + len(records) + 1)
        else:
            from scipy.optimize import minimize  # here: seconds most jobs need not pay

            def callback(intermediate_result):
                record(intermediate_result.x, *objective.value_at(intermediate_result.x))

            result = minimize(
                objective, theta0, jac=True, method="L-BFGS-B", callback=callback, options=limits
            )
            status, message = int(result.status), str(result.message)
    if non_finite:
        message = (
            f"the cost or its gradient became non-finite at iteration {non_finite[0]}; "
            f"the chunk ends at the last finite point (iteration {non_finite[0] - 1})"
        )
        theta = arrays.to_numpy(last_finite[0])
        return ChunkResult(theta, records, "abnormal", 2, message, objective.count)
    # scipy's status: 0 converged (gtol/ftol), 1 maxiter or maxfun reached, 2 anything else.
    reason = {0: "converged", 1: "budget"}.get(status, "abnormal")
    if reason == "budget" and len(records) < budget_iter:
        reason = "evaluations"
    theta = arrays.to_numpy(result.x)
    return ChunkResult(theta, records, reason, status, message, objective.count)


_LBFGS_STATUS = {"converged": 0, "budget": 1, "evaluations": 1, "abnormal": 2}
""":class:`sparseae.model.lbfgs.LBFGSResult` reasons as scipy's status codes."""


def records_to_arrays(records) -> dict:
    """Records (list of dicts) as one 1-D array per field, in :data:`RECORD_FIELDS` order."""
    dtypes, n = _RECORD_DTYPES, len(records)  # reshape: 1-D even when there are none
    return {f: np.array([r[f] for r in records], dtypes[f]).reshape(n) for f in RECORD_FIELDS}


def save_checkpoint(path, theta, records, meta) -> None:
    """Write a chunk checkpoint ``.npz`` atomically: ``theta``, one array per record field
    and ``meta`` as JSON (no pickle)."""
    theta = np.asarray(theta, dtype=np.float64)
    arrays = records_to_arrays(records)
    meta_json = json.dumps(meta if meta is not None else {}, sort_keys=True)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, theta=theta, meta=np.array(meta_json), **arrays)


def load_checkpoint(path) -> tuple[np.ndarray, list[dict], dict]:
    """``(theta, records, meta)`` of a checkpoint, or a ``ParameterFileError`` naming it."""
    label = f"checkpoint {path}"
    members = read_npz(path, ["theta", "meta", *RECORD_FIELDS], label=label)
    theta = np.asarray(numeric_member(members["theta"], "theta", label=label), dtype=np.float64)
    columns = {k: numeric_member(members[k], k, label=label) for k in RECORD_FIELDS}
    if theta.ndim != 1:
        raise ParameterFileError(f"{label}: theta must be 1-D, has shape {theta.shape}")
    bad = int(np.count_nonzero(~np.isfinite(theta)))
    if bad:
        raise ParameterFileError(
            f"{label}: theta holds {bad} non-finite values (NaN or inf) of {theta.size}: the "
            f"file is damaged or training diverged"
        )
    lengths = {k: v.shape for k, v in columns.items()}
    if any(len(s) != 1 for s in lengths.values()) or len({s[0] for s in lengths.values()}) != 1:
        raise ParameterFileError(f"{label}: record arrays must be 1-D of one length: {lengths}")
    meta = json_member(members["meta"], "meta", label=label, expect=dict)
    cast = {k: int if k in _COUNTERS else float for k in RECORD_FIELDS}
    n = columns["iteration"].shape[0]
    records = [{k: cast[k](columns[k][i]) for k in RECORD_FIELDS} for i in range(n)]
    return theta, records, meta
