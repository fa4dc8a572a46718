"""What a run logged from a result folder must hold, read back through ``MlflowClient``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from PIL import Image

from sparseae.io import read_json
from sparseae.tracking.results import flatten_params, load_chunk

EXPECTED_ARTIFACTS = {
    "config.json",
    "gradcheck.json",
    "summary.json",
    "theta.npz",
    "history.tsv",
    "filters.png",
    "cost_curve.png",
    "rhohat.png",
}


def chunk_series(results: Path):
    """Per-iteration values and chunk-end meta straight from the checkpoint files."""
    iterations, costs, grads, ends = [], [], [], []
    for path in sorted((results / "chunks").glob("*.npz"), key=lambda p: int(p.stem)):
        arrays, meta = load_chunk(path)
        iterations += arrays["iteration"].tolist()
        costs += arrays["cost"].tolist()
        grads += arrays["grad_norm"].tolist()
        ends.append((int(arrays["iteration"][-1]), meta))
    return iterations, costs, grads, ends


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def assert_run_matches_folder(client: MlflowClient, run_id: str, results: Path, tmp: Path):
    """Everything the folder holds is in the run, once: params, metric history, artifacts."""
    run = client.get_run(run_id)
    config = read_json(results / "config.json")
    params = run.data.params
    for key, value in flatten_params(config).items():
        assert params[key] == value, key
    assert params["model.hidden_size"] == str(config["model"]["hidden_size"])
    assert params["dataset_checksum"] == read_json(results / "summary.json")["dataset_checksum"]
    for package in ("numpy", "scipy", "mlflow", "snakemake", "sparseae"):
        assert params[f"version.{package}"], package
    assert any(key.startswith("threads.") for key in params)
    assert len(params["tracking.note"]) == 6000 and "truncated" in params["tracking.note"]

    iterations, costs, grads, ends = chunk_series(results)
    assert iterations == list(range(1, len(iterations) + 1))
    assert history(client, run_id, "cost") == list(zip(iterations, costs, strict=True))
    assert history(client, run_id, "grad_norm") == list(zip(iterations, grads, strict=True))
    for term in ("reconstruction", "weight_decay", "sparsity"):
        assert history(client, run_id, f"J_{term}") == [(s, m["terms"][term]) for s, m in ends]
    for stat in ("mean", "min", "max"):
        assert history(client, run_id, f"rhohat_{stat}") == [
            (s, m["rhohat"][stat]) for s, m in ends
        ]
    gradcheck = read_json(results / "gradcheck.json")
    assert run.data.metrics["gradcheck_autoencoder"] == gradcheck["autoencoder"]
    assert params["gradcheck.bound"] == "1e-09"
    assert run.data.metrics["final_cost"] == read_json(results / "summary.json")["final_cost"]

    names = {a.path for a in client.list_artifacts(run_id)}
    assert EXPECTED_ARTIFACTS <= names
    local = Path(client.download_artifacts(run_id, "", str(tmp)))
    for png in ("filters.png", "cost_curve.png", "rhohat.png"):
        with Image.open(local / png) as image:
            image.load()
            assert image.size == Image.open(results / png).size
    with (
        np.load(local / "theta.npz", allow_pickle=False) as saved,
        np.load(results / "theta.npz", allow_pickle=False) as original,
    ):
        np.testing.assert_array_equal(saved["theta"], original["theta"])
    assert json.loads((local / "config.json").read_text()) == config
    assert (local / "history.tsv").read_bytes() == (results / "history.tsv").read_bytes()
    log_dir = results.parent.parent / "logs" / results.name
    assert sorted(p.name for p in (local / "logs").iterdir()) == sorted(
        p.name for p in log_dir.glob("*.log")
    )
    return run
