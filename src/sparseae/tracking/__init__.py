"""MLflow tracking: the result files on disk are the truth, MLflow is filled from them.

Public API (the workflow's tracking rules call exactly these)::

    configure_http_retries()                        # also done at import
    resolve_tracking_uri(config_value=None) -> str
    init_store(tracking_uri, experiment_names, artifact_location=None) -> {name: id}
    log_results(results_dir, *, experiment_name, tracking_uri, run_key=None, log_dir=None,
                tags=None, parent_run_id=None) -> run_id
    log_sweep(sweep_name, members, *, tracking_uri, experiment_name=None, summary_path=None,
              params=None, output=None, artifacts=None) -> parent run_id

Command line: ``python -m sparseae.tracking {init,log,sweep,uri} ...`` (see ``--help``).

MLflow itself is imported only when a store is used, so ``sparseae.environment``
stays cheap to import from training code.
"""

from __future__ import annotations

from .settings import (
    HTTP_RETRY_DEFAULTS,
    SWEEP_TAG,
    configure_http_retries,
    resolve_tracking_uri,
)

# Fail fast against an unreachable server unless the user chose otherwise.
configure_http_retries()

_LAZY = {
    "init_store": "store",
    "check_reachable": "store",
    "TrackingError": "store",
    "TrackingUnavailableError": "store",
    "ArtifactLocationError": "store",
    "log_results": "logger",
    "log_sweep": "logger",
    "read_result_folder": "results",
    "ResultsError": "results",
    "main": "cli",
}

__all__ = [
    "HTTP_RETRY_DEFAULTS",
    "SWEEP_TAG",
    "configure_http_retries",
    "resolve_tracking_uri",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
