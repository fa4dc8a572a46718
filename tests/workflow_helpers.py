"""Helpers for tests that run the real workflow, or the project's commands, in subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The venv's bin folder: snakemake, and the python the rule scripts must run with.
BIN = Path(sys.executable).parent
WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "profiles")


def copy_workflow(folder: Path) -> Path:
    """Copy the workflow (Snakefile, workflow/, config/, profiles/) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, folder / part)
        else:
            shutil.copy2(source, folder / part)
    return folder


def workflow_environment(**extra: str) -> dict[str, str]:
    """This environment with the venv first on PATH and no MLFLOW_TRACKING_URI, plus ``extra``.

    A tracking URI set by the developer's shell must not redirect a test's runs.
    """
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def tracking_command(uri: str, command: str, *args: str) -> list[str]:
    """``python -m sparseae COMMAND --tracking-uri URI ARGS…`` with this interpreter."""
    return [sys.executable, "-m", "sparseae", command, "--tracking-uri", uri, *args]


def run_tracking(uri: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run :func:`tracking_command`; output captured as text, exit status not checked."""
    return subprocess.run(
        tracking_command(uri, *args), capture_output=True, text=True, timeout=timeout, check=False
    )
