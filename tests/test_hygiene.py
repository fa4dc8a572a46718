"""Issue 6, security hygiene, checked on the repository's own files so that a change that
breaks a rule fails here.

* No pickle anywhere: no pickle-family imports, every ``np.load`` passes
  ``allow_pickle=False``, nothing passes ``allow_pickle=True``, YAML is read with safe loaders.
* No ``subprocess`` call with ``shell=True`` in the package or the workflow scripts.
* Archive extraction cannot escape its folder: an ``extractall`` / ``extract`` call must pass
  ``filter="data"`` (Python's safe extraction filter).
* The Makefile's MLflow UI / server commands bind to 127.0.0.1 (checked on the commands
  ``make -n`` would run).
* Workflow rules run thin Python scripts (``script:``); any ``shell:`` rule would have to quote
  every wildcard, param, config, input, output and log value (``{...:q}``).

Each scanner is also run on a small bad snippet, so the checks are shown to be able to fail.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYTHON_FOLDERS = ("src", "workflow", "tests", "bench")
WORKFLOW_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]

PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader"}
UNSAFE_CALLS = {
    ("yaml", "unsafe_load"),
    ("yaml", "full_load"),
    ("yaml", "unsafe_load_all"),
    ("yaml", "full_load_all"),
    ("pd", "read_pickle"),
    ("pandas", "read_pickle"),
    ("torch", "load"),
}


def python_files() -> list[Path]:
    files = []
    for folder in PYTHON_FOLDERS:
        files += sorted((REPO / folder).rglob("*.py"))
    return [f for f in files if ".venv" not in f.parts]


def _dotted(node: ast.AST) -> str:
    """``np.load`` -> "np.load"; "" for anything that is not a plain dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def _is_constant(node, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def scan_python(source: str, where: str) -> list[str]:
    """Every hygiene violation in one Python source, as ``where:line: problem``."""
    problems = []
    tree = ast.parse(source, filename=where)
    for node in ast.walk(tree):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PICKLE_MODULES:
                    problems.append(f"{line}: imports {alias.name} (no pickle anywhere)")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in PICKLE_MODULES:
                problems.append(f"{line}: imports from {node.module} (no pickle anywhere)")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            parts = tuple(name.rsplit(".", 1)) if "." in name else ("", name)
            allow = _keyword(node, "allow_pickle")
            if allow is not None and not _is_constant(allow, False):
                problems.append(f"{line}: {name}(allow_pickle=...) must be False")
            if name in ("np.load", "numpy.load") and not _is_constant(allow, False):
                problems.append(f"{line}: {name} without allow_pickle=False")
            if parts in UNSAFE_CALLS:
                problems.append(f"{line}: {name} can build arbitrary objects")
            if name in ("yaml.load", "yaml.load_all"):
                loader = _keyword(node, "Loader")
                if loader is None and len(node.args) > 1:
                    loader = node.args[1]
                if loader is None or _dotted(loader).rsplit(".", 1)[-1] not in SAFE_YAML_LOADERS:
                    problems.append(f"{line}: {name} without SafeLoader (use yaml.safe_load)")
            shell = _keyword(node, "shell")
            if shell is not None and not _is_constant(shell, False):
                problems.append(f"{line}: {name}(shell=True): pass an argument list instead")
            method = node.func.attr if isinstance(node.func, ast.Attribute) else name
            if method in ("extractall", "extract", "unpack_archive"):
                filt = _keyword(node, "filter")
                if not (isinstance(filt, ast.Constant) and filt.value == "data"):
                    problems.append(
                        f"{line}: {method} without filter='data' can write outside its folder"
                    )
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
from joblib import load
import numpy as np
import yaml
import subprocess, tarfile
a = np.load("x.npz")
b = np.load("x.npz", allow_pickle=True)
np.save("y.npy", a, allow_pickle=True)
c = yaml.load(open("c.yaml"))
d = yaml.load(open("c.yaml"), Loader=yaml.FullLoader)
e = yaml.full_load(open("c.yaml"))
subprocess.run("ls " + name, shell=True)
tarfile.open("a.tar").extractall("dest")
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


def test_python_scanner_finds_every_kind_of_violation():
    problems = scan_python(BAD_PYTHON, "bad.py")
    text = "\n".join(problems)
    for expected in (
        "bad.py:2: imports pickle",
        "bad.py:3: imports from joblib",
        "bad.py:7: np.load without allow_pickle=False",
        "bad.py:8: np.load(allow_pickle=...) must be False",
        "bad.py:9: np.save(allow_pickle=...) must be False",
        "bad.py:10: yaml.load without SafeLoader",
        "bad.py:11: yaml.load without SafeLoader",
        "bad.py:12: yaml.full_load can build arbitrary objects",
        "bad.py:13: subprocess.run(shell=True)",
        "bad.py:14: extractall without filter='data'",
    ):
        assert expected in text, (expected, problems)
    assert scan_python(GOOD_PYTHON, "good.py") == []


def test_workflow_scanner_finds_unquoted_shell_values():
    problems = scan_workflow(BAD_RULE, "bad.smk")
    assert len(problems) == 2, problems
    assert "{input} unquoted" in problems[0] and "{wildcards.experiment} unquoted" in problems[1]


# ------------------------------------------------------------------ the repository


def test_no_pickle_unsafe_yaml_shell_or_archive_escape_in_python_code():
    files = python_files()
    assert len(files) > 30, "the scan found too few files: wrong folder?"
    problems = []
    for path in files:
        if path.name == "test_hygiene.py":
            continue  # holds the bad examples above, as strings
        problems += scan_python(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
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
