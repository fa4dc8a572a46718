"""Local ``$ref`` and ``allOf`` of the config schema, resolved into one schema dict per node.

Shared by :mod:`sparseae.config` (defaults, validation messages) and :mod:`sparseae.config.checks`
(numbers read by the schema's types), so neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def resolve_refs(node: Mapping, root: Mapping) -> dict:
    """Follow ``$ref`` (local ``#/...`` only) and merge ``allOf`` into one schema dict."""
    node = dict(node)
    while "$ref" in node:
        ref = node.pop("$ref")
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref are supported, not {ref!r}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        node = {**resolve_refs(target, root), **node}
    for sub in node.pop("allOf", []):
        resolved = resolve_refs(sub, root)
        props = {**resolved.get("properties", {}), **node.get("properties", {})}
        node = {**resolved, **node}
        if props:
            node["properties"] = props
    return node
