"""What a run logged from a result folder must hold, read back through ``MlflowClient``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from PIL import Image

from sparseae.io import read_json
from sparseae.tracking.logger import DATA_TAG, ENVIRONMENT_TAG
from sparseae.tracking.results import load_chunk, science_params

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


def assert_run_matches_folder(
    client: MlflowClient, run_id: str, results: Path, tmp: Path, *, cut_upload: bool = False
):
    """Everything the folder holds is in the run, once: params, metric history, artifacts
    (``cut_upload``: one image upload was cut by a dying server, see assert_filter_steps)."""
    run = client.get_run(run_id)
    config = read_json(results / "config.json")
    params = run.data.params
    assert params == science_params(config.get("experiment", config))
    assert params["model.hidden_size"] == str(config["model"]["hidden_size"])
    assert 10 <= len(params) <= 25, sorted(params)
    assert not any(k.startswith(("tracking.", "version.", "threads.")) for k in params)
    environment = json.loads(run.data.tags[ENVIRONMENT_TAG])
    for package in ("numpy", "scipy", "mlflow", "snakemake", "sparseae"):
        assert environment[f"version.{package}"], package
    assert run.data.tags[DATA_TAG] == read_json(results / "summary.json")["dataset_checksum"]
    assert_no_twins(run.data.metrics)

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
    last = iterations[-1]
    # One-off figures once (at the last step logged then); the final cost is the series' last.
    assert [v for _, v in history(client, run_id, "gradcheck_autoencoder")] == [
        gradcheck["autoencoder"]
    ]
    summary = read_json(results / "summary.json")
    assert history(client, run_id, "iterations") == [(last, summary["iterations"])]
    assert history(client, run_id, "chunks") == [(last, summary["chunks"])]
    assert_filter_steps(client, run_id, [0] + [s for s, _ in ends], cut_upload=cut_upload)
    assert_model_described(client, run_id, config["model"]["visible_size"], tmp / "model")

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


def assert_no_twins(metrics) -> None:
    """No metric is another's ``final_``/``total_`` twin (each figure once, as its series)."""
    twins = [k for k in metrics if k.split("_", 1)[0] in ("final", "total")]
    twins += [k for k in metrics if f"final_{k}" in metrics or f"total_{k}" in metrics]
    assert not twins, twins


def assert_filter_steps(
    client: MlflowClient, run_id: str, steps: list[int], *, cut_upload: bool = False
) -> None:
    """The ``filters`` image series has a picture (and its preview) at exactly ``steps``. An
    upload cut between an image's two files leaves that one file beside the step's re-logged
    pair (MLflow names image files by a fresh uuid and its client cannot delete artifacts):
    with ``cut_upload`` at most one such file is allowed."""
    found: dict[int, int] = {}
    for info in client.list_artifacts(run_id, "images"):
        parts = Path(info.path).name.split("+")
        if parts[0] == "filters":
            found[int(parts[2])] = found.get(int(parts[2]), 0) + 1
    if cut_upload:
        extra = {step: n - 2 for step, n in found.items() if n != 2}
        assert sorted(found) == sorted(steps) and list(extra.values()) in ([], [1]), found
    else:
        assert found == dict.fromkeys(steps, 2), found


def assert_model_described(client: MlflowClient, run_id: str, visible: int, tmp: Path) -> None:
    """The logged model has a description, its source named after the step, an input example."""
    import mlflow

    run = client.get_run(run_id)
    (model,) = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    assert "hidden activations" in model.tags["mlflow.note.content"]
    assert model.tags["mlflow.source.name"] == "log_mlflow"
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=model.artifact_location, dst_path=str(tmp), tracking_uri=client.tracking_uri
    )
    example = mlflow.models.Model.load(local).load_input_example(local)
    assert np.asarray(example).shape == (3, visible)
