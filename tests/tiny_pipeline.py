"""The tiny natural-image experiment the end-to-end tests run, and how they run it.

The workflow is copied into a fresh folder and run with ``snakemake --cores 2`` as a
subprocess, as a user would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import yaml
from workflow_helpers import BIN, copy_workflow, workflow_environment

SNAKEMAKE = BIN / "snakemake"

PATCHES, CHUNKS, PER_CHUNK, HIDDEN, VISIBLE = 2000, 2, 40, 25, 64
TINY = {
    "experiments": {
        "natural": {
            "patches": {"count": PATCHES},
            "training": {"chunks": CHUNKS, "iterations_per_chunk": PER_CHUNK, "progress_every": 1},
            "gradcheck": {"num_examples": 5, "hidden_size": 3},
        }
    }
}


# The convolution-and-pooling experiment (tests/test_cnn*.py): 8x8 features of the sample
# photos convolved over t10k digits, 5 features in pooled chunks of 2 + 2 + 1.
CNN_HIDDEN = 5
TINY_CNN = {
    "run": ["tiny"],
    "experiments": {
        "tiny": {
            "dataset": {"source": "sample-photos"},
            "patches": {"size": 8, "count": 400, "normalize": False},
            "model": {"visible_size": 64, "hidden_size": CNN_HIDDEN, "rho": 0.05},
            "training": {"chunks": 1, "iterations_per_chunk": 5},
            "gradcheck": {"num_examples": 5, "hidden_size": 3},
            "cnn": {
                "images": {"train": {"start": 0, "stop": 60}, "test": {"start": 60, "stop": 100}},
                "pool_size": 7,
                "features_per_chunk": 2,
                "softmax": {"max_iter": 20},
            },
        }
    },
}


def make_workdir(folder: Path, extra: dict | None = None) -> Path:
    """Copy the workflow into ``folder`` and write config/test.yaml (TINY updated by extra)."""
    copy_workflow(folder)
    config = json.loads(json.dumps(TINY))
    if extra:
        config["experiments"]["natural"].update(extra)
    (folder / "config" / "test.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return folder


def command(*targets: str) -> list[str]:
    # Targets first: --configfile takes several values and would swallow them.
    return [str(SNAKEMAKE), *targets, "--cores", "2", "--configfile", "config/test.yaml"]


def run(workdir: Path, *targets: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command(*targets),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
        env=workflow_environment(),
    )
    if check:
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def without_chunks(finished: Path, folder: Path, first: int) -> Path:
    """A copy of the ``finished`` run of ``natural`` in ``folder`` without chunks ``first``…
    (nor their logs) and finalize's outputs: its next run trains from chunk ``first`` on, as
    if the earlier ones were just made, and only that run can make the final theta and history.

    Tests that kill training reuse the earlier chunks, the patches and the gradient check
    instead of computing them again (copy2 keeps the mtimes Snakemake compares).
    """
    shutil.copytree(finished, folder, symlinks=True)
    res = folder / "results" / "natural"
    for chunk in res.glob("chunks/*.npz"):
        if int(chunk.stem) >= first:
            chunk.unlink()
            (folder / "logs" / "natural" / f"train_chunk-{chunk.stem}.log").unlink()
    for name in ("theta.npz", "history.tsv", "summary.json"):
        (res / name).unlink()
    return folder


def load(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def descendants(pid: int) -> list[int]:
    """Processes whose parent chain reaches ``pid`` (from /proc; Linux)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        children = [p for p, parent in parents.items() if parent == current]
        found += children
        frontier += children
    return found
