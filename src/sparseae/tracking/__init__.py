"""MLflow tracking: the result files on disk are the truth, MLflow is filled from them.

Public API (the workflow's tracking rules call exactly these)::

    configure_http_retries()                        # done when the store module is imported
    resolve_tracking_uri(config_value=None) -> str
    init_store(tracking_uri, experiment_names, artifact_location=None, *, token=None,
               marker=None) -> {name: id}
    store_marker(tracking_uri, folder) -> Path        # read-only: the init marker's path
    log_results(results_dir, *, experiment_name, tracking_uri, run_key=None, log_dir=None,
                tags=None, parent_run_id=None, chunks=None) -> run_id
    log_sweep(sweep_name, members, *, tracking_uri, experiment_name=None, summary_path=None,
              params=None, output=None, artifacts=None) -> parent run_id

Command line: ``sparseae tracking-init|log|log-sweep|tracking-uri|ui-url ...`` (see ``--help``).

MLflow itself is imported only inside the functions that open a store, so importing this
package (e.g. for ``sparseae --help``) stays cheap.
"""

from __future__ import annotations

from sparseae.tracking.logger import log_results, log_sweep
from sparseae.tracking.results import ResultsError, read_result_folder
from sparseae.tracking.settings import (
    HTTP_RETRY_DEFAULTS,
    SWEEP_TAG,
    configure_http_retries,
    resolve_tracking_uri,
)
from sparseae.tracking.store import (
    ArtifactLocationError,
    TrackingError,
    TrackingUnavailableError,
    check_reachable,
    init_store,
    read_store_token,
    store_marker,
)

__all__ = [
    "HTTP_RETRY_DEFAULTS",
    "SWEEP_TAG",
    "ArtifactLocationError",
    "ResultsError",
    "TrackingError",
    "TrackingUnavailableError",
    "check_reachable",
    "configure_http_retries",
    "init_store",
    "log_results",
    "log_sweep",
    "read_result_folder",
    "read_store_token",
    "resolve_tracking_uri",
    "store_marker",
]
