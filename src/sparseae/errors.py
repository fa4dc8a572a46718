"""The configuration error every config check raises (re-exported by :mod:`sparseae.config`),
and the command line's usage error (re-exported by :mod:`sparseae.cli`)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem; the message names the key(s) and the allowed range."""


class UsageError(Exception):
    """A problem with the command line or config the user must fix (exit status 1)."""
