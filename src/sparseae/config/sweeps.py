"""Sweeps: naming their members, expanding them into experiments, refusing bad ones.

``grid: {lambda_: [1e-4, 1e-3]}`` of sweep ``s`` gives members ``s-lam1e-04`` and ``s-lam1e-03``;
tokens come in a fixed order, so reordering the grid never renames a member.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping
from typing import Any

from sparseae.config.keys import flatten
from sparseae.config.schema import coerce, deep_merge

#: Short grid keys and the settings they stand for, in naming order.
SWEEP_ALIASES = {
    "lambda_": ("model.lambda_", "lam"),
    "beta": ("model.beta", "beta"),
    "rho": ("model.rho", "rho"),
    "hidden_size": ("model.hidden_size", "hid"),
    "visible_size": ("model.visible_size", "vis"),
    "seed": ("seed", "seed"),
}

#: Grid keys that are no setting of the training (free text): members would be identical runs.
TEXT_KEYS = ("description",)


def format_value(value: Any) -> str:
    """Readable, stable text for a sweep value (config/README.md gives the rules)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        if 1e-2 <= abs(value) < 1e4:
            return f"{value:g}"
        mantissa, exponent = f"{value:.6e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"
    return str(value)


def grid_key(key: str) -> tuple[str, str]:
    """Grid key -> (dotted path in the experiment, name token)."""
    return SWEEP_ALIASES.get(key) or (key, key.rsplit(".", 1)[-1].replace("_", ""))


def _grid_order(key: str) -> tuple[int, str]:
    path, aliases = grid_key(key)[0], [alias for alias, _ in SWEEP_ALIASES.values()]
    return (aliases.index(path), "") if path in aliases else (len(aliases), path)


def grid_settings(grid: Mapping) -> dict[str, str]:
    """``{grid key: dotted path in the experiment}`` in naming order (like member names)."""
    return {key: grid_key(key)[0] for key in sorted(grid, key=_grid_order)}


def coerce_sweeps(sweeps: Mapping, root: Mapping) -> dict:
    """The sweeps with their overrides and grid values read as the settings' numbers."""
    out = copy.deepcopy(dict(sweeps))
    for sweep in out.values():
        if not isinstance(sweep, dict):
            continue
        if isinstance(sweep.get("overrides"), dict):
            sweep["overrides"] = coerce(sweep["overrides"], root, "experiment")
        grid = sweep.get("grid")
        for key, values in grid.items() if isinstance(grid, dict) else ():
            if not (isinstance(key, str) and isinstance(values, list)):
                continue  # refused by the schema
            path = grid_key(key)[0]
            for index, value in enumerate(values):  # read as the experiment reads that setting
                nested = coerce(_nested(path, value), root, "experiment")
                for part in path.split("."):
                    nested = nested[part]
                values[index] = nested
    return out


def _nested(path: str, value: Any) -> dict:
    """``{"a": {"b": value}}`` for the dotted ``path`` ``a.b``."""
    for part in reversed(path.split(".")):
        value = {part: value}
    return value


