"""The workflow follows the Snakemake conventions it claims: snakefmt and snakemake --lint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
