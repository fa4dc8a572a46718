"""Workflow configuration: validation, defaults, cross-field checks, sweeps, fingerprints, seeds.

The workflow's ``config/config.yaml`` is checked against ``workflow/schemas/config.schema.yaml``
(JSON schema, draft 2020-12) and then against the rules a schema cannot express (patch size
squared equals the number of inputs, the experiments named in ``run`` exist, ...). Every
message names the offending key as a dotted path and the allowed range.

Seeds
-----
Each experiment has one integer ``seed``. Every random choice draws from its own
:class:`numpy.random.Generator`, derived by :func:`rng` as the *named child* ``i`` of
``numpy.random.SeedSequence(seed)`` (``SeedSequence(seed, spawn_key=(i,))``, identical to
``SeedSequence(seed).spawn(i + 1)[i]``), with the fixed purpose indices in :data:`PURPOSES`.
Adding a purpose later never changes the streams of the existing ones.

Sweep members are named and expanded by :mod:`sparseae.pipeline.sweep`.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from sparseae.config.schema_refs import resolve_refs as _resolve
from sparseae.config.stacked import check_stacked_experiment
from sparseae.errors import ConfigError
from sparseae.identity import key_of
from sparseae.pipeline.sweep import expand_sweep, name_clash_problems

#: Purpose -> child index of ``SeedSequence(seed)``; never renumber, only append.
PURPOSES = {
    "patches": 0,
    "init": 1,
    "gradcheck": 2,
    "split": 3,
    "stacked_init": 4,  # stacked experiments: layer l's autoencoder from child l of this one
    "stacked_gradcheck": 5,
    "diagnostics": 6,  # the random examples of the per-unit diagnostics' baseline
}

#: What a change of each experiment key recomputes, by dotted path under
#: ``experiments.<name>`` (an entry covers every key below it). This table is the one
#: definition of an experiment's trajectory: the keys marked "trajectory" are what
#: :func:`trajectory_config` selects and :func:`fingerprint` hashes. A test walks the schema and
#: fails for a key that is not classified here. Meanings (config/README.md shows them per key):
#:
#: - ``trajectory``: the numbers change: patches (where the data settings change), the gradient
#:   check, every training chunk and everything after them; a new MLflow run.
#: - ``chunks``: only the chunks added are trained (raising), or the final result is taken
#:   from an earlier chunk without training (lowering); the MLflow run is extended.
#: - ``gradcheck``: the gradient check reruns; training waits for it but is not redone.
#: - ``evaluation``: the self-taught evaluation reruns (digit experiments).
#: - ``record``: nothing is recomputed; ``config.json`` and the MLflow run's params follow.
RECOMPUTES = {
    "description": "record",
    "dataset": "trajectory",
    "patches": "trajectory",
    "model": "trajectory",
    "optimizer": "trajectory",
    "optimizer.method": "trajectory",
    "seed": "trajectory",
    "training.iterations_per_chunk": "trajectory",
    "training.dtype": "trajectory",
    "training.chunks": "chunks",
    "training.progress_every": "record",
    "gradcheck": "gradcheck",
    "evaluation": "evaluation",
    "resources": "record",
}

#: The kinds of :data:`RECOMPUTES`, in order of what they redo.
RECOMPUTE_KINDS = ("trajectory", "chunks", "gradcheck", "evaluation", "record")

#: The config schema, shipped inside the package (``sparseae/schemas/config.schema.yaml``, a
#: link to the workflow's ``workflow/schemas/config.schema.yaml`` in a source checkout, a copy
#: in an installed wheel), so a non-editable install validates configs too.
DEFAULT_SCHEMA = resources.files("sparseae").joinpath("schemas", "config.schema.yaml")

#: The workflow's own copy in a source checkout (what Snakemake's validate() reads).
REPO_SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


# --------------------------------------------------------------------------------------------
# schema loading, validation with readable messages, defaults


def load_schema(schema: str | os.PathLike | Mapping | None = None) -> dict:
    """Return the config schema as a dict (``schema`` may be a path, a dict or None)."""
    if isinstance(schema, Mapping):
        return dict(schema)
    import yaml

    path = Path(schema) if schema is not None else DEFAULT_SCHEMA
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


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
    schema = _resolve(error.schema, root) if isinstance(error.schema, Mapping) else {}
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
            f"allowed; allowed: {_allowed(_resolve(error.schema, root))}"
        )
    if error.validator == "required":
        return f"config key '{key}': {error.message}"
    value = json.dumps(error.instance, default=str)
    if error.validator == "type":
        expected = error.validator_value
        return (
            f"config key '{key}': {value} has the wrong type "
            f"({type(error.instance).__name__}); expected {expected}; allowed: {_allowed(schema)}"
        )
    allowed = _allowed(schema)
    return f"config key '{key}': {value} is not allowed ({error.message}); allowed: {allowed}"


def validate_schema(
    config: Mapping, schema: Mapping, *, subschema: str | None = None, prefix: Iterable[Any] = ()
) -> None:
    """Check ``config`` against ``schema`` (or ``$defs[subschema]``); raise one ConfigError.

    Every violation is listed, sorted by key, each naming the dotted key and the allowed range.
    """
    from jsonschema import Draft202012Validator

    target = dict(schema["$defs"][subschema]) if subschema else dict(schema)
    # Local "#/$defs/..." references resolve against the validated (sub)schema itself.
    target["$defs"] = schema.get("$defs", {})
    validator = Draft202012Validator(target)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        messages = []
        for error in errors:
            error.path.extendleft(reversed(list(prefix)))
            messages.append(_format_error(error, target))
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(messages))


def apply_defaults(instance: Any, node: Mapping, root: Mapping) -> Any:
    """Fill missing keys from the schema's ``default`` values, recursively, on a deep copy."""
    instance = copy.deepcopy(instance)
    _fill(instance, node, root)
    return instance


