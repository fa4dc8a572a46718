"""One chunk of L-BFGS training, its per-iteration records and its ``.npz`` checkpoint.

Two optimizers (:attr:`LBFGSOptions.method`): ``"lbfgs"`` (default),
:func:`sparseae.model.lbfgs.minimize_lbfgs`, minFunc's L-BFGS and line search, and
``"scipy-lbfgsb"``, ``scipy.optimize.minimize(method="L-BFGS-B")`` with every option set
explicitly. A chunk starts a fresh L-BFGS from the previous chunk's ``theta`` (the curvature
pairs are not carried over); records are one per iteration, numbered globally from 1 across
chunks. ``maxiter`` and ``maxfun`` are budgets of the whole run, shared by its chunks. The
cost may run in float32 (``dtype``); the optimizer, ``theta`` and checkpoints are float64.
How chunks are chained, resumed and checked: :mod:`sparseae.pipeline.chunks` (docs/model.md).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from sparseae.io import ParameterFileError, atomic_path, json_member, numeric_member, read_npz
from sparseae.model import autoencoder
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

_RECORD_DTYPES = {
    "iteration": np.int64,
    "cost": np.float64,
    "grad_norm": np.float64,
    "fun_evals": np.int64,
    "seconds": np.float64,
}

FIRST = {"iteration": 0, "fun_evals": 0, "seconds": 0.0}
"""The counters a run's first chunk starts from (``start`` of :func:`lbfgs_chunk`)."""


