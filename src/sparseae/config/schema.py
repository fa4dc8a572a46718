"""The config schema: reading YAML as written, numbers as meant, validation, defaults.

The packaged ``schemas/config.schema.yaml`` (JSON schema 2020-12) states every single-field
rule; the workflow, the command line and the library all validate with it.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import operator
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


def load_schema(schema: str | os.PathLike | None = None) -> dict:
    """The config schema as a dict (``schema``: a path, or None for the packaged one)."""
    import yaml

    text = (Path(schema) if schema is not None else DEFAULT_SCHEMA).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def raise_problems(problems: list[str | None]) -> None:
    """Raise one :class:`~sparseae.errors.ConfigError` listing ``problems`` (Nones skipped)."""
    problems = [problem for problem in problems if problem]
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


@functools.cache
def _keywords(*, fill: bool) -> type:
    """A 2020-12 validator whose ``type`` also reports number text and whole floats to read
    as numbers (and non-finite numbers), and, with ``fill``, whose ``properties`` fills the
    defaults: jsonschema resolves ``$ref`` and ``allOf`` and names each value's path itself."""
    from jsonschema import Draft202012Validator, ValidationError, validators

    base = Draft202012Validator.VALIDATORS

    def type_(validator, types, instance, schema):
        kinds = {types} if isinstance(types, str) else set(types)
        value = instance
        if isinstance(value, str) and "string" not in kinds and _SCIENTIFIC.match(value.strip()):
            value = float(value) if kinds & {"number", "integer"} else value
        if isinstance(value, float) and not math.isfinite(value) and kinds & {"number", "integer"}:
            yield ValidationError("not finite", validator="finite", instance=value, schema=schema)
            return
        whole = isinstance(value, float) and math.isfinite(value) and value.is_integer()
        value = int(value) if "integer" in kinds and whole else value
        if value is not instance:
            yield ValidationError("read as", validator="coerce", instance=value, schema=schema)
            return
        yield from base["type"](validator, types, instance, schema)

    def properties(validator, props, instance, schema):
        if fill and validator.is_type(instance, "object"):
            for name, sub in props.items():
                if name not in instance and "default" in sub:
                    instance[name] = copy.deepcopy(sub["default"])  # never one dict shared
        yield from base["properties"](validator, props, instance, schema)

    return validators.extend(Draft202012Validator, {"type": type_, "properties": properties})


def _errors(config: Any, root: Mapping, subschema: str | None, *, fill: bool = False) -> list:
    """Every error of ``config`` against the schema (or ``$defs[subschema]``), path-sorted."""
    target = dict(root["$defs"][subschema]) if subschema else dict(root)
    target["$defs"] = root.get("$defs", {})  # local references resolve in the subschema too
    errors = _keywords(fill=fill)(target).iter_errors(config)
    return sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])


def coerce(config: Any, root: Mapping, subschema: str | None = None) -> Any:
    """A copy of ``config`` with number text (``1e-2``: YAML 1.1 text) and whole floats at
    integer keys (``1e4``) read as the numbers meant."""
    config = copy.deepcopy(config)
    for error in _errors(config, root, subschema):
        if error.validator == "coerce" and error.path:
            *parents, leaf = error.path
            functools.reduce(operator.getitem, parents, config)[leaf] = error.instance
    return config


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


def _format_error(error: Any) -> str:
    key = _key(error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "finite":
        shown = {"nan": ".nan", "inf": ".inf", "-inf": "-.inf"}[repr(error.instance)]
        allowed = str(schema.get("description", "a finite number")).strip()
        return (
            f"config key '{key}': {shown} is not a finite number; allowed: {allowed} (a finite "
            f"number such as 0.01 or 1.0e-4)"
        )
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = f"under '{key}'" if error.absolute_path else "at the top level"
        return (
            f"unknown config key(s) {', '.join(repr(e) for e in extra)} {where}; "
            f"allowed keys: {', '.join(allowed) or '(none)'}"
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


def validated(
    config: Any, root: Mapping, *, subschema: str | None = None, prefix: Iterable[Any] = ()
) -> tuple[Any, list[str]]:
    """A deep copy of ``config`` with missing keys filled from the schema's defaults, and every
    violation of the schema (or of ``$defs[subschema]``), sorted by dotted key."""
    filled = copy.deepcopy(config)
    errors = [e for e in _errors(filled, root, subschema, fill=True) if e.validator != "coerce"]
    # A non-finite number (which ``minimum`` lets through) alone: its other errors say less.
    errors = [e for e in errors if e.validator == "finite"] or errors
    for error in errors:
        error.path.extendleft(reversed(list(prefix)))
    return filled, [_format_error(error) for error in errors]


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
