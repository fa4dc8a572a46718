"""The array-API device through the workflow: a chunked run with ``training.device:
array_api_strict`` (the GPU path's code on the CPU) killed with SIGKILL in the middle of a
chunk resumes there, and every checkpoint and the final theta are bit-identical to an
uninterrupted run's. Reuses tests/test_reliability.py's kill helpers."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
import tiny_pipeline as pipeline
from test_reliability import KILL_CONFIG, RECORD_KEYS, TARGET, _kill_mid_iterations
from workflow_helpers import workflow_environment

pytestmark = [pytest.mark.full, pytest.mark.slow]

CONFIG = json.loads(json.dumps(KILL_CONFIG))
CONFIG["training"]["device"] = "array_api_strict"
CONFIG["model"]["hidden_size"] = 25  # the strict library copies every result: keep it small


def test_array_api_device_resumes_bit_identically_after_kill9(tmp_path):
    reference = pipeline.make_workdir(tmp_path / "reference", json.loads(json.dumps(CONFIG)))
    pipeline.run(reference, TARGET)
    workdir = pipeline.make_workdir(tmp_path / "killed", json.loads(json.dumps(CONFIG)))
    process = subprocess.Popen(
        pipeline.command(TARGET),
        cwd=workdir,
        env=workflow_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        killed = _kill_mid_iterations(workdir, process)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode != 0 and killed == 3
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
