"""A real ``mlflow server`` for tests: 127.0.0.1, free port, sqlite backend, own artifact store.

The server runs in its own process group (``start_new_session``), and is stopped through the
PID that this helper started, never by name: ``os.killpg(pid, ...)`` reaches the uvicorn
workers it spawned and nothing else. ``kill()`` simulates a crash (SIGKILL), ``start()`` again
brings it back on the same port with the same database and artifacts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# A deadline, not a wait: a healthy server returns at once. Starting takes ~10 s on a quiet
# 2-core machine, but over 90 s where other test processes load every core.
START_TIMEOUT = 240.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """Start, kill, restart and stop one tracking server rooted in ``folder``."""

    def __init__(
        self, folder: Path, port: int | None = None, workers: int = 2, db: Path | None = None
    ):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.workers = workers
        # An existing store (e.g. one the pipeline filled) to serve, else a new one here.
        self.db = Path(db) if db is not None else self.folder / "server.db"
        self.artifacts = self.folder / "artifacts"
        self.log_path = self.folder / "server.log"
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until ``/health`` answers (raises with its log if not)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"server on port {self.port} is already running")
        env = dict(os.environ)
        env.pop("MLFLOW_TRACKING_URI", None)
        # The server's background job runners (huey consumers) are not needed here and cost
        # several processes on a 2-core machine.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--backend-store-uri",
            f"sqlite:///{self.db}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(self.artifacts),
        ]
        log = open(self.log_path, "a")  # noqa: SIM115 - kept by the child, closed below
        try:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.folder,
                env=env,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {self.process.returncode}:\n"
                    f"{self.log_text()[-3000:]}"
                )
            if self.healthy():
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(
            f"mlflow server did not become healthy in {START_TIMEOUT} s:\n{self.log_text()[-3000:]}"
        )

    def __enter__(self) -> MlflowServer:
        try:
            self.start()
        except BaseException:
            self.stop()  # a half-started server is stopped too
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def healthy(self) -> bool:
        """Whether ``GET /health`` answers 200 right now."""
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """Crash the server (SIGKILL to its process group); the database stays."""
        self._signal(signal.SIGKILL)
        self._wait(10)

    def stop(self) -> None:
        """Stop the server politely, then forcibly; safe to call twice."""
        self._signal(signal.SIGTERM)
        if not self._wait(15):
            self._signal(signal.SIGKILL)
            self._wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _signal(self, sig: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            # The group id is the PID we started (start_new_session made it the leader).
            os.killpg(self.process.pid, sig)

    def _wait(self, timeout: float) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        # Workers may outlive the leader for a moment; the port must be free for a restart.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _group_alive(self.process.pid):
            time.sleep(0.1)
        return not _group_alive(self.process.pid)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
