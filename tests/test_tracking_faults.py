"""Tracking under faults: a dead or dying server, parallel loggers, bad locations.

Every fault is provoked for real: the server is a real ``mlflow server`` process that is
SIGKILLed (by its PID) before or during logging; parallel loggers are separate processes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow_server import free_port
from tracking_checks import EXPECTED_ARTIFACTS, assert_run_matches_folder
from workflow_helpers import run_tracking, tracking_command

from sparseae.io import read_json
from sparseae.tracking import (
    ArtifactLocationError,
    TrackingUnavailableError,
    init_store,
    log_results,
)
from sparseae.tracking.sync import Session, read_manifest

pytestmark = pytest.mark.fast

#: Generous bound for "fails within seconds" (a timeout bound, not a performance assertion).
FAIL_FAST_SECONDS = 15.0


def snapshot(folder: Path) -> dict[str, str]:
    """Content hash of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def no_duplicate_points(client: MlflowClient, run_id: str) -> int:
    """Assert every metric has at most one point per step; return the number of points."""
    total = 0
    for key in client.get_run(run_id).data.metrics:
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert len(steps) == len(set(steps)), f"duplicate points in {key}"
        total += len(steps)
    return total


def test_server_down_at_start_fails_fast_and_loses_nothing(result_folder_factory):
    results = result_folder_factory("tiny")
    before = snapshot(results)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    started = time.monotonic()
    with pytest.raises(TrackingUnavailableError) as init_error:
        init_store(uri, ["tiny"])
    with pytest.raises(TrackingUnavailableError) as log_error:
        log_results(results, experiment_name="tiny", tracking_uri=uri)
    elapsed = time.monotonic() - started

    assert elapsed < FAIL_FAST_SECONDS
    for error in (init_error, log_error):
        message = str(error.value)
        assert f"MLflow tracking server at {uri} is not reachable" in message
        assert "training results stay on disk" in message and "rerun `snakemake`" in message
    assert str(results) in str(log_error.value)
    assert snapshot(results) == before  # nothing written, nothing removed (no mlflow.json)


@pytest.mark.full  # a subprocess
def test_command_line_reports_unreachable_server(result_folder_factory):
    results = result_folder_factory("tiny")
    uri = f"http://127.0.0.1:{free_port()}"
    done = run_tracking(uri, "log", str(results), "--experiment", "tiny")
    assert done.returncode == 1
    assert "is not reachable: connection refused; training results stay on disk" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_server_dying_between_and_during_logging(result_folder_factory, mlflow_server, tmp_path):
    complete = result_folder_factory("full", chunks=3)
    log_dir = complete.parent.parent / "logs" / "full"
    for i in range(60):  # many rule logs: the upload phase lasts long enough to be cut
        (log_dir / f"extra_{i:02d}.log").write_text(f"line {i}\n" * 50)
    staged = tmp_path / "staged" / "results" / "full"
    (staged / "chunks").mkdir(parents=True)
    for name in ("config.json", "gradcheck.json", "chunks/1.npz"):
        shutil.copy2(complete / name, staged / name)
    uri = mlflow_server.uri
    client = MlflowClient(uri)

    # 1. A partial folder (and its one rule log so far) is logged while the server is up.
    early_logs = tmp_path / "early-logs"
    early_logs.mkdir()
    shutil.copy2(log_dir / "gradcheck.log", early_logs / "gradcheck.log")
    run_id = log_results(staged, experiment_name="full", tracking_uri=uri, log_dir=early_logs)

    # 2. The server dies between two log calls: the next call fails fast and clearly.
    mlflow_server.kill()
    shutil.rmtree(staged)
    shutil.copytree(complete, staged)
    before = snapshot(staged)
    started = time.monotonic()
    with pytest.raises(TrackingUnavailableError, match="is not reachable"):
        log_results(staged, experiment_name="full", tracking_uri=uri, log_dir=log_dir)
    assert time.monotonic() - started < FAIL_FAST_SECONDS
    assert snapshot(staged) == before

    # 3. The server dies in the middle of a call: killed as soon as the first artifact of this
    #    call arrives (params and metric points went first), from another thread.
    mlflow_server.start()
    already = {p for p in mlflow_server.artifacts.rglob("*") if p.is_file()}

    def kill_on_first_upload():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(p.is_file() and p not in already for p in mlflow_server.artifacts.rglob("*")):
                mlflow_server.kill()
                return
            time.sleep(0.002)

    killer = threading.Thread(target=kill_on_first_upload)
    killer.start()
    started = time.monotonic()
    with pytest.raises(TrackingUnavailableError, match="is not reachable"):
        log_results(staged, experiment_name="full", tracking_uri=uri, log_dir=log_dir)
    failed_after = time.monotonic() - started
    killer.join()
    assert snapshot(staged) == before
    assert not (staged / "mlflow.json").exists()

    # 4. The server is back: the rerun fills in everything that is missing, once.
    mlflow_server.start()
    partial_run = client.get_run(run_id)
    uploaded_logs = {a.path for a in client.list_artifacts(run_id, "logs")}
    uploaded_root = [a for a in client.list_artifacts(run_id) if not a.is_dir]
    assert partial_run.info.status == "RUNNING"  # the cut call never finished the run
    assert len(uploaded_logs) < 64  # the cut really happened before all uploads

    # Uploads are confirmed by the run's manifest.json (and its hash tag), written after the
    # upload loop: the files of step 1 are in it; one that landed in the cut call is not, so
    # it is uploaded again (the server may even hold it half-written). Exactly the confirmed
    # ones are skipped.
    confirmed = set(read_manifest(Session(uri), run_id, partial_run.data.tags))
    listed = {a.path for a in uploaded_root} | uploaded_logs
    assert confirmed and confirmed <= listed, (confirmed, listed)
    assert log_results(staged, experiment_name="full", tracking_uri=uri, log_dir=log_dir) == run_id
    record = read_json(staged / "mlflow.json")
    assert record["logged_this_time"]["artifacts"] == record["total"]["artifacts"] - len(confirmed)
    assert no_duplicate_points(client, run_id) == record["total"]["metric_points"]
    assert len({a.path for a in client.list_artifacts(run_id, "logs")}) == 64
    folder = staged_log_view(staged, log_dir)
    assert_run_matches_folder(client, run_id, folder, tmp_path / "dl", cut_upload=True)
    experiment = client.get_experiment_by_name("full")
    assert len(client.search_runs([experiment.experiment_id])) == 1
    print(f"mid-logging kill: the call failed {failed_after:.1f} s after it started")


