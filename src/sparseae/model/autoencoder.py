"""The sparse autoencoder (docs/model.md): ``theta = [W1(:); W2(:); b1; b2]`` column-major as
MATLAB's; :func:`cost_and_grad` sums column blocks of a thread pool in block order, so results
do not depend on the thread count (bench/README.md)."""

from __future__ import annotations

import functools
import itertools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from sparseae.model import arrays

__all__ = [
    "unpack",
    "pack",
    "parameter_count",
    "initialize_parameters",
    "cost_and_grad",
    "cost_terms",
    "hidden_activations",
    "naive_cost_and_grad",
    "clip_rhohat",
    "set_num_threads",
]

# Columns per block: at most 2500; for large models down to 625, so that m = 10,000 gives 16
# blocks for 16 cores. Chosen from the shape alone, never from the thread count, so the
# order of the sums (and every bit of the result) is the same on any number of cores.
_BLOCK_COLUMNS, _MIN_COLUMNS, _MAX_BLOCKS = 2500, 625, 16

# Interpreter switch interval (seconds) while the worker threads run; see _evaluate.
_SWITCH_INTERVAL = 1e-4


def parameter_count(visible_size: int, hidden_size: int) -> int:
    """Length of ``theta`` for a model with these layer sizes: ``2 h v + h + v``."""
    return 2 * hidden_size * visible_size + hidden_size + visible_size


def unpack(theta: np.ndarray, visible_size: int, hidden_size: int):
    """Split ``theta`` into Fortran-ordered views ``W1`` (h×v), ``W2`` (v×h), ``b1``, ``b2``."""
    theta = np.asarray(theta)
    v, h = int(visible_size), int(hidden_size)
    expected = parameter_count(v, h)
    if theta.ndim != 1 or theta.shape[0] != expected:
        raise ValueError(
            f"theta has shape {theta.shape}, expected ({expected},) for visible_size={v}, "
            f"hidden_size={h} (2*h*v + h + v)"
        )
    hv = h * v
    W1 = theta[:hv].reshape((h, v), order="F")
    W2 = theta[hv : 2 * hv].reshape((v, h), order="F")
    return W1, W2, theta[2 * hv : 2 * hv + h], theta[2 * hv + h :]