def _fill(instance: Any, node: Mapping, root: Mapping) -> None:
    if not isinstance(instance, dict):
        return
    node = _resolve(node, root)
    for name, sub in node.get("properties", {}).items():
        sub_resolved = _resolve(sub, root)
        if name not in instance and "default" in sub_resolved:
            # Deep copies: a default dict shared between experiments would alias them.
            instance[name] = copy.deepcopy(sub_resolved["default"])
        if name in instance:
            _fill(instance[name], sub_resolved, root)
    extra = node.get("additionalProperties")
    if isinstance(extra, Mapping):
        for name, value in instance.items():
            if name not in node.get("properties", {}):
                _fill(value, extra, root)


# --------------------------------------------------------------------------------------------
# cross-field checks


def check_experiment(name: str, experiment: Mapping) -> None:
    """Cross-field checks a schema cannot express, for one experiment with defaults filled."""
    key = f"experiments.{name}"
    problems = []
    size = experiment["patches"]["size"]
    visible = experiment["model"]["visible_size"]
    if size is not None and size * size != visible:
        problems.append(
            f"config key '{key}.patches.size' = {size} gives {size}x{size} = {size * size} "
            f"inputs but '{key}.model.visible_size' = {visible}; allowed: patches.size squared "
            f"must equal model.visible_size (e.g. size {int(round(visible**0.5))} for "
            f"{visible} inputs if that is a square)"
        )
    problems += _dataset_problems(key, experiment)
    problems += _evaluation_problems(key, experiment)
    num = experiment["gradcheck"]["num_examples"]
    count = experiment["patches"]["count"]
    if size is not None and num > count:
        problems.append(
            f"config key '{key}.gradcheck.num_examples' = {num} exceeds '{key}.patches.count' "
            f"= {count}; allowed: 1 <= num_examples <= patches.count"
        )
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


