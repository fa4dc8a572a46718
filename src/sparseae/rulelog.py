"""Logging for workflow rule scripts: everything, errors included, lands in the rule's log.

Snakemake's error report tells the user to read the job's ``log:`` file; without this the log
would be empty when a script dies with a traceback (that goes to the console only). A known
failure (:func:`failure_line`) is written as one ``CRITICAL failed: <message>`` line and
printed without a traceback; any other exception keeps its traceback.
"""

from __future__ import annotations

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
    errno.ENOSPC: "free space on that file system (or work in a folder with room), then rerun",
    errno.EDQUOT: "your disk quota is used up: free space or raise the quota, then rerun",
    errno.ENAMETOOLONG: "a name in that path is too long for its file system: shorten it",
    errno.EACCES: "you may not use that path: change its permissions or work elsewhere",
    errno.EPERM: "you may not use that path: change its permissions or work elsewhere",
    errno.EROFS: "that file system is read-only: work in a writable folder",
}


def log_to_rule_log(
    path: str | os.PathLike, *, fmt: str = DEFAULT_FORMAT, level: int = logging.INFO
) -> None:
    """Send the root logger to ``path`` (the rule's log, truncated), uncaught exceptions too."""
    logging.basicConfig(filename=os.fspath(path), filemode="w", level=level, format=fmt)
    # On a full disk the log cannot be written either: one line on stderr, not a traceback
    # per log record.
    logging.raiseExceptions = False

    def log_then_report(kind, error, trace):
        if failure_line(error) is not None:
            _report(error)
            return
        logging.critical("failed:", exc_info=(kind, error, trace))
        sys.__excepthook__(kind, error, trace)

    sys.excepthook = log_then_report


def user_errors() -> tuple[type[BaseException], ...]:
    """The project's own errors, printed as one line; anything else (a bug) keeps its traceback."""
    return (SparseaeError,)


def failure_line(error: BaseException) -> str | None:
    """The one line a known failure is shown as; ``None`` for a bug (it keeps its traceback).

    Known: the project's errors, and the operating system refusing a named file (disk full,
    name too long, no permission, read-only): the user, not a developer, acts on those.
    """
    if isinstance(error, user_errors()):
        return str(error)
    if isinstance(error, OSError) and error.filename is not None:
        names = " -> ".join(str(n) for n in (error.filename, error.filename2) if n is not None)
        fix = OS_FIXES.get(error.errno, "check that path and the folders above it")
        return f"{names}: {error.strerror or error}; {fix}"
    return None


def stdout_failure(error: OSError) -> int:
    """Standard output closed (``| head -0``) or full (``> /dev/full``): exit as command-line
    tools do, quietly with 141 (128 + SIGPIPE) for a closed pipe, one line and 1 otherwise.
    ``error`` is raised again when it did not come from stdout."""
    if not isinstance(error, BrokenPipeError) and not _stdout_full():
        raise error
    try:  # what is still buffered goes nowhere, so Python's flush at exit cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (a captured stdout)
        pass
    if isinstance(error, BrokenPipeError):
        return 128 + signal.SIGPIPE
    print(f"sparseae: error: cannot write standard output: {error.strerror}", file=sys.stderr)
    return 1


def _stdout_full() -> bool:
    try:
        fd = sys.stdout.fileno()
        os.write(fd, b"")  # a device that refuses writes (/dev/full) refuses even this
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.fstatvfs(fd).f_bavail == 0
    except io.UnsupportedOperation:  # a captured stdout: not a file
        return False
    except OSError:
        return True


def _report(error: BaseException) -> None:
    """A known failure: one line in the log and on stderr, no traceback."""
    line = failure_line(error)
    logging.critical("failed: %s", line)
    print(f"sparseae: error: {line}", file=sys.stderr)


def run_rule(log_path: str | os.PathLike, step, /, *args, fmt: str = DEFAULT_FORMAT, **kwargs):
    """Run ``step(*args, **kwargs)`` (the package function of the rule's name), logging to
    ``log_path`` (``snakemake.log[0]``); a known failure (:func:`failure_line`) ends the job
    with its one-line message on stderr and in the log, without a traceback."""
    log_to_rule_log(log_path, fmt=fmt)
    try:
        return step(*args, **kwargs)
    except Exception as error:
        if failure_line(error) is None:
            raise
        _report(error)
        sys.exit(1)
