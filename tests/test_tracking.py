"""MLflow tracking: a real result folder logged into real stores and read back via MlflowClient.

No MLflow piece is mocked: local stores are real sqlite databases, the server tests start a real
``mlflow server`` (tests/mlflow_server.py) with its own sqlite database and artifact store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from tracking_checks import EXPECTED_ARTIFACTS, assert_run_matches_folder, history
from workflow_helpers import run_tracking

from sparseae.io import read_json
from sparseae.tracking import (
    ArtifactLocationError,
    ResultsError,
    configure_http_retries,
    init_store,
    log_results,
    log_sweep,
    resolve_tracking_uri,
)

pytestmark = pytest.mark.fast


def test_log_results_into_local_store(result_folder_factory, sqlite_store, tmp_path):
    results = result_folder_factory("tiny", evaluation=True)
    ids = init_store(sqlite_store, ["tiny"])
    run_id = log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)

    client = MlflowClient(sqlite_store)
    run = assert_run_matches_folder(client, run_id, results, tmp_path / "download")
    assert run.info.experiment_id == ids["tiny"]
    assert run.info.status == "FINISHED"
    assert run.data.metrics["accuracy_features"] == 0.97
    # Counts and the check's settings stay in their result files (artifacts), not params.
    assert not any(key.startswith(("evaluation.n_", "gradcheck.")) for key in run.data.params)
    assert run.data.metrics["gradcheck_passed"] == 1.0
    assert run.data.tags["sparseae.status"] == "complete"
    # Local artifacts live beside the database, under the experiment's folder.
    assert (Path(sqlite_store[len("sqlite:///") :]).parent / "mlartifacts" / "tiny").is_dir()

    record = read_json(results / "mlflow.json")
    assert record["run_id"] == run_id and record["experiment_id"] == ids["tiny"]
    assert record["logged_this_time"]["metric_points"] == record["total"]["metric_points"]
    assert record["total"]["metric_points"] == sum(
        len(client.get_metric_history(run_id, key)) for key in run.data.metrics
    )


def test_second_log_adds_nothing(result_folder_factory, sqlite_store):
    results = result_folder_factory("tiny")
    first = log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    client = MlflowClient(sqlite_store)
    before = {k: history(client, first, k) for k in client.get_run(first).data.metrics}

    second = log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)

    assert second == first
    assert {k: history(client, first, k) for k in before} == before
    logged = read_json(results / "mlflow.json")["logged_this_time"]
    assert logged == {
        "params": 0,
        "metric_points": 0,
        "artifacts": 0,
        "tags": 0,
        "filter_images": 0,
        "datasets": 0,
        "models": 0,
    }
    experiment = client.get_experiment_by_name("tiny")
    assert len(client.search_runs([experiment.experiment_id])) == 1


def test_partial_folder_then_complete_fills_exactly_the_rest(
    result_folder_factory, sqlite_store, tmp_path
):
    complete = result_folder_factory("full", chunks=3)
    staged = tmp_path / "staged" / "results" / "exp"
    (staged / "chunks").mkdir(parents=True)
    client = MlflowClient(sqlite_store)

    # Stage 1: only the config and gradient check (training has not written chunk 1 yet).
    for name in ("config.json", "gradcheck.json"):
        shutil.copy2(complete / name, staged / name)
    run_id = log_results(staged, experiment_name="exp", tracking_uri=sqlite_store)
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING"
    assert run.data.tags["sparseae.status"] == "partial"
    assert "chunks/*.npz" in read_json(staged / "mlflow.json")["missing"]
    assert "`chunks/*.npz`" in run.data.tags["mlflow.note.content"]
    assert "cost" not in run.data.metrics

    # Stage 2: two of three chunks: the same run (same trajectory key), chunk points only.
    for k in (1, 2):
        shutil.copy2(complete / "chunks" / f"{k}.npz", staged / "chunks" / f"{k}.npz")
    kw = dict(experiment_name="exp", tracking_uri=sqlite_store, chunks=3)
    assert log_results(staged, **kw) == run_id
    assert "chunks/3.npz" in read_json(staged / "mlflow.json")["missing"]
    assert [s for s, _ in history(client, run_id, "cost")] == list(range(1, 9))

    # Stage 3: everything: only the missing points, params and artifacts are added.
    shutil.rmtree(staged)
    shutil.copytree(complete, staged)
    log_dir = complete.parent.parent / "logs" / "full"
    assert (
        log_results(staged, experiment_name="exp", tracking_uri=sqlite_store, log_dir=log_dir)
        == run_id
    )
    record = read_json(staged / "mlflow.json")
    # Chunk 3's 4 iterations x 4 series + its 7 chunk-end points + the summary figures that are
    # not a series' final value.
    diagnostics = len(read_json(complete / "diagnostics.json")["metrics"])  # their figures
    figures = read_json(complete / "summary.json")["metrics"]
    summary = len([k for k in figures if not k.startswith(("final_", "total_"))])
    assert diagnostics > 0 and summary == 4
    assert record["logged_this_time"]["metric_points"] == 4 * 4 + 7 + summary + diagnostics
    assert record["missing"] == []
    assert client.get_run(run_id).info.status == "FINISHED"
    experiment = client.get_experiment_by_name("exp")
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [run_id]
    assert_run_matches_folder(client, run_id, complete, tmp_path / "download")


def test_deleted_artifacts_are_uploaded_again(result_folder_factory, sqlite_store):
    results = result_folder_factory("tiny")
    run_id = log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    client = MlflowClient(sqlite_store)
    artifact_dir = Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    for name in ("filters.png", "theta.npz"):
        (artifact_dir / name).unlink()

    log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)

    assert read_json(results / "mlflow.json")["logged_this_time"]["artifacts"] == 2
    assert (artifact_dir / "filters.png").read_bytes() == (results / "filters.png").read_bytes()


def test_run_identity_is_the_trajectory(result_folder_factory, sqlite_store):
    first = log_results(
        result_folder_factory("a"), experiment_name="exp", tracking_uri=sqlite_store
    )
    # The same trajectory trained again from scratch (other timings): the same run.
    again = log_results(
        result_folder_factory("a"), experiment_name="exp", tracking_uri=sqlite_store
    )
    assert again == first
    # Another trajectory (seed) of the same experiment: a new run; the old one is superseded.
    other = result_folder_factory("a", seed=8)
    second = log_results(other, experiment_name="exp", tracking_uri=sqlite_store)
    assert second != first
    client = MlflowClient(sqlite_store)
    old, new = client.get_run(first), client.get_run(second)
    assert old.data.tags["sparseae.status"] == "superseded"
    assert old.data.tags["sparseae.superseded_by"] == second
    assert new.data.tags["sparseae.status"] == "complete"
    assert read_json(other / "mlflow.json")["superseded_runs"] == [first]


def test_changed_setting_outside_the_trajectory_is_listed(result_folder_factory, sqlite_store):
    results = result_folder_factory("tiny")
    run_id = log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    config = read_json(results / "config.json")
    config["dataset"]["whitening"] = True  # a hand edit: the file says so, the run keeps its first
    (results / "config.json").write_text(json.dumps(config))
    assert log_results(results, experiment_name="tiny", tracking_uri=sqlite_store) == run_id
    run = MlflowClient(sqlite_store).get_run(run_id)
    assert run.data.tags["sparseae.changed_params"] == "dataset.whitening=true"
    assert read_json(results / "mlflow.json")["logged_this_time"]["artifacts"] == 1  # config


def test_bad_checkpoint_is_named(result_folder_factory, sqlite_store):
    results = result_folder_factory("tiny")
    (results / "chunks" / "2.npz").write_bytes(b"not a zip file")
    with pytest.raises(ResultsError, match=r"chunks/2\.npz is not a readable .* rerun"):
        log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    with np.load(results / "chunks" / "1.npz", allow_pickle=False) as data:
        arrays = dict(data)
    np.savez(results / "chunks" / "2.npz", **arrays)  # chunk 1's content under the name 2
    with pytest.raises(ResultsError, match=r"chunks/2\.npz says chunk 1, not 2"):
        log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)


def test_unwritable_artifact_location_fails_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # Root ignores permission bits, but nobody can create a folder below a regular file.
    with pytest.raises(ArtifactLocationError, match=r"a-file is a file, not a folder"):
        init_store(uri, ["tiny"], artifact_location=blocker / "artifacts")
    with pytest.raises(ArtifactLocationError, match=r"folder of the MLflow database"):
        init_store(f"sqlite:///{blocker}/sub/mlflow.db", ["tiny"])
    assert not (tmp_path / "mlflow.db").exists()


def test_resolve_tracking_uri(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(cwd=tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert resolve_tracking_uri("http://127.0.0.1:5001") == "http://127.0.0.1:5001"
    assert resolve_tracking_uri("sqlite:///x/m.db", cwd=tmp_path) == (
        f"sqlite:///{tmp_path.resolve()}/x/m.db"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5002")
    assert resolve_tracking_uri("http://127.0.0.1:5001") == "http://127.0.0.1:5002"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "./mlruns")
    with pytest.raises(ValueError, match="mlruns"):
        resolve_tracking_uri()


def test_http_retry_settings_respect_the_user():
    environ = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "300"}
    effective = configure_http_retries(environ)
    assert effective["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"
    assert effective["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"


def test_sweep_parent_and_members(result_folder_factory, sqlite_store, tmp_path):
    members = [result_folder_factory(f"m{i}", seed=i) for i in range(2)]
    for folder in members:
        log_results(folder, experiment_name="sweep-a", tracking_uri=sqlite_store)
    table = tmp_path / "summary.tsv"
    table.write_text("experiment\tfinal_cost\nm0\t0.4\nm1\t0.5\n")

    parent = log_sweep(
        "sweep-a",
        members,
        tracking_uri=sqlite_store,
        artifacts=[table],
        params={"grid": {"beta": [1, 3]}},
    )
    again = log_sweep(
        "sweep-a",
        members,
        tracking_uri=sqlite_store,
        artifacts=[table],
        params={"grid": {"beta": [1, 3]}},
    )

    client = MlflowClient(sqlite_store)
    assert again == parent
    assert client.get_run(parent).data.params["grid.beta"] == "[1, 3]"
    assert sorted(a.path for a in client.list_artifacts(parent)) == ["manifest.json", "summary.tsv"]
    for folder in members:
        tags = client.get_run(read_json(folder / "mlflow.json")["run_id"]).data.tags
        assert tags["sparseae.sweep"] == "sweep-a"
        assert tags["mlflow.parentRunId"] == parent


@pytest.mark.slow
def test_command_line_logs_and_reports_errors(result_folder_factory, sqlite_store):
    results = result_folder_factory("tiny")
    done = run_tracking(
        sqlite_store, "log", str(results), "--experiment", "tiny", "--tag", "owner=test"
    )
    assert done.returncode == 0, done.stderr
    run_id = read_json(results / "mlflow.json")["run_id"]
    assert MlflowClient(sqlite_store).get_run(run_id).data.tags["owner"] == "test"
    (results / "summary.json").write_text("{broken")
    done = run_tracking(sqlite_store, "log", str(results), "--experiment", "tiny")
    assert done.returncode == 1
    assert "summary.json is not readable JSON" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_log_results_through_a_tracking_server(
    result_folder_factory, shared_mlflow_server, tmp_path
):
    mlflow_server = shared_mlflow_server
    results = result_folder_factory("tiny")
    ids = init_store(mlflow_server.uri, ["tiny"])
    run_id = log_results(results, experiment_name="tiny", tracking_uri=mlflow_server.uri)
    again = log_results(results, experiment_name="tiny", tracking_uri=mlflow_server.uri)

    client = MlflowClient(mlflow_server.uri)
    run = assert_run_matches_folder(client, run_id, results, tmp_path / "download")
    assert again == run_id and run.info.experiment_id == ids["tiny"]
    assert read_json(results / "mlflow.json")["logged_this_time"]["metric_points"] == 0
    # The client uploaded over HTTP: the files are in the server's own artifact store.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    stored = {p.name for p in mlflow_server.artifacts.rglob("*") if p.is_file()}
    assert EXPECTED_ARTIFACTS <= stored


def test_sparseae_log_subcommand(result_folder_factory, sqlite_store, capsys):
    from sparseae import cli

    results = result_folder_factory("tiny")
    status = cli.main(["log", str(results), "--experiment", "tiny", "--tracking-uri", sqlite_store])
    assert status == 0
    assert read_json(results / "mlflow.json")["tracking_uri"] == sqlite_store
    (results / "gradcheck.json").write_text("[1, 2]")
    status = cli.main(["log", str(results), "--experiment", "tiny", "--tracking-uri", sqlite_store])
    assert status == 1
    assert "gradcheck.json holds a list, not a JSON object" in capsys.readouterr().err
