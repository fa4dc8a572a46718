"""The MNIST experiments at full size: 400-iteration training and the self-taught protocol.

Two measurements, each printed and written to ``<out>/results.json``:

1. **MNIST (Vectorization exercise).** 784 visible, 196 hidden, ρ 0.1, λ 3e-3, β 3,
   the first ``--images`` digits of a split (10,000; the t10k split where the training
   images are not available), L-BFGS 400 iterations with ``maxcor`` 100: wall time, final
   cost, evaluations; the filter grid ``filters_mnist.png`` (should show pen strokes).
2. **Self-taught learning on t10k.** Unlabeled = digits 5–9 (all of them), labeled = digits
   0–4 split in half per digit with ``--seed``; autoencoder 784→200 with the same ρ, λ, β and
   iteration budget, trained on the unlabeled digits; softmax (λ 1e-4, 100 iterations) on
   hidden activations vs raw pixels: both test accuracies, n_train / n_test, confusion
   matrices, ``filters_stl.png``.

Data come through :mod:`sparseae.data` (download + md5 check) from ``--mirror``: a base
URL, or a local folder holding the MNIST ``.gz`` files (the datasets module treats a
scheme-less mirror as a folder). Only the files of ``--split`` are fetched.

Usage::

    python bench/mnist_training.py --mirror DIR_OR_URL [--split test] [--out benchmarks/mnist]
        [--iterations 400] [--maxcor 100] [--seed 0] [--only mnist|stl]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import threadpoolctl

from sparseae.analysis import evaluate
from sparseae.analysis.visualize import display_network, save_png
from sparseae.data import fetch, load_mnist
from sparseae.io import save_theta_npz, write_json
from sparseae.model import autoencoder as ae
from sparseae.model import train

SPARSE = {"lambda_": 3e-3, "beta": 3.0, "rho": 0.1}  # SPEC table: MNIST and self-taught rows


def train_autoencoder(data, hidden, iterations, maxcor, rng, label):
    """Train from a fresh initialization; return theta and a summary dict."""
    visible = data.shape[0]
    theta0 = ae.initialize_parameters(hidden, visible, rng)
    options = train.LBFGSOptions(maxcor=maxcor, maxiter=iterations, maxfun=1000)

    def progress(record):
        if record["iteration"] % 25 == 0 or record["iteration"] == 1:
            print(
                f"  [{label}] iteration {record['iteration']:4d}  cost {record['cost']:.6f}  "
                f"evaluations {record['fun_evals']:4d}  {record['seconds']:7.1f} s",
                flush=True,
            )

    start, cpu_start = time.perf_counter(), time.process_time()
    result = train.train_chunk(
        theta0, data, iterations, visible_size=visible, hidden_size=hidden, options=options,
        progress=progress, **SPARSE,
    )  # fmt: skip
    theta, records = result.theta, result.records
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    terms = ae.cost_terms(theta, data, visible_size=visible, hidden_size=hidden, **SPARSE)
    summary = {
        "visible": visible,
        "hidden": hidden,
        "m": int(data.shape[1]),
        **{k.rstrip("_"): v for k, v in SPARSE.items()},
        "lbfgs": options.to_dict(),
        "iterations": len(records),
        "evaluations": records[-1]["fun_evals"] if records else 0,
        "wall_seconds": wall,
        # CPU time of this process (all its threads): the machine is shared, so wall time
        # alone mixes in other people's load.
        "cpu_seconds": cpu,
        "seconds_per_evaluation": wall / max(records[-1]["fun_evals"] if records else 1, 1),
        "initial_cost": float(
            ae.cost_and_grad(theta0, data, visible_size=visible, hidden_size=hidden, **SPARSE)[0]
        ),
        "final_cost": float(terms["total"]),
        "final_terms": {k: float(terms[k]) for k in ("reconstruction", "weight_decay", "sparsity")},
        "rhohat_mean": float(np.mean(terms["rhohat"])),
    }
    return theta, summary


def save_filters(theta, visible, hidden, path):
    W1 = ae.unpack(theta, visible, hidden)[0]
    save_png(display_network(W1.T), path, scale=2)


def run_mnist(X, args, out):
    print(f"MNIST: 784x196 on {X.shape[1]} images, {args.iterations} iterations, "
          f"maxcor {args.maxcor}", flush=True)  # fmt: skip
    rng = np.random.default_rng(args.seed)
    theta, summary = train_autoencoder(X, 196, args.iterations, args.maxcor, rng, "mnist")
    save_filters(theta, 784, 196, out / "filters_mnist.png")
    save_theta_npz(out / "theta_mnist.npz", theta, summary)
    print(f"MNIST: wall {summary['wall_seconds']:.1f} s, {summary['iterations']} iterations, "
          f"{summary['evaluations']} evaluations, final cost {summary['final_cost']:.6f}",
          flush=True)  # fmt: skip
    return summary


def run_stl(X, labels, args, out):
    split_rng, init_rng = np.random.default_rng(args.seed).spawn(2)
    split = evaluate.self_taught_split(labels, rng=split_rng)
    parts = evaluate.take_split(X, labels, split)
    print(f"STL: {parts['unlabeled'].shape[1]} unlabeled (5-9), {parts['y_train'].size} train / "
          f"{parts['y_test'].size} test (0-4); 784x200, {args.iterations} iterations",
          flush=True)  # fmt: skip
    theta, summary = train_autoencoder(
        parts["unlabeled"], 200, args.iterations, args.maxcor, init_rng, "stl"
    )
    save_filters(theta, 784, 200, out / "filters_stl.png")
    save_theta_npz(out / "theta_stl.npz", theta, summary)
    result = evaluate.evaluate_features(
        theta, parts["X_train"], parts["y_train"], parts["X_test"], parts["y_test"],
        visible_size=784, hidden_size=200, lambda_=1e-4, max_iter=100,
    )  # fmt: skip
    evaluate.save_evaluation(result, out, extra={"split_seed": args.seed})
    print(f"STL: training wall {summary['wall_seconds']:.1f} s, final cost "
          f"{summary['final_cost']:.6f}; accuracy features {result['accuracy_features']:.4f}, "
          f"raw {result['accuracy_raw']:.4f} (n_train {result['n_train']}, "
          f"n_test {result['n_test']})", flush=True)  # fmt: skip
    return {"training": summary, "evaluation": result}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--mirror",
        action="append",
        required=True,
        help="MNIST mirror: base URL or local folder (repeatable)",
    )
    parser.add_argument("--split", default="test", choices=("train", "test"))
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--maxcor", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("mnist", "stl"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/mnist"))
    args = parser.parse_args(argv)  # fmt: skip

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    fetch("mnist", out / "resources", args.mirror, split=args.split)
    X_all, labels_all = load_mnist(out / "resources", args.split)
    given = sys.argv[1:] if argv is None else argv
    results = {
        "command": "python bench/mnist_training.py " + " ".join(given),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "blas": threadpoolctl.threadpool_info()},
        "split": args.split,
        "seed": args.seed,
    }  # fmt: skip
    if args.only in (None, "mnist"):
        results["mnist"] = run_mnist(X_all[:, : args.images], args, out)
        write_json(out / "results.json", results)
    if args.only in (None, "stl"):
        results["stl"] = run_stl(X_all, labels_all, args, out)
        write_json(out / "results.json", results)
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=1)[:4000])


if __name__ == "__main__":
    main()
