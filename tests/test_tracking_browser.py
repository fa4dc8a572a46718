"""A real browser on the MLflow UI: what a reviewer sees first (headless Chromium).

A store is filled by the pipeline's logging step from a real (small) training run, served by
``mlflow server`` on 127.0.0.1, and the address ``make ui`` prints (``python -m
sparseae ui-url``) is loaded in Debian's ``chromium`` with ``--dump-dom`` after the
app settles. Skips where no Chromium is installed (CI installs it, see .ci/run).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request

import pytest
from mlflow_server import MlflowServer
from workflow_helpers import run_tracking

from sparseae.tracking import log_results

pytestmark = [pytest.mark.full, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Flags that work in containers and offline (no sandbox, no GPU, no background traffic).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: Milliseconds of virtual time the app gets to fetch and render before the DOM is dumped.
SETTLE_MS = 40000


def dump_dom(url: str, profile, height: int = 1200, width: int = 1600, until: str = "") -> str:
    """The DOM of ``url`` after the app settled; with ``until``, retried (three loads at most)
    until that text is in it: on a loaded machine the app's fetches can outlast one budget."""
    for attempt in range(3):
        done = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}-{attempt}",
             f"--virtual-time-budget={SETTLE_MS}", f"--window-size={width},{height}",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        if until in done.stdout:
            break
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_reviewer_sees_runs_table_model_and_filter_images(result_folder_factory, tmp_path):
    results = result_folder_factory("natural", chunks=3)
    store = tmp_path / "mlflow.db"
    uri = f"sqlite:///{store}"
    run_id = log_results(results, experiment_name="natural", tracking_uri=uri)
    with MlflowServer(tmp_path / "server", db=store, workers=1) as server:
        printed = run_tracking(uri, "ui-url", "--base-url", server.uri)
        assert printed.returncode == 0, printed.stderr
        (url,) = re.findall(r"^natural: (\S+)$", printed.stdout, flags=re.MULTILINE)
        assert "workflowType=machine_learning" in url

        # The runs table (not the GenAI view): the run, a metric column, the dataset, model.
        # (Wide: the table renders only the columns in view, metrics after the attributes.)
        table = dump_dom(url, tmp_path / "profile-table", width=3000, until="natural 20")
        (tmp_path / "table.html").write_text(table)
        assert "natural 20" in table  # the run's name: experiment and start time
        shown = set(re.findall(r'col-id="(metrics\.`[^`]+`)"', table))
        assert shown & {"metrics.`final_cost`", "metrics.`final_J_reconstruction`"}, shown
        assert 'col-id="attributes.`Dataset`"' in table and "synthetic (" in table
        assert "encoder" in table
        assert "Traces" not in re.findall(r'role="tab"[^>]*>([^<]*)', table)

        # The run's page: the logged model; its model-metrics tab: the filters image card.
        run_url = url.split("/runs?")[0] + f"/runs/{run_id}"
        page = dump_dom(run_url, tmp_path / "profile-run", until="encoder")
        assert "encoder" in page and "synthetic" in page
        charts = dump_dom(
            f"{run_url}/model-metrics", tmp_path / "profile-charts", height=12000,
            until='title="filters"',
        )  # fmt: skip
        assert 'title="filters"' in charts
        # The images behind the card, as the UI lists them.
        with urllib.request.urlopen(
            f"{server.uri}/ajax-api/2.0/mlflow/artifacts/list?run_id={run_id}&path=images",
            timeout=30,
        ) as response:
            files = [f["path"] for f in json.load(response)["files"]]
        steps = {int(f.split("+")[2]) for f in files if f.startswith("images/filters+step+")}
        assert steps == {4, 8, 12}
