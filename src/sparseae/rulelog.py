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
