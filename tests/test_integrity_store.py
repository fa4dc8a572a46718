"""The MLflow store is checked before it is used, built atomically, and never shared by
accident: half-built stores are rebuilt, a kill while building leaves no broken store, a copied
project never writes into the original's store, a server that lost its runs is refilled.

The in-process tests are cheap (fast tier); the ones that run ``sparseae`` or ``snakemake`` as
subprocesses, kill them, or start a real ``mlflow server`` on loopback are in the full tier.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from mlflow_server import MlflowServer
from workflow_helpers import (
    BIN,
    copy_finished,
    dry_run,
    run_tracking,
    tracking_command,
    workflow_environment,
)

from sparseae.tracking import init_store, log_results, store_marker
from sparseae.tracking.settings import check_sqlite_file, inspect_store, mlflow_schema_revisions
from sparseae.tracking.store import prepare_sqlite_store

pytestmark = pytest.mark.fast


def contents(folder: Path) -> dict[str, str]:
    """Content hash of every file below ``folder`` (Snakemake's own bookkeeping left out)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".snakemake" not in p.parts
    }


def points(client: MlflowClient, run_id: str) -> int:
    """The run's metric points, asserting none is logged twice (one per key and step)."""
    found = [
        (k, m.step)
        for k in client.get_run(run_id).data.metrics
        for m in client.get_metric_history(run_id, k)
    ]
    assert len(found) == len(set(found)), "a metric point was logged twice"
    return len(found)


def snakemake(workdir: Path, *args: str, ok: bool = True) -> str:
    """Run ``snakemake`` there; its output (the exit status as ``ok`` says)."""
    command = [str(BIN / "snakemake"), *args, "--cores", "2", "--configfile", "config/t.yaml"]
    done = subprocess.run(
        command,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
        env=workflow_environment(),
        check=False,
    )
    assert (done.returncode == 0) == ok, (done.stdout + done.stderr)[-6000:]
    return done.stdout + done.stderr


def half_built(db: Path) -> None:
    """A store as a killed in-place migration leaves it: an older revision, a temp table."""
    prepare_sqlite_store(db)
    older = sorted(mlflow_schema_revisions()[0])[0]
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM experiments")
        connection.execute("UPDATE alembic_version SET version_num = ?", (older,))
        connection.execute("CREATE TABLE _alembic_tmp_experiments (experiment_id INTEGER)")
    connection.close()


def test_half_built_store_is_rebuilt(tmp_path):
    db = tmp_path / "mlflow.db"
    half_built(db)
    uri = f"sqlite:///{db}"
    assert check_sqlite_file(uri) is None  # check-config lets it pass: init_store rebuilds it
    assert inspect_store(db).rebuild
    ids = init_store(uri, ["natural"])
    state = inspect_store(db)
    assert not state.rebuild and state.problem is None
    run = MlflowClient(uri).create_run(ids["natural"])
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())


def test_failed_build_leaves_no_store(tmp_path, monkeypatch):
    """The template cache unusable and MLflow failing while it builds: no file is left."""
    from mlflow.store.tracking import sqlalchemy_store

    (tmp_path / "cache").write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sqlalchemy_store.SqlAlchemyStore, "__init__", disk_full)
    with pytest.raises(OSError, match="No space left"):
        prepare_sqlite_store(tmp_path / "store" / "mlflow.db")
    assert list((tmp_path / "store").iterdir()) == []


