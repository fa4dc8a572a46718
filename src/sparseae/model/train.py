"""L-BFGS training in chunks with per-iteration records and ``.npz`` checkpoints (docs/model.md).

The original exercise runs minFunc's L-BFGS (100 correction pairs, 400 iterations, 1000
function evaluations, Wolfe line search). Two optimizers are available
(:attr:`LBFGSOptions.method`): ``"lbfgs"`` (default), :func:`sparseae.model.lbfgs.minimize_lbfgs`,
minFunc's L-BFGS with the pairs in one array (two BLAS passes per step), and
``"scipy-lbfgsb"``, ``scipy.optimize.minimize(method="L-BFGS-B")`` with every option set
explicitly. Training runs in chunks with warm restarts: each chunk
starts a fresh L-BFGS from the previous chunk's ``theta`` (the curvature pairs are not carried
over) and ends in a checkpoint. Records are one per L-BFGS iteration with a global, 1-based
``iteration`` across chunks.

The options describe the whole run: ``maxiter`` and ``maxfun`` are budgets shared by all
chunks, so a chunk starting at iteration 350 with ``maxiter=400`` runs at most 50 iterations.
The cost may be evaluated in float32 (``dtype``); the optimizer, ``theta`` and the checkpoints
are float64 in every case.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from sparseae.io import ParameterFileError, atomic_path, json_member, numeric_member, read_npz
from sparseae.model import autoencoder
from sparseae.model.lbfgs import minimize_lbfgs

#: Errors of checkpoint files (the message names the file).
CheckpointError = ParameterFileError

__all__ = [
    "LBFGSOptions",
    "METHODS",
    "DTYPES",
    "RECORD_FIELDS",
    "train_chunk",
    "lbfgs_chunk",
    "continuing",
    "train_chunked",
    "save_checkpoint",
    "load_checkpoint",
    "records_to_arrays",
]

METHODS = ("lbfgs", "scipy-lbfgsb")
"""Optimizers: minFunc-style L-BFGS (:mod:`sparseae.model.lbfgs`) and scipy's L-BFGS-B."""

DTYPES = ("float64", "float32")
"""Precisions of the cost evaluation (the optimizer is float64 in both)."""

STOP_REASONS = ("budget", "evaluations", "converged", "abnormal")
"""Why a chunk's optimizer stopped (``stop["reason"]`` of :func:`train_chunk`)."""

RECORD_FIELDS = ("iteration", "cost", "grad_norm", "fun_evals", "seconds")
"""Fields of one training record (one per L-BFGS iteration)."""

_RECORD_DTYPES = {
    "iteration": np.int64,
    "cost": np.float64,
    "grad_norm": np.float64,
    "fun_evals": np.int64,
    "seconds": np.float64,
}


