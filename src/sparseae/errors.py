"""Every error the project raises for a user to act on, in one hierarchy: printed as one line
without a traceback (``rulelog``, the command line), naming the key, flag or file, the value,
what is allowed and the fix. Anything else is a bug and keeps its traceback."""

from __future__ import annotations


class SparseaeError(Exception):
    """A known failure whose message tells the user what to change."""


# Configuration and command line
class ConfigError(SparseaeError, ValueError):
    """A configuration problem; the message names the key(s) and the allowed range."""


class DiagnosticsError(ConfigError):
    """Diagnostics settings that do not fit the data (the message names the config key)."""


class UsageError(SparseaeError):
    """A problem with the command line or config the user must fix (exit status 1)."""


# Data
class DatasetError(SparseaeError):
    """Bad or missing input data: a file, a folder, a variable, a header."""


class ChecksumError(DatasetError):
    """A file on disk does not have the checksum the registry records for it."""


class DownloadError(DatasetError):
    """Every mirror failed for a file; the message lists each URL and why it failed."""


# Result files
class ParameterFileError(SparseaeError, ValueError):
    """A parameter or checkpoint file is missing, unreadable or not what it must be."""


class ForeignResultError(ConfigError):
    """A result file that belongs to another experiment state than the current settings."""


class ResultsError(SparseaeError, ValueError):
    """A file in the result folder does not match its contract."""


class ResultFileError(ConfigError, ResultsError):
    """A result file that cannot be read (truncated, corrupt, not what its name says)."""


class SweepError(SparseaeError, ValueError):
    """A member's result files are missing or contradict the sweep (message names the file)."""


# Tracking
class TrackingError(SparseaeError, RuntimeError):
    """Logging to MLflow failed; the message says why and what to do."""


class TrackingUnavailableError(TrackingError):
    """The tracking server or store could not be reached; results on disk are intact."""


class ArtifactLocationError(TrackingError):
    """The artifact location cannot be written."""
