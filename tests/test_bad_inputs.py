"""Every bad input of ``tests/bad_inputs.py`` stops with one message naming the key, flag or
file, without a traceback, and changes no file; docs/errors.md's table is this table.

In-process: ``config``/``env`` cases through ``sparseae check-config`` (the checks the
workflow applies while it is read), ``cli`` cases through ``sparseae``'s ``main()``, ``file``
cases through the loaders the rule scripts call, judged as ``sparseae.rulelog`` judges them
(a project error: one line, no traceback). A representative subset runs through real
``snakemake -n`` and ``make run`` subprocesses (:func:`test_workflow_refuses_before_any_job`).

``SPARSEAE_WRITE_ERRORS_DOC=1 pytest tests/test_bad_inputs.py -k errors_doc`` rewrites the
table in docs/errors.md from real runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import subprocess
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from bad_inputs import CASES, Case, by_id, resolved_natural
from workflow_helpers import REPO, copy_workflow, workflow_environment

from sparseae import cli
from sparseae.rulelog import failure_line

pytestmark = pytest.mark.fast

ERRORS_DOC = REPO / "docs" / "errors.md"
START, END = "<!-- bad-inputs:start -->", "<!-- bad-inputs:end -->"


# ------------------------------------------------------------------ loopback helpers


class _WebPage(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = b"<!doctype html><html><body>Sign in</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def places():
    """``{html}``: a loopback server answering web pages; ``{closed}``: a dead port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    yield {
        "{html}": f"http://127.0.0.1:{server.server_address[1]}",
        "{closed}": f"http://127.0.0.1:{closed}",
    }
    server.shutdown()
    server.server_close()


# ------------------------------------------------------------------ running one case


def fill(text: str, tmp: Path, places: dict) -> str:
    text = text.replace("{tmp}", str(tmp))
    for key, value in places.items():
        text = text.replace(key, value)
    return text


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folder``: (size, mtime_ns)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and ".snakemake" not in p.parts
    }


def run_case(case: Case, tmp: Path, places: dict, monkeypatch) -> tuple[int, str]:
    """Run ``case`` in ``tmp`` (its working folder); return (exit status, stderr)."""
    monkeypatch.chdir(tmp)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name, value in case.env.items():
        monkeypatch.setenv(name, fill(value, tmp, places))
    if case.kind in ("config", "env", "cli"):
        if case.kind == "cli":
            argv = [fill(a, tmp, places) for a in case.argv]
        else:
            (tmp / "case.yaml").write_text(fill(case.text, tmp, places) or "{}\n")
            argv = ["check-config", "--base", str(REPO / "config" / "config.yaml"), "case.yaml"]
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                status = cli.main(["-q", *argv])
            except SystemExit as exit_:  # argparse: usage errors
                status = exit_.code
            except Exception:  # noqa: BLE001 - a bug: shown as the traceback it is
                status, _ = 1, err.write(traceback.format_exc())
        return int(status or 0), err.getvalue()
    try:
        case.call(tmp)
    except Exception as error:  # noqa: BLE001
        if failure_line(error) is not None:  # what rule scripts print as one line (rulelog)
            return 1, f"sparseae: error: {failure_line(error)}\n"
        if case.kind == "api":  # a library call: the exception is its answer
            return 1, f"{type(error).__name__}: {error}\n"
        return 1, traceback.format_exc()
    return 0, ""


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_naming_it(case, tmp_path, places, monkeypatch):
    tmp = tmp_path / "work"
    tmp.mkdir()
    if case.prepare is not None:
        case.prepare(tmp)
    before = snapshot(tmp)
    status, stderr = run_case(case, tmp, places, monkeypatch)
    assert status != 0, f"{case.id}: accepted"
    assert "Traceback" not in stderr, stderr
    for name in case.names:
        assert fill(name, tmp, places) in stderr, (case.id, name, stderr)
    written = {k: v for k, v in snapshot(tmp).items() if k != "case.yaml"}
    assert written == {k: v for k, v in before.items() if k != "case.yaml"}, "files changed"


def test_the_table_is_large_and_covers_every_entry_point():
    cases = by_id()
    kinds = {case.kind for case in cases.values()}
    assert len(cases) >= 80 and {"config", "env", "cli", "file"} <= kinds
    assert sum(case.documented for case in cases.values()) >= 35


# ------------------------------------------------------------------ good inputs stay good


