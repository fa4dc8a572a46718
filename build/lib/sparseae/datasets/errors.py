"""Exceptions raised by :mod:`sparseae.datasets`.

Every message names the file (and, for checksums, the expected and the actual digest) so a
user can act on it without reading code.
"""

from __future__ import annotations


class DatasetError(Exception):
    """Bad or missing input data: a file, a folder, a variable, a header."""


class ChecksumError(DatasetError):
    """A file on disk does not have the checksum the registry records for it."""


class DownloadError(DatasetError):
    """Every mirror failed for a file; the message lists each URL and why it failed."""