def staged_log_view(results: Path, log_dir: Path) -> Path:
    """``assert_run_matches_folder`` looks for logs beside ``results``: put them there."""
    view = results.parent.parent / "logs" / results.name
    if not view.exists():
        shutil.copytree(log_dir, view)
    return results


def test_unwritable_artifact_location_is_reported_before_training(tmp_path, sqlite_store):
    blocker = tmp_path / "results-are-here"
    blocker.write_text("a file where a folder should be")
    started = time.monotonic()
    with pytest.raises(ArtifactLocationError) as error:
        init_store(sqlite_store, ["natural"], artifact_location=f"file://{blocker}/mlartifacts")
    message = str(error.value)
    assert f"MLflow artifact location {blocker}/mlartifacts is not writable" in message
    assert "is a file, not a folder" in message and "before training" in message
    assert time.monotonic() - started < FAIL_FAST_SECONDS
    # Nothing points at the broken location afterwards.
    assert MlflowClient(sqlite_store).get_experiment_by_name("natural") is None


def _log_in_parallel(uri: str, folders: dict[str, Path]) -> list[subprocess.CompletedProcess]:
    processes = {
        name: subprocess.Popen(
            tracking_command(uri, "log", str(folder), "--experiment", name),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, folder in folders.items()
    }
    done = []
    for name, process in processes.items():
        out, err = process.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(name, process.returncode, out, err))
    return done


def _check_parallel_store(uri: str, folders: dict[str, Path], done) -> None:
    for result in done:
        assert result.returncode == 0, f"{result.args}: {result.stderr[-2000:]}"
        assert "database is locked" not in result.stderr, result.stderr[-2000:]
    client = MlflowClient(uri)
    names = [e.name for e in client.search_experiments()]
    for name, folder in folders.items():
        assert names.count(name) == 1
        experiment = client.get_experiment_by_name(name)
        runs = client.search_runs([experiment.experiment_id])
        assert len(runs) == 1
        record = read_json(folder / "mlflow.json")
        assert runs[0].info.run_id == record["run_id"]
        assert len(runs[0].data.params) == record["total"]["params"]
        assert no_duplicate_points(client, record["run_id"]) == record["total"]["metric_points"]
        assert record["logged_this_time"]["metric_points"] == record["total"]["metric_points"]
        names_logged = {a.path for a in client.list_artifacts(record["run_id"])}
        assert EXPECTED_ARTIFACTS <= names_logged


#: Concurrent logger processes: four already race on the store (each creates, writes and reads
#: back while the others do) and cost half the process start-ups of eight on a 2-core runner.
LOGGERS = 4


@pytest.fixture
def parallel_folders(result_folder_factory) -> dict[str, Path]:
    return {f"sweep-{i}": result_folder_factory(f"sweep-{i}", seed=i) for i in range(LOGGERS)}


@pytest.mark.slow
def test_parallel_loggers_into_one_local_store(parallel_folders, tmp_path):
    # A store that does not exist yet. init_store creates it and half of the experiments (the
    # workflow's way); the other half are created by the concurrent loggers themselves (the
    # by-hand way), which must not race on the store or duplicate an experiment either.
    uri = f"sqlite:///{tmp_path}/fresh/mlflow.db"
    init_store(uri, list(parallel_folders)[: LOGGERS // 2])
    done = _log_in_parallel(uri, parallel_folders)
    _check_parallel_store(uri, parallel_folders, done)
    retries = sum(r.stderr.count("store busy") for r in done)
    print(f"{LOGGERS} parallel loggers into sqlite: {retries} lock retries")


def test_store_from_cached_template_is_a_normal_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    ids = init_store(uri, ["natural"])
    client = MlflowClient(uri)
    experiments = {e.name: e for e in client.search_experiments()}
    assert set(experiments) == {"Default", "natural"} and ids["natural"] != "0"
    # MLflow added its default experiment itself, for this store, not for the template.
    assert ".cache" not in experiments["Default"].artifact_location
    run = client.create_run(ids["natural"])
    client.log_metric(run.info.run_id, "cost", 1.5, step=1)
    assert client.get_metric_history(run.info.run_id, "cost")[0].value == 1.5


@pytest.mark.slow
def test_parallel_loggers_into_one_server(parallel_folders, shared_mlflow_server):
    mlflow_server = shared_mlflow_server
    init_store(mlflow_server.uri, list(parallel_folders))
    done = _log_in_parallel(mlflow_server.uri, parallel_folders)
    _check_parallel_store(mlflow_server.uri, parallel_folders, done)
    assert "database is locked" not in mlflow_server.log_text()