def _dataset_problems(key: str, experiment: Mapping) -> list[str]:
    """The source must exist and suit the patch setting (digits: whole images only)."""
    from sparseae.data import SOURCES

    dataset, size = experiment["dataset"], experiment["patches"]["size"]
    source = SOURCES.get(dataset["source"])
    if source is None:
        return [
            f"config key '{key}.dataset.source' = {dataset['source']!r} is not a known source; "
            f"allowed: one of {', '.join(sorted(SOURCES))}"
        ]
    problems = []
    if source.loader == "mnist" and size is not None:
        problems.append(
            f"config key '{key}.patches.size' = {size}, but source '{source.name}' holds whole "
            f"digit images; allowed: null (whole 28x28 images, model.visible_size 784)"
        )
    if source.loader != "mnist" and size is None:
        problems.append(
            f"config key '{key}.patches.size' is null, but source '{source.name}' holds "
            f"images to cut patches from; allowed: an integer >= 1 (e.g. 8)"
        )
    if source.loader == "image-folder" and not dataset["path"]:
        problems.append(
            f"config key '{key}.dataset.path' is not set; allowed: the folder of images that "
            f"source 'image-folder' reads"
        )
    if dataset["digits"] is not None and source.loader != "mnist":
        problems.append(
            f"config key '{key}.dataset.digits' is set, but source '{source.name}' has no "
            f"labels; allowed: null for image sources"
        )
    return problems


def _evaluation_problems(key: str, experiment: Mapping) -> list[str]:
    """Self-taught evaluation: labeled digits of a digit source, disjoint from the unlabeled.

    The unlabeled digits are ``dataset.digits`` (the autoencoder's training data); an enabled
    evaluation needs them set, since with every digit unlabeled the classifier would be tested
    on digits the features were learned from.
    """
    from sparseae.data import SOURCES

    evaluation = experiment.get("evaluation") or {}
    if not evaluation.get("enabled"):
        return []
    dataset = experiment["dataset"]
    source = SOURCES.get(dataset["source"])
    if source is None:
        return []  # reported by _dataset_problems
    if source.loader != "mnist":
        return [
            f"config key '{key}.evaluation.enabled' is true, but source '{source.name}' has no "
            f"labels; allowed: a digit source (mnist) or evaluation.enabled: false"
        ]
    unlabeled = dataset["digits"]
    if unlabeled is None:
        return [
            f"config key '{key}.evaluation.enabled' is true, but '{key}.dataset.digits' is null "
            f"(the autoencoder would train on every digit, the labeled ones included); allowed: "
            f"dataset.digits set to the unlabeled digits, e.g. [5, 6, 7, 8, 9]"
        ]
    overlap = sorted(set(unlabeled) & set(evaluation["labeled_digits"]))
    if overlap:
        return [
            f"config key '{key}.evaluation.labeled_digits' = {evaluation['labeled_digits']} "
            f"shares {overlap} with '{key}.dataset.digits' = {unlabeled} (the unlabeled digits "
            f"the autoencoder trains on); allowed: disjoint digit sets"
        ]
    return []


def check_patch_fits(name: str, experiment: Mapping, image_shape: tuple[int, ...]) -> None:
    """Refuse a patch size larger than the images, once their shape is known.

    Parameters
    ----------
    name : str
        Experiment name (for the message).
    experiment : mapping
        Resolved experiment config.
    image_shape : tuple of int
        ``(rows, cols)`` of the smallest image of the source.
    """
    size = experiment["patches"]["size"]
    rows, cols = int(image_shape[0]), int(image_shape[1])
    if size is not None and (size > rows or size > cols):
        raise ConfigError(
            f"config key 'experiments.{name}.patches.size' = {size} is larger than the images "
            f"of source '{experiment['dataset']['source']}' ({rows}x{cols}); allowed: "
            f"1 <= patches.size <= {min(rows, cols)}"
        )


def check_image_inputs(name: str, experiment: Mapping, num_pixels: int) -> None:
    """For whole-image experiments (``patches.size: null``): visible_size == pixels per image."""
    visible = experiment["model"]["visible_size"]
    if experiment["patches"]["size"] is None and visible != num_pixels:
        raise ConfigError(
            f"config key 'experiments.{name}.model.visible_size' = {visible} but the images of "
            f"source '{experiment['dataset']['source']}' have {num_pixels} pixels; allowed: "
            f"model.visible_size = {num_pixels} when patches.size is null"
        )


# --------------------------------------------------------------------------------------------
# the whole config


