"""The configuration layer: one pass from the YAML files to resolved experiments.

:func:`resolve_config` reads the files, applies the schema (:mod:`.schema`), expands sweeps
(:mod:`.sweeps`) and applies the cross-field rules (:mod:`.rules`).
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Mapping, Sequence

from sparseae.config.checks import name_problems
from sparseae.config.environment import sources_problems
from sparseae.config.keys import (
    PURPOSES,
    RECOMPUTE_KINDS,
    RECOMPUTES,
    describe_difference,
    fingerprint,
    recomputes,
    rng,
    trajectory_config,
    write_config,
)
from sparseae.config.resolved import Config, Experiment
from sparseae.config.rules import experiment_problems, stacked_problems
from sparseae.config.schema import (
    DEFAULT_SCHEMA,
    coerce,
    deep_merge,
    load_schema,
    raise_problems,
    read_yaml,
    validated,
    yaml_file_problems,
)
from sparseae.config.sweeps import coerce_sweeps, expand_sweep, name_clash_problems
from sparseae.errors import ConfigError

__all__ = [
    "DEFAULT_SCHEMA",
    "PURPOSES",
    "RECOMPUTES",
    "RECOMPUTE_KINDS",
    "Config",
    "ConfigError",
    "Experiment",
    "describe_difference",
    "fingerprint",
    "load_schema",
    "read_config_files",
    "recomputes",
    "resolve_config",
    "rng",
    "trajectory_config",
    "write_config",
]


def read_config_files(files: Sequence[str | os.PathLike]) -> dict:
    """The config files merged in order, as Snakemake's ``--configfile`` merges them."""
    return functools.reduce(deep_merge, map(read_yaml, files), {})


def resolve_config(
    config: Mapping | None = None,
    schema: str | os.PathLike | None = None,
    *,
    files: Sequence[str | os.PathLike] = (),
) -> Config:
    """Check a config and return it resolved: a frozen :class:`Config`, defaults filled.

    ``config``: the config as loaded (None: read and merge ``files``); ``schema``: default the
    packaged one. Sweeps are expanded into member experiments, ``run`` names experiments only
    (``run_stacked`` the stacked ones). Raises :class:`ConfigError` listing every problem.
    """
    raise_problems(yaml_file_problems(files))
    root = load_schema(schema)
    config = coerce(dict(read_config_files(files) if config is None else config), root)
    if isinstance(config.get("sweeps"), dict):
        config["sweeps"] = coerce_sweeps(config["sweeps"], root)
    resolved, problems = validated(config, root)
    raise_problems(problems)
    raise_problems(sources_problems(config))
    # Sweeps start from the experiments as written; defaults are filled after expansion.
    raw = copy.deepcopy(config.get("experiments", {}))
    members_of: dict[str, list[str]] = {}
    member_sweep: dict[str, str] = {}
    for sweep_name, sweep in resolved["sweeps"].items():
        members = expand_sweep(sweep_name, sweep, raw, name_rule=root["$defs"]["name"])
        for member, experiment in members.items():
            raw.setdefault(member, experiment)  # a clash is refused just below
            member_sweep.setdefault(member, sweep_name)
        members_of[sweep_name] = list(members)
    stacked = resolved["stacked_experiments"]
    written = config.get("experiments", {})
    raise_problems(name_clash_problems(written, stacked, resolved["sweeps"], members_of))
    filled = {}
    for member, sweep_name in member_sweep.items():
        filled[member], problems = validated(
            raw[member], root, subschema="experiment", prefix=["experiments", member]
        )
        if problems:  # the sweep is named once, after the member's last problem
            problems[-1] += f" (member of sweep 'sweeps.{sweep_name}')"
        raise_problems(problems)
    experiments = {**resolved["experiments"], **filled}
    raise_problems(name_problems({**resolved, "experiments": experiments}))
    # A member inherits its base's problems: they are named once, at the base, and the
    # members are checked once the experiments as written pass.
    raise_problems([p for name in written for p in experiment_problems(name, experiments[name])])
    raise_problems([p for name, exp in stacked.items() for p in stacked_problems(name, exp)])
    raise_problems([p for m in member_sweep for p in experiment_problems(m, experiments[m])])
    resolved["run"], resolved["run_stacked"] = _run(
        resolved["run"], experiments, stacked, members_of
    )
    resolved["experiments"] = experiments
    resolved["sweep_members"] = members_of
    # Keys in one order, whatever order the YAML file wrote them in: Snakemake compares rule
    # params by their text, so reordering keys in a config file must not look like a change.
    return Config.of(resolved)


def _run(run, experiments: Mapping, stacked: Mapping, members_of: Mapping):
    """``run`` as (experiment names, stacked experiment names), sweeps replaced by members."""
    names: list[str] = []
    stacked_names: list[str] = []
    for entry in [run] if isinstance(run, str) else run:
        if entry in stacked:  # stacked experiments run by their own rules
            stacked_names += [] if entry in stacked_names else [entry]
            continue
        for target in members_of.get(entry, [entry]):
            if target not in experiments:
                known = sorted([*experiments, *members_of, *stacked])
                raise ConfigError(
                    f"config key 'run': experiment {entry!r} is not defined; allowed: one of "
                    f"{', '.join(known) or '(none defined)'} (experiments, sweeps and "
                    f"stacked_experiments in the config); fix: define it or remove it from run"
                )
            names += [] if target in names else [target]
    return names, stacked_names
