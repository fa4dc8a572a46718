"""Where runs go (the tracking URI and its checks) and how fast an unreachable server fails."""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib.util
import os
import re
import sqlite3
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

#: MLflow's REST client settings (read per request) unless the user set them: instead of 7
#: retries and 120 s, a refused connection gives up after 3 attempts, a silent host after
#: 3 x 10 s (per socket operation, so large uploads that keep sending are not cut off).
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}

#: MLflow tag naming the sweep a run belongs to (also used by ``common.smk``'s ``mlflow_tags``).
SWEEP_TAG = "sparseae.sweep"

#: Environment variable that selects the tracking store; it wins over the config.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"

#: File name of the default local store, in the working directory.
DEFAULT_DB_NAME = "mlflow.db"
#: The tracking URIs every message offers.
ALLOWED = "sqlite:///PATH or http(s)://HOST:PORT"


def configure_http_retries(environ: dict | None = None) -> dict[str, str]:
    """Set MLflow's HTTP retry and timeout variables in ``environ`` (default ``os.environ``) to
    fail fast, and telemetry off (the pipeline is offline), unless set; return those of
    :data:`HTTP_RETRY_DEFAULTS`."""
    environ = os.environ if environ is None else environ
    for name, value in {**HTTP_RETRY_DEFAULTS, "MLFLOW_DISABLE_TELEMETRY": "true"}.items():
        environ.setdefault(name, value)
    return {name: environ[name] for name in HTTP_RETRY_DEFAULTS}