def test_yaml_1_1_numbers_and_whole_floats_are_read_as_meant(tmp_path):
    """``rho: 1e-2`` (text to YAML 1.1) is 0.01; ``count: 1e4`` and ``10000.0`` are 10000."""
    import yaml

    from sparseae.config import fingerprint, resolve_config

    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    written = yaml.safe_load(
        "experiments: {natural: {model: {rho: 1e-2, lambda_: 1E-4}, patches: {count: 1e4}}}\n"
        "sweeps: {sparsity: {grid: {rho: [1e-2, 5e-2]}, overrides: {patches: {count: 1e4}}}}"
    )
    assert written["experiments"]["natural"]["model"]["rho"] == "1e-2"  # what YAML 1.1 gives
    from sparseae.config.schema import deep_merge

    resolved = resolve_config(deep_merge(base, written))
    natural = resolved["experiments"]["natural"]
    assert natural["model"]["rho"] == 0.01 and natural["model"]["lambda_"] == 1e-4
    assert natural["patches"]["count"] == 10000 and type(natural["patches"]["count"]) is int
    assert "sparsity-beta1-rho0.01" in resolved["experiments"]
    assert fingerprint(natural) == fingerprint(resolve_config(base)["experiments"]["natural"])
    as_float = deep_merge(base, {"experiments": {"natural": {"patches": {"count": 10000.0}}}})
    count = resolve_config(as_float)["experiments"]["natural"]["patches"]["count"]
    assert count == 10000 and type(count) is int


def test_mixed_bit_depths_are_scaled_per_image(tmp_path):
    """An 8-bit and a 16-bit file of the same scene give the same [0, 1] grey values."""
    import numpy as np
    from PIL import Image

    from sparseae.data import load_images

    scene = np.random.default_rng(3).integers(0, 256, (12, 12))
    Image.fromarray(scene.astype(np.uint8), mode="L").save(tmp_path / "a.png")
    Image.fromarray((scene * 257).astype(np.uint16)).save(tmp_path / "b.png")
    images = load_images("image-folder", path=tmp_path, whiten=False)
    np.testing.assert_allclose(images[:, :, 0], images[:, :, 1], rtol=0, atol=1e-12)
    assert images.max() <= 1.0


def test_memory_is_compared_with_the_machine_and_cluster_job_limits():
    """The estimate names the settings; beyond mem_mb only matters where jobs are killed."""
    from sparseae.config.rules import memory_problems

    experiment = resolved_natural()
    experiment["patches"]["count"] = 2_000_000  # ~2.9 GB in the data job, ~3.7 GB training
    assert memory_problems("natural", experiment, physical=64_000) == []
    cluster = memory_problems("natural", experiment, physical=64_000, job_limits=True)
    assert (
        len(cluster) == 1 and "'experiments.natural.resources.data.mem_mb' is 2,000" in cluster[0]
    )
    small = memory_problems("natural", experiment, physical=1_000)
    assert len(small) == 2 and all("this machine has 1,000 MB" in p for p in small)
    assert "experiments.natural.patches.count = 2000000" in small[0]


@pytest.mark.parametrize(
    ("error", "traceback_expected"),
    [("DatasetError('image file x.png is broken')", False), ("KeyError('bug')", True)],
)
@pytest.mark.full  # a subprocess
def test_rule_scripts_print_project_errors_without_traceback(tmp_path, error, traceback_expected):
    """sparseae.rulelog: a project error is one line on stderr and in the log; a bug keeps
    its traceback in both."""
    script = (
        "from sparseae.rulelog import run_rule\n"
        "from sparseae.errors import DatasetError\n"
        "def step():\n"
        f"    raise {error}\n"
        f"run_rule({str(tmp_path / 'rule.log')!r}, step)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )  # fmt: skip
    log = (tmp_path / "rule.log").read_text()
    assert result.returncode == 1
    assert ("Traceback" in result.stderr) is traceback_expected
    assert ("Traceback" in log) is traceback_expected
    if not traceback_expected:
        assert result.stderr == "sparseae: error: image file x.png is broken\n"
        assert "CRITICAL failed: image file x.png is broken" in log


# ------------------------------------------------------------------ through the workflow

WORKFLOW_CASES = [
    "rho-nan",
    "sources-typo",
    "run-unknown",
    "count-memory",
    "gtol-huge",
    "tracking-not-sqlite",
    "folder-empty",
    "env-uri-folder",
    "name-periodic",
]


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("workflow") / "work")


