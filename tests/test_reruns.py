"""Reruns are correctness: after a finished run, `snakemake -n` plans exactly what a change needs.

One finished workflow run (two tiny experiments: ``natural``, and ``photos`` on a folder of
PNG files) is dry-run with one config change at a time, and the
jobs Snakemake would run are compared with what the change can affect
(:data:`sparseae.config.RECOMPUTES`): a change of progress output, threads or the gradient
check's bound retrains nothing; a change of ρ, λ, the seed, the patch count or the chunk
length retrains every chunk; raising ``training.chunks`` trains only the new chunk; a
``diagnostics`` setting reruns only the diagnostics (and their MLflow logging). Data a
Snakemake rule cannot see as a file (an image folder's contents) and foreign result files
are covered too.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from workflow_helpers import BIN, copy_workflow, dry_run, workflow_environment

pytestmark = [pytest.mark.full, pytest.mark.slow]

SNAKEMAKE = BIN / "snakemake"
CHUNKS = 2
SMALL = {
    "patches": {"count": 500},
    "model": {"hidden_size": 5},
    "training": {"chunks": CHUNKS, "iterations_per_chunk": 10, "progress_every": 5},
    "gradcheck": {"num_examples": 5, "hidden_size": 3},
}
CONFIG = {
    "run": ["natural", "photos"],
    "experiments": {
        "natural": copy.deepcopy(SMALL),
        "photos": {
            **copy.deepcopy(SMALL),
            "dataset": {"source": "image-folder", "path": "photos", "whiten": False},
        },
    },
}


def write_photos(folder: Path, count: int = 3, seed: int = 0) -> None:
    """Greyscale 64x64 PNG files of smoothed noise (enough structure to train on)."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        noise = rng.random((64, 64))
        smooth = (noise + np.roll(noise, 1, 0) + np.roll(noise, 1, 1)) / 3
        Image.fromarray((smooth * 255).astype(np.uint8), mode="L").save(folder / f"{i}.png")


def write_config(workdir: Path, config: dict | None = None) -> None:
    """CONFIG (or ``config``) as the workflow's config/test.yaml."""
    (workdir / "config" / "test.yaml").write_text(
        yaml.safe_dump(config or CONFIG, sort_keys=False), encoding="utf-8"
    )


