"""The code follows the conventions it claims: snakefmt, snakemake --lint and ruff."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.full

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


def test_snakefmt_check_passes():
    result = _run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint_passes():
    # --lint exits 0 even with lints in some versions: also require its all-clear sentence.
    result = _run([str(BIN / "snakemake"), "--lint"])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Congratulations, your workflow is in a good condition!" in output, output


PYTHON_TREES = ["src", "tests", "bench", "workflow/scripts"]


def test_ruff_check_and_format_pass():
    # The Python code follows the project's ruff rules (pyproject.toml), as `make lint` asks.
    check = _run([str(BIN / "ruff"), "check", *PYTHON_TREES])
    assert check.returncode == 0, check.stdout + check.stderr
    formatted = _run([str(BIN / "ruff"), "format", "--check", *PYTHON_TREES])
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