def resolve_tracking_uri(
    config_value: str | None = None,
    *,
    cwd: str | os.PathLike | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Return the tracking URI: ``MLFLOW_TRACKING_URI``, else ``config_value``, else local
    (relative sqlite paths made absolute against ``cwd``); raises ValueError."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    environ = os.environ if environ is None else environ
    uri = environ.get(TRACKING_URI_ENV) or config_value or f"sqlite:///{DEFAULT_DB_NAME}"
    uri = str(uri).strip()
    if problem := blank_environment_problem(environ) or check_tracking_uri_text(uri):
        raise ValueError(problem)
    db_path = sqlite_path(uri)
    if db_path is not None and not db_path.is_absolute():
        uri = f"sqlite:///{(base / db_path).resolve()}"
    return uri


def blank_environment_problem(environ) -> str | None:
    """A message if ``MLFLOW_TRACKING_URI`` is set but blank (it would be taken as unset)."""
    value = environ.get(TRACKING_URI_ENV)
    if value is not None and not value.strip():
        return (
            f"environment variable {TRACKING_URI_ENV} is set but blank ({value!r}); unset it "
            f"(unset {TRACKING_URI_ENV}) or give a URI such as sqlite:///mlflow.db"
        )
    return None


def sqlite_path(uri: str) -> Path | None:
    """Return the database file of a ``sqlite:///`` URI (relative or absolute), else ``None``."""
    if not uri.startswith("sqlite:"):
        return None
    rest = uri[len("sqlite:") :]
    if not rest.startswith("///"):
        raise ValueError(f"tracking URI {uri!r}: an sqlite URI must start with sqlite:/// ")
    path = rest[3:].split("?", 1)[0]
    if not path or path == ":memory:":
        raise ValueError(f"tracking URI {uri!r} names no database file")
    return Path(path)


def check_tracking_uri_text(uri: str) -> str | None:
    """A message if ``uri`` cannot be a tracking store (no network or file access), else None."""
    text = str(uri).strip()
    try:
        if sqlite_path(text) is not None:
            return None
    except ValueError as error:
        return f"{error}; allowed: {ALLOWED}"
    parsed = urlparse(text)
    if parsed.scheme in ("http", "https"):
        try:
            valid = bool(parsed.hostname) and parsed.port != -1
        except ValueError:  # a port that is not a number, or out of range
            valid = False
        if not valid:
            return (
                f"tracking URI {text!r} has no valid host and port; allowed: "
                f"http(s)://HOST:PORT, e.g. http://127.0.0.1:5000"
            )
        return None
    if "://" not in text:
        neither = ALLOWED.replace("or", "nor")
        return (
            f"tracking URI {text!r} is neither {neither}; MLflow 3 no longer accepts a plain "
            f"folder (the ./mlruns file store) by default"
        )
    if parsed.scheme == "file":
        return (
            f"tracking URI {text!r} is MLflow's file store, which MLflow 3 keeps in maintenance "
            f"mode and refuses by default; allowed: sqlite:///PATH (a single file, e.g. "
            f"sqlite:///mlflow.db) or http(s)://HOST:PORT"
        )
    scheme, _, driver = parsed.scheme.partition("+")
    if scheme in DATABASE_DRIVERS:
        modules = [driver] if driver else DATABASE_DRIVERS[scheme]
        if not any(importlib.util.find_spec(module) for module in modules):
            return (
                f"tracking URI {text!r} needs the database driver {' or '.join(modules)}, which "
                f"is not installed; install it into the environment (pip install ...), or use "
                f"{ALLOWED}"
            )
    if scheme not in OTHER_STORE_SCHEMES:
        close = difflib.get_close_matches(parsed.scheme, ["http", "https", "sqlite"], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (
            f"tracking URI {text!r} has the scheme {parsed.scheme!r}{hint}; allowed: {ALLOWED} "
            f"(or a database URI MLflow accepts: {', '.join(OTHER_STORE_SCHEMES)})"
        )
    return None


#: Other tracking stores MLflow accepts (``postgresql+psycopg2://`` etc. by their first part).
OTHER_STORE_SCHEMES = ("postgresql", "mysql", "mssql", "databricks")

#: The Python modules SQLAlchemy loads for a database URI without ``+driver``.
DATABASE_DRIVERS = {
    "postgresql": ["psycopg2"],
    "mysql": ["MySQLdb", "pymysql"],
    "mssql": ["pyodbc"],
}

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"


#: Experiment tag naming the folder a local store was made for (see :func:`inspect_store`).
STORE_FOLDER_TAG = "sparseae.store_folder"
#: The package MLflow needs for an artifact location's scheme (its module: the first part).
ARTIFACT_CLIENTS = {
    "s3": "boto3",
    "gs": "google-cloud-storage",
    "wasbs": "azure-storage-blob",
    "hdfs": "pyarrow",
}


def check_sqlite_file(uri: str, *, writing: bool = False) -> str | None:
    """A message if a ``sqlite:///`` store cannot take the runs: read-only, not SQLite, damaged,
    foreign, another schema, a copied project's (if ``writing``). Half-built is fine. Reads only."""
    path = sqlite_path(uri)
    if path is None:
        return None
    if "mode=ro" in uri.partition("?")[2]:
        why = "opens the store read-only (mode=ro), but the pipeline writes its runs into it"
        return f"tracking URI {uri} {why}; fix: drop ?mode=ro, or log to another store"
    if not path.exists():
        return None
    if path.is_dir():
        return f"MLflow database {path} is a folder, not a file; allowed: an SQLite file path"
    try:
        with open(path, "r+b") as handle:  # r+: refused for a read-only or immutable file
            head = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        why = f"({error.strerror or error}), but the pipeline writes its runs into it"
        return f"MLflow database {path} cannot be opened for writing {why}; fix: chmod u+w it"
    if head and head != SQLITE_HEADER:
        return (
            f"MLflow database {path} is not an SQLite database (it starts with {head[:8]!r}); "
            f"allowed: an SQLite file made by MLflow, or a path that does not exist yet; fix: "
            f"move that file away or point tracking.uri / MLFLOW_TRACKING_URI elsewhere"
        )
    return inspect_store(path, writing=writing).problem if head else None


class StoreState(NamedTuple):
    """What :func:`inspect_store` found: a problem, or nothing in it (build it anew)."""

    problem: str | None = None
    rebuild: bool = False


def inspect_store(path: Path, *, writing: bool = False) -> StoreState:
    """Check an SQLite file read-only: quick_check, MLflow's tables, schema, project folder."""
    fix = "fix: move that file away (or point tracking.uri / MLFLOW_TRACKING_URI elsewhere)"
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        ) as db:
            damage = db.execute("PRAGMA quick_check(1)").fetchone()[0]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            rows = {t: db.execute(q).fetchall() for t, q in _STORE_QUERIES.items() if t in tables}
    except sqlite3.Error as error:
        # Locked or needing a rollback first (a writer was killed) says nothing about damage.
        if getattr(error, "sqlite_errorcode", 0) & 0xFF not in (11, 26):  # CORRUPT, NOTADB
            return StoreState()
        damage = str(error)
    if damage != "ok":
        return StoreState(
            f"MLflow database {path} is damaged (sqlite: {damage}); {fix}, then rerun "
            f"`snakemake`: a new store is refilled from the result files"
        )
    if not tables:
        return StoreState(rebuild=True)
    if not {"alembic_version", "experiments"} & tables:
        shown = ", ".join(sorted(tables)[:5])
        return StoreState(
            f"{path} is an SQLite database of another application (tables {shown}), not an "
            f"MLflow store; allowed: a store made by MLflow or a new path; {fix}"
        )
    revision = (rows.get("alembic_version") or [[None]])[0][0]
    known, head = mlflow_schema_revisions()
    if revision and known and revision not in known:
        return StoreState(
            f"MLflow database {path} has schema revision {revision!r} of an MLflow newer than "
            f"the installed {metadata.version('mlflow')}; fix: install that newer MLflow, or "
            f"{fix[5:]}"
        )
    if known and (revision != head or any(t.startswith("_alembic_tmp") for t in tables)):
        if not rows.get("runs") and all(r[0] == 0 for r in rows.get("experiments", [])):
            return StoreState(rebuild=True)  # half-built and empty: init_store builds it anew
        return StoreState(
            f"MLflow database {path} has the schema of an older MLflow (revision "
            f"{revision!r}); fix: back it up, then run `mlflow db upgrade sqlite:///{path}`"
        )
    folder = str(path.resolve().parent)
    made_for = next((r[0] for r in rows.get("experiment_tags", [])), folder)
    if writing and made_for != folder:
        return StoreState(
            f"MLflow database {path} was made in {made_for} (a copied project): its "
            f"experiments write artifacts into {made_for}; fix: delete {path} and "
            f"{Path(folder) / 'mlartifacts'} (the next `snakemake` refills MLflow from the "
            f"result files), or set tracking.uri to sqlite:///{made_for}/{path.name}"
        )
    return StoreState()


_STORE_QUERIES = {
    "alembic_version": "SELECT version_num FROM alembic_version",
    "runs": "SELECT run_uuid FROM runs LIMIT 1",
    "experiments": "SELECT experiment_id FROM experiments LIMIT 2",
    "experiment_tags": f"SELECT value FROM experiment_tags WHERE key = '{STORE_FOLDER_TAG}'",
}


@functools.cache
def mlflow_schema_revisions() -> tuple[frozenset[str], str | None]:
    """The schema revisions the installed MLflow knows and its newest (from its scripts)."""
    spec = importlib.util.find_spec("mlflow")  # a dependency: always installed
    revisions, parents = set(), set()
    for script in (Path(spec.origin).parent / "store/db_migrations/versions").glob("*.py"):
        text = script.read_text(encoding="utf-8")
        revisions.update(re.findall(r"^revision\s*=\s*['\"](\w+)['\"]", text, re.M))
        for down in re.findall(r"^down_revision\s*=\s*(\([^)]*\)|.*)$", text, re.M):
            parents.update(re.findall(r"['\"](\w+)['\"]", down))
    heads = revisions - parents
    return frozenset(revisions), heads.pop() if len(heads) == 1 else None


def artifact_client_problem(location: str) -> str | None:
    """A message if the package MLflow needs for an artifact location is not installed."""
    scheme = urlparse(location).scheme.lower()
    package = ARTIFACT_CLIENTS.get(scheme)
    if package is None or importlib.util.find_spec(package.split("-")[0]):
        return None
    return (
        f"{location!r} needs the package {package} (MLflow's {scheme}:// client), which is not "
        f"installed; fix: pip install {package} into this environment, or use a local folder"
    )


def is_http_uri(uri: str) -> bool:
    """Whether ``uri`` points at a tracking server."""
    return urlparse(uri).scheme in ("http", "https")


def local_artifact_path(location: str | os.PathLike) -> Path | None:
    """Return the folder of a local artifact location (plain path or ``file://``), else ``None``."""
    parsed = urlparse(os.fspath(location))
    if parsed.scheme == "file":
        return Path(parsed.path)
    return Path(location).resolve() if parsed.scheme == "" else None
