"""Every shell command shown in README.md and docs/*.md runs without error.

What counts as a command shown:

- every line of a fenced block labelled ``bash``, ``sh`` or ``shell`` (``\\`` continuations
  joined; a block runs as one script, so an ``export`` reaches the lines after it), and of an
  unlabelled block whose lines all start with a command (``.venv/bin/``, ``snakemake``,
  ``make``, ``sparseae``);
- every inline code span that starts with such a command *and has an argument*
  (``snakemake --cores 2`` is a command; a bare ``snakemake`` names the tool), unless it is a
  usage synopsis with placeholders (``sparseae fetch SOURCE [--dest DIR]``).

Commands run in a copy of the workflow whose experiments are shrunk to seconds (same names and
sweeps), after one real run of the default target, so ``snakemake --report`` has results to
report. Commands that would train run as dry runs: ``snakemake …`` gets ``-n`` (except
``--report``, ``--lint``, ``--unlock``), ``make run …`` gets ``ARGS=-n``, other ``make``
targets run as ``make -n`` (make's own dry run: the target exists and its recipe expands).

Skipping: a line ``<!-- docs-test: skip REASON -->`` (invisible on GitHub) skips the fenced
block right after it, or, placed on a line with inline commands, those commands. The reason must
say what is missing here: a cluster, a server, the network (downloads), or that the command
shows an error on purpose. The generated table of docs/errors.md (inputs that must fail) is
not collected.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO, copy_workflow, workflow_environment

pytestmark = pytest.mark.full

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PREFIXES = (".venv/bin/", "snakemake ", "make ", "sparseae ", "snakefmt ", "conda ")
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s+(?P<reason>[^>]*?)\s*-->")
# A usage synopsis, not a command: `sparseae fetch SOURCE [--dest DIR]`, `… [FILE …]`.
SYNOPSIS = re.compile(r"\s\[|…|\.\.\.|(?<![=$\w/.-])[A-Z]{3,}(?![\w=])")
ALLOWED_REASONS = ("cluster", "server", "network", "error on purpose", "conda")


@dataclass(frozen=True)
class Shown:
    where: str  # file:line
    script: str  # the command(s) as shown
    skip: str | None


def _is_command(line: str) -> bool:
    return line.startswith(PREFIXES)


def shown_commands(path: Path) -> list[Shown]:
    """The shell commands of one Markdown file (see the module docstring)."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(
        r"<!-- bad-inputs:start -->.*?<!-- bad-inputs:end -->",
        lambda m: "\n" * m.group(0).count("\n"),
        text,
        flags=re.S,
    )
    lines = text.splitlines()
    found, index, pending_skip = [], 0, None
    name = path.relative_to(REPO)
    while index < len(lines):
        line = lines[index]
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            start, body = index + 1, []
            index += 1
            while index < len(lines) and not lines[index].startswith("```"):
                body.append(lines[index])
                index += 1
            script = "\n".join(body).replace("\\\n", " ")
            commands = [c for c in script.splitlines() if c.strip()]
            label = fence.group(1)
            shell = label in ("bash", "sh", "shell") or (
                label == "" and commands and all(_is_command(c.strip()) for c in commands)
            )
            if shell:
                found.append(Shown(f"{name}:{start}", script, pending_skip))
            pending_skip = None
            index += 1
            continue
        skip = SKIP.search(line)
        if skip and not line.replace(skip.group(0), "").strip():
            pending_skip = skip.group("reason")  # for the block that follows
        else:
            for span in re.findall(r"`([^`\n]+)`", line):
                if _is_command(span) and " " in span.strip() and not SYNOPSIS.search(span):
                    reason = skip.group("reason") if skip else None
                    found.append(Shown(f"{name}:{index + 1}", span, reason))
        index += 1
    return found


ALL = [shown for path in DOCS for shown in shown_commands(path)]


def dry(command: str) -> str:
    """The command as the test runs it (dry runs where it would train)."""
    words = command.strip()
    match = re.match(r"^(\S*snakemake)\b(.*)$", words)
    if match and not re.search(r"--(report|lint|unlock)\b|(^|\s)-n\b", match.group(2)):
        return f"{match.group(1)} -n{match.group(2)}"
    match = re.match(r"^make\s+run\b(.*)$", words)
    if match:
        rest = match.group(1)
        comment = rest.find("#")
        if comment >= 0:
            rest = rest[:comment]
        return f"make run {rest.strip()} ARGS=-n".replace("  ", " ")
    match = re.match(r"^make\s+(.*)$", words)
    if match:
        return f"make -n {match.group(1)}"
    return words


def test_commands_are_found_and_skips_give_a_reason():
    wheres = {shown.where.split(":")[0] for shown in ALL}
    assert {"README.md", "docs/pipeline.md", "docs/slurm.md"} <= wheres
    assert len(ALL) >= 20
    for shown in ALL:
        if shown.skip is not None:
            assert shown.skip.startswith(ALLOWED_REASONS), (shown.where, shown.skip)


def test_dry_run_rewriting():
    assert dry(".venv/bin/snakemake --cores 2  # all") == ".venv/bin/snakemake -n --cores 2  # all"
    assert dry("snakemake --report report.html") == "snakemake --report report.html"
    assert dry("snakemake -n") == "snakemake -n"
    assert dry("make run CONFIG=x.yaml   # checked") == "make run CONFIG=x.yaml ARGS=-n"
    assert dry("make test") == "make -n test"


TINY = {
    "training": {"chunks": 1, "iterations_per_chunk": 2},
    "gradcheck": {"num_examples": 5, "hidden_size": 3},
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A workflow copy with seconds-long experiments, after one real run of `snakemake`."""
    work = copy_workflow(tmp_path_factory.mktemp("docs") / "work")
    for name in ("Makefile", "pyproject.toml", "constraints.txt", "environment.yml"):
        shutil.copy2(REPO / name, work / name)  # times kept: make sees .venv as up to date
    (work / ".venv").symlink_to(REPO / ".venv")
    config_path = work / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    for experiment in config["experiments"].values():
        for section, values in TINY.items():
            experiment.setdefault(section, {}).update(values)
        if experiment.get("patches", {}).get("size", 8) is not None:
            experiment.setdefault("patches", {})["count"] = 200
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "snakemake"), "--cores", "2"],
        cwd=work, capture_output=True, text=True, timeout=900, env=workflow_environment(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return work


def as_run(shown: Shown) -> str:
    return "\n".join(dry(line) for line in shown.script.splitlines() if line.strip())


# A command shown in several places runs once (ids: where it is shown first).
UNIQUE = list({(as_run(s), s.skip): s for s in reversed(ALL)}.values())[::-1]


@pytest.mark.slow
@pytest.mark.parametrize("shown", UNIQUE, ids=[s.where for s in UNIQUE])
def test_shown_command_runs(shown, workspace):
    if shown.skip is not None:
        pytest.skip(f"{shown.where}: {shown.skip}")
    script = as_run(shown)
    env = workflow_environment(
        PATH=f"{workspace / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"
    )
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=workspace, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, (
        f"{shown.where}: `{script}` failed ({result.returncode}):\n"
        f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
