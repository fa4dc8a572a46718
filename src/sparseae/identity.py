"""The key of anything the pipeline computes: canonical JSON (or array bytes) → sha256. Data,
trajectory and stacked stage keys and checkpoint metadata all come from :func:`key_of`, so two
results are the same result exactly when their keys agree."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

#: Hex digits of a key: 64 bits, enough to tell settings apart, short enough for file metadata.
KEY_LENGTH = 16


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: equal settings give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def key_of(obj: Any, length: int = KEY_LENGTH) -> str:
    """The sha256 of :func:`canonical_json` of ``obj``, cut to ``length`` hex digits."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:length]


def arrays_key(arrays: Mapping[str, Any]) -> str:
    """The sha256 of named arrays: names, dtypes, shapes and bytes (full 64 hex digits)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}:".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
