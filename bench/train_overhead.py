"""Training speed: wall time against the GEMM floor, time outside the cost, per optimizer and dtype.

For each shape (default 64×25×10,000 and 784×196×10,000) the candidates train the same
problem from the same start, round-robin in one process (the order rotates every round):

- ``lbfgs/float64``, ``lbfgs/float32``: :func:`sparseae.model.train.train_chunk` in chunks
  with a checkpoint each (:func:`train_chunked`), the minFunc-style optimizer
  (:mod:`sparseae.model.lbfgs`), cost in float64 / float32;
- ``whole/float64``, ``whole/float32``: the same with the optimizer's passes over the pairs as
  one BLAS call each on one thread (:func:`whole_passes`: the step before it was threaded);
- ``scipy/float64``, ``scipy/float32``: the same with ``method="scipy-lbfgsb"``;
- ``plain+scipy``: the plain numpy port of the cost (``bench/cost_and_grad.py``) under
  ``scipy.optimize.minimize(method="L-BFGS-B")`` with default threads, as one would first
  write it.

All use ``maxcor`` pairs (default 100, minFunc's) and chunks with warm restarts and a
checkpoint per chunk for the package candidates. Printed per candidate, minimum (median) over
rounds: the wall time as a ratio to ``lbfgs/float64`` of the same round; the wall time as a
multiple of "GEMM floor × evaluations" (the five bare products of one evaluation in the
candidate's dtype, the faster of two timings just before and just after the candidate); and
the share of the wall time spent outside the cost function (optimizer, records,
checkpoints) with its ms per iteration. The L-BFGS memory fills during the first ``maxcor``
iterations: run more iterations than ``maxcor`` to see the step at full memory. The load
average is printed at start and end: the machine is shared, trust ratios measured together,
not absolute times.

Usage: ``python bench/train_overhead.py [--shape 784x196] [--iterations 130] [--rounds 2]
[--maxcor 100] [--chunks 2] [--m 10000] [--only lbfgs/float64 --only scipy/float64]``;
``--step-only 308308`` times the optimizer's step alone (see :func:`step_only`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from cost_and_grad import candidates as gemm_candidates
from cost_and_grad import plain_port
from scipy.optimize import minimize

from sparseae.model import autoencoder as ae
from sparseae.model import lbfgs, train

PARAMS = {(64, 25): (1e-4, 3.0, 0.01), (784, 196): (3e-3, 3.0, 0.1)}
CANDIDATES = (
    "lbfgs/float64",
    "lbfgs/float32",
    "whole/float64",
    "whole/float32",
    "scipy/float64",
    "scipy/float32",
    "plain+scipy",
)


@contextlib.contextmanager
def whole_passes(whole=True):
    """The optimizer's two passes over the pairs as one part each: one BLAS call, one thread."""
    saved = lbfgs.SEGMENT, lbfgs.ROWS
    if whole:
        lbfgs.SEGMENT = lbfgs.ROWS = sys.maxsize
    try:
        yield
    finally:
        lbfgs.SEGMENT, lbfgs.ROWS = saved


class TimedCost:
    """A cost function that adds up its own wall time and calls."""

    def __init__(self, fn):
        self.fn = fn
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


def train_chunked(theta, data, chunks, per, folder, **kwargs):
    """``chunks`` chunks of ``per`` iterations with warm restarts and a checkpoint each (what a
    pipeline run does, without its checks); the records of all chunks."""
    records, last = [], train.FIRST
    for k in range(1, chunks + 1):
        result = train.train_chunk(theta, data, per, start=last, **kwargs)
        theta, records = result.theta, records + result.records
        train.save_checkpoint(folder / f"{k}.npz", theta, result.records, {"chunk": k})
        last = records[-1] if records else last
    return records


