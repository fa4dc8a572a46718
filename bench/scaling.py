"""Scaling with the hardware: cores on the CPU path, and a GPU where there is one.

For each thread count (1, 2, 4, … up to the usable cores) and dtype, in one process:

- ``cost``: :func:`sparseae.model.autoencoder.cost_and_grad` (minimum of ``--calls`` calls)
  and its ratio to the GEMM floor (the five bare products, ``cost_and_grad.py``'s ``floor``)
  on as many BLAS threads;
- ``train``: ``--iterations`` L-BFGS iterations (:func:`sparseae.model.train.train_chunk`,
  ``maxcor`` 100) from the same start: wall time, evaluations, share of the time outside the
  cost (the optimizer), final cost, speed-up over one thread.

``--device cuda`` (PyTorch with a GPU) or ``--device array_api_strict`` (the same code on the
CPU) adds the device path: the cost on device arrays, the GPU floor (the five products in
PyTorch), ``train_chunk(device=…)``, and, with PyTorch, ``torch.optim.LBFGS`` (history 100,
strong Wolfe) on the same cost, with the ratios of their times and final costs to the CPU's.

Usage: ``python bench/scaling.py [--shape 784x196] [--m 10000] [--iterations 100]
[--threads 1 --threads 2] [--dtype float64] [--device cuda] [--calls 3]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from cost_and_grad import candidates as gemm_candidates
from threadpoolctl import threadpool_limits
from train_overhead import PARAMS, TimedCost

from sparseae.model import arrays, train
from sparseae.model import autoencoder as ae


def best_of(fn, calls, sync=lambda: None):
    fn()
    sync()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def train_run(theta0, data, kwargs, iterations, device="cpu"):
    timed = TimedCost(ae.cost_and_grad)
    options = train.LBFGSOptions(maxiter=iterations, maxfun=10 * iterations)
    start = time.perf_counter()
    result = train.train_chunk(
        theta0, data, iterations, options=options, cost_fn=timed, device=device, **kwargs
    )
    wall = time.perf_counter() - start
    return wall, timed.calls, (wall - timed.seconds) / wall, result.records[-1]["cost"]


def torch_lbfgs(theta0, data, kwargs, iterations, dtype):
    """``torch.optim.LBFGS`` on the GPU, the gradient from the same array-API cost."""
    import torch

    x = torch.tensor(theta0, device="cuda", requires_grad=True)
    X = torch.tensor(data, device="cuda", dtype=getattr(torch, dtype))
    optimizer = torch.optim.LBFGS(
        [x],
        lr=1,
        max_iter=iterations,
        max_eval=10 * iterations,
        tolerance_grad=1e-9,
        tolerance_change=0,
        history_size=100,
        line_search_fn="strong_wolfe",
    )
    calls = [0]

    def closure():
        f, g = ae.cost_and_grad(x.detach(), X, **kwargs)
        x.grad, calls[0] = g, calls[0] + 1
        return torch.tensor(f, device="cuda")

    torch.cuda.synchronize()
    start = time.perf_counter()
    optimizer.step(closure)
    torch.cuda.synchronize()
    wall = time.perf_counter() - start
    return wall, calls[0], ae.cost_and_grad(x, X, **kwargs)[0]


def gpu_floor(v, h, m, dtype, calls):
    import torch

    t = getattr(torch, dtype)
    W1, W2 = torch.rand(h, v, dtype=t, device="cuda"), torch.rand(v, h, dtype=t, device="cuda")
    X, A2 = torch.rand(v, m, dtype=t, device="cuda"), torch.rand(h, m, dtype=t, device="cuda")

    def products():
        return W1 @ X, W2 @ A2, W2.T @ X, A2 @ X.T, X @ A2.T

    return best_of(products, calls, torch.cuda.synchronize)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="784x196")
    parser.add_argument("--m", type=int, default=10_000)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--threads", type=int, action="append")
    parser.add_argument("--dtype", action="append", choices=["float64", "float32"])
    parser.add_argument("--device", choices=["cuda", "array_api_strict"])
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    v, h = (int(s) for s in args.shape.split("x"))
    m, cores = args.m, len(os.sched_getaffinity(0))
    threads = args.threads or sorted({min(2**k, cores) for k in range(cores.bit_length() + 1)})
    lambda_, beta, rho = PARAMS.get((v, h), (1e-4, 3.0, 0.01))
    kwargs = dict(visible_size=v, hidden_size=h, lambda_=lambda_, beta=beta, rho=rho)
    rng = np.random.default_rng(0)
    data64 = rng.random((v, m)) * 0.8 + 0.1
    theta0 = ae.initialize_parameters(h, v, rng)
    print(
        f"{v}x{h}x{m}, {args.iterations} iterations, {cores} usable cores, load {os.getloadavg()}"
    )
    for dtype in args.dtype or ["float64", "float32"]:
        data = data64.astype(dtype)
        floor_fn = gemm_candidates(v, h, m, np.dtype(dtype), rng)["floor"]
        print(f"\n{dtype}: threads, cost ms, cost/floor, train s, evaluations, outside, cost")
        base = None
        for n in threads:
            ae.set_num_threads(n)
            with threadpool_limits(n, user_api="blas"):
                floor = best_of(floor_fn, args.calls)
            cost = best_of(lambda d=data: ae.cost_and_grad(theta0, d, **kwargs), args.calls)
            wall, evals, outside, final = train_run(theta0, data, kwargs, args.iterations)
            base = base or wall
            print(
                f"  {n:3d} {1e3 * cost:9.1f} {cost / floor:6.2f}x {wall:8.2f} ({base / wall:4.1f}x)"
                f" {evals:4d} {100 * outside:5.1f} % {final:.13g}"
            )
        if args.device:
            cpu_wall, cpu_final = wall, final
            dev = arrays.on_device(data, args.device)
            theta_dev = arrays.on_device(theta0, args.device)
            cost = best_of(lambda t=theta_dev, d=dev: ae.cost_and_grad(t, d, **kwargs), args.calls)
            wall, evals, outside, final = train_run(
                theta0, data, kwargs, args.iterations, args.device
            )
            line = f"  {args.device}: cost {1e3 * cost:.1f} ms"
            if args.device == "cuda":
                line += f" ({cost / gpu_floor(v, h, m, dtype, args.calls):.2f}x the GPU floor)"
            print(
                f"{line}; train {wall:.2f} s, {evals} evaluations, {100 * outside:.1f} % outside,"
                f" cost {final:.13g}; {cpu_wall / wall:.1f}x all cores, final cost "
                f"{abs(final - cpu_final) / cpu_final:.1e} relative to the CPU's"
            )
            if args.device == "cuda":
                t_wall, t_evals, t_final = torch_lbfgs(theta0, data, kwargs, args.iterations, dtype)
                print(
                    f"  torch.optim.LBFGS: {t_wall:.2f} s, {t_evals} evaluations, cost "
                    f"{t_final:.13g}; sparseae's device path {wall / t_wall:.2f}x its time"
                )


if __name__ == "__main__":
    main()