def pack(W1: np.ndarray, W2: np.ndarray, b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """Inverse of :func:`unpack`: ``[W1(:); W2(:); b1; b2]`` (column-major), float64."""
    W1, W2 = np.asarray(W1), np.asarray(W2)
    b1, b2 = np.ravel(b1), np.ravel(b2)
    if W1.ndim != 2:
        raise ValueError(f"W1 must be 2-D (hidden × visible), got shape {W1.shape}")
    h, v = W1.shape
    if W2.shape != (v, h) or b1.shape != (h,) or b2.shape != (v,):
        raise ValueError(
            f"inconsistent shapes: W1 {W1.shape}, W2 {W2.shape} (expected {(v, h)}), "
            f"b1 {b1.shape} (expected {(h,)}), b2 {b2.shape} (expected {(v,)})"
        )
    return np.concatenate([W1.ravel(order="F"), W2.ravel(order="F"), b1, b2]).astype(
        np.float64, copy=False
    )


def initialize_parameters(hidden_size: int, visible_size: int, rng: np.random.Generator):
    """Random initial ``theta`` as the exercise's ``initializeParameters`` (hidden size first)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    h, v = int(hidden_size), int(visible_size)
    if h < 1 or v < 1:
        raise ValueError(f"hidden_size and visible_size must be positive, got {h}, {v}")
    r = np.sqrt(6.0) / np.sqrt(h + v + 1)
    theta = np.zeros(parameter_count(v, h))
    # MATLAB's rand(h, v) * 2 * r - r fills column-major: exactly theta's order for W1, W2.
    theta[: 2 * h * v] = rng.random(2 * h * v) * 2 * r - r
    return theta


def clip_rhohat(rhohat: np.ndarray) -> np.ndarray:
    """Keep ``rhohat`` strictly inside (0, 1) so ``log`` and the divisions stay finite."""
    return np.clip(rhohat, np.finfo(np.float64).tiny, np.nextafter(1.0, 0.0))


def _kl_terms(rhohat: np.ndarray, rho: float, beta: float):
    """Sparsity cost ``β Σ KL(ρ‖ρ̂)`` and its derivative term ``β(−ρ/ρ̂ + (1−ρ)/(1−ρ̂))``."""
    p = clip_rhohat(rhohat)
    cost = beta * float(np.sum(rho * np.log(rho / p) + (1 - rho) * np.log((1 - rho) / (1 - p))))
    return cost, beta * (-rho / p + (1 - rho) / (1 - p))


# sched_getaffinity (the cores this process may use) exists on Linux only.
_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
_threads = max(1, _cores or 1)
# Each calling thread caches its own work buffers, so concurrent calls never share them.
_local = threading.local()


def set_num_threads(n: int) -> None:
    """Number of threads :func:`cost_and_grad` uses (default: the usable cores)."""
    global _threads
    n = int(n)
    if n < 1:
        raise ValueError(f"number of threads must be >= 1, got {n}")
    _threads = n


@functools.cache
def _pool(n_workers: int) -> ThreadPoolExecutor:
    """One pool per worker count in use (threads start when first needed)."""
    return ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="sparseae")


@functools.cache
def _controller():
    """threadpoolctl's view of the loaded libraries (the BLAS numpy loaded), found once."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


class _Workspace:
    """Buffers for one (v, h, m, dtype, thread count); reused across calls. Each call sets
    ``X`` and ``linear`` for the block functions."""

    def __init__(self, v, h, m, dtype, n_threads):
        # Block bounds do not depend on the thread count, so neither does the order of the
        # sums. Per-block Python calls are amortised by at least ~4e6 multiply-adds per product.
        columns = max(_MIN_COLUMNS, min(_BLOCK_COLUMNS, -(-4_000_000 // (v * h))))
        nb = max(-(-m // _BLOCK_COLUMNS), min(_MAX_BLOCKS, -(-m // columns)))
        self.bounds = [round(i * m / nb) for i in range(nb + 1)]
        self.v, self.h, self.n_threads = v, h, min(n_threads, nb)
        widths = [b - a for a, b in zip(self.bounds[:-1], self.bounds[1:], strict=True)]
        wmax = max(widths)
        # Activations with a trailing row of ones: W2aug @ A2 adds b2, and delta3 @ A2.T
        # returns grad b2 as its last column. The same trick on delta3 adds the sparsity term.
        self.A2 = [np.ones((h + 1, w), dtype) for w in widths]
        self.D3 = [np.ones((v + 1, w), dtype) for w in widths]
        self.scratch_v = [np.empty(v * wmax, dtype) for _ in range(self.n_threads)]
        self.scratch_h = [np.empty(h * wmax, dtype) for _ in range(self.n_threads)]
        self.gW2 = np.empty((nb, v, h + 1), dtype)
        self.gW1 = np.empty((nb, h, v), dtype)
        self.gb1 = np.empty((nb, h), np.float64)
        self.a2sum = np.empty((nb, h), np.float64)
        self.recon = np.empty(nb, np.float64)


def _workspace(v, h, m, dtype, n_threads) -> _Workspace:
    cache = _local.__dict__.setdefault("workspaces", {})
    key = (v, h, m, dtype, n_threads)
    if key not in cache:
        # Keep the cache small so a sweep over sizes does not accumulate memory.
        if len(cache) >= 4:
            cache.pop(next(iter(cache)))
        cache[key] = _Workspace(v, h, m, dtype, n_threads)
    return cache[key]


def sigmoid_of_negated(buf: np.ndarray) -> None:
    """In place ``buf ← 1 / (1 + exp(buf))``: ``f(z)`` when ``buf`` holds ``−z``."""
    np.exp(buf, out=buf)
    np.add(buf, 1.0, out=buf)
    # divide(1, x), not reciprocal(x): same IEEE result, faster (bench/README.md).
    np.divide(1.0, buf, out=buf)


def _forward_block(ws, k, t):
    v, h, c0, c1 = ws.v, ws.h, ws.bounds[k], ws.bounds[k + 1]
    w = c1 - c0
    Xb = ws.X[:, c0:c1]
    A2 = ws.A2[k]
    a2 = A2[:h]
    np.matmul(ws.W1n, Xb, out=a2)
    np.add(a2, ws.b1n, out=a2)
    sigmoid_of_negated(a2)
    # Pairwise row sums in the working dtype (a float64 accumulator would cast every block).
    ws.a2sum[k] = a2.sum(axis=1)
    a3 = ws.scratch_v[t][: v * w].reshape(v, w)
    np.matmul(ws.W2n, A2, out=a3)
    if ws.linear:
        np.negative(a3, out=a3)  # a3 = z3: W2n holds −W2, −b2
    else:
        sigmoid_of_negated(a3)
    d = ws.D3[k][:v]
    np.subtract(a3, Xb, out=d)
    flat = d.reshape(-1)
    if d.dtype == np.float64:
        ws.recon[k] = float(np.dot(flat, flat))
    else:
        # Not sdot: its float32 accumulation stalls the line search (bench/README.md).
        ws.recon[k] = float(np.square(flat).sum(dtype=np.float64))
    if not ws.linear:  # a linear output's delta3 is the error itself
        np.multiply(d, a3, out=d)
        np.subtract(1.0, a3, out=a3)
        np.multiply(d, a3, out=d)
    np.matmul(d, A2.T, out=ws.gW2[k])
    # Keep f'(z2) = a2 (1 - a2) for the second pass; a2 itself is no longer needed.
    tmp = ws.scratch_h[t][: h * w].reshape(h, w)
    np.subtract(1.0, a2, out=tmp)
    np.multiply(a2, tmp, out=a2)


def _backward_block(ws, j, t):
    # Backwards: the blocks the forward pass finished last are still in cache.
    k = len(ws.bounds) - 2 - j
    c0, c1 = ws.bounds[k], ws.bounds[k + 1]
    d2 = ws.scratch_h[t][: ws.h * (c1 - c0)].reshape(ws.h, c1 - c0)
    # [W2ᵀ | s] @ [delta3; 1] = W2ᵀ delta3 + s: the sparsity term added by the product.
    np.matmul(ws.W2Ts, ws.D3[k], out=d2)
    np.multiply(d2, ws.A2[k][: ws.h], out=d2)
    np.matmul(d2, ws.X[:, c0:c1].T, out=ws.gW1[k])
    ws.gb1[k] = d2.sum(axis=1)


def _run_blocks(fn, n_blocks, n_threads):
    """Run ``fn(k, t)`` for every block ``k``; thread ``t`` takes the next free block."""
    counter = itertools.count()

    def worker(t):
        with np.errstate(over="ignore", under="ignore"):
            for k in iter(counter.__next__, None):
                if k >= n_blocks:
                    return
                fn(k, t)

    if n_threads == 1:
        worker(0)
        return
    futures = [_pool(n_threads - 1).submit(worker, t) for t in range(1, n_threads)]
    try:
        worker(0)
    finally:
        for f in futures:
            f.result()


def _evaluate(theta, data, settings, dtype, output):
    """Check the arguments, then compute the cost terms and the gradient."""
    if arrays.foreign(theta, data):
        return _array_api_evaluate(theta, data, *settings, dtype, output)
    visible_size, hidden_size, lambda_, beta, rho = settings
    v, h = int(visible_size), int(hidden_size)
    linear = _is_linear(output)
    W1, W2, b1, b2 = unpack(theta, v, h)
    theta, data = np.asarray(theta), np.asarray(data)
    if data.ndim != 2 or data.shape[0] != v:
        raise ValueError(
            f"data must be visible_size × m = {v} × m (one example per column), got shape "
            f"{data.shape}"
        )
    if data.shape[1] < 1:
        raise ValueError("data has no examples (0 columns)")
    if not 0.0 < rho < 1.0:
        raise ValueError(f"rho must lie in (0, 1), got {rho}")
    if dtype is None:
        dtype = data.dtype if data.dtype in (np.float32, np.float64) else np.float64
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    lambda_, beta, rho = float(lambda_), float(beta), float(rho)

    m = data.shape[1]
    ws = _workspace(v, h, m, dtype, _threads)
    ws.X = data if data.dtype == dtype else data.astype(dtype)
    ws.linear = linear
    n_blocks = len(ws.bounds) - 1
    # Negated, in the working dtype, row-major: [−W2 −b2] @ [a2; 1] = −z3 (see _Workspace).
    ws.W1n, ws.b1n = np.array(-W1, dtype, order="C"), np.array(-b1[:, None], dtype)
    ws.W2n = np.array(-np.column_stack((W2, b2)), dtype, order="C")
    switch = sys.getswitchinterval()
    if ws.n_threads > 1:
        # A short switch interval bounds GIL stalls between numpy calls (bench/README.md).
        sys.setswitchinterval(min(switch, _SWITCH_INTERVAL))
    try:
        # One BLAS thread per worker: the workers occupy the cores, and a single-threaded
        # product rounds the same way whatever the thread count.
        with _controller().limit(limits=1, user_api="blas"):
            _run_blocks(functools.partial(_forward_block, ws), n_blocks, ws.n_threads)
            rhohat = np.sum(ws.a2sum, axis=0) / m
            sparsity, s = _kl_terms(rhohat, rho, beta)
            ws.W2Ts = np.array(np.column_stack((W2.T, s)), dtype, order="C")
            _run_blocks(functools.partial(_backward_block, ws), n_blocks, ws.n_threads)
    finally:
        sys.setswitchinterval(switch)
        ws.X = None  # do not keep the caller's data alive

    reconstruction = float(np.sum(ws.recon)) / (2 * m)
    weights = theta[: 2 * h * v].astype(np.float64, copy=False)
    # Pairwise np.sum, not a BLAS dot: matches the reference breakdown to ~1e-16.
    weight_decay = 0.5 * lambda_ * float(np.sum(np.square(weights)))
    terms = {
        "reconstruction": reconstruction,
        "weight_decay": weight_decay,
        "sparsity": sparsity,
        "total": reconstruction + weight_decay + sparsity,
        "rhohat": rhohat,
    }
    grad = np.empty(parameter_count(v, h), np.float64)
    gW1, gW2, gb1, gb2 = unpack(grad, v, h)
    acc2 = np.sum(ws.gW2, axis=0, dtype=np.float64)
    np.multiply(acc2[:, :h], 1.0 / m, out=gW2)
    gW2 += lambda_ * W2
    np.multiply(acc2[:, h], 1.0 / m, out=gb2)
    acc1 = np.sum(ws.gW1, axis=0, dtype=np.float64)
    np.multiply(acc1, 1.0 / m, out=gW1)
    gW1 += lambda_ * W1
    np.multiply(np.sum(ws.gb1, axis=0), 1.0 / m, out=gb1)
    return terms, grad


def _is_linear(output: str) -> bool:
    if output not in ("sigmoid", "linear"):
        raise ValueError(f"output must be 'sigmoid' or 'linear', got {output!r}")
    return output == "linear"


def cost_and_grad(
    theta, data, *, visible_size, hidden_size, lambda_, beta, rho, dtype=None, output="sigmoid"
):
    """Sparse autoencoder cost ``J`` and its float64 gradient (same layout as ``theta``).

    ``data`` is visible_size × m; ``dtype`` (default: the data's if float32/64) sets the
    precision of the products; reductions and results are always float64. ``output="linear"``
    is the linear decoder (``a3 = z3``). Arrays of another array-API library (PyTorch, CuPy,
    ...) are computed and returned there."""
    settings = (visible_size, hidden_size, lambda_, beta, rho)
    terms, grad = _evaluate(theta, data, settings, dtype, output)
    return terms["total"], grad


def cost_terms(
    theta, data, *, visible_size, hidden_size, lambda_, beta, rho, dtype=None, output="sigmoid"
):
    """The cost's terms (reconstruction, weight_decay, sparsity, total) and ``rhohat``."""
    settings = (visible_size, hidden_size, lambda_, beta, rho)
    # A whole evaluation, gradient included: the terms are asked for once per chunk, not per step.
    return _evaluate(theta, data, settings, dtype, output)[0]


def hidden_activations(theta, data, *, visible_size, hidden_size):
    """Hidden-layer activations ``a2 = f(W1 x + b1)`` (the learned features), float64 h × m."""
    theta = np.asarray(theta, dtype=np.float64)
    data = np.asarray(data, dtype=np.float64)
    W1, _, b1, _ = unpack(theta, visible_size, hidden_size)
    if data.ndim != 2 or data.shape[0] != W1.shape[1]:
        raise ValueError(
            f"data must be visible_size × m = {W1.shape[1]} × m, got shape {data.shape}"
        )
    with np.errstate(over="ignore", under="ignore"):
        return 1.0 / (1.0 + np.exp(-(W1 @ data + b1[:, None])))


def _array_api_evaluate(
    theta, data, visible_size, hidden_size, lambda_, beta, rho, dtype=None, output="sigmoid"
):
    """docs/model.md's equations in the array API: the independent check, and the whole cost
    for non-numpy arrays (computed and returned in their library and on their device)."""
    xp, where = arrays.namespace(theta, data)
    v, h, linear = int(visible_size), int(hidden_size), _is_linear(output)
    if theta.shape != (parameter_count(v, h),) or data.ndim != 2 or data.shape[0] != v:
        raise ValueError(
            f"theta {tuple(theta.shape)} and data {tuple(data.shape)} do not fit visible_size={v}, "
            f"hidden_size={h}: theta (2*h*v + h + v,), data visible_size × m"
        )
    f64 = xp.float64
    dt = data.dtype if dtype is None else getattr(xp, np.dtype(dtype).name)
    theta = xp.astype(theta, f64)
    hv, m = h * v, data.shape[1]
    # Column-major W1 (h×v) is the row-major v×h reshape, transposed.
    W1, W2 = xp.reshape(theta[:hv], (v, h)).T, xp.reshape(theta[hv : 2 * hv], (h, v)).T
    b1, b2 = theta[2 * hv : 2 * hv + h], theta[2 * hv + h :]
    X = xp.astype(data, dt)
    with np.errstate(over="ignore", under="ignore"):
        a2 = 1.0 / (1.0 + xp.exp(-(xp.astype(W1, dt) @ X + xp.astype(b1, dt)[:, None])))
        z3 = xp.astype(W2, dt) @ a2 + xp.astype(b2, dt)[:, None]
        a3 = z3 if linear else 1.0 / (1.0 + xp.exp(-z3))
    tiny = float(np.finfo(np.float64).tiny)
    rhohat = xp.clip(xp.astype(xp.sum(a2, axis=1), f64) / m, tiny, float(np.nextafter(1.0, 0.0)))
    err = a3 - X
    kl = rho * xp.log(rho / rhohat) + (1 - rho) * xp.log((1 - rho) / (1 - rhohat))
    terms = {
        "reconstruction": float(xp.sum(xp.astype(err, f64) ** 2)) / (2 * m),
        "weight_decay": lambda_ / 2 * float(xp.sum(theta[: 2 * hv] ** 2)),
        "sparsity": beta * float(xp.sum(kl)),
        "rhohat": rhohat,
    }
    terms["total"] = terms["reconstruction"] + terms["weight_decay"] + terms["sparsity"]
    delta3 = err if linear else err * a3 * (1 - a3)
    sparse = xp.astype(beta * (-rho / rhohat + (1 - rho) / (1 - rhohat)), dt)
    delta2 = (xp.astype(W2, dt).T @ delta3 + sparse[:, None]) * a2 * (1 - a2)
    gW1 = xp.astype(delta2 @ X.T, f64) / m + lambda_ * W1
    gW2 = xp.astype(delta3 @ a2.T, f64) / m + lambda_ * W2
    parts = [xp.reshape(gW1.T, (-1,)), xp.reshape(gW2.T, (-1,))]
    parts += [xp.astype(xp.sum(d, axis=1), f64) / m for d in (delta2, delta3)]
    return terms, xp.concat(parts)


def naive_cost_and_grad(
    theta, data, *, visible_size, hidden_size, lambda_, beta, rho, output="sigmoid"
):
    """Float64 transcription of docs/model.md's equations: the independent check."""
    theta, data = (x if arrays.foreign(x) else np.asarray(x, np.float64) for x in (theta, data))
    settings = (visible_size, hidden_size, lambda_, beta, rho, np.float64, output)
    terms, grad = _array_api_evaluate(theta, data, *settings)
    return terms["total"], grad
