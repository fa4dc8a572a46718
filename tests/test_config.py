"""Config validation, cross-field checks, sweeps, fingerprints and seeds (sparseae.config).

Bad-config cases (docs/errors.md, config section): each message must name the key and
the allowed range. The shipped config/config.yaml must resolve to the original exercise's
parameters (the tutorial's natural-image parameters).
"""

from __future__ import annotations

import ast
import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from sparseae.config import (
    Config,
    ConfigError,
    Experiment,
    fingerprint,
    resolve_config,
    rng,
    trajectory_config,
)
from sparseae.config.checks import check_loaded_images
from sparseae.config.sweeps import expand_sweep, format_value

pytestmark = pytest.mark.fast

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "src" / "sparseae" / "schemas" / "config.schema.yaml"


def shipped_config() -> dict:
    with open(REPO / "config" / "config.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def with_change(path: str, value) -> dict:
    """The shipped config with one dotted key of experiment 'natural' set to ``value``."""
    config = shipped_config()
    node = config["experiments"]["natural"]
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return config


def error_of(config) -> str:
    with pytest.raises(ConfigError) as info:
        resolve_config(config, SCHEMA)
    return str(info.value)


def test_shipped_config_is_the_original_exercise():
    resolved = resolve_config(shipped_config(), SCHEMA)
    assert resolved["run"] == ["natural"]
    exp = resolved["experiments"]["natural"]
    assert exp["dataset"]["source"] == "sample-photos"
    assert exp["patches"]["size"] == 8 and exp["patches"]["count"] == 10_000
    assert exp["model"] == {
        "visible_size": 64,
        "hidden_size": 25,
        "rho": 0.01,
        "lambda_": 1e-4,
        "beta": 3,
    }
    assert exp["optimizer"]["maxcor"] == 100
    assert exp["training"]["chunks"] * exp["training"]["iterations_per_chunk"] == 400
    assert exp["gradcheck"]["bound"] == 1e-9


def test_defaults_fill_a_minimal_experiment_without_aliasing():
    resolved = resolve_config({"experiments": {"a": {}, "b": {"seed": 7}}, "run": ["a", "b"]})
    a, b = resolved["experiments"]["a"], resolved["experiments"]["b"]
    assert a["model"]["hidden_size"] == 25 and b["seed"] == 7 and a["seed"] == 1
    edited = copy.deepcopy(a)  # a plain, editable copy: defaults are never one shared dict
    edited["model"]["hidden_size"] = 99
    assert b["model"]["hidden_size"] == a["model"]["hidden_size"] == 25
    assert resolved["experiments"]["a"]["resources"]["train"]["threads"] == 2


def test_resolved_config_is_typed_frozen_and_reads_as_its_dicts():
    resolved = resolve_config(shipped_config(), SCHEMA)
    natural = resolved.experiments["natural"]
    assert isinstance(resolved, Config) and isinstance(natural, Experiment)
    assert natural.training["chunks"] == natural["training"]["chunks"] == 8
    for edit in (
        lambda: natural.model.__setitem__("rho", 0.5),
        lambda: natural.dataset.update(source="mnist"),
        lambda: resolved.run.append("natural"),
        lambda: resolved.experiments.pop("natural"),
    ):
        with pytest.raises(TypeError, match="read-only"):
            edit()
    with pytest.raises(AttributeError):
        natural.seed = 2  # a frozen dataclass
    # Plain dicts with today's text: Snakemake compares rule params by their repr.
    plain = natural.to_dict()
    assert type(plain) is dict and type(plain["model"]) is dict
    assert repr(natural) == repr(plain) == repr(copy.deepcopy(natural))
    assert list(plain) == sorted(plain) and list(plain["model"]) == sorted(plain["model"])
    assert json.loads(json.dumps(dict(natural))) == plain


@pytest.mark.parametrize(
    ("path", "value", "key", "allowed"),
    [
        ("model.rho", 1.5, "experiments.natural.model.rho", "0 < rho < 1"),
        ("model.rho", 0.0, "experiments.natural.model.rho", "0 < rho < 1"),
        ("model.rho", 1, "experiments.natural.model.rho", "0 < rho < 1"),
        ("model.lambda_", -1e-4, "experiments.natural.model.lambda_", "0 <= lambda_ <= 1e6"),
        ("model.beta", -3, "experiments.natural.model.beta", "0 <= beta <= 1e6"),
        ("model.hidden_size", 0, "experiments.natural.model.hidden_size", ">= 1"),
        ("model.visible_size", 0, "experiments.natural.model.visible_size", ">= 1"),
        ("training.chunks", 0, "experiments.natural.training.chunks", "1 <= chunks <= 10000"),
        (
            "training.iterations_per_chunk",
            0,
            "experiments.natural.training.iterations_per_chunk",
            ">= 1",
        ),
        ("model.hidden_size", "25", "experiments.natural.model.hidden_size", "integer >= 1"),
        ("model.rho", "0.01", "experiments.natural.model.rho", "0 < rho < 1"),
        ("patches.count", 2.5, "experiments.natural.patches.count", "integer >= 1"),
        ("patches.whitening.method", "pca", "experiments.natural.patches.whitening.method", "zca"),
    ],
)
def test_out_of_range_and_wrong_type_name_key_and_range(path, value, key, allowed):
    message = error_of(with_change(path, value))
    assert f"'{key}'" in message
    assert allowed in message
    if isinstance(value, str) and not path.endswith("method"):  # a string where a number goes
        assert "wrong type" in message


def test_unknown_keys_are_rejected_with_the_allowed_keys():
    message = error_of(with_change("model.hiden_size", 25))
    assert "'hiden_size'" in message and "experiments.natural.model" in message
    assert "hidden_size" in message.split("allowed keys:")[1]
    config = shipped_config()
    config["trackng"] = {}
    message = error_of(config)
    assert "'trackng'" in message and "top level" in message and "tracking" in message


def test_every_problem_is_listed_at_once():
    config = with_change("model.rho", 2.0)
    config["experiments"]["natural"]["model"]["beta"] = -1
    message = error_of(config)
    assert "model.rho" in message and "model.beta" in message


def test_patch_size_squared_must_equal_visible_size():
    message = error_of(with_change("patches.size", 10))
    assert "'experiments.natural.patches.size' = 10" in message
    assert "model.visible_size' = 64" in message
    assert "squared must equal" in message


def test_patch_larger_than_images_names_the_key_and_limit():
    config = with_change("patches.size", 200)
    config["experiments"]["natural"]["model"]["visible_size"] = 200 * 200
    config["experiments"]["natural"]["patches"]["count"] = 100
    # A source of known image size: refused while the config is read.
    message = error_of(config)
    assert "'experiments.natural.patches.size' = 200" in message
    assert "source 'sample-photos' (128x128)" in message and "patches.size <= 128" in message
    # A folder: checked once the images' size is known (headers or pixels).
    config["experiments"]["natural"]["dataset"] = {"source": "image-folder", "path": "/data"}
    exp = resolve_config(config, SCHEMA)["experiments"]["natural"]
    with pytest.raises(ConfigError) as info:
        check_loaded_images("natural", exp, (128, 128, 10), "/data")
    message = str(info.value)
    assert "'experiments.natural.patches.size' = 200" in message
    assert "1 <= patches.size <= 128" in message
    check_loaded_images("natural", exp, (512, 512, 10), "/data")  # fits: no error


def test_unknown_source_and_digit_mismatch():
    message = error_of(with_change("dataset.source", "imagenet"))
    assert "'experiments.natural.dataset.source'" in message and "sample-photos" in message
    # Digits give 8x8 patches too (the convolution exercise's); whole digits need 784 inputs.
    config = with_change("dataset.source", "mnist")
    assert resolve_config(config, SCHEMA)["experiments"]["natural"]["patches"]["size"] == 8
    config["experiments"]["natural"]["model"]["visible_size"] = 784
    message = error_of(config)
    assert "'experiments.natural.patches.size' = 8" in message and "784" in message


def test_run_must_name_defined_experiments():
    config = shipped_config()
    config["run"] = ["natural", "natrual"]
    message = error_of(config)
    assert "config key 'run'" in message and "'natrual'" in message
    assert "natural" in message.split("allowed:")[1]


def test_run_accepts_a_single_name_and_sweep_names():
    config = shipped_config()
    config["sweeps"] = {"sp": {"grid": {"beta": [1, 3]}}}
    config["run"] = "sp"
    resolved = resolve_config(config, SCHEMA)
    assert resolved["run"] == ["sp-beta1", "sp-beta3"]
    assert resolved["sweep_members"] == {"sp": ["sp-beta1", "sp-beta3"]}


def test_bad_experiment_name_is_rejected():
    config = shipped_config()
    config["experiments"]["bad/name"] = {}
    message = error_of(config)
    assert "'bad/name'" in message and "letters, digits" in message


# ------------------------------------------------------------------ sweeps


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-4, "1e-04"),
        (3e-3, "3e-03"),
        (2.5e-5, "2.5e-05"),
        (3, "3"),
        (3.0, "3"),
        (0.01, "0.01"),
        (0.05, "0.05"),
        (196, "196"),
        (1.5, "1.5"),
        (True, "true"),
    ],
)
def test_sweep_values_are_readable(value, text):
    assert format_value(value) == text