def test_messages_of_refused_stores_say_what_to_do(tmp_path):
    db = tmp_path / "mlflow.db"
    prepare_sqlite_store(db)
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    connection.close()
    newer = check_sqlite_file(f"sqlite:///{db}")
    assert str(db) in newer and "MLflow newer than" in newer
    assert "db upgrade" not in newer  # it would break a newer store
    db.chmod(0o444)
    if os.access(db, os.W_OK):  # root writes anyway: try an immutable file
        done = subprocess.run(["chattr", "+i", str(db)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"root and chattr +i refused ({done.stderr.strip()!r}): no read-only file")
    try:
        message = check_sqlite_file(f"sqlite:///{db}")
        assert str(db) in message and "cannot be opened for writing" in message
    finally:
        subprocess.run(["chattr", "-i", str(db)], capture_output=True, check=False)


def test_superseded_run_left_running_is_ended(result_folder_factory, sqlite_store):
    from sparseae.tracking.sync import EXPERIMENT_TAG, RUN_KEY_TAG

    results = result_folder_factory("tiny")
    client = MlflowClient(sqlite_store)
    experiment = client.create_experiment("tiny")
    # A run whose logging was interrupted: created, never terminated.
    stale = client.create_run(experiment, tags={RUN_KEY_TAG: "old", EXPERIMENT_TAG: "tiny"})
    log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    ended = client.get_run(stale.info.run_id)
    assert ended.info.status == "KILLED"
    assert ended.data.tags["sparseae.status"] == "superseded"


# ------------------------------------------------------------------ full tier: subprocesses


@pytest.mark.full
@pytest.mark.slow
def test_killed_store_builds_leave_every_next_run_whole(tmp_path, result_folder_factory):
    """tracking-init killed at several points while MLflow builds the store in place of the
    unusable template cache; after each kill, ``log`` makes one complete run."""
    results = result_folder_factory("tiny")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "not-a-folder")}
    (tmp_path / "not-a-folder").write_text("x")
    kills = (1.0, 4.0, 8.0)
    for seconds in kills:
        folder = tmp_path / f"kill-{seconds}"
        folder.mkdir()
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        init = subprocess.Popen(
            tracking_command(uri, "tracking-init", "tiny"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(seconds)
        init.send_signal(signal.SIGKILL)
        init.wait()
        if (folder / "mlflow.db").exists():  # never half-built: complete or absent
            state = inspect_store(folder / "mlflow.db")
            assert state.problem is None and not state.rebuild
        for _ in range(2 if seconds == kills[-1] else 1):  # a second log adds nothing
            done = run_tracking(
                uri, "log", str(results), "--experiment", "tiny", timeout=300, env=env
            )
            assert done.returncode == 0, done.stderr[-3000:]
        assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
        assert len(runs) == 1 and points(client, runs[0].info.run_id) > 0


@pytest.mark.full
@pytest.mark.slow
def test_copied_project_never_writes_into_the_original(tmp_path, small_project):
    # The small experiment trained once per session; its own store is made and filled here.
    original = copy_finished(small_project, tmp_path / "original")
    assert "(Rule: train_chunk)" not in snakemake(original)
    before = contents(original)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(original), str(copy)], check=True)
    config = yaml.safe_load((copy / "config/t.yaml").read_text())
    config["experiments"]["natural"]["model"] = {"lambda_": 0.001}
    (copy / "config/t.yaml").write_text(yaml.safe_dump(config))

    # Dry runs and training in the copy are fine; the store is refused before it is written.
    output = snakemake(copy, ok=False)
    assert "(Rule: train_chunk)" in output and "Error in rule init_store:" in output
    assert f"{copy / 'mlflow.db'} was made in {original}" in output
    assert "Traceback" not in output
    assert contents(original) == before
    # The fix the message gives: a new store, refilled from the copy's result files.
    (copy / "mlflow.db").unlink()
    shutil.rmtree(copy / "mlartifacts")
    snakemake(copy)
    assert contents(original) == before
    client = MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("natural").experiment_id])
    assert run.info.artifact_uri.startswith((copy / "mlartifacts").as_uri())
    assert run.data.params["model.lambda_"] == "0.001"  # the changed setting


@pytest.mark.full
@pytest.mark.slow
def test_server_restarted_empty_is_refilled(tmp_path, small_project):
    with MlflowServer(tmp_path / "server", workers=1) as server:
        workdir = copy_finished(small_project, tmp_path / "work", uri=server.uri)
        assert "(Rule: log_mlflow)" in snakemake(workdir)  # trained once per session
        server.stop()
        server.db.unlink()
        shutil.rmtree(server.artifacts)
        server.start()
        marker = store_marker(server.uri, workdir / "results/_tracking")
        assert not marker.exists()  # the server lost the project's token: a new marker
        output = snakemake(workdir)
        assert "(Rule: init_store)" in output and "(Rule: log_mlflow)" in output
        assert "(Rule: train_chunk)" not in output  # only MLflow is refilled
        client = MlflowClient(server.uri)
        (run,) = client.search_runs([client.get_experiment_by_name("natural").experiment_id])
        assert run.info.status == "FINISHED" and points(client, run.info.run_id)
        assert dry_run(workdir, ["config/t.yaml"]) == {}
