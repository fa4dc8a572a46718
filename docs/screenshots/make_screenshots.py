"""Remake the README's MLflow UI screenshots from a real run (headless Chromium).

Usage, after ``make run`` (and, for the sweep picture, a run of a sweep)::

    .venv/bin/python docs/screenshots/make_screenshots.py [--store mlflow.db]
        [--experiment natural] [--sweep NAME] [--out docs/images]

It serves the store with ``mlflow server`` on a free loopback port, opens the addresses
``make ui`` prints (the runs table with the final cost first, a run's page, the experiment's
chart view opening on the ``filters`` card, and the sweep's chart view: members named by their
values, parallel coordinates, the filter grids) in Debian's ``chromium`` (``apt-get install
chromium``) and writes one PNG per view. Run it again after an MLflow upgrade changes the UI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mlflow import MlflowClient

from sparseae.tracking.store import ui_url

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(store: Path, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{store.resolve()}"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    os.killpg(server.pid, signal.SIGTERM)
    raise SystemExit(f"mlflow server did not start; see {log}")


def screenshot(chromium: str, url: str, path: Path, size: str, settle_ms: int) -> None:
    with tempfile.TemporaryDirectory(prefix="sparseae-chromium-") as profile:
        subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size}",
             f"--virtual-time-budget={settle_ms}", f"--screenshot={path}", url],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    print(f"wrote {path}  ({url})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="mlflow.db", type=Path)
    parser.add_argument("--experiment", default="natural")
    parser.add_argument("--sweep", default=None, help="a sweep's experiment (chart view)")
    parser.add_argument("--out", default=Path(__file__).resolve().parents[1] / "images", type=Path)
    parser.add_argument("--settle-ms", type=int, default=40000)
    parser.add_argument(
        "--views",
        default="table,run,charts,sweep",
        help="which pictures (comma-separated: table, run, charts, sweep)",
    )
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Debian's chromium: apt-get install chromium")
    if not args.store.is_file():
        raise SystemExit(f"no store {args.store}: run `make run` first (or pass --store)")
    uri = f"sqlite:///{args.store.resolve()}"
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_log = Path(tempfile.gettempdir()) / f"sparseae-screenshots-server-{port}.log"
    server = serve(args.store, port, server_log)
    try:
        table = ui_url(uri, args.experiment, base)
        if table is None:
            raise SystemExit(f"no experiment {args.experiment!r} in {args.store}")
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(args.experiment)
        run = client.search_runs(
            [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
        )[0]
        run_page = table.split("/runs?")[0] + f"/runs/{run.info.run_id}"
        views = [
            ("table", "mlflow-runs-table.png", table, "1600,520"),
            ("run", "mlflow-run-page.png", run_page, "1500,1100"),
            # The shared view's first card is the filters image series.
            ("charts", "mlflow-run-charts.png", f"{table}&compareRunsMode=CHART", "1600,900"),
        ]
        if args.sweep:
            sweep = ui_url(uri, args.sweep, base)
            if sweep is None:
                raise SystemExit(f"no sweep experiment {args.sweep!r} in {args.store}")
            views.append(
                ("sweep", "mlflow-sweep-compare.png", f"{sweep}&compareRunsMode=CHART", "1600,900")
            )
        wanted = set(args.views.split(","))
        for view, name, url, size in views:
            if view in wanted:
                screenshot(chromium, url, args.out / name, size, args.settle_ms)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
