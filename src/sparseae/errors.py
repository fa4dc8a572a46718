"""The configuration error every config check raises (re-exported by :mod:`sparseae.config`)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem; the message names the key(s) and the allowed range."""