@dataclasses.dataclass(frozen=True)
class LBFGSOptions:
    """Optimizer options, set explicitly; defaults chosen to mirror minFunc.

    Attributes
    ----------
    method : {"lbfgs", "scipy-lbfgsb"}
        ``"lbfgs"``: :func:`sparseae.model.lbfgs.minimize_lbfgs` (minFunc's L-BFGS and line search,
        c1 = 1e-4, c2 = 0.9); ``"scipy-lbfgsb"``: scipy's L-BFGS-B (c1 = 1e-3, c2 = 0.9, and a
        per-iteration cost that grows faster with ``maxcor``). The other options mean the same
        for both.
    maxcor : int
        Stored correction pairs. minFunc uses 100; scipy's default is 10. At n = 308,308
        (784×196 model) 100 pairs cost ~150 ms per iteration against ~55 ms for 10, so this is
        a real per-experiment speed/quality setting.
    maxiter : int
        Iteration budget of the whole run (minFunc ``maxIter`` 400). Counts iterations,
        not function evaluations.
    maxfun : int
        Function-evaluation budget of the whole run (minFunc ``maxFunEvals`` 1000). scipy
        checks it only between iterations.
    gtol : float
        Stop when ``max |proj g_i| <= gtol``. minFunc's ``tolFun`` 1e-5 applies to
        ``sum |g|``, a different norm; 1e-9 makes the iteration budget, as in the reference
        runs, the stopping rule.
    ftol : float
        Stop when the relative reduction ``(f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1)`` is
        at most ``ftol``. scipy's default 2.2e-9 can end a run early near a plateau; 1e-12
        keeps the budget in charge.
    maxls : int
        Cost evaluations per line search (scipy's default 20; minFunc allows 26). Both
        searches look for a step satisfying the strong Wolfe conditions.
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


class _Objective:
    """Wraps ``cost_and_grad``: counts evaluations and remembers the last point evaluated.

    L-BFGS-B accepts the point where its line search ended, which is the last point evaluated,
    so the record of an iteration needs no extra evaluation.
    """

    def __init__(self, cost_fn, data, kwargs):
        self.cost_fn = cost_fn
        self.data = data
        self.kwargs = kwargs
        self.count = 0
        self.x = None
        self.f = None
        self.g = None

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


#: The autoencoder's arguments of :func:`sparseae.model.autoencoder.cost_and_grad`, in order.
MODEL_KEYS = ("visible_size", "hidden_size", "lambda_", "beta", "rho")


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
    start_iteration: int = 0,
    start_fun_evals: int = 0,
    start_seconds: float = 0.0,
    progress: Callable[[dict], None] | None = None,
    cost_fn: Callable | None = None,
    dtype=None,
    stop: dict | None = None,
):
    """Run up to ``iterations`` L-BFGS iterations from ``theta0`` (one chunk of a run).

    Parameters
    ----------
    theta0 : ndarray, shape (2hv + h + v,)
        Starting parameters (not modified).
    data : ndarray, shape (visible_size, m)
        Training examples, one per column.
    iterations : int
        Iterations of this chunk; fewer run when the run's budgets (``options.maxiter``,
        ``options.maxfun``, counted from ``start_iteration`` / ``start_fun_evals``) end first
        or L-BFGS converges.
    visible_size, hidden_size, lambda_, beta, rho
        Model and hyperparameters, as for :func:`sparseae.model.autoencoder.cost_and_grad`.
    options : LBFGSOptions, optional
        Defaults to ``LBFGSOptions()``; ``options.method`` picks the optimizer.
    start_iteration, start_fun_evals, start_seconds
        Counters at the end of the previous chunk, so records continue globally.
    progress : callable, optional
        Called with each record as it is made (for log lines).
    cost_fn : callable, optional
        Replacement for :func:`sparseae.model.autoencoder.cost_and_grad` (same signature).
    dtype : {None, "float64", "float32"}, optional
        Precision of the cost evaluation: the data are converted once and the cost runs in
        that dtype (float32: about 1.6× faster at 784×196). ``None`` keeps the data's dtype
        (float32 data train in float32, anything else in float64). The optimizer, ``theta``
        and the returned values are float64 in every case.
    stop : dict, optional
        Filled with how the optimizer stopped, the same keys for both methods: ``reason``
        (:data:`STOP_REASONS`, see :func:`stop_reason`): ``"budget"`` (the chunk's or the
        run's iteration budget was used up: the normal end), ``"evaluations"`` (the run's
        ``maxfun`` ran out first), ``"converged"`` (``gtol``, ``ftol`` or, for ``"lbfgs"``,
        minFunc's smallest step reached) or ``"abnormal"`` (e.g. the line search failed, or
        the cost became non-finite: the chunk then ends at the last point whose cost and
        gradient were finite); ``status`` (scipy's codes, used for both methods: 0
        converged, 1 budget or evaluations, 2 abnormal); ``message`` (the optimizer's own
        words); ``iterations`` and ``fun_evals`` (this chunk's own counts, the evaluation at
        ``theta0`` included).

    Returns
    -------
    theta : ndarray, float64
        Parameters after the last iteration.
    records : list of dict
        One per iteration: ``iteration`` (global, 1-based), ``cost``, ``grad_norm``
        (Euclidean), ``fun_evals`` (cumulative), ``seconds`` (cumulative wall time).
    """
    options = LBFGSOptions() if options is None else options
    if not isinstance(options, LBFGSOptions):
        raise TypeError(f"options must be an LBFGSOptions, got {type(options).__name__}")
    theta0 = np.array(theta0, dtype=np.float64, copy=True)
    expected = autoencoder.parameter_count(visible_size, hidden_size)
    if theta0.shape != (expected,):
        raise ValueError(
            f"theta0 has shape {theta0.shape}, expected ({expected},) for visible_size="
            f"{visible_size}, hidden_size={hidden_size}"
        )
    if not np.all(np.isfinite(theta0)):
        raise ValueError("theta0 contains non-finite values")
    if dtype is not None:
        if np.dtype(dtype).name not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        data = np.ascontiguousarray(data, dtype=np.dtype(dtype))
    iterations = int(iterations)
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    return lbfgs_chunk(
        autoencoder.cost_and_grad if cost_fn is None else cost_fn,
        theta0,
        data,
        iterations,
        cost_kwargs=dict(
            zip(MODEL_KEYS, (visible_size, hidden_size, lambda_, beta, rho), strict=True)
        ),
        options=options,
        start_iteration=start_iteration,
        start_fun_evals=start_fun_evals,
        start_seconds=start_seconds,
        progress=progress,
        stop=stop,
    )


def lbfgs_chunk(
    cost_fn: Callable,
    theta0,
    data,
    iterations,
    *,
    cost_kwargs: dict,
    options: LBFGSOptions,
    start_iteration: int = 0,
    start_fun_evals: int = 0,
    start_seconds: float = 0.0,
    progress: Callable[[dict], None] | None = None,
    stop: dict | None = None,
):
    """One chunk of L-BFGS on any ``cost_fn(theta, data, **cost_kwargs) -> (cost, grad)``.

    What :func:`train_chunk` runs for the autoencoder, for other objectives of the same
    form (the stacked network's softmax and fine-tuning costs). ``theta0`` must be a finite
    float64 vector; the budgets, counters, records, ``stop`` and return value are those of
    :func:`train_chunk`.
    """
    theta0 = np.array(theta0, dtype=np.float64, copy=True)
    if theta0.ndim != 1 or not np.all(np.isfinite(theta0)):
        raise ValueError(f"theta0 must be a finite 1-D vector, got shape {theta0.shape}")
    iterations = int(iterations)
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    budget_iter = min(iterations, options.maxiter - int(start_iteration))
    budget_fun = options.maxfun - int(start_fun_evals)
    stop = {} if stop is None else stop
    if budget_iter <= 0 or budget_fun <= 0:
        exhausted = "iterations" if budget_iter <= 0 else "function evaluations"
        stop.update(
            status=1,
            message=f"the run's budget of {exhausted} was used up before this chunk",
            iterations=0,
            fun_evals=0,
            reason="budget" if budget_iter <= 0 else "evaluations",
        )
        return theta0, []

    objective = _Objective(cost_fn, data, dict(cost_kwargs))
    records: list[dict] = []
    clock0 = time.perf_counter()

    last_finite = {"x": theta0}
    non_finite: list[int] = []

    def record(x, f, g):
        if not (np.isfinite(f) and np.all(np.isfinite(g))):
            # scipy's L-BFGS-B goes on from a NaN cost as if nothing happened; stop here and
            # keep the last point whose cost and gradient were finite.
            non_finite.append(int(start_iteration) + len(records) + 1)
            raise StopIteration
        last_finite["x"] = np.array(x, dtype=np.float64)
        entry = {
            "iteration": int(start_iteration) + len(records) + 1,
            "cost": float(f),
            "grad_norm": float(np.linalg.norm(g)),
            "fun_evals": int(start_fun_evals) + objective.count,
            "seconds": float(start_seconds) + (time.perf_counter() - clock0),
        }
        records.append(entry)
        if progress is not None:
            progress(entry)

    # One BLAS thread for the whole optimization: cost_and_grad runs its own worker threads
    # (with single-threaded BLAS inside), and the optimizer's memory-bound vector work loses
    # more to thread wake-ups than it gains (measured on 2 cores, see bench/README.md).
    with threadpool_limits(limits=1, user_api="blas"):
        if options.method == "lbfgs":
            # minimize_lbfgs accepts only points of finite cost and gradient (its line search
            # backs off from non-finite trial points); it reports a search that found none.
            limits = _limits(options, budget_iter, budget_fun)
            result = minimize_lbfgs(objective, theta0, callback=record, **limits)
            status, message = _LBFGS_STATUS[result.reason], result.message
            if result.non_finite:
                non_finite.append(int(start_iteration) + len(records) + 1)
        else:

            def callback(intermediate_result):
                record(intermediate_result.x, *objective.value_at(intermediate_result.x))

            result = _minimize(objective, theta0, callback, options, budget_iter, budget_fun)
            status, message = int(result.status), str(result.message)
    if non_finite:
        stop.update(
            status=2,
            message=f"the cost or its gradient became non-finite at iteration {non_finite[0]}; "
            f"the chunk ends at the last finite point (iteration {non_finite[0] - 1})",
            iterations=len(records),
            fun_evals=int(objective.count),
            reason="abnormal",
        )
        return last_finite["x"], records
    stop.update(
        status=status,
        message=message,
        iterations=len(records),
        fun_evals=int(objective.count),
        reason=stop_reason(status, len(records), budget_iter),
    )
    return np.array(result.x, dtype=np.float64), records


_LBFGS_STATUS = {"converged": 0, "budget": 1, "evaluations": 1, "abnormal": 2}
""":class:`sparseae.model.lbfgs.LBFGSResult` reasons as scipy's status codes."""


def _cost_dtype(data, dtype) -> str:
    """The dtype the cost runs in: ``dtype``, else float32 for float32 data, else float64."""
    if dtype is not None:
        return np.dtype(dtype).name
    return "float32" if getattr(data, "dtype", None) == np.float32 else "float64"


def stop_reason(status: int, iterations: int, budget_iter: int) -> str:
    """Why scipy's L-BFGS-B stopped, in one word (see :func:`train_chunk`'s ``stop``).

    scipy's ``status`` is 0 for convergence (``gtol``/``ftol``), 1 when ``maxiter`` or
    ``maxfun`` was reached and 2 for anything else (a failed line search, a non-finite cost).
    """
    if status == 0:
        return "converged"
    if status == 1:
        return "budget" if iterations >= budget_iter else "evaluations"
    return "abnormal"


def _limits(options, budget_iter, budget_fun) -> dict:
    # The same keywords for both optimizers: scipy's L-BFGS-B options and minimize_lbfgs.
    return dict(
        maxcor=options.maxcor,
        maxiter=budget_iter,
        maxfun=budget_fun,
        gtol=options.gtol,
        ftol=options.ftol,
        maxls=options.maxls,
    )


def _minimize(objective, theta0, callback, options, budget_iter, budget_fun):
    limits = _limits(options, budget_iter, budget_fun)
    return minimize(
        objective, theta0, jac=True, method="L-BFGS-B", callback=callback, options=limits
    )


def continuing(last: Mapping) -> dict:
    """The counter keywords of :func:`train_chunk` that continue after the record ``last``.

    ``last`` is the previous chunk's last record (``iteration``, ``fun_evals``, ``seconds``),
    so the records of a chunked run count globally.
    """
    return {
        "start_iteration": int(last["iteration"]),
        "start_fun_evals": int(last["fun_evals"]),
        "start_seconds": float(last["seconds"]),
    }


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


def load_checkpoint(path, *, expected_length: int | None = None, expected_meta=None):
    """Read a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : path-like
    expected_length : int, optional
        Refuse a ``theta`` of another length.
    expected_meta : dict, optional
        Refuse the checkpoint unless ``meta[key] == value`` for every item (e.g. the model
        configuration), so a resume never continues another run.

    Returns
    -------
    theta : ndarray, float64
    records : list of dict
    meta : dict

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, missing key, inconsistent lengths, or a mismatch, with the path and
        both values in the message.
    """
    label = f"checkpoint {path}"
    members = read_npz(path, ["theta", "meta", *RECORD_FIELDS], label=label)
    theta = np.asarray(numeric_member(members["theta"], "theta", label=label), dtype=np.float64)
    columns = {k: numeric_member(members[k], k, label=label) for k in RECORD_FIELDS}
    if theta.ndim != 1:
        raise CheckpointError(f"checkpoint {path}: theta must be 1-D, has shape {theta.shape}")
    if expected_length is not None and theta.shape[0] != int(expected_length):
        raise ValueError(
            f"checkpoint {path}: theta has length {theta.shape[0]}, expected {expected_length}"
        )
    bad = int(np.count_nonzero(~np.isfinite(theta)))
    if bad:
        raise CheckpointError(
            f"checkpoint {path}: theta holds {bad} non-finite values (NaN or inf) of "
            f"{theta.size}: the file is damaged or training diverged"
        )
    lengths = {k: v.shape for k, v in columns.items()}
    if any(len(s) != 1 for s in lengths.values()) or len({s[0] for s in lengths.values()}) != 1:
        raise CheckpointError(
            f"checkpoint {path}: record arrays must be 1-D of one length: {lengths}"
        )
    meta = json_member(members["meta"], "meta", label=label, expect=dict)
    for key, value in (expected_meta or {}).items():
        if key not in meta:
            raise CheckpointError(f"checkpoint {path}: meta lacks {key!r} (expected {value!r})")
        if _jsonable(meta[key]) != _jsonable(value):
            raise ValueError(
                f"checkpoint {path} belongs to another configuration: meta[{key!r}] is "
                f"{meta[key]!r}, expected {value!r}"
            )
    n = columns["iteration"].shape[0]
    records = [
        {
            k: (int(columns[k][i]) if _RECORD_DTYPES[k] is np.int64 else float(columns[k][i]))
            for k in RECORD_FIELDS
        }
        for i in range(n)
    ]
    return theta, records, meta


def _jsonable(value):
    # Compare as JSON would store it (tuples become lists, numpy scalars become numbers).
    return json.loads(json.dumps(value, default=lambda o: o.tolist()))


def _sha256(array) -> str:
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.data)
    return digest.hexdigest()