def test_sweep_names_are_stable_and_readable():
    experiments = shipped_config()["experiments"]
    sweep = {"grid": {"beta": [3, 1], "lambda_": [1e-4, 1e-3]}}
    members = expand_sweep("sp", sweep, experiments)
    assert list(members) == [
        "sp-lam1e-04-beta3",
        "sp-lam1e-04-beta1",
        "sp-lam1e-03-beta3",
        "sp-lam1e-03-beta1",
    ]
    # The order of the grid keys in the YAML file does not rename members.
    reordered = {"grid": {"lambda_": [1e-4, 1e-3], "beta": [3, 1]}}
    assert list(expand_sweep("sp", reordered, experiments)) == list(members)
    assert members["sp-lam1e-03-beta1"]["model"]["lambda_"] == 1e-3
    assert members["sp-lam1e-03-beta1"]["model"]["beta"] == 1
    # Other settings come from the base experiment, unchanged.
    assert members["sp-lam1e-03-beta1"]["model"]["rho"] == 0.01


def test_sweep_dotted_paths_overrides_and_resolution():
    config = shipped_config()
    config["sweeps"] = {
        "s": {
            "overrides": {"training": {"chunks": 2}},
            "grid": {"optimizer.maxcor": [10, 100], "hidden_size": [16], "rho": [0.05]},
        }
    }
    config["run"] = ["natural", "s"]
    resolved = resolve_config(config, SCHEMA)
    assert resolved["run"] == ["natural", "s-rho0.05-hid16-maxcor10", "s-rho0.05-hid16-maxcor100"]
    member = resolved["experiments"]["s-rho0.05-hid16-maxcor10"]
    assert member["training"]["chunks"] == 2 and member["optimizer"]["maxcor"] == 10
    assert member["model"]["hidden_size"] == 16 and member["patches"]["count"] == 10_000
    assert resolved["experiments"]["natural"]["training"]["chunks"] == 8


