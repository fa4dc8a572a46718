"""Sweeps: naming their members, expanding them into experiments, refusing bad ones.

A sweep ``s`` with ``grid: {lambda_: [1e-4, 1e-3], beta: [3]}`` expands into the experiments
``s-lam1e-04-beta3`` and ``s-lam1e-03-beta3``. Tokens appear in a fixed order (``lam``,
``beta``, ``rho``, ``hid``, ``vis``, ``seed``, then other dotted paths alphabetically, named
by their last component with ``_`` dropped), so reordering the grid in the YAML file never
renames a member. Values: integers as written (``hid196``); floats that are whole numbers
without a decimal point (``beta3``); floats in ``[0.01, 1e4)`` in ``%g`` form (``rho0.05``);
other floats in two-digit-exponent scientific form with the mantissa's trailing zeros dropped
(``lam1e-04``, ``lam2.5e-05``); booleans as ``true``/``false``; strings as written.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping
from typing import Any

from sparseae.config.schema import coerce, deep_merge, setting_node

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
    """Readable, stable text for a sweep value (see the module docstring)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
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
    if key in SWEEP_ALIASES:
        return SWEEP_ALIASES[key]
    return key, key.rsplit(".", 1)[-1].replace("_", "")


def _grid_order(key: str) -> tuple[int, str]:
    path = grid_key(key)[0]
    for index, (alias_path, _) in enumerate(SWEEP_ALIASES.values()):
        if alias_path == path:
            return index, ""
    return len(SWEEP_ALIASES), path


def grid_settings(grid: Mapping) -> dict[str, str]:
    """``{grid key: dotted path in the experiment}`` in naming order, so a sweep table's
    parameter columns read like the member names."""
    return {key: grid_key(key)[0] for key in sorted(grid, key=_grid_order)}


def coerce_sweeps(sweeps: Mapping, root: Mapping) -> dict:
    """The sweeps with their overrides and grid values read as the settings' numbers."""
    out = copy.deepcopy(dict(sweeps))
    for sweep in out.values():
        if not isinstance(sweep, dict):
            continue
        if isinstance(sweep.get("overrides"), dict):
            sweep["overrides"] = coerce(sweep["overrides"], root["$defs"]["experiment"], root)
        grid = sweep.get("grid")
        for key, values in grid.items() if isinstance(grid, dict) else ():
            node = setting_node(grid_key(key)[0], root) if isinstance(key, str) else None
            if node is not None and isinstance(values, list):
                grid[key] = [coerce(value, node, root) for value in values]
    return out


def _leaf_paths(mapping: Mapping, prefix: str = "") -> list[str]:
    """Dotted paths of the values ``mapping`` sets (nested mappings walked)."""
    paths: list[str] = []
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        paths += _leaf_paths(value, f"{path}.") if isinstance(value, Mapping) else [path]
    return paths


def sweep_problems(
    name: str, sweep: Mapping, experiments: Mapping, name_rule: Mapping
) -> list[str]:
    """Problems of one sweep, one message each: an undefined base, a setting named twice, a
    free-text grid key (:data:`TEXT_KEYS`), a setting both in ``overrides`` and ``grid`` (the
    grid would silently replace the override), a value whose member name breaks ``name_rule``
    (the schema's ``$defs/name``), two members of one name."""
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
        for override in _leaf_paths(sweep.get("overrides") or {}):
            if (
                override == path
                or f"{override}.".startswith(f"{path}.")
                or path.startswith(f"{override}.")
            ):
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
    names = [_member_name(name, keys, values) for values in _products(grid, keys)]
    twice = sorted({m for m in names if names.count(m) > 1})
    if twice and not problems:
        problems.append(
            f"config key 'sweeps.{name}.grid': two members would both be named {twice[0]!r}; "
            f"allowed: values that differ in their text form; fix: change one of them"
        )
    return problems


def _products(grid: Mapping, keys: list[str]):
    return itertools.product(*(grid[k] for k in keys))


def _member_name(name: str, keys: list[str], values) -> str:
    tokens = [f"{grid_key(k)[1]}{format_value(v)}" for k, v in zip(keys, values, strict=True)]
    return "-".join([name, *tokens])


def expand_sweep(
    name: str, sweep: Mapping, experiments: Mapping, *, name_rule: Mapping | None = None
) -> dict[str, dict]:
    """One sweep as ``{member name: raw experiment dict}`` (no defaults applied), ordered
    like the Cartesian product of the grid in naming order; :func:`sweep_problems` first
    (``name_rule``: the schema's ``$defs/name``, read from the packaged schema if None)."""
    from sparseae.config.schema import load_schema, raise_problems

    rule = name_rule if name_rule is not None else load_schema()["$defs"]["name"]
    raise_problems(sweep_problems(name, sweep, experiments, rule))
    base = deep_merge(experiments[sweep.get("base", "natural")], sweep.get("overrides", {}))
    keys = sorted(sweep["grid"], key=_grid_order)
    members: dict[str, dict] = {}
    for values in _products(sweep["grid"], keys):
        experiment = copy.deepcopy(base)
        for key, value in zip(keys, values, strict=True):
            *parents, leaf = grid_key(key)[0].split(".")
            node = experiment
            for part in parents:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            node[leaf] = value
        members[_member_name(name, keys, values)] = experiment
    return members


def name_clash_problems(
    experiments: Mapping, stacked: Mapping, sweeps: Mapping, members_of: Mapping
) -> list[str]:
    """One message per name used twice among experiments, stacked experiments, sweeps and
    sweep members (``members_of``: ``{sweep: [member, ...]}``), naming both config keys:
    ``run`` would otherwise silently pick one of the two."""
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
