"""A real browser on the MLflow UI: what a reviewer sees first (headless Chromium).

A store is filled by the pipeline's logging step from a real (small) training run, served by
``mlflow server`` on 127.0.0.1, and the address ``make ui`` prints (``python -m
sparseae ui-url``) is loaded in Debian's ``chromium``, its DOM read over the DevTools pipe
until it shows what each check asserts. Skips where no Chromium is installed (CI installs
it, see .ci/run).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import time

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
    "--disable-dev-shm-usage",  # a container's /dev/shm may be too small for a tall window
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: Seconds a page gets to show what a check waits for, and between reloads while it does not.
WAIT_S, RELOAD_S = 240, 60


def dump_dom(url: str, profile, *until: str, height: int = 1200, width: int = 1600) -> str:
    """The DOM of ``url`` once it matches every pattern of ``until`` (regular expressions), read
    each second in real time over the DevTools pipe. The page is reloaded every ``RELOAD_S``
    while it does not match; after ``WAIT_S`` the last DOM is returned (the assert fails on it).

    Real time, not ``--virtual-time-budget``: on a loaded machine the app's fetches (a card's
    image among them) can outlast any fixed budget of virtual time."""
    to_browser, from_test = os.pipe()
    from_browser, to_test = os.pipe()

    def browser_fds():  # Chromium reads commands on fd 3 and answers on fd 4.
        os.dup2(to_browser, 3)
        os.dup2(to_test, 4)

    browser = subprocess.Popen(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--remote-debugging-pipe",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=browser_fds,
        close_fds=False,
    )
    os.close(to_browser)
    os.close(to_test)
    pending = b""
    calls = itertools.count(1)

    def call(method: str, session: str | None = None, **params):
        nonlocal pending
        number = next(calls)
        message = {"id": number, "method": method, "params": params}
        os.write(
            from_test,
            json.dumps(message | ({"sessionId": session} if session else {})).encode() + b"\0",
        )
        while True:
            while b"\0" not in pending:
                chunk = os.read(from_browser, 1 << 20)
                assert chunk, f"Chromium closed its DevTools pipe during {method}"
                pending += chunk
            text, pending = pending.split(b"\0", 1)
            answer = json.loads(text)
            if answer.get("id") == number:
                assert "error" not in answer, answer
                return answer["result"]

    try:
        (page,) = [t for t in call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        session = call("Target.attachToTarget", targetId=page["targetId"], flatten=True)[
            "sessionId"
        ]
        start = reload = time.monotonic()
        while True:
            time.sleep(1)
            dom = call(
                "Runtime.evaluate",
                session,
                expression="document.documentElement.outerHTML",
                returnByValue=True,
            )
            dom = dom["result"].get("value", "")
            if all(re.search(p, dom) for p in until) or time.monotonic() - start > WAIT_S:
                return dom
            if time.monotonic() - reload > RELOAD_S:
                call("Page.reload", session)
                reload = time.monotonic()
    finally:
        browser.kill()
        browser.wait()
        os.close(from_test)
        os.close(from_browser)


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
        cost = read_json(results / "summary.json")["final_cost"]
        cost_column, cost_value = r'col-id="metrics\.`cost`"', rf">{cost:.6f}"
        table = dump_dom(url, tmp_path / "profile-table", cost_column, cost_value, "encoder")
        assert re.search(cost_column, table)
        assert re.search(cost_value, table), "final cost not shown"
        assert "encoder" in table
        assert "Traces" not in re.findall(r'role="tab"[^>]*>([^<]*)', table)

        # The run's model metrics: the filters card opens (step 0) on a picture.
        run_url = url.split("/runs?")[0] + f"/runs/{run_id}"
        filters_image = r'<img [^>]*src="get-artifact\?path=images%2Ffilters%2Bstep%2B0%2B'
        charts = dump_dom(
            f"{run_url}/model-metrics",
            tmp_path / "profile-charts",
            filters_image,
            height=12000,
        )
        shown = re.findall(r'<img [^>]*src="(get-artifact[^"]*)"|(No image logged[^<]*)', charts)
        assert re.search(filters_image, charts), f"the filters card shows {shown}"

        # The sweep in the chart view: members named by their values, parallel coordinates.
        names = ("β1 ρ0.01", "β1 ρ0.05", "β3 ρ0.01", "β3 ρ0.05")
        parallel = ('title="Parallel Coordinates"', 'class="parcoords"')
        compare = dump_dom(
            f"{sweep_url}&compareRunsMode=CHART", tmp_path / "profile-sweep", *names, *parallel
        )
        for shown in names + parallel:
            assert shown in compare, shown
        # The table: the swept values are columns.
        columns = ('col-id="params.`cost.beta`"', 'col-id="params.`cost.rho`"')
        sweep_table = dump_dom(
            sweep_url, tmp_path / "profile-sweep-table", *map(re.escape, columns)
        )
        assert set(columns) <= set(re.findall(r'col-id="[^"]*"', sweep_table))
