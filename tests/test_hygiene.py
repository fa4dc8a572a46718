"""Security hygiene, checked on the repository's own files so that a change that breaks a
rule fails here.

* ruff's security rules (configured in pyproject.toml, run by tests/test_lint.py on every
  Python file): no pickle-family imports or loads (S301, S302, S403), no unsafe YAML loads
  (S506), no ``shell=True`` (S602, S604, S605), no eval/exec (S102, S307), no archive
  extraction that can escape its folder (S202). Shown here to fire on a bad snippet.
* What no ruff rule covers: every ``np.load`` passes ``allow_pickle=False`` and nothing passes
  ``allow_pickle=True``; workflow rules run thin Python scripts (``script:``), and any
  ``shell:`` rule would have to quote every wildcard, param, config, input, output and log
  value (``{...:q}``); the Makefile's MLflow UI / server commands bind to 127.0.0.1.

Each scanner is also run on a small bad snippet, so the checks are shown to be able to fail.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

REPO = Path(__file__).resolve().parents[1]
PYTHON_FOLDERS = ("src", "workflow", "tests", "bench")
WORKFLOW_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
RUFF = Path(sys.executable).parent / "ruff"


def python_files() -> list[Path]:
    files = []
    for folder in PYTHON_FOLDERS:
        files += sorted((REPO / folder).rglob("*.py"))
    return [f for f in files if ".venv" not in f.parts]


def scan_allow_pickle(source: str, where: str) -> list[str]:
    """``np.load`` without ``allow_pickle=False``, or any ``allow_pickle`` that is not False."""
    problems = []
    for node in ast.walk(ast.parse(source, filename=where)):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        allow = next((k.value for k in node.keywords if k.arg == "allow_pickle"), None)
        is_false = isinstance(allow, ast.Constant) and allow.value is False
        if allow is not None and not is_false:
            problems.append(f"{where}:{node.lineno}: {name}(allow_pickle=...) must be False")
        elif name in ("np.load", "numpy.load") and not is_false:
            problems.append(f"{where}:{node.lineno}: {name} without allow_pickle=False")
    return problems


QUOTABLE = re.compile(r"\{(?!\{)(wildcards|params|config|input|output|log)\b([^{}]*)\}")


def scan_workflow(text: str, where: str) -> list[str]:
    """Unquoted values in ``shell:`` commands, and pickle or unsafe YAML in workflow code."""
    problems = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if re.search(r"\bimport\s+(c?pickle|dill|cloudpickle|joblib|shelve)\b", stripped):
            problems.append(f"{where}:{number}: pickle import (no pickle anywhere)")
        if re.search(r"allow_pickle\s*=\s*True|yaml\.(unsafe_|full_)?load\(", stripped):
            if "safe" not in stripped.lower():
                problems.append(f"{where}:{number}: unsafe load: {stripped}")
        match = re.match(r"(\s*)shell:\s*(.*)$", line)
        if not match:
            continue
        indent, command = len(match.group(1)), [match.group(2)]
        for follow in lines[number:]:
            if follow.strip() and len(follow) - len(follow.lstrip()) <= indent:
                break
            command.append(follow)
        for placeholder in QUOTABLE.finditer("\n".join(command)):
            if not placeholder.group(2).endswith(":q"):
                problems.append(
                    f"{where}:{number}: shell command uses {placeholder.group(0)} unquoted "
                    f"(write {{{placeholder.group(1)}{placeholder.group(2)}:q}})"
                )
    return problems


# ------------------------------------------------------------------ the scanners can fail

BAD_PYTHON = """
import pickle
import dill
import numpy as np
import yaml
import subprocess, tarfile
a = np.load("x.npz")
b = np.load("x.npz", allow_pickle=True)
np.save("y.npy", a, allow_pickle=True)
c = yaml.load(open("c.yaml"))
e = pickle.loads(data)
subprocess.run("ls " + name, shell=True)
tarfile.open("a.tar").extractall("dest")
f = eval(text)
"""

GOOD_PYTHON = """
import numpy as np
import yaml
import subprocess, tarfile
a = np.load("x.npz", allow_pickle=False)
c = yaml.safe_load(open("c.yaml"))
d = yaml.load(open("c.yaml"), Loader=yaml.SafeLoader)
subprocess.run(["ls", name], shell=False)
tarfile.open("a.tar").extractall("dest", filter="data")
"""

BAD_RULE = """
rule convert:
    input:
        "results/{experiment}/theta.npz",
    output:
        "results/{experiment}/theta.mat",
    shell:
        "convert {input} {output:q} --name {wildcards.experiment} "
        "--scale {params.scale:q} --threads {threads}"


