"""Shared fixtures: where the optional ``../shared`` reference folder is, and skips without it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from shared_data import SHARED_DIR, load_reference, shared_file

# --- test tiers (pyproject.toml's markers) ---------------------------------------------------
TIERS = ("fast", "full")
#: The modules that run whole workflows, longest first (CI's --durations). `make test-all`
#: hands modules to its two workers in collection order (--dist loadfile,
#: --no-loadscope-reorder): these start first and the short modules fill in at the end,
#: instead of one long module running alone while the other worker idles.
LONGEST_FIRST = (
    "test_stacked_pipeline.py",
    "test_sweep.py",
    "test_reruns.py",
    "test_integrity_store.py",
    "test_cnn_pipeline.py",
    "test_tracking_faults.py",
    "test_reliability.py",
    "test_review_console.py",
    "test_pipeline.py",
    "test_pipeline_dtype.py",
    "test_install.py",
    "test_mnist_pipeline.py",
    "test_tracking_workflow.py",
    "test_tracking_browser.py",
    "test_array_api_resume.py",
)


@pytest.hookimpl(tryfirst=True)  # before `-m` selects
def pytest_collection_modifyitems(config, items):
    """Every test has a tier: its module's ``pytestmark`` says ``fast`` or ``full``; a test
    marked ``full``, ``slow`` or ``slurm`` is in the full tier (``make test-all``) only."""
    untiered = sorted({item.path.name for item in items if not _tiers(item)})
    if untiered:
        raise pytest.UsageError(
            "test modules without a tier (pytestmark = pytest.mark.fast or pytest.mark.full): "
            + ", ".join(untiered)
        )
    for item in items:
        if "full" not in _tiers(item) and any(
            item.get_closest_marker(m) for m in ("slow", "slurm")
        ):
            item.add_marker(pytest.mark.full)
    # A stable sort: tests keep their order within a module.
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def _tiers(item) -> set[str]:
    return {tier for tier in TIERS if item.get_closest_marker(tier)}


@pytest.fixture(scope="session")
def reference():
    """``reference(name)``: the arrays of the Octave run's ``reference/<name>.npz``, or a skip."""
    return load_reference