@dataclasses.dataclass(frozen=True)
class LBFGSOptions:
    """Optimizer options, set explicitly; the defaults mirror minFunc.

    Attributes
    ----------
    method : {"lbfgs", "scipy-lbfgsb"}
        minFunc's L-BFGS and line search (c1 = 1e-4, c2 = 0.9), or scipy's L-BFGS-B (c1 =
        1e-3, c2 = 0.9). The other options mean the same for both.
    maxcor : int
        Stored correction pairs (minFunc 100, scipy's default 10): a speed/quality setting.
    maxiter, maxfun : int
        Iteration and cost-evaluation budgets of the whole run (minFunc ``maxIter`` 400,
        ``maxFunEvals`` 1000); scipy checks ``maxfun`` only between iterations.
    gtol : float
        Stop when ``max |proj g_i| <= gtol``; 1e-9 leaves the iteration budget in charge.
    ftol : float
        Stop when the relative cost reduction of a step is at most ``ftol`` (1e-12, so that
        a plateau does not end the run early).
    maxls : int
        Cost evaluations per (strong Wolfe) line search.
    """

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

    @classmethod
    def from_dict(cls, values: dict) -> LBFGSOptions:
        """Build from a dict, refusing unknown keys (a typo must not pass silently)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown L-BFGS option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class ChunkResult:
    """What one chunk of L-BFGS gives: the parameters, its records and why it stopped.

    Attributes
    ----------
    theta : ndarray, float64
        Parameters after the last iteration (after an ``"abnormal"`` stop: the last point
        whose cost and gradient were finite).
    records : list of dict
        One per iteration: ``iteration`` (global, 1-based), ``cost``, ``grad_norm``
        (Euclidean), ``fun_evals`` (cumulative), ``seconds`` (cumulative wall time).
    reason : {"budget", "evaluations", "converged", "abnormal"}
        The same for both methods: the iteration budget (chunk's or run's) was used up, the
        normal end; the run's ``maxfun`` ran out first; ``gtol``/``ftol`` (or minFunc's
        smallest step) was reached; the line search failed or the cost became non-finite.
    status : int
        scipy's codes, for both methods: 0 converged, 1 budget or evaluations, 2 abnormal.
    message : str
        The optimizer's own words.
    fun_evals : int
        This chunk's cost evaluations (the one at ``theta0`` included).
    """

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
    """Wraps the cost: counts evaluations and remembers the last point evaluated.

    L-BFGS-B accepts the point where its line search ended, which is the last point evaluated,
    so the record of an iteration needs no extra evaluation.
    """

    def __init__(self, cost_fn, data, kwargs):
        self.cost_fn, self.data, self.kwargs = cost_fn, data, kwargs
        self.count = 0
        self.x = self.f = self.g = None

    def __call__(self, x):
        f, g = self.cost_fn(x, self.data, **self.kwargs)
        self.count += 1
        # scipy may reuse x's buffer; keep our own copy of the point.
        if self.x is None or self.x.shape != x.shape:
            self.x = np.array(x, dtype=np.float64)
        else:
            self.x[...] = x
        self.f, self.g = float(f), g
        return f, g

    def value_at(self, x):
        """Cost and gradient at ``x``: cached if ``x`` was the last point, else evaluated."""
        if self.x is not None and np.array_equal(self.x, x):
            return self.f, self.g
        f, g = self.cost_fn(x, self.data, **self.kwargs)
        return float(f), g


def train_chunk(
    theta0,
    data,
    iterations,
    *,
    visible_size,
    hidden_size,
    lambda_,
    beta,
    rho,
    options: LBFGSOptions | None = None,
    start: Mapping = FIRST,
    progress: Callable[[dict], None] | None = None,
    cost_fn: Callable | None = None,
    dtype=None,
) -> ChunkResult:
    """Up to ``iterations`` L-BFGS iterations of the sparse autoencoder from ``theta0``.

    Parameters
    ----------
    theta0 : ndarray, shape (2hv + h + v,)
        Starting parameters (not modified).
    data : ndarray, shape (visible_size, m)
        Training examples, one per column.
    iterations : int
        Iterations of this chunk; fewer run when the run's budgets end first or L-BFGS
        converges.
    visible_size, hidden_size, lambda_, beta, rho
        As for :func:`sparseae.model.autoencoder.cost_and_grad`.
    options : LBFGSOptions, optional
        Defaults to ``LBFGSOptions()``.
    start, progress, dtype
        As for :func:`lbfgs_chunk`.
    cost_fn : callable, optional
        Replacement for :func:`sparseae.model.autoencoder.cost_and_grad` (same signature).
    """
    options = LBFGSOptions() if options is None else options
    if not isinstance(options, LBFGSOptions):
        raise TypeError(f"options must be an LBFGSOptions, got {type(options).__name__}")
    expected = autoencoder.parameter_count(visible_size, hidden_size)
    if np.shape(theta0) != (expected,):
        raise ValueError(
            f"theta0 has shape {np.shape(theta0)}, expected ({expected},) for visible_size="
            f"{visible_size}, hidden_size={hidden_size}"
        )
    model = dict(
        visible_size=visible_size, hidden_size=hidden_size, lambda_=lambda_, beta=beta, rho=rho
    )
    return lbfgs_chunk(
        autoencoder.cost_and_grad if cost_fn is None else cost_fn,
        theta0,
        data,
        iterations,
        cost_kwargs=model,
        options=options,
        start=start,
        progress=progress,
        dtype=dtype,
    )


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
) -> ChunkResult:
    """One chunk of L-BFGS on any ``cost_fn(theta, data, **cost_kwargs) -> (cost, grad)``.

    Parameters
    ----------
    theta0 : ndarray
        Finite 1-D starting point (not modified).
    iterations : int
        Iterations of this chunk, within the run's budgets ``options.maxiter`` and
        ``options.maxfun`` (counted from ``start``).
    start : mapping
        ``iteration``, ``fun_evals`` and ``seconds`` at the end of the previous chunk (its
        last record), so records continue globally; :data:`FIRST` for a run's first chunk.
    progress : callable, optional
        Called with each record as it is made (for log lines).
    dtype : {None, "float64", "float32"}, optional
        Precision of the cost: the data are converted once and the cost runs in that dtype.
        ``None`` keeps the data's dtype.
    """
    theta0 = np.array(theta0, dtype=np.float64, copy=True)
    if theta0.ndim != 1 or not np.all(np.isfinite(theta0)):
        raise ValueError(f"theta0 must be a finite 1-D vector, got shape {theta0.shape}")
    if dtype is not None:
        if np.dtype(dtype).name not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        data = np.ascontiguousarray(data, dtype=np.dtype(dtype))
    iterations = int(iterations)
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    first, evals0, seconds0 = int(start["iteration"]), int(start["fun_evals"]), start["seconds"]
    budget_iter = min(iterations, options.maxiter - first)
    budget_fun = options.maxfun - evals0
    if budget_iter <= 0 or budget_fun <= 0:
        exhausted = "iterations" if budget_iter <= 0 else "function evaluations"
        return ChunkResult(
            theta0, [], "budget" if budget_iter <= 0 else "evaluations", 1,
            f"the run's budget of {exhausted} was used up before this chunk", 0,
        )  # fmt: skip

    objective = _Objective(cost_fn, data, dict(cost_kwargs))
    records: list[dict] = []
    clock0 = time.perf_counter()
    last_finite = [theta0]
    non_finite: list[int] = []

    def record(x, f, g):
        if not (np.isfinite(f) and np.all(np.isfinite(g))):
            # scipy's L-BFGS-B goes on from a NaN cost as if nothing happened; stop here and
            # keep the last point whose cost and gradient were finite.
            non_finite.append(first + len(records) + 1)
            raise StopIteration
        last_finite[0] = np.array(x, dtype=np.float64)
        entry = {
            "iteration": first + len(records) + 1,
            "cost": float(f),
            "grad_norm": float(np.linalg.norm(g)),
            "fun_evals": evals0 + objective.count,
            "seconds": float(seconds0) + (time.perf_counter() - clock0),
        }
        records.append(entry)
        if progress is not None:
            progress(entry)

    limits = dict(
        maxcor=options.maxcor, maxiter=budget_iter, maxfun=budget_fun, gtol=options.gtol,
        ftol=options.ftol, maxls=options.maxls,
    )  # fmt: skip
    # One BLAS thread for the whole optimization: cost_and_grad runs its own worker threads
    # (with single-threaded BLAS inside), and the optimizer's memory-bound vector work loses
    # more to thread wake-ups than it gains (bench/README.md).
    with threadpool_limits(limits=1, user_api="blas"):
        if options.method == "lbfgs":
            # minimize_lbfgs accepts only points of finite cost and gradient (its line search
            # backs off from non-finite trial points); it reports a search that found none.
            result = minimize_lbfgs(objective, theta0, callback=record, **limits)
            status, message = _LBFGS_STATUS[result.reason], result.message
            if result.non_finite:
                non_finite.append(first + len(records) + 1)
        else:

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
        return ChunkResult(last_finite[0], records, "abnormal", 2, message, objective.count)
    # scipy's status: 0 converged (gtol/ftol), 1 maxiter or maxfun reached, 2 anything else.
    reason = {0: "converged", 1: "budget"}.get(status, "abnormal")
    if reason == "budget" and len(records) < budget_iter:
        reason = "evaluations"
    theta = np.array(result.x, dtype=np.float64)
    return ChunkResult(theta, records, reason, status, message, objective.count)


_LBFGS_STATUS = {"converged": 0, "budget": 1, "evaluations": 1, "abnormal": 2}
""":class:`sparseae.model.lbfgs.LBFGSResult` reasons as scipy's status codes."""


