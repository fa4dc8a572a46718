"""Share of training wall time spent outside cost_and_grad (optimizer, callbacks, checkpoints).

Runs :func:`sparseae.train.train_chunked` (chunks with warm restarts, a checkpoint per chunk)
with a timing wrapper around :func:`sparseae.autoencoder.cost_and_grad`, and prints for each
shape and ``maxcor`` the wall time, the time inside the cost function and the remainder's
share (target: < 15 %). Per-iteration L-BFGS-B work grows with ``maxcor × n``, so the
784×196 model (n = 308,308) at ``maxcor`` 100 is where the optimizer itself shows.

Usage: ``python bench/train_overhead.py [--shape 64x25] [--iterations 100] [--chunks 2]
[--maxcor 100 --maxcor 10] [--m 10000]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from sparseae import autoencoder as ae
from sparseae import train

PARAMS = {(64, 25): (1e-4, 3.0, 0.01), (784, 196): (3e-3, 3.0, 0.1)}


class TimedCost:
    def __init__(self):
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, theta, data, **kwargs):
        start = time.perf_counter()
        try:
            return ae.cost_and_grad(theta, data, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


def run(v, h, m, iterations, chunks, maxcor, rng):
    lambda_, beta, rho = PARAMS.get((v, h), (1e-4, 3.0, 0.01))
    data = rng.random((v, m)) * 0.8 + 0.1
    theta0 = ae.initialize_parameters(h, v, rng)
    timed = TimedCost()
    options = train.LBFGSOptions(maxcor=maxcor, maxiter=iterations, maxfun=10 * iterations)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        _, records = train.train_chunked(
            theta0, data, chunks=chunks, iterations_per_chunk=-(-iterations // chunks),
            checkpoint_dir=folder, visible_size=v, hidden_size=h, lambda_=lambda_, beta=beta,
            rho=rho, options=options, cost_fn=timed,
        )  # fmt: skip
        wall = time.perf_counter() - start
    outside = wall - timed.seconds
    print(
        f"{v}x{h}x{m} maxcor {maxcor:3d}: {len(records)} iterations, {timed.calls} evaluations, "
        f"wall {wall:.2f} s, in cost_and_grad {timed.seconds:.2f} s, outside {outside:.2f} s "
        f"= {100 * outside / wall:.1f} % ({1e3 * outside / max(len(records), 1):.1f} ms/iteration)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append", help="VISIBLExHIDDEN (repeatable)")
    parser.add_argument(
        "--iterations", type=int, help="iterations (default 100; 30 for models over 10k weights)"
    )
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--maxcor", type=int, action="append")
    parser.add_argument("--m", type=int, default=10_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for shape in args.shape or ["64x25", "784x196"]:
        v, h = map(int, shape.split("x"))
        iterations = args.iterations or (100 if v * h < 10_000 else 30)
        for maxcor in args.maxcor or [100, 10]:
            run(v, h, args.m, iterations, args.chunks, maxcor, rng)


if __name__ == "__main__":
    main()
