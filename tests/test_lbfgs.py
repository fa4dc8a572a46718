"""The minFunc-style L-BFGS: its direction, line search and stops, on real functions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import rosen, rosen_der
from threadpoolctl import threadpool_limits

from sparseae.model import autoencoder as ae
from sparseae.model import lbfgs

pytestmark = pytest.mark.fast


def rosenbrock(x):
    return float(rosen(x)), rosen_der(x)


def two_loop(g, pairs, hdiag):
    """The textbook two-loop recursion, vector by vector (minFunc's lbfgs.m)."""
    q = -g.copy()
    alphas = []
    for s, y in reversed(pairs):
        a = (s @ q) / (y @ s)
        alphas.append(a)
        q -= a * y
    r = hdiag * q
    for (s, y), a in zip(pairs, reversed(alphas), strict=True):
        b = (y @ r) / (y @ s)
        r += s * (a - b)
    return r


def test_direction_is_the_two_loop_recursion():
    """Pairs from a real run: the coefficient form gives the vector recursion's direction."""
    rng = np.random.default_rng(0)
    data = rng.random((16, 200)) * 0.8 + 0.1
    theta0 = ae.initialize_parameters(4, 16, rng)
    kwargs = dict(visible_size=16, hidden_size=4, lambda_=1e-4, beta=3.0, rho=0.05)

    def fun(x):
        return ae.cost_and_grad(x, data, **kwargs)

    seen = []
    maxcor = 5  # fewer pairs than iterations: the ring buffer wraps around
    spy = lbfgs._Pairs.update

    def recording_update(self, g_new, s, y, t, delta):
        seen.append((s.copy(), y.copy()))
        stored = spy(self, g_new, s, y, t, delta)
        kept = [pair for pair in seen if pair[1] @ pair[0] > lbfgs.CURVATURE_MIN][-maxcor:]
        d, _ = self.direction(g_new, float(g_new @ g_new))
        expected = two_loop(g_new, kept, self.hdiag)
        np.testing.assert_allclose(d, expected, rtol=0, atol=1e-9 * np.abs(expected).max())
        # the Gram matrix is the stored rows' products, kept without extra passes
        r = 2 * len(self.order)  # the used rows are a prefix
        rows = self.P[:r]
        np.testing.assert_allclose(self.gram[:r, :r], rows @ rows.T, rtol=1e-8)
        np.testing.assert_allclose(self.Pg[:r], rows @ g_new, rtol=1e-8, atol=1e-14)
        return stored

    lbfgs._Pairs.update = recording_update
    try:
        result = lbfgs.minimize_lbfgs(fun, theta0, maxcor=maxcor, maxiter=15)
    finally:
        lbfgs._Pairs.update = spy
    assert result.nit == 15 and len(seen) == 15


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_trajectory_is_bit_identical_on_any_number_of_threads(monkeypatch, dtype):
    """The passes over the pairs cut in parts on 1, 2 and 4 threads give every bit of the run
    with one whole-array BLAS call per pass (the step as it was before it was threaded)."""
    rng = np.random.default_rng(3)
    data = rng.random((64, 300)) * 0.8 + 0.1
    theta0 = ae.initialize_parameters(25, 64, rng)  # 3,289 parameters: 7 segments of 512
    kwargs = dict(visible_size=64, hidden_size=25, lambda_=1e-4, beta=3.0, rho=0.05, dtype=dtype)
    monkeypatch.setattr(ae, "_threads", ae._threads)  # restored after the test
    used = []
    run_blocks = ae._run_blocks

    def counting(fn, n_blocks, n_threads):
        used.append(n_threads)
        return run_blocks(fn, n_blocks, n_threads)

    monkeypatch.setattr(ae, "_run_blocks", counting)

    def run(threads, segment, rows):
        monkeypatch.setattr(lbfgs, "SEGMENT", segment)
        monkeypatch.setattr(lbfgs, "ROWS", rows)
        ae.set_num_threads(threads)
        used.clear()
        costs = []
        with threadpool_limits(limits=1, user_api="blas"):  # as in training
            result = lbfgs.minimize_lbfgs(
                lambda x: ae.cost_and_grad(x, data, **kwargs),
                theta0,
                maxiter=30,
                callback=lambda x, f, g: costs.append(f),
            )
        assert result.nit == 30 and max(used) == threads
        return result.x.tobytes(), costs

    whole = run(1, 10**9, 10**9)
    for threads in (1, 2, 4):
        assert run(threads, 512, lbfgs.ROWS) == whole, threads


def test_rosenbrock_converges_with_wolfe_steps():
    calls = []

    def fun(x):
        calls.append(x.copy())
        return rosenbrock(x)

    iterates = []
    result = lbfgs.minimize_lbfgs(
        fun, np.array([-1.2, 1.0, -0.5, 0.8]), maxiter=500, gtol=1e-8,
        callback=lambda x, f, g: iterates.append((x.copy(), f, g.copy())),
    )  # fmt: skip
    assert result.reason == "converged", result.message
    np.testing.assert_allclose(result.x, np.ones(4), atol=1e-6)
    assert result.nfev == len(calls) and result.nit == len(iterates)
    costs = [f for _, f, _ in iterates]
    assert all(b < a for a, b in zip(costs, costs[1:], strict=False))  # monotone
    assert result.fun == costs[-1] and np.array_equal(result.x, iterates[-1][0])


def test_line_search_meets_the_strong_wolfe_conditions():
    x = np.array([-1.2, 1.0])
    f, g = rosenbrock(x)
    d = -g
    gtd = float(g @ d)
    for t0 in (1e-4, 1e-3, 1.0):  # too short (extrapolates) and too long (interpolates)
        t, f_new, g_new, evals, wolfe, non_finite = lbfgs._wolfe_line_search(
            rosenbrock, x, t0, d, f, g, gtd, 25
        )
        assert wolfe and evals >= 1 and not non_finite
        assert f_new <= f + lbfgs.C1 * t * gtd
        assert abs(g_new @ d) <= -lbfgs.C2 * gtd
        assert f_new == rosenbrock(x + t * d)[0]


def test_budgets_and_abnormal_stops():
    x0 = np.array([-1.2, 1.0])
    result = lbfgs.minimize_lbfgs(rosenbrock, x0, maxiter=3)
    assert (result.reason, result.nit) == ("budget", 3) and "maxiter" in result.message
    result = lbfgs.minimize_lbfgs(rosenbrock, x0, maxfun=5)
    assert result.reason == "evaluations" and result.nfev > 5 and "maxfun" in result.message
    # a gradient that points the wrong way: every step goes uphill, the line search fails
    result = lbfgs.minimize_lbfgs(lambda x: (float(x @ x), -2 * x), np.ones(3))
    assert result.reason == "abnormal" and result.nit == 0
    assert "line search found no lower cost" in result.message and not result.non_finite
    np.testing.assert_array_equal(result.x, np.ones(3))  # the last accepted point
    # a cost that is not finite at the start
    result = lbfgs.minimize_lbfgs(lambda x: (np.inf, x), np.ones(3))
    assert result.reason == "abnormal" and "not finite" in result.message and result.non_finite


def test_non_finite_trial_points_are_backed_off_from_and_reported_when_nothing_else_is_left():
    x0 = np.array([-1.2, 1.0])
    # log cosh(x - 3) is flat far from 3, so the line search extrapolates past x = 5, where
    # this cost overflows: it backs off from that trial point and goes on to the minimum
    overflows = []

    def walled(x):
        if x[0] >= 5:
            overflows.append(float(x[0]))
            return np.inf, np.full_like(x, np.nan)
        return float(np.log(np.cosh(x[0] - 3))), np.tanh(x - 3)

    result = lbfgs.minimize_lbfgs(walled, np.zeros(1), gtol=1e-6)
    assert overflows and result.reason == "converged" and not result.non_finite
    assert result.x[0] == pytest.approx(3.0, abs=1e-6)

    # NaN everywhere after 6 evaluations: the run ends at the last finite accepted point
    calls, accepted = [0], []

    def breaks(x):
        calls[0] += 1
        f, g = rosenbrock(x)
        return (f if calls[0] <= 6 else np.nan), g

    result = lbfgs.minimize_lbfgs(breaks, x0, callback=lambda x, f, g: accepted.append(x.copy()))
    assert result.reason == "abnormal" and result.non_finite and "non-finite" in result.message
    assert 0 < result.nit == len(accepted) and np.isfinite(result.fun)
    np.testing.assert_array_equal(result.x, accepted[-1])
    assert result.fun == rosenbrock(result.x)[0]
    # already optimal: converged without a step
    result = lbfgs.minimize_lbfgs(lambda x: (float(x @ x), 2 * x), np.zeros(3))
    assert (result.reason, result.nit, result.nfev) == ("converged", 0, 1)


def test_refuses_a_start_that_is_not_a_vector():
    with pytest.raises(ValueError, match="1-D"):
        lbfgs.minimize_lbfgs(rosenbrock, np.zeros((2, 2)))
