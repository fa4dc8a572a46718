"""A real HTTP mirror on 127.0.0.1 for download tests, with switchable faults per file.

``MirrorServer(root)`` serves the files of ``root`` (plus any added in memory) from a
``ThreadingHTTPServer`` on an ephemeral loopback port, in a background thread. Faults are set
per file name and reproduce what real mirrors do to downloads:

- ``"truncate"``: announces the full Content-Length, sends half the body, closes;
- ``"corrupt"``: sends the full length with some bytes changed;
- ``"404"`` / ``"500"``: the error status;
- ``"stall"``: sends the headers and the first bytes, then never finishes (until the server
  is closed), so only the client's timeout ends the download.

Every request is recorded in ``server.requests`` as ``(name, status_or_fault)``, so a test can
check what was (not) downloaded. Use it as a context manager::

    with MirrorServer(folder) as mirror:
        mirror.set_fault("a.gz", "stall")
        fetch("mnist", dest, [mirror.url])
"""

from __future__ import annotations

import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FAULTS = ("truncate", "corrupt", "404", "500", "stall")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server's naming)
        mirror = self.server.mirror
        name = urllib.parse.unquote(urllib.parse.urlparse(self.path).path).lstrip("/")
        fault = mirror.faults.get(name)
        data = mirror.read(name)
        mirror.requests.append((name, fault or (200 if data is not None else 404)))
        if data is None or fault == "404":
            self.send_error(404, "Not Found")
            return
        if fault == "500":
            self.send_error(500, "Internal Server Error")
            return
        if fault == "corrupt":
            middle = len(data) // 2
            data = (
                data[:middle]
                + bytes(b ^ 0xFF for b in data[middle : middle + 16])
                + data[middle + 16 :]
            )
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
        elif fault == "stall":
            self.wfile.write(data[: min(1024, len(data) // 2)])
            self.wfile.flush()
            mirror.release.wait()  # never finishes on its own: only the server closing ends it
            self.close_connection = True
        else:
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    mirror: MirrorServer


class MirrorServer:
    """Serve a folder over HTTP on 127.0.0.1 with per-file faults (see module docstring)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else None
        self.extra: dict[str, bytes] = {}
        self.faults: dict[str, str] = {}
        self.requests: list[tuple[str, object]] = []
        self.release = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- content ---------------------------------------------------------------------------
    def add_file(self, name: str, data: bytes) -> None:
        """Serve ``data`` under ``name`` (in addition to the folder's files)."""
        self.extra[name] = bytes(data)

    def read(self, name: str) -> bytes | None:
        if name in self.extra:
            return self.extra[name]
        if self.root is None or not name or ".." in Path(name).parts:
            return None
        path = self.root / name
        return path.read_bytes() if path.is_file() else None

    def set_fault(self, name: str, fault: str | None) -> None:
        """Make requests for ``name`` fail with ``fault`` (one of FAULTS; None clears it)."""
        if fault is None:
            self.faults.pop(name, None)
        elif fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {FAULTS}")
        else:
            self.faults[name] = fault

    def downloads_of(self, name: str) -> int:
        """How many times ``name`` was requested."""
        return sum(1 for n, _ in self.requests if n == name)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, e.g. ``http://127.0.0.1:40123/``."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> MirrorServer:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.mirror = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="http-mirror", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self.release.set()  # let stalled handlers finish
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


#: The MNIST files that ../shared/data holds (the training images are not there).
MNIST_TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
