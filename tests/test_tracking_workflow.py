"""MLflow follows the result files through the workflow: continued training, a recomputed
chunk, a lost store, and dry runs that write nothing.

One small ``natural`` experiment (10 iterations per chunk) is run with ``snakemake`` in a
fresh folder and then changed step by step as a user would; the store (sqlite in that folder)
is read back through ``MlflowClient`` after each step. The tests run in file order on one
folder: each starts from the state the previous one left.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow import MlflowClient
from workflow_helpers import (
    BIN,
    SMALL_PER_CHUNK,
    copy_finished,
    dry_run,
    small_config,
    workflow_environment,
)

pytestmark = [pytest.mark.full, pytest.mark.slow]

PER_CHUNK = SMALL_PER_CHUNK


def write_config(workdir: Path, chunks: int) -> None:
    config = small_config(chunks)
    (workdir / "config" / "t.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


def snakemake(workdir: Path, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "snakemake"), *args, "--cores", "2", "--configfile", "config/t.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
        env=workflow_environment(),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return output


def jobs(output: str) -> dict[str, int]:
    """The job counts of Snakemake's "Job stats" table."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    if "Job stats:" not in lines:
        return counts
    for line in lines[lines.index("Job stats:") + 3 :]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def the_run(workdir: Path):
    # This process may hold pooled connections to a store since moved away (MLflow keeps one
    # engine per URI): disposing the engine makes the next call open the file at the path.
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    SqlAlchemyStore(uri, str(workdir / "mlartifacts")).engine.dispose()
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("natural")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, [r.data.tags for r in runs]
    return client, runs[0]


def steps(client: MlflowClient, run, key: str = "cost") -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, key))


def no_point_twice(client: MlflowClient, run) -> None:
    for key in run.data.metrics:
        logged = steps(client, run, key)
        assert len(logged) == len(set(logged)), f"a point of {key} was logged twice"


#: What Snakemake itself writes on every invocation, dry runs included: its own log of the
#: invocation and its file-listing cache.
SNAKEMAKE_BOOKKEEPING = (".snakemake/log/", ".snakemake/iocache/")


def tree(workdir: Path) -> dict[str, tuple[int, int]]:
    """Every file below workdir, the store and .snakemake/metadata included: (mtime, size)."""
    listing = {}
    for path in sorted(workdir.rglob("*")):
        name = path.relative_to(workdir).as_posix()
        if path.is_file() and not name.startswith(SNAKEMAKE_BOOKKEEPING):
            listing[name] = (path.stat().st_mtime_ns, path.stat().st_size)
    return listing


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, small_project) -> Path:
    # The session's finished run of this experiment, copied: only its store is made anew.
    folder = copy_finished(small_project, tmp_path_factory.mktemp("follow") / "work")
    write_config(folder, chunks=2)
    assert jobs(snakemake(folder)) == {"init_store": 1, "log_mlflow": 1, "all": 1}
    return folder


def test_dry_run_and_lint_change_no_file(workdir):
    before = tree(workdir)
    assert dry_run(workdir, ["config/t.yaml"]) == {}
    snakemake(workdir, "--lint")
    assert tree(workdir) == before


def test_training_longer_extends_the_same_run(workdir):
    _, first = the_run(workdir)
    write_config(workdir, chunks=3)
    counts = jobs(snakemake(workdir))
    assert counts["train_chunk"] == 1 and counts["log_mlflow"] == 1
    client, run = the_run(workdir)
    assert run.info.run_id == first.info.run_id
    assert steps(client, run) == list(range(1, 3 * PER_CHUNK + 1))  # each once
    no_point_twice(client, run)
    assert run.data.tags["sparseae.final_chunk"] == "3"
    images = {
        int(Path(a.path).name.split("+")[2])
        for a in client.list_artifacts(run.info.run_id, "images")
    }
    assert images == {0, 10, 20, 30}  # the random start, then each chunk end


def test_training_shorter_finalizes_from_the_earlier_chunk(workdir):
    write_config(workdir, chunks=2)
    counts = jobs(snakemake(workdir))
    assert "train_chunk" not in counts
    client, run = the_run(workdir)
    assert run.data.tags["sparseae.final_chunk"] == "2"
    assert "chunks/3.npz" not in run.data.tags.get("sparseae.changed_params", "")
    record = json.loads((workdir / "results" / "natural" / "mlflow.json").read_text())
    assert record["final_chunk"] == 2 and record["chunks_not_logged"] == [3]
    # MLflow cannot delete points: chunk 3's stay, none is added or doubled.
    assert steps(client, run) == list(range(1, 3 * PER_CHUNK + 1))
    with (
        np.load(workdir / "results" / "natural" / "theta.npz", allow_pickle=False) as final,
        np.load(workdir / "results/natural/chunks/2.npz", allow_pickle=False) as chunk,
    ):
        np.testing.assert_array_equal(final["theta"], chunk["theta"])


def test_recomputed_chunk_is_logged_without_conflict(workdir):
    (workdir / "results" / "natural" / "chunks" / "2.npz").unlink()
    # Recomputed on request (Snakemake leaves a missing intermediate file alone while the
    # files made from it are up to date), then everything after it follows.
    assert jobs(snakemake(workdir, "results/natural/chunks/2.npz")) == {"train_chunk": 1}
    counts = jobs(snakemake(workdir))
    assert counts["log_mlflow"] == 1 and "train_chunk" not in counts
    client, run = the_run(workdir)
    no_point_twice(client, run)
    record = json.loads((workdir / "results" / "natural" / "mlflow.json").read_text())
    assert record["differing_points"]["count"] == 0  # same thread count: identical numbers
    assert (
        record["logged_this_time"]["metric_points"]
        == record["logged_this_time"].get("revised_metrics", []).__len__()
    )  # only recomputed summary figures (wall-clock ones) got a new point


def test_moved_away_store_is_refilled(workdir):
    _, old = the_run(workdir)
    shutil.move(workdir / "mlflow.db", workdir.parent / "moved-away.db")
    counts = jobs(snakemake(workdir))
    assert counts == {"init_store": 1, "log_mlflow": 1, "all": 1}
    client, run = the_run(workdir)
    assert run.info.run_id != old.info.run_id
    assert steps(client, run) == list(range(1, 2 * PER_CHUNK + 1))
    assert run.info.status == "FINISHED" and run.data.tags["sparseae.status"] == "complete"
    assert dry_run(workdir, ["config/t.yaml"]) == {}