def records_to_arrays(records) -> dict:
    """Records (list of dicts) as one 1-D array per field, in :data:`RECORD_FIELDS` order."""
    out = {}
    for field in RECORD_FIELDS:
        try:
            values = [r[field] for r in records]
        except KeyError as err:
            raise ValueError(f"training record lacks field {err.args[0]!r}") from None
        out[field] = np.asarray(values, dtype=_RECORD_DTYPES[field]).reshape(len(values))
    return out


def save_checkpoint(path, theta, records, meta) -> None:
    """Write a chunk checkpoint ``.npz`` atomically (no pickle).

    Keys: ``theta`` (float64), ``iteration``, ``cost``, ``grad_norm``, ``fun_evals``,
    ``seconds`` (1-D, one entry per iteration of the chunk) and ``meta`` (0-d unicode array
    holding the JSON of ``meta``).
    """
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim != 1:
        raise ValueError(f"theta must be 1-D, got shape {theta.shape}")
    arrays = records_to_arrays(records)
    meta_json = json.dumps(meta if meta is not None else {}, sort_keys=True)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, theta=theta, meta=np.array(meta_json), **arrays)


def load_checkpoint(path) -> tuple[np.ndarray, list[dict], dict]:
    """``(theta, records, meta)`` of a checkpoint written by :func:`save_checkpoint`.

    Raises ``FileNotFoundError`` or :class:`~sparseae.errors.ParameterFileError` (a
    ``ValueError``) naming the file: a missing key, non-finite or non-1-D ``theta``, record
    arrays of different lengths, a ``meta`` that is not a JSON object, pickled members.
    """
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
    cast = {k: int if _RECORD_DTYPES[k] is np.int64 else float for k in RECORD_FIELDS}
    n = columns["iteration"].shape[0]
    records = [{k: cast[k](columns[k][i]) for k in RECORD_FIELDS} for i in range(n)]
    return theta, records, meta
