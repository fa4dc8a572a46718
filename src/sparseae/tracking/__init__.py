"""MLflow tracking: the result files on disk are the truth, MLflow is filled from them; MLflow
is imported only inside the functions that open a store (cheap package import)."""

from __future__ import annotations

from sparseae.tracking.logger import log_results, log_sweep
from sparseae.tracking.results import ResultsError
from sparseae.tracking.settings import configure_http_retries, resolve_tracking_uri
from sparseae.tracking.store import (
    ArtifactLocationError,
    TrackingUnavailableError,
    init_store,
    read_store_token,
    store_marker,
)

__all__ = [
    "ArtifactLocationError",
    "ResultsError",
    "TrackingUnavailableError",
    "configure_http_retries",
    "init_store",
    "log_results",
    "log_sweep",
    "read_store_token",
    "resolve_tracking_uri",
    "store_marker",
]
