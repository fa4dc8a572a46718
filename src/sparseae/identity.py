"""The key of anything the pipeline computes: canonical JSON → sha256. Data, trajectory and
stacked stage keys and checkpoint metadata all come from :func:`key_of`, so two results are
the same result exactly when their keys agree."""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Hex digits of a key: 64 bits, enough to tell settings apart, short enough for file metadata.
KEY_LENGTH = 16


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: equal settings give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def key_of(obj: Any, length: int = KEY_LENGTH) -> str:
    """The sha256 of :func:`canonical_json` of ``obj``, cut to ``length`` hex digits."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:length]