def train_chunked(
    theta0,
    data,
    *,
    chunks,
    iterations_per_chunk,
    checkpoint_dir,
    options: LBFGSOptions | None = None,
    progress: Callable[[dict], None] | None = None,
    cost_fn: Callable | None = None,
    stop_after: int | None = None,
    dtype=None,
    **model,
):
    """Train ``chunks`` × ``iterations_per_chunk`` with warm restarts, resuming from checkpoints.

    Chunk ``k`` (1-based) is written to ``checkpoint_dir/{k}.npz``. Existing chunk files are
    loaded instead of recomputed (after checking they belong to this configuration: sizes,
    hyperparameters, options, dtype, chunking and the SHA-256 of ``theta0`` and ``data``), so a run
    killed after chunk ``k`` resumes at ``k + 1`` and ends bit-identical to an uninterrupted
    chunked run (each chunk depends only on the previous chunk's exact float64 ``theta``).

    Parameters
    ----------
    chunks, iterations_per_chunk : int
    checkpoint_dir : path-like
    **model
        ``visible_size``, ``hidden_size``, ``lambda_``, ``beta``, ``rho`` (:data:`MODEL_KEYS`),
        as for :func:`train_chunk`; all five are required.
    stop_after : int, optional
        Stop after this many chunks (simulates a killed run in tests).
    dtype : {None, "float64", "float32"}, optional
        Precision of the cost evaluation (see :func:`train_chunk`).
    options : LBFGSOptions, optional
        Defaults to ``LBFGSOptions(maxiter=chunks * iterations_per_chunk)``.
    Other parameters are as for :func:`train_chunk`.

    Returns
    -------
    theta : ndarray, float64
    records : list of dict
        All chunks' records in order.
    """
    chunks, per = int(chunks), int(iterations_per_chunk)
    if chunks < 1 or per < 1:
        raise ValueError(f"chunks and iterations_per_chunk must be >= 1, got {chunks}, {per}")
    if options is None:
        options = LBFGSOptions(maxiter=chunks * per)
    if sorted(model) != sorted(MODEL_KEYS):
        raise TypeError(f"train_chunked needs the model keywords {MODEL_KEYS}, got {sorted(model)}")
    theta = np.array(theta0, dtype=np.float64, copy=True)
    config = {
        **{key: int(model[key]) for key in ("visible_size", "hidden_size")},
        **{key: float(model[key]) for key in ("lambda_", "beta", "rho")},
        "options": options.to_dict(),
        "dtype": _cost_dtype(data, dtype),
        "chunks": chunks,
        "iterations_per_chunk": per,
        "theta0_sha256": _sha256(theta),
        "data_sha256": _sha256(data),
    }
    folder = Path(checkpoint_dir)
    all_records: list[dict] = []
    last = {"iteration": 0, "fun_evals": 0, "seconds": 0.0}
    for k in range(1, chunks + 1):
        if stop_after is not None and k > stop_after:
            break
        path = folder / f"{k}.npz"
        if path.exists():
            theta, records, _ = load_checkpoint(
                path, expected_length=theta.size, expected_meta={**config, "chunk": k}
            )
        else:
            stop: dict = {}
            theta, records = train_chunk(
                theta,
                data,
                per,
                **{key: config[key] for key in MODEL_KEYS},
                options=options,
                **continuing(last),
                progress=progress,
                cost_fn=cost_fn,
                dtype=dtype,
                stop=stop,
            )
            save_checkpoint(path, theta, records, {**config, "chunk": k, "stop": stop})
        if records:
            last = records[-1]
        all_records.extend(records)
    return theta, all_records