def run_package(name, theta0, data, v, h, iterations, chunks, maxcor):
    method, dtype = name.split("/")
    lambda_, beta, rho = PARAMS.get((v, h), (1e-4, 3.0, 0.01))
    timed = TimedCost(ae.cost_and_grad)
    whole = method == "whole"
    method = {"scipy": "scipy-lbfgsb", "whole": "lbfgs"}.get(method, method)
    options = train.LBFGSOptions(
        method=method, maxcor=maxcor, maxiter=iterations, maxfun=10 * iterations
    )
    with tempfile.TemporaryDirectory() as folder, whole_passes(whole):
        start = time.perf_counter()
        records = train_chunked(
            theta0, data, chunks, -(-iterations // chunks), Path(folder), options=options,
            visible_size=v, hidden_size=h, lambda_=lambda_, beta=beta, rho=rho, cost_fn=timed,
            dtype=dtype,
        )  # fmt: skip
        wall = time.perf_counter() - start
    return wall, timed.seconds, timed.calls, len(records), records[-1]["cost"]


def run_plain(theta0, data, v, h, iterations, maxcor):
    lambda_, beta, rho = PARAMS.get((v, h), (1e-4, 3.0, 0.01))
    timed = TimedCost(lambda x: plain_port(x, data, v, h, lambda_, beta, rho))
    start = time.perf_counter()
    result = minimize(
        timed, theta0, jac=True, method="L-BFGS-B",
        options=dict(maxcor=maxcor, maxiter=iterations, maxfun=10 * iterations, gtol=1e-9,
                     ftol=1e-12),
    )  # fmt: skip
    wall = time.perf_counter() - start
    return wall, timed.seconds, timed.calls, int(result.nit), float(result.fun)


def floor_seconds(floor, calls=5):
    floor()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        floor()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_shape(v, h, m, iterations, chunks, maxcor, rounds, names):
    rng = np.random.default_rng(0)
    data = rng.random((v, m)) * 0.8 + 0.1
    theta0 = ae.initialize_parameters(h, v, rng)
    floors = {
        dt: gemm_candidates(v, h, m, np.dtype(dt), rng)["floor"] for dt in ("float64", "float32")
    }
    rows = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            dtype = "float64" if name == "plain+scipy" else name.split("/")[1]
            before = floor_seconds(floors[dtype])  # the floor next to the candidate, in time
            if name == "plain+scipy":
                wall, inside, evals, nit, cost = run_plain(theta0, data, v, h, iterations, maxcor)
            else:
                wall, inside, evals, nit, cost = run_package(
                    name, theta0, data, v, h, iterations, chunks, maxcor
                )
            floor = min(before, floor_seconds(floors[dtype]))
            rows[name].append(
                dict(wall=wall, inside=inside, evals=evals, nit=nit, cost=cost, floor=floor * evals)
            )
            print(
                f"  round {r + 1} {name:14s} wall {wall:7.2f} s, {nit} iterations, {evals} "
                f"evaluations, final cost {cost:.6f}, load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    base = "lbfgs/float64" if "lbfgs/float64" in names else names[0]
    print(
        f"{v}x{h}x{m}, maxcor {maxcor}, {iterations} iterations in {chunks} chunks, {rounds} "
        f"rounds; minimum (median) over rounds"
    )
    print(
        f"  {'candidate':14s} {'wall / ' + base:>24s} {'wall / (floor x evals)':>24s} "
        f"{'outside the cost':>18s} {'ms/iteration':>14s}"
    )
    for name in names:
        ratio = [row["wall"] / b["wall"] for row, b in zip(rows[name], rows[base], strict=True)]
        floor = [row["wall"] / row["floor"] for row in rows[name]]
        share = [(row["wall"] - row["inside"]) / row["wall"] for row in rows[name]]
        per_it = [1e3 * (row["wall"] - row["inside"]) / max(row["nit"], 1) for row in rows[name]]

        def fmt(values, spec):
            return f"{min(values):{spec}} ({statistics.median(values):{spec}})"

        print(
            f"  {name:14s} {fmt(ratio, '.3f'):>24s} {fmt(floor, '.2f'):>24s} "
            f"{fmt([100 * s for s in share], '.1f'):>16s} % {fmt(per_it, '.0f'):>14s}"
        )


def step_only(n, maxcor, iterations, rounds):
    """Milliseconds per optimizer step at full memory, on a cost that costs almost nothing.

    A diagonal quadratic with n variables and curvatures spread over [1, 1000]: L-BFGS keeps
    making progress for hundreds of iterations, and each evaluation is two cheap passes. The
    time per iteration after ``maxcor`` iterations is the optimizer's own step (plus those
    passes, timed and subtracted).
    """
    rng = np.random.default_rng(1)
    curvature = 10 ** rng.uniform(0, 3, n)
    x0 = rng.standard_normal(n)

    def quadratic(x, *_args, **_kwargs):
        g = curvature * x
        return 0.5 * float(x @ g), g

    v, h, m = 784, 196, 10_000  # one evaluation of the MNIST-size cost, for scale
    lambda_, beta, rho = PARAMS[(v, h)]
    data64 = rng.random((v, m)) * 0.8 + 0.1
    data = {"float64": data64, "float32": data64.astype(np.float32)}
    theta = ae.initialize_parameters(h, v, rng)
    cost_kwargs = dict(visible_size=v, hidden_size=h, lambda_=lambda_, beta=beta, rho=rho)
    evals = {"float64": [], "float32": []}
    times = {"lbfgs": [], "lbfgs whole": [], "scipy-lbfgsb": []}
    for r in range(rounds):
        for dtype, X in data.items():
            ae.cost_and_grad(theta, X, **cost_kwargs)
            for _ in range(3):
                start = time.perf_counter()
                ae.cost_and_grad(theta, X, **cost_kwargs)
                evals[dtype].append(1e3 * (time.perf_counter() - start))
        for method in list(times)[r % 3 :] + list(times)[: r % 3]:
            timed = TimedCost(quadratic)
            stamps = []

            def stamp(*_args, timed=timed, stamps=stamps):
                stamps.append((time.perf_counter(), timed.seconds))

            options = train.LBFGSOptions(maxcor=maxcor, maxiter=iterations)
            if method.startswith("lbfgs"):
                with whole_passes(method == "lbfgs whole"):
                    lbfgs.minimize_lbfgs(
                        timed,
                        x0,
                        maxcor=maxcor,
                        maxiter=iterations,
                        maxfun=10 * iterations,
                        callback=stamp,
                    )
            else:
                minimize(
                    timed, x0, jac=True, method="L-BFGS-B",
                    callback=stamp,
                    options=dict(maxcor=maxcor, maxiter=iterations, maxfun=10 * iterations,
                                 gtol=options.gtol, ftol=options.ftol),
                )  # fmt: skip
            full = stamps[maxcor:]
            if len(full) < 2:
                raise SystemExit(f"{method} stopped after {len(stamps)} iterations")
            wall = full[-1][0] - full[0][0]
            inside = full[-1][1] - full[0][1]
            times[method].append(1e3 * (wall - inside) / (len(full) - 1))
    print(f"optimizer step alone, n = {n}, maxcor {maxcor}, memory full, {rounds} rounds:")
    for method, values in times.items():
        print(
            f"  {method:13s} {min(values):7.1f} ms/iteration (median "
            f"{statistics.median(values):.1f}), load {os.getloadavg()[0]:.1f}"
        )
    per_iteration = 1.13  # evaluations per iteration in 784x196 training (147 for 130)
    for dtype, values in evals.items():
        cost = min(values)
        print(f"  one {v}x{h}x{m} {dtype} evaluation: {cost:.1f} ms (min of {len(values)})")
        for method, steps in times.items():
            step = min(steps)
            share = step / (step + per_iteration * cost)
            print(
                f"    {method:13s} step / evaluation {step / cost:.2f}: ~{100 * share:.0f} %"
                " outside"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append", help="VISIBLExHIDDEN (repeatable)")
    parser.add_argument(
        "--iterations", type=int, help="iterations (default 200; 130 for models over 10k weights)"
    )
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--maxcor", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--m", type=int, default=10_000)
    parser.add_argument("--only", action="append", choices=CANDIDATES, help="candidates")
    parser.add_argument(
        "--step-only", type=int, metavar="N", help="time the optimizer step alone at n = N"
    )
    args = parser.parse_args()
    if args.step_only:
        from threadpoolctl import threadpool_limits

        print(f"load average at start: {os.getloadavg()}")
        with threadpool_limits(limits=1, user_api="blas"):  # as in training
            step_only(args.step_only, args.maxcor, args.iterations or 150, args.rounds)
        return
    names = list(args.only or CANDIDATES)
    print(f"load average at start: {os.getloadavg()}; cost_and_grad threads: {ae._threads}")
    for shape in args.shape or ["64x25", "784x196"]:
        v, h = map(int, shape.split("x"))
        iterations = args.iterations or (200 if v * h < 10_000 else 130)
        bench_shape(v, h, args.m, iterations, args.chunks, args.maxcor, args.rounds, names)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
