"""The array-API device through the workflow: a chunked run with ``training.device:
array_api_strict`` (the GPU path's code on the CPU) killed with SIGKILL in the middle of a
chunk resumes there, and every checkpoint and the final theta are bit-identical to an
uninterrupted run's (tests/test_reliability.py kills the numpy path at more points)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import tiny_pipeline as pipeline
from workflow_helpers import workflow_environment

pytestmark = [pytest.mark.full, pytest.mark.slow]

TARGET = "results/natural/theta.npz"
RECORD_KEYS = ("theta", "iteration", "cost", "grad_norm", "fun_evals")
CONFIG = {
    "patches": {"count": 400},
    "model": {"visible_size": 64, "hidden_size": 25},
    "optimizer": {"maxcor": 5},
    "training": {
        "chunks": 3,
        "iterations_per_chunk": 8,
        "progress_every": 1,
        "device": "array_api_strict",
    },
    "gradcheck": {"num_examples": 5, "hidden_size": 3},
}


def kill_chunk_3_mid_iterations(workdir: Path, process: subprocess.Popen) -> None:
    """SIGKILL every train_chunk process once chunk 3 logged 3 of its 8 iterations."""
    log = workdir / "logs" / "natural" / "train_chunk-3.log"
    deadline = time.monotonic() + 600
    while not (log.exists() and log.read_text().count("\n") >= 2 + 3):  # 2 header lines
        assert process.poll() is None and time.monotonic() < deadline, "chunk 3 made no progress"
        time.sleep(0.01)
    for pid in pipeline.descendants(process.pid):
        with contextlib.suppress(OSError):  # ended meanwhile
            if b"train_chunk" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def test_array_api_device_resumes_bit_identically_after_kill9(tmp_path):
    reference = pipeline.make_workdir(tmp_path / "reference", json.loads(json.dumps(CONFIG)))
    pipeline.run(reference, TARGET)
    # The reference without chunks 2 and 3: chunk 2 is trained again by a run of its own, the
    # patches, the gradient check and chunk 1 are not computed twice.
    workdir = pipeline.without_chunks(reference, tmp_path / "killed", 2)
    env, quiet = (
        workflow_environment(),
        {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL},
    )
    with subprocess.Popen(
        pipeline.command(TARGET), cwd=workdir, env=env, start_new_session=True, **quiet
    ) as process:  # leaving the block waits for snakemake to end
        try:
            kill_chunk_3_mid_iterations(workdir, process)
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert process.returncode != 0
    chunks = workdir / "results" / "natural" / "chunks"
    assert not (chunks / "3.npz").exists()
    output = pipeline.run(workdir, TARGET)
    assert "training chunk 3 of 3" in output.stdout + output.stderr
    assert "training chunk 2 of 3" not in output.stdout + output.stderr
    for k in (1, 2, 3):
        mine = pipeline.load(chunks / f"{k}.npz")
        theirs = pipeline.load(reference / "results" / "natural" / "chunks" / f"{k}.npz")
        for key in RECORD_KEYS:
            assert mine[key].tobytes() == theirs[key].tobytes(), (k, key)
        assert json.loads(str(mine["meta"][()]))["trajectory"]["training"]["device"] == (
            "array_api_strict"
        )
    final, expected = (pipeline.load(folder / TARGET)["theta"] for folder in (workdir, reference))
    assert final.tobytes() == expected.tobytes()