def resolve_config(config: Mapping, schema: str | os.PathLike | Mapping | None = None) -> dict:
    """Validate ``config`` and return it resolved: defaults filled, sweeps expanded.

    Returns
    -------
    dict
        The config with every experiment complete (sweep members added under
        ``experiments``), ``run`` as a list of experiment names (sweep names replaced by their
        members, order kept, duplicates dropped; stacked experiments left out), ``run_stacked``
        (the stacked experiments named in ``run``) and ``sweep_members``:
        ``{sweep: [member, ...]}``.

    Raises
    ------
    ConfigError
        Naming the key and the allowed range of every problem found.
    """
    from sparseae.config import checks

    root = load_schema(schema)
    config = checks.coerce_numbers(config, root)
    checks.raise_problems(checks.non_finite_problems(config, root))
    validate_schema(config, root)
    checks.raise_problems(checks.sources_problems(config))
    resolved = apply_defaults(config, root, root)
    resolved["run_stacked"] = []
    raw_experiments = dict(resolved["experiments"])
    # Defaults of experiments are filled again after sweep expansion; raw copies are expanded
    # so that a sweep's overrides and grid see the base experiment as written.
    raw_experiments = {k: copy.deepcopy(config.get("experiments", {})[k]) for k in raw_experiments}
    members_of: dict[str, list[str]] = {}
    member_sweep: dict[str, str] = {}
    expanded = dict(raw_experiments)  # a sweep may start from a member of an earlier sweep
    for sweep_name, sweep in resolved["sweeps"].items():
        members = expand_sweep(sweep_name, sweep, expanded, name_rule=root["$defs"]["name"])
        for member, experiment in members.items():
            expanded.setdefault(member, experiment)  # a clash is refused just below
            member_sweep.setdefault(member, sweep_name)
        members_of[sweep_name] = list(members)
    # One name, one thing: a clash among experiments, stacked experiments, sweeps and members
    # would otherwise be resolved silently by whichever `run` looks up first.
    checks.raise_problems(
        name_clash_problems(
            raw_experiments, resolved["stacked_experiments"], resolved["sweeps"], members_of
        )
    )
    for member, sweep_name in member_sweep.items():
        try:
            validate_schema(
                expanded[member], root, subschema="experiment", prefix=["experiments", member]
            )
        except ConfigError as error:
            raise ConfigError(f"{error} (member of sweep 'sweeps.{sweep_name}')") from None
    raw_experiments = expanded
    experiments = {
        name: apply_defaults(exp, root["$defs"]["experiment"], root)
        for name, exp in raw_experiments.items()
    }
    for name, experiment in experiments.items():
        check_experiment(name, experiment)
    checks.raise_problems(checks.experiments_problems(experiments, resolved["sweeps"], members_of))
    run = resolved["run"]
    run = [run] if isinstance(run, str) else list(run)
    names: list[str] = []
    stacked_names = _check_stacked(resolved["stacked_experiments"], experiments, members_of)
    for entry in run:
        if entry in stacked_names:  # stacked experiments run by their own rules
            if entry not in resolved["run_stacked"]:
                resolved["run_stacked"].append(entry)
            continue
        targets = members_of.get(entry, [entry])
        for target in targets:
            if target not in experiments:
                known = sorted([*experiments, *members_of, *stacked_names])
                raise ConfigError(
                    f"config key 'run': experiment {entry!r} is not defined; allowed: one of "
                    f"{', '.join(known) or '(none defined)'} "
                    f"(experiments, sweeps and stacked_experiments in the config)"
                )
            if target not in names:
                names.append(target)
    resolved["experiments"] = experiments
    resolved["run"] = names  # single-layer experiments; stacked ones are in run_stacked
    resolved["sweep_members"] = members_of
    # Keys in one order, whatever order the YAML file wrote them in: Snakemake compares rule
    # params by their text, so reordering keys in a config file must not look like a change.
    return _sorted_keys(resolved)


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def _check_stacked(stacked: Mapping, experiments: Mapping, sweeps: Mapping) -> list[str]:
    """Cross-field checks of the stacked experiments; their names (distinct from all others)."""
    for name, experiment in stacked.items():
        if name in experiments or name in sweeps:
            raise ConfigError(
                f"config key 'stacked_experiments.{name}': the name is also used by an "
                f"experiment or sweep; allowed: names distinct from 'experiments' and 'sweeps'"
            )
        check_stacked_experiment(name, experiment)
    return list(stacked)


# --------------------------------------------------------------------------------------------
# fingerprints, seeds, the per-experiment config file


