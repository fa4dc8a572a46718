"""Unconstrained L-BFGS as minFunc's ``lbfgs`` (strong-Wolfe cubic line search), the
correction pairs the rows of one array read twice per step: memory bandwidth bounds the step
(docs/model.md, "Optimizer and chunks"). Arrays of any array-API library stay in it and on its
device; only the Gram coefficients (2·maxcor square) are numpy on the host. numpy's two passes
run on the threads of :func:`sparseae.model.autoencoder.set_num_threads`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from sparseae.model import arrays, autoencoder

__all__ = ["LBFGSResult", "minimize_lbfgs"]

C1, C2 = 1e-4, 0.9  # Wolfe constants (minFunc's defaults)
TOLX = 1e-9  # minFunc's tolX: smallest step (Σ|t d|) and line-search progress
CURVATURE_MIN = 1e-10  # a pair is stored only when yᵀs exceeds this (minFunc's lbfgsUpdate)
# The passes over the pairs in fixed parts, never chosen from the thread count: the direction
# by 64 KB-aligned segments of parameters (BLAS sums each element over the pairs whatever the
# segment), P g by groups of rows (each row summed alone; r is even, so no group is one row,
# which BLAS sums another way). Both give the bits of one whole-array call (tests/test_lbfgs.py):
# the trajectory is the unthreaded one on any number of threads.
SEGMENT, ROWS = 8192, 8


def _in_parts(fn, size: int, part: int) -> None:
    """``fn(a, b)`` for the slices ``[a, b)`` of ``range(size)`` cut every ``part``, threaded."""
    n_parts = -(-size // part)
    threads = max(1, min(n_parts, autoencoder._threads))
    autoencoder._run_blocks(lambda k, _: fn(k * part, min(size, k * part + part)), n_parts, threads)


@dataclasses.dataclass
class LBFGSResult:
    """Outcome of :func:`minimize_lbfgs`: the last accepted point ``x`` with ``fun`` and
    ``jac``. ``reason``: ``budget``, ``evaluations``, ``converged`` or ``abnormal``."""

    x: np.ndarray
    fun: float
    jac: np.ndarray
    nit: int
    nfev: int
    reason: str
    message: str
    non_finite: bool = False


class _Pairs:
    """The last ``m`` correction pairs as rows of one array, with their Gram matrix."""

    def __init__(self, n: int, m: int, xp, where):
        self.m, self.xp, self.where = m, xp, where
        # Pages are touched only as pairs arrive.
        self.P = xp.empty((2 * m, n), dtype=xp.float64, device=where)
        self.numpy = isinstance(self.P, np.ndarray)  # else the array-API path, unthreaded
        self.gram = np.zeros((2 * m, 2 * m))
        self.Pg = np.zeros(2 * m)  # P @ g at the current gradient
        self.order: list[int] = []  # slots, oldest first
        self.hdiag = 1.0

    def direction(self, g: np.ndarray, gg: float):
        """``-H g`` by the two-loop recursion on coefficients; returns (d, coefficients)."""
        # Slots fill 0, 1, … before any is reused, so the used rows are always a prefix.
        r = 2 * len(self.order)
        B = np.empty((r + 1, r + 1))
        B[:r, :r] = self.gram[:r, :r]
        B[:r, r] = B[r, :r] = self.Pg[:r]
        B[r, r] = gg
        delta = np.zeros(r + 1)
        delta[r] = -1.0  # q = -g
        alpha = {}
        for slot in reversed(self.order):
            si, yi = 2 * slot, 2 * slot + 1
            alpha[slot] = (B[si] @ delta) / B[si, yi]
            delta[yi] -= alpha[slot]
        delta *= self.hdiag
        for slot in self.order:
            si, yi = 2 * slot, 2 * slot + 1
            beta = (B[yi] @ delta) / B[si, yi]
            delta[si] += alpha[slot] - beta
        coef = self.xp.asarray(delta[:r], device=self.where)
        d = self.xp.empty(g.shape[0], dtype=self.xp.float64, device=self.where)

        def segment(a, b):
            d[a:b] = self.P[:r, a:b].T @ coef + float(delta[r]) * g[a:b]

        _in_parts(segment, d.shape[0], SEGMENT if self.numpy else d.shape[0])
        return d, delta

    def update(self, g_new, s, y, t, delta):
        """Account for the step ``s = t d`` and the new gradient; returns whether it was stored."""
        r = 2 * len(self.order)
        Pg_old, Pg_new = self.Pg[:r].copy(), np.empty(r)

        def rows(a, b):
            Pg_new[a:b] = arrays.to_numpy(self.P[a:b, :] @ g_new)

        _in_parts(rows, r, ROWS if self.numpy else max(r, 1))
        ys = float(y @ s)
        if ys <= CURVATURE_MIN:
            self.Pg[:r] = Pg_new
            return False
        Ps = t * (self.gram[:r, :r] @ delta[:r] + delta[r] * Pg_old)
        Py = Pg_new - Pg_old
        slot = len(self.order) if len(self.order) < self.m else self.order.pop(0)
        self.order.append(slot)
        si, yi = 2 * slot, 2 * slot + 1
        self.P[si, :], self.P[yi, :] = s, y
        rows = 2 * len(self.order)
        if r:
            keep = np.ones(rows, bool)
            keep[[si, yi]] = False
            idx = np.flatnonzero(keep)
            self.gram[si, idx] = self.gram[idx, si] = Ps[idx]
            self.gram[yi, idx] = self.gram[idx, yi] = Py[idx]
            self.Pg[idx] = Pg_new[idx]
        yy = float(y @ y)
        self.gram[si, si] = float(s @ s)
        self.gram[yi, yi] = yy
        self.gram[si, yi] = self.gram[yi, si] = ys
        self.Pg[si] = float(s @ g_new)
        self.Pg[yi] = float(y @ g_new)
        self.hdiag = ys / yy
        return True


def _cubic_min(x1, f1, g1, x2, f2, g2, lo=None, hi=None):
    """Minimizer of the cubic through two points with slopes (minFunc's ``polyinterp``)."""
    if lo is None:
        if x2 < x1:
            x1, f1, g1, x2, f2, g2 = x2, f2, g2, x1, f1, g1
        if x1 == x2:
            return x1
        d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        d2sq = d1 * d1 - g1 * g2
        if d2sq >= 0 and math.isfinite(d2sq):
            d2 = math.sqrt(d2sq)
            den = g2 - g1 + 2 * d2
            if den != 0:
                t = x2 - (x2 - x1) * ((g2 + d2 - d1) / den)
                if math.isfinite(t):
                    return min(max(t, x1), x2)
        return (x1 + x2) / 2
    A = np.array(
        [
            [x1**3, x1**2, x1, 1.0],
            [x2**3, x2**2, x2, 1.0],
            [3 * x1**2, 2 * x1, 1.0, 0.0],
            [3 * x2**2, 2 * x2, 1.0, 0.0],
        ]
    )
    try:
        p = np.linalg.solve(A, np.array([f1, f2, g1, g2]))
    except np.linalg.LinAlgError:
        return (lo + hi) / 2
    if not np.isfinite(p).all():
        return (lo + hi) / 2
    candidates = [lo, hi, x1, x2]
    a, b, c = 3 * p[0], 2 * p[1], p[2]
    if a != 0:
        disc = b * b - 4 * a * c
        if disc >= 0:
            root = math.sqrt(disc)
            candidates += [(-b + root) / (2 * a), (-b - root) / (2 * a)]
    elif b != 0:
        candidates.append(-c / b)
    best, fbest = (lo + hi) / 2, math.inf
    for x in candidates:
        if lo <= x <= hi:
            fx = np.polyval(p, x)
            if fx < fbest:
                best, fbest = x, fx
    return best


def _wolfe_line_search(fun, x, t, d, f, g, gtd, maxls):
    """minFunc's ``WolfeLineSearch``; returns ``(t, f_new, g_new, evals, wolfe, non_finite)``."""
    evals, non_finite = 0, False

    def evaluate(step):
        nonlocal evals, non_finite
        fx, gx = fun(x + float(step) * d)
        fx = float(fx)
        evals += 1
        non_finite = non_finite or not arrays.finite(fx, gx)
        return fx, gx, float(gx @ d)

    f_new, g_new, gtd_new = evaluate(t)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    bracket = None
    done = False
    while evals < maxls:
        if not arrays.finite(f_new, g_new):
            # Stepped into a region where the cost overflows: back off towards t_prev.
            t = (t + t_prev) / 2
            f_new, g_new, gtd_new = evaluate(t)
            continue
        if f_new > f + C1 * t * gtd or (evals > 2 and f_new >= f_prev):
            bracket = [[t_prev, f_prev, g_prev, gtd_prev], [t, f_new, g_new, gtd_new]]
            break
        if abs(gtd_new) <= -C2 * gtd:
            bracket = [[t, f_new, g_new, gtd_new]]
            done = True
            break
        if gtd_new >= 0:
            bracket = [[t_prev, f_prev, g_prev, gtd_prev], [t, f_new, g_new, gtd_new]]
            break
        temp, t_prev = t_prev, t
        t = _cubic_min(temp, f_prev, gtd_prev, t, f_new, gtd_new, t + 0.01 * (t - temp), 10 * t)
        f_prev, g_prev, gtd_prev = f_new, g_new, gtd_new
        f_new, g_new, gtd_new = evaluate(t)
    if bracket is None:  # out of evaluations while extrapolating
        bracket = [[0.0, f, g, gtd], [t, f_new, g_new, gtd_new]]
    insufficient = False
    while not done and evals < maxls:
        lo_pos = 0 if bracket[0][1] <= bracket[1][1] else 1
        hi_pos = 1 - lo_pos
        (t1, f1, _, d1), (t2, f2, _, d2) = bracket
        legal = all(arrays.finite(b[1], b[2]) for b in bracket)
        t = _cubic_min(t1, f1, d1, t2, f2, d2) if legal else (t1 + t2) / 2
        bmin, bmax = min(t1, t2), max(t1, t2)
        width = bmax - bmin
        if width > 0 and min(bmax - t, t - bmin) / width < 0.1:
            if insufficient or t >= bmax or t <= bmin:
                t = bmax - 0.1 * width if abs(t - bmax) < abs(t - bmin) else bmin + 0.1 * width
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new, gtd_new = evaluate(t)
        f_lo = bracket[lo_pos][1]
        if not arrays.finite(f_new, g_new) or f_new > f + C1 * t * gtd or f_new >= f_lo:
            bracket[hi_pos] = [t, f_new, g_new, gtd_new]
        else:
            if abs(gtd_new) <= -C2 * gtd:
                done = True
            elif gtd_new * (bracket[hi_pos][0] - bracket[lo_pos][0]) >= 0:
                bracket[hi_pos] = bracket[lo_pos]
            bracket[lo_pos] = [t, f_new, g_new, gtd_new]
        if not done and abs((bracket[0][0] - bracket[1][0]) * gtd_new) < TOLX:
            break  # the bracket cannot shrink any further
    finite = [b for b in bracket if arrays.finite(b[1], b[2])]
    if not finite:  # only possible when the starting point itself was non-finite
        return 0.0, f, g, evals, False, non_finite
    best = min(finite, key=lambda b: b[1])
    return best[0], best[1], best[2], evals, done, non_finite


def minimize_lbfgs(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0,
    *,
    maxcor: int = 100,
    maxiter: int = 400,
    maxfun: int = 1000,
    gtol: float = 1e-9,
    ftol: float = 1e-12,
    maxls: int = 20,
    callback: Callable[[np.ndarray, float, np.ndarray], None] | None = None,
) -> LBFGSResult:
    """Minimize ``fun`` (``fun(x) -> (f, g)``, float64 gradient) by L-BFGS from ``x0``.

    ``x0`` of any array-API library: ``fun`` gets and returns arrays of that library. Converged
    when ``max |g_i| <= gtol`` or the relative cost reduction is ``<= ftol``;
    ``callback(x, f, g)`` runs after every iteration, at the accepted point."""
    xp, where = arrays.namespace(x0 if arrays.foreign(x0) else np.asarray(x0))
    x = xp.asarray(x0, dtype=xp.float64, copy=True)
    if x.ndim != 1:
        raise ValueError(f"x0 must be 1-D, got shape {tuple(x.shape)}")
    f, g = fun(xp.asarray(x, copy=True))
    f = float(f)
    nfev, nit = 1, 0

    def result(reason, message, non_finite=False):
        return LBFGSResult(x, f, g, nit, nfev, reason, message, non_finite)

    if not arrays.finite(f, g):
        return result("abnormal", "the cost or gradient at the starting point is not finite", True)
    if float(xp.max(xp.abs(g))) <= gtol:
        return result("converged", f"max |g_i| <= gtol = {gtol:g} at the starting point")
    pairs = _Pairs(x.shape[0], int(maxcor), xp, where)
    gg = float(g @ g)
    while True:
        if pairs.order:
            d, delta = pairs.direction(g, gg)
            t = 1.0
        else:
            d = -g
            delta = np.array([-1.0])
            t = min(1.0, 1.0 / float(xp.sum(xp.abs(g))))
        gtd = float(g @ d)
        if not (math.isfinite(gtd) and gtd < 0):
            return result("abnormal", f"not a descent direction (gᵀd = {gtd:.3e})")
        t, f_new, g_new, evals, _, non_finite = _wolfe_line_search(fun, x, t, d, f, g, gtd, maxls)
        nfev += evals
        if t == 0 or not f_new < f:
            met = " met a non-finite cost or gradient and" if non_finite else ""
            lower = "lower finite cost" if non_finite else "lower cost"
            return result(
                "abnormal",
                f"the line search{met} found no {lower} in {evals} evaluations",
                non_finite,
            )
        s = float(t) * d
        y = g_new - g
        x = x + s
        pairs.update(g_new, s, y, t, delta)
        f_old, f, g = f, f_new, g_new
        gg = float(g @ g)
        nit += 1
        if callback is not None:
            callback(x, f, g)
        if float(xp.max(xp.abs(g))) <= gtol:
            return result("converged", f"max |g_i| <= gtol = {gtol:g}")
        if (f_old - f) / max(abs(f_old), abs(f), 1.0) <= ftol:
            return result("converged", f"relative reduction of the cost <= ftol = {ftol:g}")
        if float(xp.sum(xp.abs(s))) <= TOLX:
            return result("converged", f"step size sum |t d| <= {TOLX:g}")
        if nit >= maxiter:
            return result("budget", f"reached maxiter = {maxiter} iterations")
        if nfev > maxfun:
            return result("evaluations", f"reached maxfun: {nfev} > {maxfun} evaluations")
