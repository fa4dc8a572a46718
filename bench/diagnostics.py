"""Cost of the per-unit diagnostics as a share of one training chunk, measured in one process.

For the MNIST-size model (784 → 196, 10,000 examples, ρ 0.1, λ 3e-3, β 3, ``maxcor`` 100)
each round times, one after the other: one training chunk (:func:`sparseae.model.train.train_chunk`,
50 L-BFGS iterations as ``training.iterations_per_chunk``, warm-started from the previous
round's theta), the numerics alone (:func:`sparseae.analysis.diagnostics.unit_diagnostics`) and the
whole rule's work (read theta and patches, then
:func:`sparseae.analysis.diagnostics.write_diagnostics`: compute, draw ``units.png``, write
``diagnostics.json``). It prints each diagnostics time as a ratio to the chunk time of the
same round (target: below 20 %), minimum and median over the rounds.

Usage: ``python bench/diagnostics.py [--rounds 2] [--iterations 50] [--shape 784x196]
[--m 10000]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from sparseae.analysis.diagnostics import unit_diagnostics, write_diagnostics
from sparseae.config import rng as seeded
from sparseae.io import load_theta_npz, save_theta_npz
from sparseae.model import autoencoder as ae
from sparseae.model import train

PARAMS = {(64, 25): (1e-4, 3.0, 0.01), (784, 196): (3e-3, 3.0, 0.1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="784x196", help="VISIBLExHIDDEN")
    parser.add_argument("--m", type=int, default=10_000, help="examples")
    parser.add_argument("--iterations", type=int, default=50, help="iterations of one chunk")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    v, h = map(int, args.shape.split("x"))
    lambda_, beta, rho = PARAMS.get((v, h), (1e-4, 3.0, 0.01))
    g = np.random.default_rng(0)
    # Digit-like data: mostly dark pixels, some bright ones.
    data = np.where(g.random((v, args.m)) < 0.2, g.random((v, args.m)), 0.0)
    theta = ae.initialize_parameters(h, v, g)
    model = {"visible_size": v, "hidden_size": h, "rho": rho}
    options = train.LBFGSOptions(maxcor=100, maxiter=10**6, maxfun=10**6)
    chunk_s, compute_s, rule_s = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        np.savez(folder / "patches.npz", data=data)
        for round_ in range(1, args.rounds + 1):
            start = time.perf_counter()
            result = train.train_chunk(
                theta, data, args.iterations, visible_size=v, hidden_size=h, lambda_=lambda_,
                beta=beta, rho=rho, options=options,
            )  # fmt: skip
            theta, records = result.theta, result.records
            chunk_s.append(time.perf_counter() - start)

            start = time.perf_counter()
            unit_diagnostics(
                theta, data, visible_size=v, hidden_size=h, rho=rho,
                rng=seeded(1, "diagnostics"),
            )  # fmt: skip
            compute_s.append(time.perf_counter() - start)

            save_theta_npz(folder / "theta.npz", theta)
            start = time.perf_counter()
            with np.load(folder / "patches.npz", allow_pickle=False) as archive:
                stored = archive["data"]
            write_diagnostics(
                load_theta_npz(folder / "theta.npz")[0], stored, json_path=folder / "d.json",
                png_path=folder / "units.png", experiment="bench", model=model, settings={},
                seed=1,
            )  # fmt: skip
            rule_s.append(time.perf_counter() - start)
            print(
                f"round {round_}: chunk of {len(records)} iterations {chunk_s[-1]:.2f} s, "
                f"diagnostics numerics {compute_s[-1]:.2f} s "
                f"({100 * compute_s[-1] / chunk_s[-1]:.1f} %), whole diagnose rule function "
                f"{rule_s[-1]:.2f} s ({100 * rule_s[-1] / chunk_s[-1]:.1f} %)",
                flush=True,
            )
    for name, times in (("numerics", compute_s), ("diagnose (with figure and files)", rule_s)):
        ratios = [100 * t / c for t, c in zip(times, chunk_s, strict=True)]
        print(
            f"{v}x{h}x{args.m} {name}: {min(ratios):.1f} % of one training chunk (minimum), "
            f"{statistics.median(ratios):.1f} % (median) over {args.rounds} rounds; target < 20 %"
        )


if __name__ == "__main__":
    main()