rule other:
    script:
        "../scripts/other.py"
"""


def ruff_security_codes(source: str, folder: Path) -> list[str]:
    """The rule codes ruff, with the project's configuration, reports for ``source``."""
    snippet = folder / "snippet.py"
    snippet.write_text(source, encoding="utf-8")
    result = subprocess.run(
        [str(RUFF), "check", "--config", str(REPO / "pyproject.toml"), "--no-cache"]
        + ["--output-format", "json", str(snippet)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return [d["code"] for d in json.loads(result.stdout) if d["code"].startswith("S")]


def test_ruff_security_rules_fire_on_every_kind_of_violation(tmp_path):
    codes = ruff_security_codes(BAD_PYTHON, tmp_path)
    for expected in ("S403", "S506", "S301", "S602", "S202", "S307"):
        assert expected in codes, (expected, codes)
    assert ruff_security_codes(GOOD_PYTHON, tmp_path) == []


def test_allow_pickle_scanner_finds_every_violation():
    problems = "\n".join(scan_allow_pickle(BAD_PYTHON, "bad.py"))
    for expected in (
        "bad.py:7: np.load without allow_pickle=False",
        "bad.py:8: np.load(allow_pickle=...) must be False",
        "bad.py:9: np.save(allow_pickle=...) must be False",
    ):
        assert expected in problems, (expected, problems)
    assert scan_allow_pickle(GOOD_PYTHON, "good.py") == []


def test_workflow_scanner_finds_unquoted_shell_values():
    problems = scan_workflow(BAD_RULE, "bad.smk")
    assert len(problems) == 2, problems
    assert "{input} unquoted" in problems[0] and "{wildcards.experiment} unquoted" in problems[1]


# ------------------------------------------------------------------ the repository


def test_every_np_load_refuses_pickles():
    files = python_files()
    assert len(files) > 30, "the scan found too few files: wrong folder?"
    problems = []
    for path in files:
        if path.name == "test_hygiene.py":
            continue  # holds the bad examples above, as strings
        text = path.read_text(encoding="utf-8")
        problems += scan_allow_pickle(text, str(path.relative_to(REPO)))
    assert problems == [], "\n".join(problems)


def test_workflow_rules_are_scripts_and_quote_any_shell_value():
    problems, scripts = [], 0
    for path in WORKFLOW_FILES:
        text = path.read_text(encoding="utf-8")
        problems += scan_workflow(text, str(path.relative_to(REPO)))
        for match in re.finditer(r"^\s+script:\s*\n\s+\"([^\"]+)\"", text, re.M):
            scripts += 1
            assert (path.parent / match.group(1)).is_file(), (path, match.group(1))
    assert problems == [], "\n".join(problems)
    assert scripts >= 10  # the rules run thin Python scripts, not shell commands


def _make_targets_running(text: str, pattern: str) -> list[str]:
    """Makefile targets whose recipe contains ``pattern``."""
    targets, current = [], None
    for line in text.splitlines():
        header = re.match(r"^([A-Za-z0-9_.-]+):(?!=)", line)
        if header:
            current = header.group(1)
        elif line.startswith("\t") and current and re.search(pattern, line):
            targets.append(current)
    return sorted(set(targets))


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_mlflow_commands_bind_to_loopback():
    makefile = REPO / "Makefile"
    text = makefile.read_text(encoding="utf-8")
    targets = _make_targets_running(text, r"mlflow\S*\s+(ui|server)\b")
    assert targets, "no Makefile target runs the MLflow UI or server"
    assert "0.0.0.0" not in text
    installed = REPO / ".venv" / "bin" / ".installed"
    for target in targets:
        # -n prints the commands with variables expanded; -o: never rebuild the venv here.
        printed = subprocess.run(
            ["make", "-n", "-C", str(REPO), "-o", str(installed), "-o", ".venv/bin/.installed"]
            + [target],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin"},
            check=True,
        ).stdout.replace("\\\n", " ")
        commands = [c for c in printed.splitlines() if re.search(r"mlflow\s+(ui|server)", c)]
        assert commands, (target, printed)
        for command in commands:
            hosts = re.findall(r"(?:--host|-h)[ =](\S+)", command)
            assert hosts == ["127.0.0.1"], (target, command)
