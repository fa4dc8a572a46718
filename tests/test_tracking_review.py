"""What a reviewer finds in MLflow: few readable tags, a manifest, the dataset, the model, the
filters over time; and the identity checks behind them. Real sqlite stores, read back through
``MlflowClient``; the logged model is loaded in a fresh Python process.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from sparseae.io import read_json
from sparseae.model.autoencoder import hidden_activations
from sparseae.pipeline.experiment import summary_blocks
from sparseae.tracking import ResultsError, log_results, read_store_token, store_marker
from sparseae.tracking.logger import FILTERS_KEY
from sparseae.tracking.results import load_chunk
from sparseae.tracking.sync import MANIFEST_NAME, Session, read_manifest

pytestmark = [pytest.mark.full, pytest.mark.slow]

#: The most project tags (``sparseae.*``) a run may carry.
MAX_PROJECT_TAGS = 10


def project_tags(run) -> dict[str, str]:
    return {k: v for k, v in run.data.tags.items() if k.startswith("sparseae.")}


def manifest_of(client: MlflowClient, run) -> dict[str, dict]:
    return read_manifest(Session(client.tracking_uri), run.info.run_id, run.data.tags)


def test_tags_manifest_dataset_and_filter_images(result_folder_factory, sqlite_store):
    results = result_folder_factory("tiny", chunks=3)
    run_id = log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    client = MlflowClient(sqlite_store)
    run = client.get_run(run_id)

    tags = project_tags(run)
    assert len(tags) <= MAX_PROJECT_TAGS, sorted(tags)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    config = read_json(results / "config.json")
    summary = read_json(results / "summary.json")
    assert tags["sparseae.trajectory"] == config["fingerprint"]
    assert tags["sparseae.data_checksum"] == summary["dataset_checksum"]
    assert tags["sparseae.final_chunk"] == "3"
    assert tags["sparseae.optimizer_stop"] == "budget"
    assert "Final cost" in run.data.tags["mlflow.note.content"]
    assert run.data.tags["mlflow.source.name"]

    # manifest.json: every other artifact, with its sha256 and size; its hash is one tag.
    manifest = manifest_of(client, run)
    listed = {a.path for a in client.list_artifacts(run_id) if not a.is_dir}
    listed |= {a.path for a in client.list_artifacts(run_id, "logs")}
    assert set(manifest) == listed - {MANIFEST_NAME}
    for path, entry in manifest.items():
        local = (
            results / path
            if not path.startswith("logs/")
            else (results.parent.parent / "logs" / "tiny" / path[len("logs/") :])
        )
        assert entry == {
            "sha256": hashlib.sha256(local.read_bytes()).hexdigest(),
            "size": local.stat().st_size,
        }, path

    # The training data as an MLflow dataset: digest = the data checksum.
    (dataset_input,) = run.inputs.dataset_inputs
    assert summary["dataset_checksum"].split(":", 1)[1].startswith(dataset_input.dataset.digest)
    assert {(t.key, t.value) for t in dataset_input.tags} == {("mlflow.data.context", "training")}

    # The filter grid at the random start (step 0) and every chunk end's global iteration.
    steps = {
        int(Path(a.path).name.split("+")[2])
        for a in client.list_artifacts(run_id, "images")
        if Path(a.path).name.startswith(f"{FILTERS_KEY}+step+")
    }
    ends = [int(load_chunk(p)[0]["iteration"][-1]) for p in (results / "chunks").glob("*.npz")]
    assert steps == {0, *ends} == {0, 4, 8, 12}

    # A rerun after one file changed re-uploads exactly that file.
    # (gradcheck.json gains a key: still a whole result file, now with other bytes)
    gradcheck = {**read_json(results / "gradcheck.json"), "note": "rerun"}
    (results / "gradcheck.json").write_text(json.dumps(gradcheck))
    log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    record = read_json(results / "mlflow.json")
    assert record["logged_this_time"]["artifacts"] == 1
    assert record["logged_this_time"]["filter_images"] == 0
    assert record["logged_this_time"]["datasets"] == 0
    run = client.get_run(run_id)
    assert (
        manifest_of(client, run)["gradcheck.json"]["sha256"]
        == hashlib.sha256((results / "gradcheck.json").read_bytes()).hexdigest()
    )


def test_logged_model_predicts_the_hidden_activations_in_a_fresh_process(
    result_folder_factory, sqlite_store, tmp_path
):
    results = result_folder_factory("tiny")
    run_id = log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    client = MlflowClient(sqlite_store)
    run = client.get_run(run_id)
    (output,) = run.outputs.model_outputs
    model = client.get_logged_model(output.model_id)
    assert model.source_run_id == run_id and model.name == "encoder"
    # Logging the model added no param to the run (the run's params are the results' own).
    assert len(run.data.params) == read_json(results / "mlflow.json")["total"]["params"]

    rng = np.random.default_rng(0)
    X = rng.random((7, 16))
    np.save(tmp_path / "X.npy", X)
    script = (
        "import sys, numpy as np, mlflow\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "np.save(sys.argv[3], model.predict(np.load(sys.argv[2], allow_pickle=False)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, f"models:/{model.model_id}", tmp_path / "X.npy",
         tmp_path / "out.npy"],
        capture_output=True, text=True, timeout=300,
        env={**_env(), "MLFLOW_TRACKING_URI": sqlite_store},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    predicted = np.load(tmp_path / "out.npy", allow_pickle=False)
    with np.load(results / "theta.npz", allow_pickle=False) as data:
        theta = data["theta"]
    expected = hidden_activations(theta, X.T, visible_size=16, hidden_size=4).T
    assert predicted.shape == (7, 4) and predicted.dtype == np.float64
    np.testing.assert_allclose(predicted, expected, rtol=0, atol=1e-12)
    # Logged once: a rerun finds the model by its theta's sha256.
    log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    assert read_json(results / "mlflow.json")["logged_this_time"]["models"] == 0


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


def test_foreign_checkpoint_is_refused_naming_the_file(result_folder_factory, sqlite_store):
    mine = result_folder_factory("mine", chunks=3)
    other = result_folder_factory("other", chunks=3, seed=99)
    shutil.copy2(other / "chunks" / "3.npz", mine / "chunks" / "3.npz")
    with pytest.raises(ResultsError, match=r"mine/chunks/3\.npz belongs to trajectory"):
        log_results(mine, experiment_name="mine", tracking_uri=sqlite_store)
    assert not (mine / "mlflow.json").exists()


def test_later_chunks_on_disk_are_not_logged_and_checkpoints_need_no_total(
    result_folder_factory, sqlite_store
):
    results = result_folder_factory("tiny", chunks=3)
    summary = read_json(results / "summary.json")
    summary["final_chunk"] = 2  # training.chunks lowered from 3 to 2
    (results / "summary.json").write_text(json.dumps(summary))
    run_id = log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    client = MlflowClient(sqlite_store)
    assert sorted(m.step for m in client.get_metric_history(run_id, "cost")) == list(range(1, 9))
    assert client.get_run(run_id).data.tags["sparseae.final_chunk"] == "2"
    assert read_json(results / "mlflow.json")["chunks_not_logged"] == [3]


def test_metrics_block_of_any_result_json_is_logged(result_folder_factory, sqlite_store):
    results = result_folder_factory("tiny")
    (results / "diagnostics.json").write_text(
        json.dumps(
            {
                "metrics": {"dead_units": 2, "weight_norm": 1.5},
                "params": {"diagnostics.threshold": 0.01, "diagnostics.kind": "units"},
                "note": "x",
            }
        )
    )
    run_id = log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    run = MlflowClient(sqlite_store).get_run(run_id)
    metrics, params = run.data.metrics, run.data.params
    assert metrics["dead_units"] == 2.0 and metrics["weight_norm"] == 1.5
    # Params are the config's science settings only: a result file's other blocks are not.
    assert not any(key.startswith(("diagnostics.", "note")) for key in params)
    (results / "diagnostics.json").write_text(json.dumps({"metrics": {"cost": 0.1}}))
    with pytest.raises(ResultsError, match=r"metric 'cost' is also logged"):
        log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    (results / "diagnostics.json").write_text(json.dumps({"metrics": {"dead_units": "two"}}))
    with pytest.raises(ResultsError, match=r"diagnostics\.json: metric 'dead_units'"):
        log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)


def test_store_marker_follows_the_store_and_writes_nothing(tmp_path):
    from sparseae.tracking import init_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    markers = tmp_path / "results" / "_tracking"
    first = store_marker(uri, markers)
    assert list(tmp_path.iterdir()) == []  # reading wrote nothing
    assert store_marker(uri, markers) == first  # the same on every parse
    init_store(uri, ["a"], marker=first)
    assert read_store_token(uri) == first.stem.removeprefix("init_store-")
    assert store_marker(uri, markers) == first  # the store now names itself
    (tmp_path / "mlflow.db").rename(tmp_path / "moved.db")
    second = store_marker(uri, markers)
    assert second != first and not second.exists()  # a lost store: init_store runs again
    # In a new process, as the workflow's rule runs it (this process's MLflow still holds a
    # connection to the moved file, which SQLite then refuses to write: "database moved").
    script = "import sys; from sparseae.tracking import init_store; "
    script += "init_store(sys.argv[1], ['a'], marker=sys.argv[2])"
    subprocess.run([sys.executable, "-c", script, uri, str(second)], check=True, timeout=300)
    assert sorted(p.name for p in markers.iterdir()) == [second.name]
    assert store_marker(uri, markers) == second


def test_optimizer_stops_of_the_summary_are_what_the_run_shows(result_folder_factory, sqlite_store):
    """summary.json's stop, chunk_stops and converged reach the run: tag, metric, description."""
    results = result_folder_factory("tiny", chunks=3)
    summary = read_json(results / "summary.json")
    assert summary["converged"] is False  # the fixture's chunks all use their budget
    # The optimizer converged in chunk 2 (as finalize records it); chunk 3 then did nothing.
    stops = summary["chunk_stops"]
    stops[1] = {**stops[1], "reason": "converged", "iterations": 3, "message": "CONVERGENCE"}
    stops[2] = {**stops[2], "reason": "converged", "iterations": 0, "message": "CONVERGENCE"}
    summary.update(chunk_stops=stops, stop=stops[2], converged=True)
    summary.update(summary_blocks(summary))  # as finalize writes it
    (results / "summary.json").write_text(json.dumps(summary), encoding="utf-8")

    run_id = log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    run = MlflowClient(sqlite_store).get_run(run_id)
    assert run.data.tags["sparseae.optimizer_stop"] == "converged"
    assert run.data.metrics["converged"] == 1.0
    assert "summary.converged" not in run.data.params
    assert "summary.trajectory_key" not in run.data.params
    note = run.data.tags["mlflow.note.content"]
    assert "Optimizer stopped: converged (CONVERGENCE)." in note
    assert (
        "Chunks stopped before their budget: chunk 2: converged after 3 iterations; "
        "chunk 3: converged after 0 iterations." in note
    )