def snakemake(workdir: Path, *args: str, config: dict | None = None):
    """Run snakemake in ``workdir`` with CONFIG (or ``config``) as config/test.yaml.

    Keys are written in the dicts' own order (not sorted), as a user's file would be.
    """
    write_config(workdir, config)
    return subprocess.run(
        [str(SNAKEMAKE), *args, "--cores", "2", "--configfile", "config/test.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
        env=workflow_environment(),
    )


def planned_jobs(workdir: Path, config: dict | None = None) -> dict[str, int]:
    """{rule: count} of the jobs `snakemake -n` would run ({} when nothing is to be done),
    with CONFIG (or ``config``) as config/test.yaml, through Snakemake's API in this process
    (one import of Snakemake for all of this module's dry runs)."""
    write_config(workdir, config)
    return dry_run(workdir, ["config/test.yaml"])


def changed(experiment: str, path: str, value) -> dict:
    config = copy.deepcopy(CONFIG)
    node = config["experiments"][experiment]
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return config


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """{path: (size, mtime_ns)} of every file under ``folder`` (the .snakemake folder apart)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".snakemake" not in p.parts
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("reruns") / "work")
    write_photos(workdir / "photos")
    result = snakemake(workdir)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return workdir


def test_a_finished_run_has_nothing_to_do(finished):
    assert planned_jobs(finished) == {}


def reversed_keys(value):
    if isinstance(value, dict):
        return {key: reversed_keys(value[key]) for key in reversed(list(value))}
    return value


def test_keys_written_in_another_order_are_no_change(finished):
    assert planned_jobs(finished, reversed_keys(copy.deepcopy(CONFIG))) == {}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("training.progress_every", 1),
        ("resources.train.threads", 1),
        ("gradcheck.bound", 2e-9),
        ("gradcheck.num_examples", 4),
        ("description", "the same experiment, described anew"),
    ],
)
def test_changes_outside_the_trajectory_retrain_nothing(finished, path, value):
    jobs = planned_jobs(finished, changed("natural", path, value))
    assert "train_chunk" not in jobs and "sample_patches" not in jobs, jobs
    assert "finalize" not in jobs and "diagnose" not in jobs, jobs
    if path.startswith("gradcheck"):
        assert jobs.get("check_gradient") == 1, jobs


@pytest.mark.parametrize(
    ("path", "value", "resample"),
    [
        ("model.rho", 0.02, False),
        ("model.lambda_", 2e-4, False),
        ("seed", 2, True),
        ("patches.count", 499, True),
        ("training.iterations_per_chunk", 9, False),
        ("optimizer.method", "scipy-lbfgsb", False),
        ("training.dtype", "float32", True),  # the patches are stored in it
    ],
)
def test_trajectory_changes_retrain_every_chunk(finished, path, value, resample):
    jobs = planned_jobs(finished, changed("natural", path, value))
    assert jobs.get("train_chunk") == CHUNKS, jobs
    assert jobs.get("finalize") == 1 and jobs.get("diagnose") == 1, jobs
    # Patches are resampled only when the data settings changed.
    assert ("sample_patches" in jobs) is resample, jobs


def test_raising_chunks_trains_only_the_new_chunk_and_lowering_trains_none(finished):
    more = planned_jobs(finished, changed("natural", "training.chunks", CHUNKS + 1))
    assert more.get("train_chunk") == 1 and more.get("finalize") == 1, more
    fewer = planned_jobs(finished, changed("natural", "training.chunks", CHUNKS - 1))
    assert "train_chunk" not in fewer and fewer.get("finalize") == 1, fewer
    # Another final theta: its diagnostics follow.
    assert more.get("diagnose") == 1 and fewer.get("diagnose") == 1, (more, fewer)


@pytest.mark.parametrize(
    "settings",
    [{"top_k": 4}, {"random_examples": 100}, {"dead_fraction": 0.2}, {"saturated_threshold": 0.8}],
)
def test_a_diagnostics_setting_reruns_only_the_diagnostics(finished, settings):
    """The top-level ``diagnostics`` section: every experiment's diagnose and its logging."""
    jobs = planned_jobs(finished, {**copy.deepcopy(CONFIG), "diagnostics": settings})
    experiments = len(CONFIG["run"])
    assert jobs == {"diagnose": experiments, "log_mlflow": experiments, "all": 1}, jobs


def test_diagnostics_defaults_written_out_are_no_change(finished):
    """The same values as the defaults, written out: nothing to do (one dry run, not one per
    setting above)."""
    defaults = {"top_k": 8, "random_examples": 1000, "dead_fraction": 0.1}
    assert planned_jobs(finished, {**copy.deepcopy(CONFIG), "diagnostics": defaults}) == {}


def test_a_changed_or_added_image_in_the_folder_reruns_its_experiment(finished):
    photos = finished / "photos"
    saved = {p.name: p.read_bytes() for p in photos.iterdir()}
    try:
        # Same name, same size and an older mtime: only the contents tell.
        first = photos / "0.png"
        stat = first.stat()
        write_photos(photos, count=1, seed=99)
        import os

        os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**9))
        jobs = planned_jobs(finished)
        assert jobs.get("sample_patches") == 1 and jobs.get("train_chunk") == CHUNKS, jobs
        (photos / "0.png").write_bytes(saved["0.png"])
        assert planned_jobs(finished) == {}
        shutil.copy(photos / "1.png", photos / "extra.png")
        jobs = planned_jobs(finished)
        assert jobs.get("sample_patches") == 1, jobs
    finally:
        for p in photos.iterdir():
            if p.name not in saved:
                p.unlink()
        for name, data in saved.items():
            (photos / name).write_bytes(data)
    assert planned_jobs(finished) == {}


def test_a_foreign_last_checkpoint_is_refused_naming_the_file(finished, tmp_path):
    # The other experiment's checkpoint has natural's shapes (8x8 patches, 5 hidden units):
    # only its records tell that it belongs to another trajectory.
    mine = finished / "results" / "natural" / "chunks" / f"{CHUNKS}.npz"
    theirs = finished / "results" / "photos" / "chunks" / f"{CHUNKS}.npz"
    saved = tmp_path / "saved.npz"
    shutil.copy2(mine, saved)
    theta_before = (finished / "results" / "natural" / "theta.npz").read_bytes()
    shutil.copy(theirs, mine)
    try:
        result = snakemake(finished)
        assert result.returncode != 0
        log = (finished / "logs" / "natural" / "finalize.log").read_text()
        assert str(Path("results/natural/chunks") / f"{CHUNKS}.npz") in log
        assert "delete it" in log and "Traceback" not in log
        assert "Traceback" not in result.stderr
        # Snakemake removes a failed job's outputs: no theta.npz from the foreign chunk.
        theta = finished / "results" / "natural" / "theta.npz"
        assert not theta.exists() or theta.read_bytes() == theta_before
    finally:
        shutil.copy2(saved, mine)
    # Restored: the next run refinalizes from the rightful chunk and logs again.
    result = snakemake(finished)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((finished / "results" / "natural" / "summary.json").read_text())
    record = json.loads((finished / "results" / "natural" / "config.json").read_text())
    assert summary["trajectory_key"] == record["fingerprint"]
