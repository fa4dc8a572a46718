"""The tracking store: creating it once (under a file lock: processes race on MLflow's table
creation), reaching it quickly, retrying sqlite lock contention (:func:`call`)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.client
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import requests

from sparseae.errors import ArtifactLocationError, TrackingError, TrackingUnavailableError
from sparseae.identity import key_of
from sparseae.io import atomic_path, write_json
from sparseae.tracking.settings import (
    STORE_FOLDER_TAG,
    check_sqlite_file,
    configure_http_retries,
    inspect_store,
    is_http_uri,
    local_artifact_path,
    sqlite_path,
)

_log = logging.getLogger(__name__)

# The one place that sets MLflow's HTTP retries and telemetry: before any MLflow import of this
# package, since MLflow decides telemetry when first imported.
configure_http_retries()

#: Tells the MLflow UI these are model-training experiments (runs table, not the GenAI view).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: Tags every experiment the pipeline creates carries (its views: :func:`.logger.set_view`).
EXPERIMENT_TAGS = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}

#: The UI's "shared view" ``viewStateShareKey=<RUNS_VIEW_KEY>`` (see :func:`.logger.set_view`).
RUNS_VIEW_KEY = "sparseae"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW_KEY}"

#: Experiment tag holding the store's identity token (see :func:`store_marker`).
STORE_TOKEN_TAG = "sparseae.store_token"
#: Name of the init marker files: ``init_store-<token>.json``.
MARKER_PREFIX = "init_store-"

#: Attempts and first delay (seconds, doubled each time) for ``database is locked``.
LOCK_RETRIES = 12
LOCK_FIRST_DELAY = 0.05
#: Seconds allowed for the quick ``/health`` probe of a tracking server.
HEALTH_TIMEOUT = 5.0
#: Failures that mean the server is unreachable (connection failed, timed out, broke off, or the
#: retries it kept refusing ran out).
_UNREACHABLE = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.RetryError,
    requests.exceptions.ChunkedEncodingError,
)


def unavailable_message(uri: str, cause: object, results_dir=None) -> str:
    """The message for an unreachable server: what failed, that nothing is lost, what to do."""
    where = f" in {results_dir}" if results_dir is not None else ""
    return (
        f"MLflow tracking server at {uri} is not reachable: {_short(cause)}; training results "
        f"stay on disk{where}; rerun `snakemake` (or `sparseae log "
        f"RESULTS_DIR --experiment NAME`) once the server is back to fill in what is missing"
    )


def check_reachable(uri: str, results_dir: str | os.PathLike | None = None) -> None:
    """Probe a server's ``/health`` (TrackingUnavailableError unless it answers ``OK`` within
    :data:`HEALTH_TIMEOUT` s); for a local store, check that its file is an SQLite database."""
    if not is_http_uri(uri):
        if problem := check_sqlite_file(uri, writing=True):
            raise TrackingError(problem)
        return
    url = uri.rstrip("/") + "/health"
    # The same TLS settings as MLflow's own client (self-signed or private CA servers).
    verify = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or (
        os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() not in ("true", "1")
    )
    try:
        response = requests.get(url, timeout=HEALTH_TIMEOUT, verify=verify)
    except requests.RequestException as exc:
        raise TrackingUnavailableError(unavailable_message(uri, exc, results_dir)) from exc
    if response.status_code != 200:
        cause = f"GET {url} answered HTTP {response.status_code}"
        raise TrackingUnavailableError(unavailable_message(uri, cause, results_dir))
    if response.text.strip() != "OK":
        # A web page (a login portal, a proxy, another service) is not an MLflow server.
        kind = response.headers.get("Content-Type", "unknown content").split(";")[0]
        raise TrackingError(
            f"tracking URI {uri} does not answer like an MLflow server: GET {url} gave "
            f"{kind} ({response.text.strip()[:60]!r}) instead of 'OK'; fix tracking.uri / "
            f"MLFLOW_TRACKING_URI (the address of `mlflow server`, e.g. http://HOST:5000)"
        )


@dataclass(frozen=True)
class Session:
    """A store's ``MlflowClient`` whose calls go through :func:`call`."""

    uri: str
    results_dir: Path | None = None

    def __getattr__(self, name: str) -> Callable:
        return self.retry(getattr(client(self.uri), name))

    def retry(self, fn: Callable) -> Callable:
        """``fn`` called through :func:`call`."""
        return functools.partial(call, self.uri, fn, results_dir=self.results_dir)