@pytest.mark.parametrize("case_id", WORKFLOW_CASES)
@pytest.mark.full  # a subprocess
def test_workflow_refuses_before_any_job(case_id, workflow_copy, places, tmp_path):
    """The same cases through ``snakemake -n``: one message naming the key, no traceback."""
    case = by_id()[case_id]
    work = workflow_copy
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    if case.prepare is not None:
        case.prepare(inputs)
    (work / "config" / "case.yaml").write_text(fill(case.text, inputs, places) or "{}\n")
    env = workflow_environment(**{k: fill(v, inputs, places) for k, v in case.env.items()})
    before = snapshot(work)
    result = subprocess.run(
        [str(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "snakemake"), "-n",
         "--cores", "1", "--configfile", "config/case.yaml"],
        cwd=work, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    for name in case.names:
        assert fill(name, inputs, places) in output, (name, output[-2000:])
    assert snapshot(work) == before


@pytest.mark.full  # a subprocess
def test_make_run_refuses_a_missing_config_file(tmp_path):
    """``make run CONFIG=…`` checks the file first: one message, Snakemake never starts."""
    before = snapshot(REPO / "results") if (REPO / "results").exists() else {}
    missing = tmp_path / "nope.yaml"
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "run", f"CONFIG={missing}"],
        capture_output=True, text=True, timeout=300, env=workflow_environment(),
    )  # fmt: skip
    assert result.returncode != 0
    assert f"config file {missing} does not exist" in result.stderr
    assert "Traceback" not in result.stderr and "snakemake" not in result.stdout.split("check")[-1]
    assert (snapshot(REPO / "results") if (REPO / "results").exists() else {}) == before


# ------------------------------------------------------------------ docs/errors.md


def normalise(text: str, tmp: Path, places: dict) -> str:
    text = text.replace(str(tmp), "…").replace(str(REPO), "…")
    for value in places.values():
        text = text.replace(value, "http://127.0.0.1:PORT")
    text = re.sub(r"this machine has [\d,]+ MB", "this machine has N MB", text)
    return text


def message_of(stderr: str) -> str:
    """The message as the table shows it: one line, without the command's prefix."""
    lines = [
        line.strip()
        for line in stderr.strip().splitlines()
        if line.strip() and not line.startswith(("usage:", "     "))  # argparse's usage
    ]
    text = " ".join(lines)
    text = re.sub(r"^sparseae(?: [\w-]+)?: error: ", "", text)
    text = text.replace("invalid configuration: - ", "")
    return text.replace("|", "\\|")


def errors_table(tmp_root: Path, places: dict) -> str:
    rows = [
        "| # | entry | case | input | message (from a real run) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for number, case in enumerate(CASES, 1):
        tmp = tmp_root / case.id
        tmp.mkdir()
        if case.prepare is not None:
            case.prepare(tmp)
        with pytest.MonkeyPatch.context() as patch:  # each case its own environment
            _, stderr = run_case(case, tmp, places, patch)
        shown = normalise(fill(case.shown, tmp, places), tmp, places).replace("\n", "; ")
        shown = shown.replace("|", "\\|")
        mark = " (listed before)" if case.documented else ""
        message = normalise(message_of(stderr), tmp, places)
        rows.append(f"| {number} | {case.kind} | {case.what}{mark} | `{shown}` | {message} |")
    return "\n".join(rows) + "\n"


@pytest.mark.full  # every case run again (~15 s)
def test_errors_doc_is_the_table(tmp_path, places):
    """docs/errors.md's table is generated from CASES and real runs; it cannot drift."""
    table = errors_table(tmp_path, places)
    text = ERRORS_DOC.read_text(encoding="utf-8")
    assert START in text and END in text, f"{ERRORS_DOC} lacks the {START} … {END} markers"
    head, rest = text.split(START, 1)
    current, tail = rest.split(END, 1)
    if os.environ.get("SPARSEAE_WRITE_ERRORS_DOC") == "1":
        ERRORS_DOC.write_text(f"{head}{START}\n{table}{END}{tail}", encoding="utf-8")
        return
    assert current.strip() == table.strip(), (
        "docs/errors.md is out of date: run SPARSEAE_WRITE_ERRORS_DOC=1 .venv/bin/pytest "
        "tests/test_bad_inputs.py -k errors_doc"
    )
