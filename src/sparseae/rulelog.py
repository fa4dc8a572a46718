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

from sparseae.errors import SparseaeError

DEFAULT_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def log_to_rule_log(
    path: str | os.PathLike, *, fmt: str = DEFAULT_FORMAT, level: int = logging.INFO
) -> None:
    """Send the root logger to ``path`` (the rule's log, truncated), uncaught exceptions too."""
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
    """The project's own errors, printed as one line; anything else (a bug) keeps its traceback."""
    return (SparseaeError,)


def _report(error: BaseException) -> None:
    """A known failure: one line in the log and on stderr, no traceback."""
    logging.critical("failed: %s", error)
    print(f"sparseae: error: {error}", file=sys.stderr)


def run_rule(log_path: str | os.PathLike, step, /, *args, fmt: str = DEFAULT_FORMAT, **kwargs):
    """Run ``step(*args, **kwargs)`` (the package function of the rule's name), logging to
    ``log_path`` (``snakemake.log[0]``); a known failure (:func:`user_errors`) ends the job
    with its one-line message on stderr and in the log, without a traceback."""
    log_to_rule_log(log_path, fmt=fmt)
    try:
        return step(*args, **kwargs)
    except user_errors() as error:
        _report(error)
        sys.exit(1)
