"""Time cost_and_grad against the "GEMM floor": the five matrix products it cannot avoid.

For each shape (visible × hidden × m) and dtype, the candidates are timed round-robin in one
process (the machine's speed drifts; interleaving makes the ratios fair) and the minimum and the
median of each are printed as ratios to the floor's minimum and median.

Each turn first runs its candidate back to back for ``--settle`` seconds (default 0.15) and then
times ``--calls`` calls. Why: after a product on two threads, OpenBLAS's idle worker spins on a
core for about 0.1 s. Timing one call per turn made whichever candidate followed the floor (or
the plain port, which also uses the two-thread BLAS) run with one core taken, which penalised
``ours`` (single-threaded BLAS in two workers) by up to 1.6× on 64×25. ``--settle 0 --calls 1``
gives the old one-call turns. The candidates:

- ``floor``  the five bare products ``W1 X``, ``W2 A2``, ``W2ᵀ D3``, ``D2 Xᵀ``, ``D3 A2ᵀ`` into
  preallocated outputs, with the BLAS's default threads;
- ``ours``   :func:`sparseae.model.autoencoder.cost_and_grad`;
- ``plain``  a straightforward numpy port of the equations (the same in float32 and float64).

With ``--work`` the same candidates are also timed single-threaded (one BLAS thread, one
cost_and_grad thread) by CPU time of the calling thread: the ratio of work done, which stays
meaningful when other jobs load the machine and wall-clock ratios of multi-threaded code do not.

Usage: ``python bench/cost_and_grad.py [--rounds N] [--m 10000] [--shape 64x25 --shape …]
[--settle 0.15] [--calls 3] [--work]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from sparseae.model import autoencoder as ae

PARAMS = {(64, 25): (1e-4, 3.0, 0.01), (784, 196): (3e-3, 3.0, 0.1)}


def plain_port(theta, X, v, h, lambda_, beta, rho):
    """The equations as one would first write them in numpy (in X's dtype)."""
    W1, W2, b1, b2 = (p.astype(X.dtype) for p in ae.unpack(theta, v, h))
    m = X.shape[1]
    a2 = 1 / (1 + np.exp(-(W1 @ X + b1[:, None])))
    a3 = 1 / (1 + np.exp(-(W2 @ a2 + b2[:, None])))
    rhohat = a2.mean(axis=1)
    cost = (
        np.sum((a3 - X) ** 2) / (2 * m)
        + lambda_ / 2 * (np.sum(W1**2) + np.sum(W2**2))
        + beta * np.sum(rho * np.log(rho / rhohat) + (1 - rho) * np.log((1 - rho) / (1 - rhohat)))
    )
    d3 = -(X - a3) * a3 * (1 - a3)
    d2 = (W2.T @ d3 + (beta * (-rho / rhohat + (1 - rho) / (1 - rhohat)))[:, None]) * a2 * (1 - a2)
    grad = np.concatenate(
        [
            (d2 @ X.T / m + lambda_ * W1).ravel(order="F"),
            (d3 @ a2.T / m + lambda_ * W2).ravel(order="F"),
            d2.sum(axis=1) / m,
            d3.sum(axis=1) / m,
        ]
    )
    return float(cost), grad


def candidates(v, h, m, dtype, rng):
    lambda_, beta, rho = PARAMS.get((v, h), (1e-4, 3.0, 0.01))
    X = (rng.random((v, m)) * 0.8 + 0.1).astype(dtype)
    theta = ae.initialize_parameters(h, v, rng)
    W1, W2, _, _ = ae.unpack(theta, v, h)
    W1, W2 = np.ascontiguousarray(W1, dtype), np.ascontiguousarray(W2, dtype)
    A2 = rng.random((h, m)).astype(dtype)
    D3 = rng.random((v, m)).astype(dtype)
    out_hm, out_vm = np.empty((h, m), dtype), np.empty((v, m), dtype)
    out_hv, out_vh = np.empty((h, v), dtype), np.empty((v, h), dtype)

    def floor():
        np.matmul(W1, X, out=out_hm)
        np.matmul(W2, A2, out=out_vm)
        np.matmul(W2.T, D3, out=out_hm)
        np.matmul(A2, X.T, out=out_hv)
        np.matmul(D3, A2.T, out=out_vh)

    kwargs = dict(visible_size=v, hidden_size=h, lambda_=lambda_, beta=beta, rho=rho)
    return {
        "floor": floor,
        "ours": lambda: ae.cost_and_grad(theta, X, **kwargs),
        "plain": lambda: plain_port(theta, X, v, h, lambda_, beta, rho),
    }


def bench(v, h, m, dtype, rounds, rng, work=False, settle=0.15, calls=3):
    funcs = candidates(v, h, m, dtype, rng)
    for f in funcs.values():  # warm-up: buffers, thread pool, page faults
        f()
    clock = time.thread_time if work else time.perf_counter
    times = {name: [] for name in funcs}
    names = list(funcs)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            # Settle: let the previous candidate's spinning BLAS threads go idle (see above).
            until = time.perf_counter() + settle
            while time.perf_counter() < until:
                funcs[name]()
            for _ in range(calls):
                start = clock()
                funcs[name]()
                times[name].append(clock() - start)
    fmin, fmed = min(times["floor"]), statistics.median(times["floor"])
    print(
        f"{v}x{h}x{m} {np.dtype(dtype).name}{' single-thread CPU time' if work else ''}: "
        f"floor min {fmin * 1e3:.2f} ms, median {fmed * 1e3:.2f} ms"
    )
    for name in names[1:]:
        tmin, tmed = min(times[name]), statistics.median(times[name])
        print(
            f"  {name:6s} min {tmin * 1e3:8.2f} ms = {tmin / fmin:5.2f}x floor   "
            f"median {tmed * 1e3:8.2f} ms = {tmed / fmed:5.2f}x floor"
        )
    ours, plain = min(times["ours"]), min(times["plain"])
    print(f"  ours / plain (min): {ours / plain:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=0, help="rounds (default: by shape)")
    parser.add_argument("--m", type=int, default=10_000, help="examples (default 10000)")
    parser.add_argument("--shape", action="append", help="VISIBLExHIDDEN (repeatable)")
    parser.add_argument("--dtype", action="append", choices=["float64", "float32"])
    parser.add_argument("--settle", type=float, default=0.15, help="untimed seconds per turn")
    parser.add_argument("--calls", type=int, default=3, help="timed calls per turn")
    parser.add_argument("--work", action="store_true", help="also time single-threaded work")
    args = parser.parse_args()
    shapes = [tuple(map(int, s.split("x"))) for s in (args.shape or ["64x25", "784x196"])]
    rng = np.random.default_rng(0)
    print(f"threads for cost_and_grad: {ae._threads}")
    for v, h in shapes:
        for dtype in args.dtype or ["float64", "float32"]:
            rounds = args.rounds or (20 if v * h < 10_000 else 5)
            timing = dict(settle=args.settle, calls=args.calls)
            bench(v, h, args.m, np.dtype(dtype), rounds, rng, **timing)
            if args.work:
                threads = ae._threads
                ae.set_num_threads(1)
                try:
                    with threadpool_limits(limits=1, user_api="blas"):
                        bench(v, h, args.m, np.dtype(dtype), rounds, rng, work=True, **timing)
                finally:
                    ae.set_num_threads(threads)


if __name__ == "__main__":
    main()