def test_sweep_with_bad_value_names_the_member_and_sweep():
    config = shipped_config()
    config["sweeps"] = {"s": {"grid": {"rho": [0.01, 2]}}}
    message = error_of(config)
    assert "'experiments.s-rho2.model.rho'" in message and "sweeps.s" in message
    assert "0 < rho < 1" in message


def test_sweep_base_must_exist():
    config = shipped_config()
    config["sweeps"] = {"s": {"base": "no-such-experiment", "grid": {"beta": [1]}}}
    message = error_of(config)
    assert "'sweeps.s.base'" in message and "no-such-experiment" in message and "natural" in message


# ------------------------------------------------------------------ fingerprints and seeds


def test_fingerprint_tracks_exactly_the_trajectory_settings():
    exp = resolve_config(shipped_config(), SCHEMA)["experiments"]["natural"]
    base = fingerprint(exp)
    assert base == fingerprint(copy.deepcopy(exp)) and len(base) == 16
    for section, key, value in [
        ("model", "rho", 0.05),
        ("optimizer", "maxcor", 10),
        ("training", "iterations_per_chunk", 25),
        ("patches", "count", 500),
    ]:
        other = copy.deepcopy(exp)
        other[section][key] = value
        assert fingerprint(other) != base, (section, key)
    other = copy.deepcopy(exp)
    other["seed"] = 2
    assert fingerprint(other) != base
    # Not part of the trajectory: more chunks extend a run, resources only schedule it.
    for section, key, value in [("training", "chunks", 12), ("training", "progress_every", 1)]:
        other = copy.deepcopy(exp)
        other[section][key] = value
        assert fingerprint(other) == base, (section, key)
    other = copy.deepcopy(exp)
    other["resources"]["train"]["threads"] = 1
    assert fingerprint(other) == base


def test_resume_refuses_another_configuration_naming_both(tmp_path):
    from sparseae.errors import ForeignResultError
    from sparseae.model.train import save_checkpoint
    from sparseae.pipeline.experiment import load_chunks

    exp = resolve_config(shipped_config(), SCHEMA)["experiments"]["natural"]
    old = copy.deepcopy(exp)
    old["model"]["rho"] = 0.05
    path = tmp_path / "chunks" / "1.npz"
    path.parent.mkdir()
    meta = {"fingerprint": fingerprint(old), "trajectory": trajectory_config(old), "chunk": 1}
    save_checkpoint(path, np.zeros(3289), [], meta)
    with pytest.raises(ForeignResultError) as info:
        load_chunks([path], name="natural", trajectory=trajectory_config(exp))
    message = str(info.value)
    assert fingerprint(old) in message and fingerprint(exp) in message
    assert "model.rho: 0.05 != 0.01" in message and "chunks/1.npz" in message
    # A checkpoint of this trajectory but a theta of another length is refused too.
    meta = {"fingerprint": fingerprint(exp), "trajectory": trajectory_config(exp), "chunk": 1}
    save_checkpoint(path, np.zeros(3000), [], meta)
    with pytest.raises(ForeignResultError, match="length 3000.*needs 3289"):
        load_chunks([path], name="natural", trajectory=trajectory_config(exp))