def sweep_problems(
    name: str, sweep: Mapping, experiments: Mapping, name_rule: Mapping
) -> list[str]:
    """Problems of one sweep, one message each (``name_rule``: the schema's ``$defs/name``)."""
    base = sweep.get("base", "natural")
    if base not in experiments:
        return [
            f"config key 'sweeps.{name}.base' = {base!r} is not a defined experiment; allowed: "
            f"one of {', '.join(sorted(experiments)) or '(none defined)'}; fix: name one of them"
        ]
    grid = sweep["grid"]
    keys = sorted(grid, key=_grid_order)
    if len({grid_key(k)[0] for k in keys}) != len(keys):
        return [
            f"config key 'sweeps.{name}.grid' names the same setting twice: {keys}; allowed: "
            f"each setting once; fix: remove one of them"
        ]
    problems: list[str] = []
    allowed_name = str(name_rule.get("description", "")).strip()
    for key in keys:
        path, token = grid_key(key)
        if path in TEXT_KEYS:
            problems.append(
                f"config key 'sweeps.{name}.grid.{key}' = {grid[key]!r}: {path} is free text, "
                f"not a setting of the training (members would be identical runs); allowed: "
                f"grid keys lambda_, beta, rho, hidden_size, visible_size, seed or a dotted "
                f"setting path; fix: remove {key!r} from the grid (set a description in "
                f"'overrides')"
            )
            continue
        for override in flatten(sweep.get("overrides") or {}):
            if f"{override}.".startswith(f"{path}.") or path.startswith(f"{override}."):
                problems.append(
                    f"config key 'sweeps.{name}.overrides.{override}' and config key "
                    f"'sweeps.{name}.grid.{key}' both set {path}: the grid would silently "
                    f"replace the override; allowed: each setting in either overrides or grid; "
                    f"fix: remove {override} from 'overrides' or {key} from 'grid'"
                )
        for value in grid[key]:
            member = f"{name}-{token}{format_value(value)}"
            if re.search(name_rule["pattern"], member) is None:
                problems.append(
                    f"config key 'sweeps.{name}.grid.{key}': the value {value!r} gives the "
                    f"member name {member!r}, which is no valid experiment name; allowed: "
                    f"values whose text keeps the name valid ({allowed_name}); fix: use such "
                    f"values, or define an experiment of its own for {value!r}"
                )
    return problems


def expand_sweep(
    name: str, sweep: Mapping, experiments: Mapping, *, name_rule: Mapping | None = None
) -> dict[str, dict]:
    """One sweep as ``{member name: raw experiment}`` (no defaults), in grid product order,
    refused first by :func:`sweep_problems` (``name_rule`` default: the packaged schema's)."""
    from sparseae.config.schema import load_schema, raise_problems

    rule = name_rule if name_rule is not None else load_schema()["$defs"]["name"]
    raise_problems(sweep_problems(name, sweep, experiments, rule))
    base = deep_merge(experiments[sweep.get("base", "natural")], sweep.get("overrides", {}))
    keys = sorted(sweep["grid"], key=_grid_order)
    members: dict[str, dict] = {}
    for values in itertools.product(*(sweep["grid"][k] for k in keys)):
        experiment, tokens = base, [name]
        for key, value in zip(keys, values, strict=True):
            experiment = deep_merge(experiment, _nested(grid_key(key)[0], value))
            tokens.append(f"{grid_key(key)[1]}{format_value(value)}")
        member = "-".join(tokens)
        if member in members:
            raise_problems(
                [
                    f"config key 'sweeps.{name}.grid': two members would both be named {member!r}; "
                    f"allowed: values that differ in their text form; fix: change one of them"
                ]
            )
        members[member] = experiment
    return members


def name_clash_problems(
    experiments: Mapping, stacked: Mapping, sweeps: Mapping, members_of: Mapping
) -> list[str]:
    """One message per name used twice among experiments, stacked experiments, sweeps and
    sweep members, naming both keys (``run`` would otherwise silently pick one)."""
    owner: dict[str, str] = {}
    problems: list[str] = []
    entries = [
        *((n, f"experiments.{n}") for n in experiments),
        *((n, f"stacked_experiments.{n}") for n in stacked),
        *((n, f"sweeps.{n}") for n in sweeps),
        *((m, f"sweeps.{s}.grid") for s, members in members_of.items() for m in members),
    ]
    for entry, key in entries:
        first = owner.setdefault(entry, key)
        if first == key:
            continue
        what = f"member {entry!r}" if key.endswith(".grid") else f"name {entry!r}"
        other = f"config key '{first}'"
        if first.endswith(".grid"):
            other = f"member {entry!r} of {other}"
        problems.append(
            f"config key '{key}': {what} clashes with {other}; allowed: names used once across "
            f"experiments, stacked_experiments, sweeps and sweep members; fix: rename one of them"
        )
    return problems
