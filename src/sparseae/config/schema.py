"""The config schema: reading YAML as written, numbers as meant, validation, defaults.

The packaged ``schemas/config.schema.yaml`` (JSON schema 2020-12) states every single-field
rule; the workflow, the command line and the library all validate with it.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from sparseae.errors import ConfigError

#: The one config schema, shipped inside the package so an installed wheel validates too.
DEFAULT_SCHEMA = resources.files("sparseae").joinpath("schemas", "config.schema.yaml")

#: Text YAML 1.1 does not read as a number but JSON / YAML 1.2 do: ``1e-2``, ``5E3``, ``-2e+4``.
_SCIENTIFIC = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_OCTAL = re.compile(r"^[-+]?0[0-7_]+$")


def load_schema(schema: str | os.PathLike | Mapping | None = None) -> dict:
    """The config schema as a dict (``schema``: a path, a dict, or None for the packaged one)."""
    if isinstance(schema, Mapping):
        return dict(schema)
    import yaml

    text = (Path(schema) if schema is not None else DEFAULT_SCHEMA).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def raise_problems(problems: list[str | None]) -> None:
    """Raise one :class:`~sparseae.errors.ConfigError` listing ``problems`` (Nones skipped)."""
    problems = [problem for problem in problems if problem]
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


def resolve_refs(node: Mapping, root: Mapping) -> dict:
    """Follow local ``$ref`` (``#/...``) and merge ``allOf`` into one schema dict."""
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


def _child(node: Mapping | None, key: Any, root: Mapping) -> Mapping | None:
    """Schema node of ``key`` below ``node`` (a property, or additionalProperties / items)."""
    if node is None:
        return None
    node = resolve_refs(node, root)
    if isinstance(key, int):
        items = node.get("items")
        return items if isinstance(items, Mapping) else None
    extra = node.get("additionalProperties")
    return node.get("properties", {}).get(key, extra if isinstance(extra, Mapping) else None)


def setting_node(path: str, root: Mapping) -> Mapping | None:
    """Schema node of a dotted experiment setting (e.g. ``model.rho``), None if unknown."""
    node: Mapping | None = root["$defs"]["experiment"]
    for part in path.split("."):
        node = _child(node, part, root)
    return resolve_refs(node, root) if node is not None else None


def coerce(value: Any, node: Mapping | None, root: Mapping) -> Any:
    """``value`` with number text (``1e-2``: YAML 1.1 text) and whole floats at integer keys
    (``1e4``) read as the numbers meant."""
    if isinstance(value, dict):
        return {key: coerce(item, _child(node, key, root), root) for key, item in value.items()}
    if isinstance(value, list):
        return [coerce(item, _child(node, i, root), root) for i, item in enumerate(value)]
    if node is None or isinstance(value, bool):
        return value
    kind = resolve_refs(node, root).get("type", [])
    types = {kind} if isinstance(kind, str) else set(kind)
    if not types & {"number", "integer"}:
        return value
    if isinstance(value, str) and "string" not in types and _SCIENTIFIC.match(value.strip()):
        value = float(value)
    whole = isinstance(value, float) and math.isfinite(value) and value.is_integer()
    return int(value) if "integer" in types and whole else value


def non_finite_problems(config: Any, root: Mapping) -> list[str]:
    """One message per ``.nan`` / ``.inf`` / ``-.inf`` in ``config`` (``minimum`` lets them
    through; they would fail late, in the gradient check)."""
    problems: list[str] = []

    def walk(value: Any, node: Mapping | None, path: tuple) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            shown = {"nan": ".nan", "inf": ".inf", "-inf": "-.inf"}[repr(value)]
            text = (resolve_refs(node, root) if node else {}).get("description")
            allowed = str(text).strip() if text else "a finite number"
            problems.append(
                f"config key '{_key(path)}': {shown} is not a finite number; allowed: "
                f"{allowed} (a finite number such as 0.01 or 1.0e-4)"
            )
        elif isinstance(value, dict | list):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                walk(item, _child(node, key, root), (*path, key))

    walk(config, root, ())
    return problems


def _key(path: Iterable[Any]) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(top level)"


def _allowed(schema: Mapping) -> str:
    if "description" in schema:
        return str(schema["description"]).strip()
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if "type" in schema:
        return f"type {schema['type']}"
    return "see config/README.md"


def _format_error(error: Any, root: Mapping) -> str:
    key = _key(error.absolute_path)
    schema = resolve_refs(error.schema, root) if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = f"under '{key}'" if error.absolute_path else "at the top level"
        return (
            f"unknown config key(s) {', '.join(repr(e) for e in extra)} {where}; "
            f"allowed keys: {', '.join(allowed) or '(none)'}"
        )
    if error.validator == "propertyNames":
        name = error.instance
        return (
            f"config key '{_key([*error.absolute_path, name])}': the name {name!r} is not "
            f"allowed; allowed: {_allowed(schema)}"
        )
    if error.validator == "required":
        return f"config key '{key}': {error.message}"
    value = json.dumps(error.instance, default=str)
    if error.validator == "type":
        return (
            f"config key '{key}' = {value} has the wrong type ({type(error.instance).__name__}); "
            f"expected {error.validator_value}; allowed: {_allowed(schema)}"
        )
    allowed = _allowed(schema)
    return f"config key '{key}' = {value} is not allowed ({error.message}); allowed: {allowed}"


def schema_problems(
    config: Any, root: Mapping, *, subschema: str | None = None, prefix: Iterable[Any] = ()
) -> list[str]:
    """Every violation of the schema (or of ``$defs[subschema]``), sorted by dotted key."""
    from jsonschema import Draft202012Validator

    target = dict(root["$defs"][subschema]) if subschema else dict(root)
    target["$defs"] = root.get("$defs", {})  # local references resolve in the subschema too
    errors = sorted(
        Draft202012Validator(target).iter_errors(config),
        key=lambda e: [str(p) for p in e.absolute_path],
    )
    for error in errors:
        error.path.extendleft(reversed(list(prefix)))
    return [_format_error(error, target) for error in errors]


def apply_defaults(instance: Any, node: Mapping, root: Mapping) -> Any:
    """A deep copy of ``instance`` with missing keys filled from the schema's defaults."""
    instance = copy.deepcopy(instance)
    _fill(instance, node, root)
    return instance


def _fill(instance: Any, node: Mapping, root: Mapping) -> None:
    if not isinstance(instance, dict):
        return
    node = resolve_refs(node, root)
    props = node.get("properties", {})
    for name in [*props, *(name for name in instance if name not in props)]:
        sub = _child(node, name, root)
        if sub is None:
            continue
        sub = resolve_refs(sub, root)
        if name not in instance and "default" in sub:
            instance[name] = copy.deepcopy(sub["default"])  # never one dict shared by two
        if name in instance:
            _fill(instance[name], sub, root)


def yaml_file_problems(paths) -> list[str]:
    """Config files whose YAML 1.1 (PyYAML, Snakemake) means other than it shows: a key given
    twice, ``010`` (octal 8), ``1:30`` (base 60). Unreadable files are left to the loader."""
    import yaml

    problems: list[str] = []
    for path in paths:
        try:
            node = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if node is not None:
            problems += _yaml_node_problems(node, path, [])
    return problems


def _yaml_node_problems(node, path, keys: list) -> list[str]:
    import yaml

    problems = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in seen:
                problems.append(
                    f"config file {path}, line {line}: key '{_key([*keys, key])}' is given twice "
                    f"(first on line {seen[key]}); YAML silently keeps only the last; merge the two"
                )
            seen.setdefault(key, line)
            problems += _yaml_node_problems(value_node, path, [*keys, key])
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _yaml_node_problems(item, path, [*keys, index])
    elif isinstance(node, yaml.ScalarNode) and node.style is None:
        number = node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
        text = node.value
        if number and (_OCTAL.match(text) or ":" in text):
            meaning = yaml.safe_load(text)
            kind = "an octal number" if _OCTAL.match(text) else "a base-60 number"
            problems.append(
                f"config file {path}, line {node.start_mark.line + 1}: key '{_key(keys)}' = "
                f"{text} is read by YAML as {kind}, {meaning}; write {meaning} (or the number "
                f"without leading zeros), or quote it if text is meant"
            )
    return problems


def read_yaml(path: str | os.PathLike) -> dict:
    """One config file: a mapping, read with safe_load, free of :func:`yaml_file_problems`."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"config file {path} does not exist (working folder {Path.cwd()}); give the "
            f"path of a YAML file, e.g. config/stl-t10k.yaml"
        )
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "a device or pipe"
        raise ConfigError(f"config file {path} is {kind}, not a file; give a YAML file")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 ({exc}): save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if config is None:
        raise ConfigError(f"config file {path} is empty; write settings into it or leave it out")
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} must hold a mapping, not {type(config).__name__}")
    raise_problems(yaml_file_problems([path]))
    return config


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """``override`` merged over a copy of ``base`` as Snakemake's ``--configfile`` merges."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
