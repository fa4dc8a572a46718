"""Where runs go (the tracking URI and its checks) and how fast an unreachable server fails."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
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

#: Defaulted like the retries: the pipeline is offline, so MLflow's telemetry is off.
OFFLINE_DEFAULTS = {"MLFLOW_DISABLE_TELEMETRY": "true"}

#: Environment variable that selects the tracking store; it wins over the config.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"

#: File name of the default local store, in the working directory.
DEFAULT_DB_NAME = "mlflow.db"


def configure_http_retries(environ: dict | None = None) -> dict[str, str]:
    """Set MLflow's HTTP retry, timeout (and telemetry) variables in ``environ`` (default
    ``os.environ``) to fail fast, unless set; return those of :data:`HTTP_RETRY_DEFAULTS`."""
    environ = os.environ if environ is None else environ
    for name, value in {**HTTP_RETRY_DEFAULTS, **OFFLINE_DEFAULTS}.items():
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
    problem = blank_environment_problem(environ)
    if problem:
        raise ValueError(problem)
    uri = environ.get(TRACKING_URI_ENV) or config_value or f"sqlite:///{DEFAULT_DB_NAME}"
    uri = str(uri).strip()
    problem = check_tracking_uri_text(uri)
    if problem:
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
        return f"{error}; allowed: sqlite:///PATH or http(s)://HOST:PORT"
    parsed = urlparse(text)
    if parsed.scheme in ("http", "https"):
        try:
            port = parsed.port
        except ValueError:
            port = -1
        if not parsed.hostname or port == -1:
            return (
                f"tracking URI {text!r} has no valid host and port; allowed: "
                f"http(s)://HOST:PORT, e.g. http://127.0.0.1:5000"
            )
        return None
    if "://" not in text:
        return (
            f"tracking URI {text!r} is neither sqlite:///PATH nor http(s)://HOST:PORT; MLflow 3 "
            f"no longer accepts a plain folder (the ./mlruns file store) by default"
        )
    if parsed.scheme == "file":
        return (
            f"tracking URI {text!r} is MLflow's file store, which MLflow 3 keeps in maintenance "
            f"mode and refuses by default; allowed: sqlite:///PATH (a single file, e.g. "
            f"sqlite:///mlflow.db) or http(s)://HOST:PORT"
        )
    scheme = parsed.scheme.split("+")[0]
    if scheme in DATABASE_DRIVERS:
        import importlib.util

        driver = parsed.scheme.split("+")[1] if "+" in parsed.scheme else None
        modules = [driver] if driver else DATABASE_DRIVERS[scheme]
        if not any(importlib.util.find_spec(module) for module in modules):
            return (
                f"tracking URI {text!r} needs the database driver {' or '.join(modules)}, which "
                f"is not installed; install it into the environment (pip install ...), or use "
                f"sqlite:///PATH or http(s)://HOST:PORT"
            )
    if scheme not in OTHER_STORE_SCHEMES:
        import difflib

        close = difflib.get_close_matches(parsed.scheme, ["http", "https", "sqlite"], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (
            f"tracking URI {text!r} has the scheme {parsed.scheme!r}{hint}; allowed: "
            f"sqlite:///PATH or http(s)://HOST:PORT (or a database URI MLflow accepts: "
            f"{', '.join(OTHER_STORE_SCHEMES)})"
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


def check_sqlite_file(uri: str) -> str | None:
    """A message if the file of a ``sqlite:///`` URI exists but is no SQLite database (an empty
    file is fine), before MLflow would print a long SQLAlchemy error about it."""
    path = sqlite_path(uri)
    if path is None or not path.exists():
        return None
    if path.is_dir():
        return f"MLflow database {path} is a folder, not a file; allowed: an SQLite file path"
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        return f"MLflow database {path} cannot be read: {error.strerror or error}"
    if head and head != SQLITE_HEADER:
        return (
            f"MLflow database {path} is not an SQLite database (it starts with {head[:8]!r}); "
            f"allowed: an SQLite file made by MLflow, or a path that does not exist yet; fix: "
            f"move that file away or point tracking.uri / MLFLOW_TRACKING_URI elsewhere"
        )
    return None


def is_http_uri(uri: str) -> bool:
    """Whether ``uri`` points at a tracking server."""
    return urlparse(uri).scheme in ("http", "https")


def local_artifact_path(location: str | os.PathLike) -> Path | None:
    """Return the folder of a local artifact location (plain path or ``file://``), else ``None``."""
    text = os.fspath(location)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return Path(text).resolve()
    return None