@functools.cache
def client(uri: str):
    """The process's ``MlflowClient`` for ``uri`` (building one re-checks the store's schema)."""
    from mlflow.tracking.client import MlflowClient

    return MlflowClient(tracking_uri=uri)


def call(uri: str, fn: Callable, *args, results_dir=None, **kwargs):
    """Call ``fn(*args, **kwargs)``, retrying lock contention and naming unreachable servers."""
    # A per-process generator spreads the retries of concurrent writers apart.
    rng = np.random.default_rng(os.getpid())
    delay = LOCK_FIRST_DELAY
    for attempt in range(LOCK_RETRIES):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - classified below, re-raised otherwise
            if _is_busy(exc) and attempt < LOCK_RETRIES - 1:
                _log.warning(
                    "store busy (%s); retry %d of %d", _short(exc), attempt + 1, LOCK_RETRIES - 1
                )
                time.sleep(delay * (1.0 + rng.random()))
                delay = min(delay * 2, 2.0)
                continue
            if is_http_uri(uri) and any(isinstance(c, _UNREACHABLE) for c in _causes(exc)):
                raise TrackingUnavailableError(unavailable_message(uri, exc, results_dir)) from exc
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception behind it: chained, wrapped (``reason``, ``orig``, args)."""
    todo, seen = [exc], []
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        yield item
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None)]
        todo += [getattr(item, "orig", None), *item.args]


def _is_busy(exc: BaseException) -> bool:
    """sqlite lock contention, or a server saying it is temporarily unavailable (HTTP 503)."""
    for cause in _causes(exc):
        if isinstance(cause, sqlite3.OperationalError):
            # The primary result code (the low byte): SQLITE_BUSY or SQLITE_LOCKED.
            code = getattr(cause, "sqlite_errorcode", 0) & 0xFF
            return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        if isinstance(cause, requests.exceptions.RetryError):
            return True
    # MlflowException's code for HTTP 503.
    return any(getattr(c, "error_code", None) == "TEMPORARILY_UNAVAILABLE" for c in _causes(exc))


@contextlib.contextmanager
def exclusive_lock(name: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on a temp-folder lock file named after ``name``."""
    lock_path = Path(tempfile.gettempdir()) / f"sparseae-mlflow-{key_of(name, 24)}.lock"
    with open(lock_path, "a") as handle:  # closing it releases the lock
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def check_writable_folder(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and write a probe file in it (root passes ``os.access``
    checks), or raise ArtifactLocationError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".sparseae-write-probe-"):
            pass
    except OSError as exc:
        blocker = next((p for p in [folder, *folder.parents] if p.exists()), None)
        hint = f" ({blocker} is a file, not a folder)" if blocker and not blocker.is_dir() else ""
        raise ArtifactLocationError(
            f"{what} {folder} is not writable{hint}: {exc.strerror or exc}; fix the path or its "
            f"permissions before training (nothing was trained or logged)"
        ) from exc


def ui_url(tracking_uri: str, experiment_name: str, base_url: str) -> str | None:
    """The MLflow UI address of an experiment's runs table (``None`` if there is none)."""
    found = Session(tracking_uri).get_experiment_by_name(experiment_name)
    if found is None:
        return None
    url = f"{base_url.rstrip('/')}/#/experiments/{found.experiment_id}/runs"
    url += "?workflowType=machine_learning"
    if RUNS_VIEW_TAG in found.tags:  # logged by an older version: the UI's default columns
        url += f"&viewStateShareKey={RUNS_VIEW_KEY}"
    return url


def pipeline_experiments(tracking_uri: str) -> list[str]:
    """Names of the store's active experiments made by the pipeline (kind tag), oldest first."""
    kind = f"tags.`{EXPERIMENT_KIND_TAG}` = '{EXPERIMENT_KIND}'"
    found = Session(tracking_uri).search_experiments(filter_string=kind, order_by=["creation_time"])
    return [e.name for e in found]