def test_child_generators_are_reproducible_and_independent():
    assert np.array_equal(rng(1, "init").random(5), rng(1, "init").random(5))
    assert not np.array_equal(rng(1, "init").random(5), rng(2, "init").random(5))
    assert not np.array_equal(rng(1, "init").random(5), rng(1, "patches").random(5))
    # Named children are SeedSequence(seed).spawn(...)[index], as documented.
    child = np.random.SeedSequence(1).spawn(2)[1]
    assert np.array_equal(rng(1, "init").random(5), np.random.default_rng(child).random(5))
    with pytest.raises(ValueError, match="unknown random purpose"):
        rng(1, "dropout")


@pytest.mark.full  # a subprocess
def test_snakemake_reports_a_bad_config_naming_the_key(tmp_path):
    """The same message reaches the user through `snakemake` (dry run, no jobs)."""
    snakemake = Path(sys.executable).parent / "snakemake"
    result = subprocess.run(
        [str(snakemake), "-n", "--config", "run=[natural,nope]"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "config key 'run'" in result.stdout + result.stderr


# ------------------------------------------------------------------ one rule, one place

SRC = REPO / "src" / "sparseae"

#: Module-level numbers named like a range that are no rule of a config value (numerics,
#: file formats, MLflow's own limits), each with why it is not in the schema.
NOT_CONFIG_RANGES = {
    "CURVATURE_MIN": "L-BFGS numerics (minFunc's curvature test), no setting",
    "MAX_IMAGE_PIXELS": "image file headers (decompression bombs), not a config key",
    "MAX_PARAM_LENGTH": "MLflow's limit on a param value",
}


def _numeric(node) -> bool:
    return all(
        isinstance(n, ast.Constant) and isinstance(n.value, int | float)
        for n in ast.walk(node)
        if isinstance(n, ast.Constant)
    ) and any(isinstance(n, ast.Constant) for n in ast.walk(node))


def test_every_single_field_range_is_in_the_schema_not_in_python():
    """Ranges of single settings are schema keywords: no ``*_MAX``/``*_MIN`` number in the
    package's modules, and every number setting of an experiment has its bounds."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                name = getattr(target, "id", "")
                ranged = re.search(r"(^|_)(MAX|MIN|LIMIT)(_|$)", name)
                if ranged and _numeric(node.value) and name not in NOT_CONFIG_RANGES:
                    found.append(f"{path.relative_to(REPO)}: {name}")
    assert found == [], "ranges belong in the schema: " + ", ".join(found)
    root = yaml.safe_load((SRC / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))
    optimizer = root["$defs"]["experiment"]["properties"]["optimizer"]["properties"]
    assert optimizer["gtol"]["exclusiveMaximum"] == optimizer["ftol"]["exclusiveMaximum"] == 0.01
    unbounded = []

    def walk(node, path):
        if "properties" in node:
            for key, sub in node["properties"].items():
                walk(sub, f"{path}.{key}")
        kinds = node.get("type", [])
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if {"number", "integer"} & set(kinds) and "minimum" not in node:
            if "exclusiveMinimum" not in node:
                unbounded.append(path)

    walk(root["$defs"]["experiment"], "experiment")
    assert unbounded == []


def _messages(path: Path) -> dict[str, set[str]]:
    """Message texts (string pieces naming a config key or what is allowed) -> the top-level
    functions of ``path`` that write them."""
    texts: dict[str, set[str]] = {}
    for function in ast.parse(path.read_text(encoding="utf-8")).body:
        if not isinstance(function, ast.FunctionDef):
            continue
        doc = ast.get_docstring(function, clean=False)
        for node in ast.walk(function):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.strip()
                if text != doc and len(text) >= 30 and ("allowed" in text or "key" in text):
                    texts.setdefault(text, set()).add(f"{path.name}:{function.name}")
    return texts


def test_each_rule_is_written_once():
    """Every message of the configuration layer (and the command line's flags) comes from one
    function: a rule applied at several entry points calls that function, never a copy."""
    owners: dict[str, set[str]] = {}
    for path in [*sorted((SRC / "config").glob("*.py")), SRC / "cli.py"]:
        for text, where in _messages(path).items():
            owners.setdefault(text, set()).update(where)
    twice = {text: sorted(where) for text, where in owners.items() if len(where) > 1}
    assert twice == {}
    # The rule of a patch larger than the images: one function, used by each entry point.
    uses = [
        path.name
        for path in (SRC / "config").glob("*.py")
        if "patch_fits_problem(" in path.read_text(encoding="utf-8")
    ]
    assert sorted(uses) == ["checks.py", "environment.py", "rules.py"]
    assert "is larger than the images" not in (SRC / "config" / "environment.py").read_text()
