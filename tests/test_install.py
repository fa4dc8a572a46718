"""A non-editable install (`pip install .` into a fresh venv) validates configs and runs.

Everything the package reads at run time (the config schema) must ship inside it: the test
builds the package from a clean copy of the sources, installs it into a new virtual
environment (dependencies pinned by constraints.txt, from uv's or pip's cache where it has them),
then runs a tiny experiment from a copy of the workflow with only that environment on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO, copy_workflow

pytestmark = [pytest.mark.full, pytest.mark.slow]


def run(command, cwd, env=None, timeout=1200):
    result = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with sparseae installed from a clean copy of the sources (not editable)."""
    base = tmp_path_factory.mktemp("install")
    sources = base / "sources"
    sources.mkdir()
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy2(REPO / name, sources / name)
    shutil.copytree(REPO / "src" / "sparseae", sources / "src" / "sparseae")
    venv = base / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=base)
    python = venv / "bin" / "python"
    # uv, as `make venv` installs: its cache holds the pinned wheels `make venv` just installed,
    # so every dependency comes from there (~10 s instead of pip's ~80 s); pip where uv is not.
    uv = Path(sys.executable).parent / "uv"
    if uv.is_file():
        install = [uv, "pip", "install", "--python", python, "--quiet", "-c", "constraints.txt"]
    else:
        install = [python, "-m", "pip", "install", "--quiet", "-c", "constraints.txt"]
    # Not editable (no -e): the package is built from the sources and copied into the venv.
    run([*install, "."], cwd=sources)
    shutil.rmtree(sources)  # nothing may be read from the sources after installation
    return venv


def test_the_installed_package_validates_configs_from_its_own_schema(installed, tmp_path):
    code = (
        "import sparseae, sparseae.config as c; "
        "print(sparseae.__file__); "
        "config = {'run': ['natural'], 'experiments': {'natural': {}}}; "
        "print(c.resolve_config(config)['experiments']['natural']['model']['rho'])"
    )
    result = run([installed / "bin" / "python", "-c", code], cwd=tmp_path)
    location, rho = result.stdout.split()
    assert Path(location).is_relative_to(installed) and float(rho) == 0.01


def test_the_workflow_runs_a_tiny_experiment_with_the_installed_package(installed, tmp_path):
    workdir = copy_workflow(tmp_path / "work")
    tiny = {
        "experiments": {
            "natural": {
                "patches": {"count": 400},
                "model": {"hidden_size": 4},
                "training": {"chunks": 1, "iterations_per_chunk": 5},
                "gradcheck": {"num_examples": 4, "hidden_size": 2},
            }
        }
    }
    (workdir / "config" / "tiny.yaml").write_text(yaml.safe_dump(tiny), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PYTHONPATH")}
    env["PATH"] = f"{installed / 'bin'}{os.pathsep}/usr/bin:/bin"
    run(
        [installed / "bin" / "snakemake", "--cores", "2", "--configfile", "config/tiny.yaml"],
        cwd=workdir,
        env=env,
    )
    assert (workdir / "results" / "natural" / "theta.npz").is_file()
    assert (workdir / "results" / "natural" / "mlflow.json").is_file()
