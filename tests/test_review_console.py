"""What a user sees first: the closing summary, the report's landing page, the console.

Fast: the summary functions on real result files, the landing page rendered by docutils as
Snakemake renders it, the quiet profile. Full (marked): ``make run`` with two config files in
a row, a natural-image one and a digit one fetched from a loopback HTTP mirror of the t10k
files, each ending with its own summary and leaving its own report, opened in chromium.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from docutils.core import publish_parts
from workflow_helpers import BIN, REPO, copy_workflow, workflow_environment

from sparseae.analysis.summary import closing_summary, missing_downloads, write_report_page
from sparseae.analysis.visualize import save_filter_grid
from sparseae.io import write_json

pytestmark = pytest.mark.fast

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _experiment(results: Path, name: str, cost: float, accuracy: float | None = None) -> Path:
    folder = results / name
    write_json(folder / "summary.json", {"final_cost": cost, "iterations": 400})
    if accuracy is not None:
        write_json(folder / "evaluation.json", {"accuracy_features": accuracy, "accuracy_raw": 0.9})
    write_json(folder / "mlflow.json", {"experiment_id": "3", "run_id": f"run-{name}"})
    A = np.random.default_rng(0).standard_normal((64, 25))
    save_filter_grid(A, folder / "filters.png", folder / "filters_array.npy")
    return folder


def test_closing_summary_names_what_ran_with_its_numbers_figures_and_run_page(tmp_path):
    results = tmp_path / "results"
    _experiment(results, "stl-t10k", 0.123456, accuracy=0.98127)
    _experiment(results, "natural", 0.35601)  # on disk from an earlier run, not run now
    text = closing_summary(["stl-t10k"], [], "sqlite:///mlflow.db", results=results)
    assert f"{results}/stl-t10k/filters.png" in text and "natural" not in text
    assert "final cost 0.1235, 400 iterations" in text
    assert "test accuracy 98.13% on features, 90.00% on raw pixels" in text
    assert "http://127.0.0.1:5000/#/experiments/3/runs/run-stl-t10k (after make ui)" in text
    server = closing_summary(["natural"], [], "http://host:8080/", results=results)
    assert "http://host:8080/#/experiments/3/runs/run-natural\n" in server + "\n"
    assert "accuracy" not in server
    missing = closing_summary(["gone"], [], "sqlite:///x.db", results=results)
    assert "gone/summary.json not readable" in missing and "not logged" in missing


def test_landing_page_shows_numbers_and_the_filter_grid_as_snakemake_renders_it(tmp_path):
    results = tmp_path / "results"
    folder = _experiment(results, "stl-t10k", 0.123456, accuracy=0.98127)
    page = tmp_path / "_report" / "stl.rst"
    write_report_page(["stl-t10k"], page, "Intro text.", results=results)
    text = page.read_text()
    # docutils refuses input lines over 10,000 characters: the image is split into lines.
    assert max(len(line) for line in text.splitlines()) < 200
    rendered = publish_parts(text, writer="html")["html_body"]
    assert "Intro text." in rendered and "final cost 0.1235" in rendered
    (src,) = re.findall(r"src='data:image/png;base64,([^']*)'", rendered)
    assert base64.b64decode(re.sub(r"\s", "", src)) == (folder / "filters.png").read_bytes()
    assert "width: 600px" in rendered and "pixelated" in rendered
    metadata = json.loads(page.with_suffix(".json").read_text())
    assert metadata == {
        "stl-t10k: final cost": 0.1235,
        "stl-t10k: iterations": 400,
        "stl-t10k: accuracy features": 98.13,
        "stl-t10k: accuracy raw": 90.0,
    }


def test_missing_downloads_lists_every_file_at_once_with_the_mirror_option(tmp_path):
    datasets = [{"source": "mnist", "split": "test"}, {"source": "sample-photos", "split": None}]
    (lines,) = missing_downloads(datasets, resources=tmp_path)
    assert "t10k-images-idx3-ubyte.gz" in lines and "t10k-labels-idx1-ubyte.gz" in lines
    assert "sparseae fetch mnist --mirror <folder or URL>" in lines
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
    (lines,) = missing_downloads(datasets, resources=tmp_path)
    assert "t10k-images" not in lines and "t10k-labels-idx1-ubyte.gz" in lines
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    assert missing_downloads(datasets, resources=tmp_path) == []


def test_default_profile_is_quiet():
    profile = yaml.safe_load((REPO / "profiles" / "default" / "profile.yaml").read_text())
    assert set(profile["quiet"]) == {"reason", "host"}
    assert not profile.get("printshellcmds")  # script rules would print "Shell command: None"


# ---------------------------------------------------------------------- end to end (full)

TINY_NATURAL = {
    "run": ["natural"],
    "experiments": {
        "natural": {
            "patches": {"count": 2000},
            "training": {"chunks": 2, "iterations_per_chunk": 20},
            "gradcheck": {"num_examples": 5, "hidden_size": 3},
        }
    },
}


def _make(workdir: Path, config: str) -> subprocess.CompletedProcess:
    # The repository's venv, taken as installed (-o): the copy's pyproject.toml is newer.
    venv = BIN.parent
    result = subprocess.run(
        ["make", "-o", f"{venv}/bin/.installed", "run", f"VENV={venv}", f"CONFIG={config}"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=1200,
        env=workflow_environment(),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


@pytest.mark.full
def test_make_run_with_two_configs_summarizes_each_and_keeps_both_reports(tmp_path):
    from http_mirror import MNIST_TEST_FILES, MirrorServer
    from shared_data import SHARED_DIR, shared_file

    for name in MNIST_TEST_FILES:
        shared_file(f"data/{name}")
    workdir = copy_workflow(tmp_path / "work")
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy2(REPO / name, workdir / name)
    digits = yaml.safe_load((REPO / "config" / "stl-t10k.yaml").read_text())
    experiment = digits["experiments"]["stl-t10k"]
    experiment["dataset"]["num_images"] = 3000
    experiment["model"]["hidden_size"] = 25
    experiment["training"].update(chunks=2, iterations_per_chunk=10)
    experiment["gradcheck"] = {"num_examples": 5, "hidden_size": 3}
    (workdir / "config" / "natural-tiny.yaml").write_text(yaml.safe_dump(TINY_NATURAL))
    with MirrorServer(SHARED_DIR / "data") as server:
        digits["sources"] = {"mnist": {"mirrors": [server.url]}}
        (workdir / "config" / "digits.yaml").write_text(yaml.safe_dump(digits))
        first = _make(workdir, "config/natural-tiny.yaml")
        second = _make(workdir, "config/digits.yaml")

    console = second.stdout + second.stderr
    assert re.search(r"^stl-t10k: chunk 2/2: cost \d+\.\d{4}, [\d.]+ s$", console, re.M)
    assert "Shell command" not in console and "reason:" not in console
    closing = console[console.index("sparseae: done.") :]
    assert "results/stl-t10k/filters.png" in closing and "results/natural" not in closing
    assert re.search(r"test accuracy \d+\.\d\d% on features", closing)
    assert "/#/experiments/" in closing and "report-digits.html" in closing
    first_console = first.stdout + first.stderr
    assert "results/natural/filters.png" in first_console
    assert "report-natural-tiny.html" in first_console

    # Both reports remain, each opening on its own experiment's numbers and filter grid.
    for report, name in (
        ("report-natural-tiny.html", "natural"),
        ("report-digits.html", "stl-t10k"),
    ):
        assert (workdir / report).is_file()
        if CHROMIUM is None:
            continue
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--dump-dom",
                "--virtual-time-budget=5000",
                (workdir / report).as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        assert f">{name}<" in dom and "final cost" in dom and "data:image/png;base64," in dom
