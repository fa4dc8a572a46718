"""End-to-end: the Snakemake workflow in a temporary folder, on a tiny config.

The workflow (Snakefile, workflow/, config/, profiles/) is copied into a fresh folder and run
with ``snakemake --cores 2`` as a subprocess, as a user would. Checked: every result file
exists with the documented keys and shapes, the local MLflow store (sqlite in that folder)
holds the run with params, one metric point per iteration and the artifacts (read back with
MlflowClient), a failing gradient check stops the pipeline with a message, and a run killed
with SIGKILL in the middle of chunk 2 resumes at chunk 2 without recomputing chunk 1 and ends
with a theta bit-identical to the uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_pipeline import (
    CHUNKS,
    HIDDEN,
    PATCHES,
    PER_CHUNK,
    TINY,
    VISIBLE,
    command,
    descendants,
    load,
    make_workdir,
    run,
    without_chunks,
)
from workflow_helpers import dry_run, workflow_environment

pytestmark = [pytest.mark.full, pytest.mark.slow]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One complete, uninterrupted run of the whole pipeline (with MLflow)."""
    workdir = make_workdir(tmp_path_factory.mktemp("pipeline") / "work")
    result = run(workdir)
    (workdir / "snakemake-output.txt").write_text(result.stdout + result.stderr)
    return workdir


def test_every_output_exists_with_its_keys_and_shapes(finished):
    res = finished / "results" / "natural"
    patches = load(res / "patches.npz")["data"]
    assert patches.shape == (VISIBLE, PATCHES) and patches.dtype == np.float64
    assert patches.min() >= 0.1 - 1e-12 and patches.max() <= 0.9 + 1e-12

    gradcheck = json.loads((res / "gradcheck.json").read_text())
    assert gradcheck["passed"] is True and gradcheck["autoencoder"] < 1e-9
    assert gradcheck["hidden_size"] == 3 and gradcheck["num_examples"] == 5

    n = 2 * HIDDEN * VISIBLE + HIDDEN + VISIBLE
    for k in range(1, CHUNKS + 1):
        chunk = load(res / "chunks" / f"{k}.npz")
        assert chunk["theta"].shape == (n,)
        assert list(chunk["iteration"]) == list(range((k - 1) * PER_CHUNK + 1, k * PER_CHUNK + 1))
        meta = json.loads(str(chunk["meta"][()]))
        # The chunk count is not stored: raising training.chunks extends the same trajectory.
        assert meta["chunk"] == k and "chunks" not in meta
        assert meta["stop"]["reason"] == "budget" and meta["stop"]["iterations"] == PER_CHUNK

    theta = load(res / "theta.npz")
    assert theta["theta"].dtype == np.float64 and theta["theta"].shape == (n,)
    assert np.array_equal(theta["theta"], load(res / "chunks" / f"{CHUNKS}.npz")["theta"])
    record = json.loads(str(theta["config"][()]))
    config = json.loads((res / "config.json").read_text())
    assert record["name"] == "natural" and record["trajectory"]["patches"]["count"] == PATCHES
    assert record["fingerprint"] == config["fingerprint"]

    history = (res / "history.tsv").read_text().splitlines()
    assert history[0].split("\t") == ["iteration", "cost", "grad_norm", "fun_evals", "seconds"]
    rows = [line.split("\t") for line in history[1:]]
    assert [int(r[0]) for r in rows] == list(range(1, CHUNKS * PER_CHUNK + 1))
    costs = np.array([float(r[1]) for r in rows])
    assert costs[-1] < costs[0]

    summary = json.loads((res / "summary.json").read_text())
    total = summary["reconstruction"] + summary["weight_decay"] + summary["sparsity"]
    assert summary["final_cost"] == pytest.approx(total, rel=1e-12)
    assert summary["final_cost"] == pytest.approx(costs[-1], rel=1e-9)
    assert len(summary["rhohat"]) == HIDDEN and summary["iterations"] == CHUNKS * PER_CHUNK
    assert summary["chunk_ends"] == [PER_CHUNK * k for k in range(1, CHUNKS + 1)]
    assert summary["final_chunk"] == CHUNKS and summary["stop"]["reason"] == "budget"
    assert summary["trajectory_key"] == config["fingerprint"]

    from PIL import Image

    with Image.open(res / "filters.png") as image:
        # display_network of 25 8x8 filters is 46x46, scaled up by an integer factor.
        assert image.size[0] == image.size[1] and image.size[0] % 46 == 0
    for name in ("cost_curve.png", "rhohat.png"):
        with Image.open(res / name) as image:
            assert image.size[0] > 100 and image.size[1] > 100

    diagnostics = json.loads((res / "diagnostics.json").read_text())
    for key in (
        "fraction_variance_explained",
        "dead_units",
        "saturated_units",
        "mean_active_units",
        "alignment_top_k",
        "alignment_random",
        "activation_norm_corr",
    ):
        assert key in diagnostics and key in diagnostics["metrics"], key
    assert len(diagnostics["units"]["top_k_indices"]) == HIDDEN
    assert np.allclose(diagnostics["units"]["rhohat"], summary["rhohat"], rtol=1e-9, atol=0)
    with Image.open(res / "units.png") as image:
        assert image.size[1] > HIDDEN * 8 * 4  # one row of 8x8 tiles (scaled by 4) per unit

    logs = finished / "logs" / "natural"
    for rule in (
        "diagnose",
        "write_config",
        "sample_patches",
        "check_gradient",
        "finalize",
        "plot_filters",
        "plot_curves",
        "log_mlflow",
        "train_chunk-1",
        "train_chunk-2",
    ):
        assert (logs / f"{rule}.log").is_file(), rule
    assert not list(res.rglob(".*.tmp-*")), "a temporary file was left behind"


