"""Logging for workflow rule scripts: everything, errors included, lands in the rule's log
(Snakemake's error report points there). A known failure (:func:`failure_line`) is one
``CRITICAL failed: <message>`` line, printed without a traceback; a bug keeps its traceback."""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import signal
import stat
import sys

from sparseae.errors import SparseaeError

DEFAULT_FORMAT = "%(asctime)s %(levelname)s %(message)s"

#: What to do when the operating system refuses a named file, by errno.
OS_FIXES = {
    **dict.fromkeys((errno.ENOSPC, errno.EDQUOT), "free space on that file system, then rerun"),
    **dict.fromkeys((errno.EACCES, errno.EPERM), "change its permissions or work elsewhere"),
    errno.ENAMETOOLONG: "a name in that path is too long for its file system: shorten it",
    errno.EROFS: "that file system is read-only: work in a writable folder",
}


def failure_line(error: BaseException) -> str | None:
    """The one line of a known failure: the project's errors and the system refusing a named
    file (disk full, name too long, read-only…); ``None`` for a bug, which keeps its traceback."""
    if isinstance(error, SparseaeError):
        return str(error)
    if isinstance(error, OSError) and error.filename is not None:
        names = " -> ".join(str(n) for n in (error.filename, error.filename2) if n is not None)
        fix = OS_FIXES.get(error.errno, "check that path and the folders above it")
        return f"{names}: {error.strerror or error}; {fix}"
    return None


def stdout_failure(error: OSError) -> int:
    """A closed (``| head -0``) or full (``> /dev/full``) stdout ends as command-line tools end:
    quietly with 141 (128 + SIGPIPE) or one line and 1; other errors are raised again."""
    fd, full = None, True
    with contextlib.suppress(io.UnsupportedOperation):  # a captured stdout: not a file
        fd = sys.stdout.fileno()
    with contextlib.suppress(OSError, TypeError):
        os.write(fd, b"")  # a device that refuses writes (/dev/full) refuses even this
        full = stat.S_ISREG(os.fstat(fd).st_mode) and os.fstatvfs(fd).f_bavail == 0
    if fd is None or not (full or isinstance(error, BrokenPipeError)):
        raise error
    # What is still buffered goes nowhere, so Python's flush at exit does not fail again.
    os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
    if isinstance(error, BrokenPipeError):
        return 128 + signal.SIGPIPE
    print(f"sparseae: error: cannot write standard output: {error.strerror}", file=sys.stderr)
    return 1


def run_rule(log_path: str | os.PathLike, step, /, *args, fmt: str = DEFAULT_FORMAT, **kwargs):
    """Run ``step(*args, **kwargs)`` (the package function of the rule's name), logging to
    ``log_path`` (``snakemake.log[0]``, truncated); an uncaught known failure
    (:func:`failure_line`) ends the job with its one-line message on stderr and in the log,
    without a traceback (a hook: a rule script is a process of its own)."""
    logging.basicConfig(filename=os.fspath(log_path), filemode="w", level=logging.INFO, format=fmt)
    # On a full disk the log cannot be written either: no traceback per log record then.
    logging.raiseExceptions = False

    def log_then_report(kind, error, trace):
        line = failure_line(error)
        if line is not None:
            logging.critical("failed: %s", line)
            print(f"sparseae: error: {line}", file=sys.stderr)
            return
        logging.critical("failed:", exc_info=(kind, error, trace))
        sys.__excepthook__(kind, error, trace)

    sys.excepthook = log_then_report
    return step(*args, **kwargs)
