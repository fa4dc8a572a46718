"""Logging for workflow rule scripts: everything, errors included, lands in the rule's log.

Snakemake's error report tells the user to read the job's ``log:`` file; without this the log
would be empty when a script dies with a traceback (that goes to the console only).
"""

from __future__ import annotations

import logging
import os
import sys

DEFAULT_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def log_to_rule_log(
    path: str | os.PathLike, *, fmt: str = DEFAULT_FORMAT, level: int = logging.INFO
) -> None:
    """Send the root logger to ``path`` (truncated) and log uncaught exceptions there too.

    Parameters
    ----------
    path : path-like
        The rule's log file (``snakemake.log[0]``).
    fmt : str
        :mod:`logging` format of each line.
    level : int
        Lowest level written.
    """
    logging.basicConfig(filename=os.fspath(path), filemode="w", level=level, format=fmt)

    def log_then_report(*exc_info):
        logging.critical("failed:", exc_info=exc_info)
        sys.__excepthook__(*exc_info)

    sys.excepthook = log_then_report


def user_errors() -> tuple[type[BaseException], ...]:
    """The project's own error types: known failures whose message says what to do.

    Anything else escaping a rule script is a bug and keeps its traceback.
    """
    from .config import ConfigError
    from .datasets import DatasetError
    from .sweep import SweepError
    from .tracking.results import ResultsError
    from .tracking.store import TrackingError

    return (ConfigError, DatasetError, SweepError, ResultsError, TrackingError)


def run_rule(log_path: str | os.PathLike, step, /, *args, fmt: str = DEFAULT_FORMAT, **kwargs):
    """Run one workflow step from its rule script, logging to the rule's log.

    A known failure (:func:`user_errors`) ends the job with its one-line message on stderr
    and in the log, without a traceback; any other exception is a bug and keeps it.

    Parameters
    ----------
    log_path : path-like
        The rule's log file (``snakemake.log[0]``).
    step : callable
        The package function of the rule's name; called with ``*args, **kwargs``.
    """
    log_to_rule_log(log_path, fmt=fmt)
    try:
        return step(*args, **kwargs)
    except user_errors() as error:
        logging.error("%s", error)
        sys.exit(f"sparseae: {error}")