def read_store_token(uri: str) -> str | None:
    """The store's identity token, else None (reads only; raises if it cannot be asked)."""
    if is_http_uri(uri):
        # MLflow's REST API, not its client: the workflow calls this while it is parsed.
        response = requests.post(
            f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search",
            json={"max_results": 1, "filter": f"tags.`{STORE_TOKEN_TAG}` LIKE '%'"},
            timeout=HEALTH_TIMEOUT,
        )
        response.raise_for_status()
        tags = (response.json().get("experiments") or [{}])[0].get("tags", [])
        return next((t["value"] for t in tags if t["key"] == STORE_TOKEN_TAG), None)
    db = sqlite_path(uri)
    if db is None or not db.is_file():
        return None
    # Read-only URI: no journal or lock file is created, the database is not modified.
    with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as c:
        query = "SELECT value FROM experiment_tags WHERE key = ? ORDER BY experiment_id LIMIT 1"
        row = c.execute(query, (STORE_TOKEN_TAG,)).fetchone()
    return str(row[0]) if row else None


def store_marker(uri: str, folder: str | os.PathLike) -> Path:
    """The init marker of the store as it is now, ``<folder>/init_store-<token>.json``: a new
    token for a lost store or an emptied server, so init_store reruns. Reads only."""
    folder = Path(folder)
    earlier = sorted(folder.glob(f"{MARKER_PREFIX}*.json"), key=lambda p: p.stat().st_mtime)
    try:
        token = read_store_token(uri)
    except (OSError, ValueError, sqlite3.Error):  # a store that cannot be asked: as it was
        if earlier:
            return earlier[-1]
        token = None
    # No token recorded yet: a name made of the URI and the markers before it.
    token = token or key_of([uri, *sorted(p.name for p in earlier)], 12)
    return folder / f"{MARKER_PREFIX}{token}.json"


def init_store(
    tracking_uri: str,
    experiment_names,
    artifact_location=None,
    *,
    marker: str | os.PathLike | None = None,
    results_dir=None,
) -> dict[str, str]:
    """Create the store and the experiments once (idempotent, safe concurrently); check
    everything a run will need; write ``marker``. Returns experiment name -> id. Every logger
    opens its experiment here too (``results_dir``: named if the server is not reachable)."""
    from mlflow.exceptions import MlflowException

    names = [experiment_names] if isinstance(experiment_names, str) else list(experiment_names)
    check_reachable(tracking_uri, results_dir)
    db = sqlite_path(tracking_uri)
    root = artifact_location
    if root is None and db is not None:
        root = db.resolve().parent / "mlartifacts"
    if db is not None:
        check_writable_folder(db.resolve().parent, "folder of the MLflow database")
    local_root = local_artifact_path(root) if root is not None else None
    if local_root is not None and not is_http_uri(tracking_uri):
        # Checked before any experiment points at it (a server resolves paths on its side).
        check_writable_folder(local_root, "MLflow artifact location")
    # The marker's name carries the store's identity token (see store_marker).
    token = Path(marker).stem[len(MARKER_PREFIX) :] if marker is not None else None
    with exclusive_lock(tracking_uri):
        if db is not None:
            prepare_sqlite_store(db)
        session = Session(tracking_uri, results_dir)
        # The token and a local store's folder name the store for its lifetime: kept once set.
        held = {STORE_TOKEN_TAG: read_store_token(tracking_uri) or token}
        held[STORE_FOLDER_TAG] = str(db.resolve().parent) if db is not None else None
        ids = {}
        for name in names:
            if session.get_experiment_by_name(name) is None:
                # Its artifacts go to root/name, the name made safe as a folder's.
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
                location = root and f"{str(root).rstrip('/')}/{safe or 'experiment'}"
                if local_root is not None:
                    location = (local_root / (safe or "experiment")).as_uri()
                try:
                    session.create_experiment(
                        name, artifact_location=location, tags=EXPERIMENT_TAGS
                    )
                except MlflowException:
                    # Another process made it since our lookup (a server is shared).
                    if session.get_experiment_by_name(name) is None:
                        raise
            experiment = session.get_experiment_by_name(name)
            if experiment.lifecycle_stage == "deleted":
                raise TrackingError(
                    f"MLflow experiment {name!r} in {session.uri} is deleted; restore it (mlflow "
                    f"experiments restore --experiment-id {experiment.experiment_id}) or delete "
                    f"it for good (mlflow gc) before logging"
                )
            ids[name] = experiment.experiment_id
            local = local_artifact_path(experiment.artifact_location)
            if local is not None and not is_http_uri(tracking_uri):
                check_writable_folder(local, f"MLflow artifact location of experiment {name!r}")
            _set_tags(session, experiment, {**EXPERIMENT_TAGS, **held})
        with contextlib.suppress(MlflowException):  # the default experiment may be deleted
            _set_tags(session, session.get_experiment("0"), held)
    if marker is not None:
        marker = Path(marker)
        http = configure_http_retries()  # the retry settings in force (set on import)
        write_json(marker, {"uri": tracking_uri, "experiments": ids, "token": token, "http": http})
        for earlier in marker.parent.glob(f"{MARKER_PREFIX}*.json"):
            if earlier.name != marker.name:
                earlier.unlink(missing_ok=True)
    _log.info("tracking store %s ready; experiments %s", tracking_uri, ids)
    return ids


