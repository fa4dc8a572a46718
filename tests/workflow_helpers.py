"""Helpers for tests that run the real workflow, or the project's commands, in subprocesses."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

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


#: Iterations per chunk of the small ``natural`` experiment (:func:`small_config`).
SMALL_PER_CHUNK = 10
#: What a project's MLflow store consists of (a copied project must not use the original's).
STORE_PARTS = ("mlflow.db", "mlartifacts", "results/_tracking")


def small_config(chunks: int = 2, **tracking: str) -> dict:
    """The small ``natural`` experiment of the MLflow workflow tests (500 patches, chunks of
    :data:`SMALL_PER_CHUNK` iterations), written as ``config/t.yaml``."""
    natural = {
        "patches": {"count": 500},
        "training": {"chunks": chunks, "iterations_per_chunk": SMALL_PER_CHUNK},
        "gradcheck": {"num_examples": 5, "hidden_size": 3},
    }
    return {"run": ["natural"], "experiments": {"natural": natural}, "tracking": tracking}


def run_small_project(folder: Path) -> Path:
    """Run the workflow on :func:`small_config` in the new ``folder`` (asserts success)."""
    copy_workflow(folder)
    (folder / "config" / "t.yaml").write_text(yaml.safe_dump(small_config()), encoding="utf-8")
    command = [str(BIN / "snakemake"), "--cores", "2", "--configfile", "config/t.yaml"]
    env = workflow_environment()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    return folder


def copy_finished(source: Path, folder: Path, **tracking: str) -> Path:
    """Copy the finished project ``source`` (conftest's ``small_project``) to ``folder``, with
    ``tracking`` as its config's tracking section and without its MLflow store.

    The result files are reused as they are (copy2 keeps the mtimes Snakemake compares), so the
    next ``snakemake`` there only makes a store and logs into it: a store refuses a copied
    project, and the store URI (an absolute path) is a param of those two jobs only.
    """
    shutil.copytree(source, folder, symlinks=True)
    for part in STORE_PARTS:
        path = folder / part
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    config = yaml.safe_dump(small_config(**tracking))
    (folder / "config" / "t.yaml").write_text(config, encoding="utf-8")
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


def run_tracking(
    uri: str, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run :func:`tracking_command`; output captured as text, exit status not checked."""
    command = tracking_command(uri, *args)
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


class _RunInfo(logging.Handler):
    """Keeps the job counts of Snakemake's "Job stats" record (its RUN_INFO log event)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.stats: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        stats = getattr(record, "stats", None)
        if isinstance(stats, dict):
            self.stats = dict(stats)


def dry_run(
    workdir: Path, configfiles: list[str], *targets: str, forceall: bool = False
) -> dict[str, int]:
    """{rule: count} of the jobs ``snakemake -n TARGETS --configfile CONFIGFILES`` would run in
    ``workdir`` ({} when nothing is to be done), through Snakemake's API in this process;
    ``forceall`` as ``--forceall``.

    Dry runs of the same workflow repeated as subprocesses spend most of their time importing
    Snakemake, the package and their dependencies; in-process that is paid once. A refused
    config raises Snakemake's error here (the CLI would print it and exit 1).
    """
    from snakemake.api import SnakemakeApi
    from snakemake.logging import logger
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        ResourceSettings,
    )

    capture = _RunInfo()
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=2),
            config_settings=ConfigSettings(configfiles=[Path(workdir) / f for f in configfiles]),
            snakefile=Path(workdir) / "Snakefile",
            workdir=Path(workdir),
        )
        dag = workflow.dag(dag_settings=DAGSettings(targets=set(targets), forceall=forceall))
        logger.addHandler(capture)
        try:
            dag.execute_workflow(executor="dryrun")
        finally:
            logger.removeHandler(capture)
    stats = dict(capture.stats)
    stats.pop("total", None)
    return stats
