"""A real browser on the MLflow UI: what a reviewer sees first (headless Chromium).

A store is filled by the pipeline's logging step from a real (small) training run, served by
``mlflow server`` on 127.0.0.1, and the address ``make ui`` prints (``python -m
sparseae ui-url``) is loaded in Debian's ``chromium`` with ``--dump-dom`` after the
app settles. Skips where no Chromium is installed (CI installs it, see .ci/run).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from mlflow_server import MlflowServer
from workflow_helpers import run_tracking

from sparseae.io import read_json, write_json
from sparseae.tracking import log_results, log_sweep
from sparseae.tracking.settings import SWEEP_TAG

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
    """The DOM of ``url`` after the app settled; with ``until`` (a regular expression), retried
    (four loads at most) until it matches: on a loaded machine the app's fetches (a card's
    image among them) can outlast one budget."""
    for attempt in range(4):
        done = subprocess.run(
            [
                CHROMIUM,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}-{attempt}",
                f"--virtual-time-budget={SETTLE_MS}",
                f"--window-size={width},{height}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        if re.search(until, done.stdout):
            break
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_reviewer_sees_key_figures_filter_images_and_sweep(result_folder_factory, tmp_path):
    store = tmp_path / "mlflow.db"
    uri = f"sqlite:///{store}"
    results = result_folder_factory("natural", chunks=3)
    run_id = log_results(results, experiment_name="natural", tracking_uri=uri)
    members = []
    for seed, (beta, rho) in enumerate([(1, 0.01), (1, 0.05), (3, 0.01), (3, 0.05)]):
        member = result_folder_factory(f"grid-beta{beta}-rho{rho}", chunks=2, seed=10 + seed)
        config = read_json(member / "config.json")
        config["cost"].update(beta=beta, rho=rho)
        write_json(member / "config.json", config)
        log_results(member, experiment_name="grid", tracking_uri=uri, tags={SWEEP_TAG: "grid"})
        members.append(member)
    grid = {"cost.beta": [1, 3], "cost.rho": [0.01, 0.05]}
    log_sweep("grid", members, tracking_uri=uri, experiment_name="grid", params={"grid": grid})
    with MlflowServer(tmp_path / "server", db=store, workers=1) as server:
        printed = run_tracking(uri, "ui-url", "--base-url", server.uri, timeout=300)
        assert printed.returncode == 0, printed.stderr
        (url,) = re.findall(r"^natural: (\S+)$", printed.stdout, flags=re.MULTILINE)
        (sweep_url,) = re.findall(r"^grid: (\S+)$", printed.stdout, flags=re.MULTILINE)
        assert "workflowType=machine_learning" in url

        # The runs table at 1600 px (the grid renders only the columns in view): the final
        # cost is a visible column, its value shown; no GenAI tabs.
        table = dump_dom(url, tmp_path / "profile-table", until="natural 20")
        assert 'col-id="metrics.`cost`"' in table
        cost = read_json(results / "summary.json")["final_cost"]
        assert re.search(rf">{cost:.6f}", table), "final cost not shown"
        assert "encoder" in table
        assert "Traces" not in re.findall(r'role="tab"[^>]*>([^<]*)', table)

        # The run's model metrics: the filters card opens (step 0) on a picture.
        run_url = url.split("/runs?")[0] + f"/runs/{run_id}"
        filters_image = r'<img [^>]*src="get-artifact\?path=images%2Ffilters%2Bstep%2B0%2B'
        charts = dump_dom(
            f"{run_url}/model-metrics",
            tmp_path / "profile-charts",
            height=12000,
            until=filters_image,
        )
        assert re.search(filters_image, charts)

        # The sweep in the chart view: members named by their values, parallel coordinates.
        compare = dump_dom(
            f"{sweep_url}&compareRunsMode=CHART", tmp_path / "profile-sweep", until="parcoords"
        )
        for name in ("β1 ρ0.01", "β1 ρ0.05", "β3 ρ0.01", "β3 ρ0.05"):
            assert name in compare, name
        assert 'title="Parallel Coordinates"' in compare and 'class="parcoords"' in compare
        # The table: the swept values are columns.
        sweep_table = dump_dom(sweep_url, tmp_path / "profile-sweep-table", until="β3")
        assert {'col-id="params.`cost.beta`"', 'col-id="params.`cost.rho`"'} <= set(
            re.findall(r'col-id="[^"]*"', sweep_table)
        )