def _set_tags(session: Session, experiment, wanted: dict[str, str | None]) -> None:
    """Set the tags of ``wanted`` an active experiment does not hold with that value."""
    for key, value in wanted.items():
        if value and experiment.lifecycle_stage == "active" and experiment.tags.get(key) != value:
            session.set_experiment_tag(experiment.experiment_id, key, value)


def prepare_sqlite_store(db: Path) -> None:
    """Build a missing, empty or half-built store in a temporary file beside ``db``, renamed
    onto it: a kill or a full disk never leaves a half-built store. Under :func:`exclusive_lock`."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    db = db.resolve()
    if db.exists() and db.stat().st_size > 0 and not inspect_store(db).rebuild:
        return
    # Disposing MLflow's engine closes connections pooled to a store since moved or deleted.
    client.cache_clear()
    for stale in db.parent.glob(f".{db.name}.tmp-*"):  # left by a killed build
        stale.unlink(missing_ok=True)
    with atomic_path(db) as tmp:
        try:
            # A cached, migrated empty store: MLflow's migrations take seconds.
            shutil.copyfile(_store_template(), tmp)
        except Exception as exc:  # noqa: BLE001 - an optimisation only: MLflow migrates tmp
            _log.info("no cached empty MLflow store (%s); MLflow builds the store", exc)
            tmp.write_bytes(b"")
        # The second open adds the default experiment, pointing into the store's own root.
        for _ in range(2):
            SqlAlchemyStore(f"sqlite:///{tmp}", str(db.parent / "mlartifacts")).engine.dispose()


def _store_template() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sparseae"
    template = cache / f"mlflow-{metadata.version('mlflow')}-empty-store.db"
    cache.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(f"template#{template}"):
        if not template.exists():
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            with atomic_path(template) as tmp, tempfile.TemporaryDirectory() as artifacts:
                SqlAlchemyStore(f"sqlite:///{tmp}", artifacts).engine.dispose()
                # Only the schema is shared: the default experiment it made points into
                # `artifacts`; MLflow makes it again, with the store's own root, on first open.
                with contextlib.closing(sqlite3.connect(tmp)) as connection, connection:
                    connection.execute("DELETE FROM experiment_tags")
                    connection.execute("DELETE FROM experiments")
    return template


def _short(cause: object) -> str:
    """The low-level reason behind a failed request (refused, timed out, ...), else its text."""
    reasons = {
        ConnectionRefusedError: "connection refused",
        http.client.RemoteDisconnected: "connection closed",
        ConnectionResetError: "connection reset",
        TimeoutError: "timed out",
        socket.gaierror: "host name not resolved",
    }
    causes = _causes(cause) if isinstance(cause, BaseException) else ()
    found = (text for item in causes for kind, text in reasons.items() if isinstance(item, kind))
    text = str(cause)
    return next(found, text if len(text) <= 300 else text[:300] + "...")