def test_chunk_logs_show_progress_and_console_shows_chunk_k_of_k(finished):
    log = (finished / "logs" / "natural" / "train_chunk-2.log").read_text()
    # "<date> <time> iteration cost grad_norm evals seconds", one line per iteration here.
    progress = re.compile(r"^\S+ \S+\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)\s+([\d.]+)$")
    matches = [progress.match(line) for line in log.splitlines()]
    iterations = [int(m.group(1)) for m in matches if m]
    assert iterations == list(range(PER_CHUNK + 1, 2 * PER_CHUNK + 1))
    console = (finished / "snakemake-output.txt").read_text()
    assert "training chunk 1 of 2" in console and "training chunk 2 of 2" in console
    assert "results/natural/filters.png" in console  # onsuccess says where things are


def test_mlflow_store_holds_the_run(finished, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{finished / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("natural")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run_info = runs[0]
    assert (
        run_info.info.run_id
        == json.loads((finished / "results" / "natural" / "mlflow.json").read_text())["run_id"]
    )
    params = run_info.data.params
    assert any(key.endswith("rho") and value == "0.01" for key, value in params.items()), params
    assert any(key.endswith("hidden_size") and value == "25" for key, value in params.items())
    # The default dtype is logged too (test_pipeline_dtype.py: a float32 run logs float32).
    dtypes = {value for key, value in params.items() if key.endswith("training.dtype")}
    assert dtypes == {"float64"}, params
    history = client.get_metric_history(run_info.info.run_id, "cost")
    assert sorted(m.step for m in history) == list(range(1, CHUNKS * PER_CHUNK + 1))
    expected = np.loadtxt(finished / "results" / "natural" / "history.tsv", skiprows=1)[:, 1]
    logged = np.array([m.value for m in sorted(history, key=lambda m: m.step)])
    assert np.allclose(logged, expected, rtol=1e-12, atol=0)

    names = {a.path for a in client.list_artifacts(run_info.info.run_id)}
    assert {"filters.png", "theta.npz", "config.json", "units.png", "diagnostics.json"} <= names
    diagnostics = json.loads((finished / "results" / "natural" / "diagnostics.json").read_text())
    for key, value in diagnostics["metrics"].items():
        assert run_info.data.metrics[key] == pytest.approx(value, rel=1e-12), key
    local = client.download_artifacts(run_info.info.run_id, "theta.npz", str(tmp_path))
    downloaded = load(Path(local))["theta"]
    assert np.array_equal(downloaded, load(finished / "results" / "natural" / "theta.npz")["theta"])


# Dry runs go through Snakemake's API in this process (workflow_helpers.dry_run): one import
# of Snakemake for the module's dry runs instead of a snakemake process each.


def test_rerun_has_nothing_to_do(finished):
    assert dry_run(finished, ["config/test.yaml"]) == {}


def test_changed_diagnostics_settings_recompute_only_the_diagnostics(finished):
    other = finished / "config" / "diagnostics.yaml"
    other.write_text(yaml.safe_dump({"diagnostics": {"top_k": 4, "dead_fraction": 0.2}}))
    try:
        counts = dry_run(finished, ["config/test.yaml", "config/diagnostics.yaml"])
    finally:
        other.unlink()
    # The diagnostics, and the MLflow logging that reads them; never training or figures.
    assert counts == {"diagnose": 1, "log_mlflow": 1, "all": 1}, counts


def test_failed_gradient_check_stops_the_pipeline(tmp_path):
    # A bound no floating-point gradient can meet: the real check, judged strictly.
    workdir = make_workdir(
        tmp_path / "work", {"gradcheck": {"num_examples": 5, "hidden_size": 3, "bound": 1e-300}}
    )
    result = run(workdir, "results/natural/chunks/1.npz", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "gradient check FAILED" in output and "gradcheck.bound" in output
    assert not (workdir / "results" / "natural" / "chunks" / "1.npz").exists()
    assert not (workdir / "results" / "natural" / "gradcheck.json").exists()


def _wait_for_progress(workdir: Path, process: subprocess.Popen, lines: int) -> None:
    log = workdir / "logs" / "natural" / "train_chunk-2.log"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count("\n") >= lines:
            return
        assert process.poll() is None, "snakemake ended before chunk 2 made progress"
        time.sleep(0.01)
    raise AssertionError("chunk 2 made no progress within 300 s")


@pytest.mark.parametrize("victim", ["snakemake", "job"])
def test_killed_run_resumes_bit_identical(finished, tmp_path, victim):
    """SIGKILL in the middle of chunk 2: of the whole snakemake process group (as a power
    loss or `kill -9` of the session), or of the training job alone (as an OOM kill).

    The run starts from a copy of the finished one without chunk 2: chunk 1, the patches and
    the gradient check are not computed again for each kill."""
    workdir = without_chunks(finished, tmp_path / "work", 2)
    target = "results/natural/theta.npz"
    process = subprocess.Popen(
        command(target),
        cwd=workdir,
        env=workflow_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_progress(workdir, process, lines=3)  # two header lines + one iteration
        if victim == "snakemake":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            jobs = [
                p
                for p in descendants(process.pid)
                if b"train_chunk" in Path(f"/proc/{p}/cmdline").read_bytes()
            ]
            assert jobs, "no training job found under snakemake"
            for pid in jobs:
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    chunks = workdir / "results" / "natural" / "chunks"
    assert (chunks / "1.npz").exists()
    assert not (chunks / "2.npz").exists(), "chunk 2 finished before the kill: test invalid"
    before = (chunks / "1.npz").stat()

    if victim == "snakemake":
        # A SIGKILLed snakemake leaves its lock; the documented first step is --unlock.
        subprocess.run(
            [*command(), "--unlock"],
            cwd=workdir,
            env=workflow_environment(),
            capture_output=True,
            timeout=300,
            check=True,
        )
    result = run(workdir, target)
    output = result.stdout + result.stderr
    assert "training chunk 2 of 2" in output and "training chunk 1 of 2" not in output

    after = (chunks / "1.npz").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    reference = finished / "results" / "natural"
    mine = workdir / "results" / "natural"
    assert np.array_equal(
        load(mine / "patches.npz")["data"], load(reference / "patches.npz")["data"]
    )
    for k in range(1, CHUNKS + 1):
        assert np.array_equal(
            load(chunks / f"{k}.npz")["theta"], load(reference / "chunks" / f"{k}.npz")["theta"]
        )
    final, expected = load(mine / "theta.npz")["theta"], load(reference / "theta.npz")["theta"]
    assert final.tobytes() == expected.tobytes()


def test_another_seed_gives_other_patches_and_theta(finished, tmp_path):
    workdir = make_workdir(tmp_path / "work", {"seed": 2})
    run(workdir, "results/natural/chunks/1.npz")
    mine, reference = workdir / "results" / "natural", finished / "results" / "natural"
    assert not np.array_equal(
        load(mine / "patches.npz")["data"], load(reference / "patches.npz")["data"]
    )
    assert not np.array_equal(
        load(mine / "chunks" / "1.npz")["theta"], load(reference / "chunks" / "1.npz")["theta"]
    )


def test_switching_run_to_a_new_experiment_schedules_all_its_jobs(finished, tmp_path):
    """After one experiment finished, naming another in `run` plans that one's whole chain.

    Regression: an ``ancient()`` tracking-store input made Snakemake plan only ``init_store``
    (whose params changed with `run`) and silently leave every job of the new experiment out.
    """
    workdir = tmp_path / "work"
    shutil.copytree(finished, workdir, symlinks=True)
    other = {"experiments": {"other": TINY["experiments"]["natural"]}, "run": ["other"]}
    (workdir / "config" / "other.yaml").write_text(yaml.safe_dump(other), encoding="utf-8")
    counts = dry_run(workdir, ["config/test.yaml", "config/other.yaml"])
    for rule in ("write_config", "sample_patches", "check_gradient", "finalize", "log_mlflow"):
        assert counts.get(rule) == 1, (rule, counts)
    assert counts.get("train_chunk") == CHUNKS, counts