def recomputes(path: str) -> str:
    """What a change of the experiment key ``path`` (dotted) recomputes (:data:`RECOMPUTES`).

    Raises
    ------
    KeyError
        For a key no entry of :data:`RECOMPUTES` covers.
    """
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        kind = RECOMPUTES.get(".".join(parts[:n]))
        if kind is not None:
            return kind
    raise KeyError(f"experiment key {path!r} is not classified in sparseae.config.RECOMPUTES")


def trajectory_config(experiment: Mapping) -> dict:
    """The settings that decide the training trajectory (what :func:`fingerprint` hashes).

    The keys :data:`RECOMPUTES` marks "trajectory", e.g. ``training.iterations_per_chunk`` (a
    chunk boundary restarts L-BFGS) but not ``training.chunks``, so raising it extends a
    finished run without retraining. Works on a trajectory too (it selects itself).
    """
    subset: dict = {}
    for path, kind in RECOMPUTES.items():
        if kind != "trajectory":
            continue
        *parents, leaf = path.split(".")
        source, target = experiment, subset
        for part in parents:
            source = source[part]
            target = target.setdefault(part, {})
        if leaf in source:
            target[leaf] = copy.deepcopy(source[leaf])
    return subset


def fingerprint(experiment: Mapping) -> str:
    """Stable 16-hex-digit hash of :func:`trajectory_config` (canonical JSON, sha256)."""
    return key_of(trajectory_config(experiment))


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: obj}


def describe_difference(a: Mapping, b: Mapping) -> str:
    """``key: a-value != b-value`` for every differing leaf of two nested configs."""
    fa, fb = _flatten(a), _flatten(b)
    diffs = [
        f"{k}: {json.dumps(fa.get(k), default=str)} != {json.dumps(fb.get(k), default=str)}"
        for k in sorted(set(fa) | set(fb))
        if fa.get(k) != fb.get(k)
    ]
    return "; ".join(diffs) if diffs else "(no differing keys)"


def check_resume(
    path: str | os.PathLike, meta: Mapping, name: str, experiment: Mapping, theta_length: int
) -> None:
    """Refuse a checkpoint written for another configuration or of the wrong length.

    Parameters
    ----------
    path : path-like
        The checkpoint (for the message).
    meta : mapping
        Its metadata; must hold ``fingerprint`` and ``trajectory`` (written by the chunks).
    name : str
        The experiment resuming from it.
    experiment : mapping
        The experiment's resolved config.
    theta_length : int
        Length of the checkpoint's theta.
    """
    from sparseae.model.autoencoder import parameter_count

    h, v = experiment["model"]["hidden_size"], experiment["model"]["visible_size"]
    expected = parameter_count(v, h)
    if theta_length != expected:
        raise ConfigError(
            f"checkpoint {path} holds a theta of length {theta_length}, but experiment "
            f"'{name}' (hidden_size {h}, visible_size {v}) needs {expected}; delete the "
            f"checkpoint or restore the configuration that wrote it"
        )
    mine = fingerprint(experiment)
    theirs = meta.get("fingerprint")
    if theirs != mine:
        other = meta.get("trajectory", {})
        raise ConfigError(
            f"checkpoint {path} was written by configuration {theirs} but experiment '{name}' "
            f"now has configuration {mine}; differences (checkpoint != now): "
            f"{describe_difference(other, trajectory_config(experiment))}. Delete "
            f"results/{name}/chunks/ to retrain, or restore the old settings"
        )


def rng(seed: int, purpose: str) -> np.random.Generator:
    """The Generator for one purpose of an experiment (child of ``SeedSequence(seed)``)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown random purpose {purpose!r}; known: {', '.join(PURPOSES)}")
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(PURPOSES[purpose],)))


def experiment_record(name: str, experiment: Mapping) -> dict:
    """What ``results/{name}/config.json`` holds: name, fingerprint and the resolved config."""
    return {
        "name": name,
        "fingerprint": fingerprint(experiment),
        "experiment": copy.deepcopy(dict(experiment)),
    }


def write_config(path: str | os.PathLike, name: str, experiment: Mapping) -> dict:
    """Write :func:`experiment_record` atomically to ``path`` and return it."""
    from sparseae.io import write_json

    record = experiment_record(name, experiment)
    write_json(path, record)
    return record
