"""Logging for workflow rule scripts: everything, errors included, lands in the rule's log.

Snakemake's error report tells the user to read the job's ``log:`` file; without this the log
would be empty when a script dies with a traceback (that goes to the console only). The
project's own errors (:func:`user_errors`) are written as one ``CRITICAL failed: <message>``
line and printed without a traceback; any other exception keeps its traceback.
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

    def log_then_report(kind, error, trace):
        if isinstance(error, user_errors()):
            # A known failure (bad input, unreachable store): the message says it all.
            _report(error)
            return
        logging.critical("failed:", exc_info=(kind, error, trace))
        sys.__excepthook__(kind, error, trace)

    sys.excepthook = log_then_report


def user_errors() -> tuple[type[BaseException], ...]:
    """The project's own errors (:class:`~sparseae.errors.SparseaeError`): printed as one line.

    Anything else escaping a rule script (a real bug) keeps its traceback, in the log and on
    the console.
    """
    from sparseae.errors import SparseaeError

    return (SparseaeError,)


def _report(error: BaseException) -> None:
    """A known failure: one line in the log and on stderr, no traceback."""
    logging.critical("failed: %s", error)
    print(f"sparseae: error: {error}", file=sys.stderr)


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
        _report(error)
        sys.exit(1)