@pytest.fixture
def shared_dir() -> Path:
    """The ``../shared`` folder; tests using it skip where it is missing."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is not available (only developer and CI checkouts have it)")
    return SHARED_DIR


# --- loopback HTTP mirrors (tests/http_mirror.py), added with the datasets module ----------


@pytest.fixture
def http_mirror(tmp_path):
    """An empty :class:`http_mirror.MirrorServer` on 127.0.0.1 serving ``tmp_path / "mirror"``."""
    from http_mirror import MirrorServer

    root = tmp_path / "mirror"
    root.mkdir()
    with MirrorServer(root) as server:
        yield server


@pytest.fixture
def mnist_mirror():
    """A :class:`http_mirror.MirrorServer` serving the real MNIST ``.gz`` files of
    ``../shared/data`` (t10k images and labels, train labels; no training images).
    Skips, saying why, where ``../shared/data`` is missing."""
    from http_mirror import MNIST_TEST_FILES, MirrorServer

    for name in MNIST_TEST_FILES:
        shared_file(f"data/{name}")
    with MirrorServer(SHARED_DIR / "data") as server:
        yield server


# --------------------------------------------------------------------------------------------
# MLflow tracking fixtures (tests/test_tracking*.py)
# --------------------------------------------------------------------------------------------
TRACKING_CONFIG = {
    "dataset": {"source": "synthetic", "num_patches": 60, "patch_size": 4, "whitening": False},
    "model": {"visible_size": 16, "hidden_size": 4},
    "cost": {"rho": 0.01, "lambda_": 1e-4, "beta": 3.0},
    "optimizer": {"name": "L-BFGS-B", "max_iterations": 12, "m": 100},
    "training": {"chunks": 3, "seed": 7},
    "tracking": {"tracking_uri": None, "note": "x" * 7000},
}


def build_result_folder(
    root: Path,
    name: str = "tiny",
    *,
    chunks: int = 3,
    iterations_per_chunk: int = 4,
    seed: int = 7,
    evaluation: bool = False,
    logs: bool = True,
) -> Path:
    """Write ``root/results/<name>`` from a small real L-BFGS training run.

    The files follow docs/architecture.md and the tracking contract exactly (``chunks/{k}.npz``
    with theta/iteration/cost/grad_norm/fun_evals/seconds + JSON ``meta``; gradcheck, summary,
    theta, history, three PNGs, optional evaluation; ``root/logs/<name>/*.log``). The run uses
    ``sparseae.model.autoencoder.cost_and_grad`` with scipy's L-BFGS-B, warm-restarted per chunk.
    """
    import hashlib
    import json
    import time

    import numpy as np
    from PIL import Image
    from scipy.optimize import minimize

    from sparseae.analysis.diagnostics import write_diagnostics
    from sparseae.analysis.evaluate import evaluation_blocks
    from sparseae.io import atomic_path, atomic_write, write_json
    from sparseae.model.autoencoder import cost_and_grad, cost_terms, initialize_parameters
    from sparseae.model.gradcheck import numerical_gradient, relative_difference
    from sparseae.model.train import RECORD_FIELDS, save_checkpoint
    from sparseae.pipeline.experiment import gradcheck_blocks, summary_blocks

    rng = np.random.default_rng(seed)
    config = json.loads(json.dumps(TRACKING_CONFIG))
    config["training"].update(chunks=chunks, seed=seed)
    config["seed"] = seed  # the top-level seed of a real config: the step-0 filter image
    config["optimizer"]["max_iterations"] = chunks * iterations_per_chunk
    v, h = config["model"]["visible_size"], config["model"]["hidden_size"]
    kw = dict(visible_size=v, hidden_size=h, lambda_=1e-4, beta=3.0, rho=0.01)
    data = 0.1 + 0.8 * rng.random((v, config["dataset"]["num_patches"]))
    theta = initialize_parameters(h, v, rng)

    out = root / "results" / name
    (out / "chunks").mkdir(parents=True, exist_ok=True)
    # The trajectory key, as sparseae.config.fingerprint: every setting but the chunk count.
    trajectory = json.loads(json.dumps(config))
    trajectory["training"].pop("chunks")
    trajectory["optimizer"].pop("max_iterations")
    trajectory["iterations_per_chunk"] = iterations_per_chunk
    key = hashlib.sha256(json.dumps(trajectory, sort_keys=True).encode()).hexdigest()[:16]
    config["fingerprint"] = key
    write_json(out / "config.json", config)
    # What write_trajectory and sample_patches write beside it (the training data is `data`).
    data_key = hashlib.sha256(repr(data.shape).encode()).hexdigest()[:16]
    write_json(
        out / "trajectory.json",
        {"name": name, "trajectory_key": key, "data_key": data_key, "trajectory": trajectory},
    )
    with atomic_path(out / "patches.npz") as tmp:
        np.savez(tmp, data=data, data_key=np.array(data_key))
    small = data[:, :10]
    numeric = numerical_gradient(lambda t: cost_and_grad(t, small, **kw)[0], theta)
    diff = relative_difference(numeric, cost_and_grad(theta, small, **kw)[1])
    gradcheck = {
        "quadratic": 2.5e-12,
        "autoencoder": diff,
        "bound": 1e-9,
        "passed": bool(diff < 1e-9),
        "examples": 10,
    }
    # With the blocks that say what MLflow shows, as pipeline.experiment.check_gradient writes.
    write_json(out / "gradcheck.json", {**gradcheck, **gradcheck_blocks(gradcheck)})
    records, iteration, fun_evals, started = [], 0, 0, time.perf_counter()
    stops: list[dict] = []

    def fun(t):
        nonlocal fun_evals
        fun_evals += 1
        return cost_and_grad(t, data, **kw)

    def callback(intermediate_result):
        nonlocal iteration
        iteration += 1
        cost, grad = cost_and_grad(intermediate_result.x, data, **kw)
        records.append(
            (iteration, cost, float(np.linalg.norm(grad)), fun_evals, time.perf_counter() - started)
        )

    for k in range(1, chunks + 1):
        first, chunk_start = len(records), time.perf_counter()
        result = minimize(
            fun,
            theta,
            jac=True,
            method="L-BFGS-B",
            callback=callback,
            options={"maxiter": iterations_per_chunk, "ftol": 0.0, "gtol": 0.0},
        )
        theta = result.x
        terms = cost_terms(theta, data, **kw)
        chunk_records = records[first:]
        meta = {
            "chunk": k,
            "fingerprint": key,
            "stop": {
                "status": int(result.status),
                "message": str(result.message),
                "iterations": int(result.nit),
                "fun_evals": int(result.nfev),
                "reason": "budget" if result.nit >= iterations_per_chunk else "converged",
            },
            "terms": {
                t: float(terms[t]) for t in ("reconstruction", "weight_decay", "sparsity", "total")
            },
            "rhohat": {
                "mean": float(terms["rhohat"].mean()),
                "min": float(terms["rhohat"].min()),
                "max": float(terms["rhohat"].max()),
            },
            "wall_seconds": time.perf_counter() - chunk_start,
            "optimizer": {"method": "L-BFGS-B", "maxiter": iterations_per_chunk},
            "message": str(result.message),
        }
        # The pipeline's own checkpoint writer (sparseae.pipeline.experiment.train_chunk uses it).
        save_checkpoint(
            out / "chunks" / f"{k}.npz",
            theta,
            [dict(zip(RECORD_FIELDS, r, strict=True)) for r in chunk_records],
            meta,
        )
        stops.append(meta["stop"])
    with atomic_path(out / "theta.npz") as tmp:
        np.savez(tmp, theta=theta, config=np.asarray(json.dumps(config)))
    with atomic_write(out / "history.tsv") as handle:
        handle.write("iteration\tcost\tgrad_norm\tfun_evals\tseconds\n")
        handle.writelines("\t".join(repr(x) for x in r) + "\n" for r in records)
    terms = cost_terms(theta, data, **kw)
    summary = {
        "final_cost": float(terms["total"]),
        "reconstruction": float(terms["reconstruction"]),
        "weight_decay": float(terms["weight_decay"]),
        "sparsity": float(terms["sparsity"]),
        "rhohat_mean": float(terms["rhohat"].mean()),
        "rhohat_min": float(terms["rhohat"].min()),
        "rhohat_max": float(terms["rhohat"].max()),
        "iterations": len(records),
        "fun_evals": fun_evals,
        "train_seconds": time.perf_counter() - started,
        "chunks": chunks,
        "final_chunk": chunks,
        "fingerprint": key,
        "trajectory_key": key,
        "stop": stops[-1],
        "chunk_stops": stops,
        "converged": any(stop["reason"] == "converged" for stop in stops),
        "dataset_checksum": "sha256:" + "ab" * 32,
    }
    write_json(out / "summary.json", {**summary, **summary_blocks(summary)})
    for figure, size in (
        ("filters.png", (32, 32)),
        ("cost_curve.png", (48, 24)),
        ("rhohat.png", (40, 20)),
    ):
        pixels = (rng.random(size[::-1]) * 255).astype(np.uint8)
        with atomic_path(out / figure) as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")
    # The diagnose step's files, through its own writer (default settings of the config).
    write_diagnostics(
        theta,
        data,
        json_path=out / "diagnostics.json",
        png_path=out / "units.png",
        experiment=name,
        model=kw,
        settings={
            "dead_fraction": 0.1,
            "random_examples": 1000,
            "saturated_threshold": 0.9,
            "top_k": 8,
        },
        seed=seed,
        trajectory_key=key,
    )
    if evaluation:
        evaluation = {
            "accuracy_features": 0.97,
            "accuracy_raw": 0.91,
            "n_train": 600,
            "n_test": 400,
        }
        write_json(out / "evaluation.json", {**evaluation, **evaluation_blocks(evaluation)})
    if logs:
        log_dir = root / "logs" / name
        log_dir.mkdir(parents=True, exist_ok=True)
        for rule in ["gradcheck", *(f"train_chunk_{k}" for k in range(1, chunks + 1))]:
            (log_dir / f"{rule}.log").write_text(f"{rule}: done\n", encoding="utf-8")
    return out


@pytest.fixture
def result_folder_factory(tmp_path):
    """``make(name="tiny", **kw) -> results dir`` under this test's tmp folder."""

    def make(name: str = "tiny", **kwargs) -> Path:
        return build_result_folder(tmp_path, name, **kwargs)

    return make


@pytest.fixture
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 (sqlite, own artifact store), stopped after."""
    from mlflow_server import MlflowServer

    with MlflowServer(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


@pytest.fixture
def sqlite_store(tmp_path) -> str:
    """URI of a fresh, empty local store in this test's folder.

    init_store copies a migrated empty store from its own cache, so this is fast (MLflow's
    migrations, ~10 s, run once per MLflow version and machine).
    """
    from sparseae.tracking import init_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    init_store(uri, [])
    return uri


@pytest.fixture(scope="session")
def shared_mlflow_server(tmp_path_factory):
    """One real tracking server for the tests that never stop it (saves a ~10-30 s start)."""
    from mlflow_server import MlflowServer

    with MlflowServer(tmp_path_factory.mktemp("mlflow-shared-server")) as server:
        yield server


@pytest.fixture(scope="session")
def small_project(tmp_path_factory) -> Path:
    """A finished run of ``workflow_helpers.small_config()`` (config/t.yaml), made once per
    test session; tests copy it with ``workflow_helpers.copy_finished``, never change it.

    Under pytest-xdist every worker has its own session: the run is made in the folder the
    workers share, under a file lock, by the first worker that asks; the others wait for it.
    """
    import fcntl
    import os

    from workflow_helpers import run_small_project

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # this session's, shared by its workers
    done = root / "small-project"
    with open(root / "small-project.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if not done.is_dir():
            work = root / "small-project.partial"
            shutil.rmtree(work, ignore_errors=True)  # a run of a worker that failed
            run_small_project(work).rename(done)  # whole or absent
    return done
