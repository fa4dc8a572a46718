"""Config of stacked experiments: shipped defaults, checks, stage trajectories, seeds."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from workflow_helpers import REPO

from sparseae.config import ConfigError, resolve_config
from sparseae.config.stacked import layer_settings, stage_fingerprint, stage_trajectory

pytestmark = pytest.mark.fast

SCHEMA = REPO / "src" / "sparseae" / "schemas" / "config.schema.yaml"


def shipped(name: str = "config.yaml") -> dict:
    with open(REPO / "config" / name, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def with_t10k() -> dict:
    """config.yaml with config/stacked-t10k.yaml merged over it, as --configfile does."""
    config, extra = shipped(), shipped("stacked-t10k.yaml")
    config["run"] = extra["run"]
    config["stacked_experiments"].update(extra["stacked_experiments"])
    return config


def test_shipped_stacked_experiments_are_the_tutorials():
    resolved = resolve_config(with_t10k(), SCHEMA)
    assert resolved["run"] == [] and resolved["run_stacked"] == ["stacked-t10k"]
    for name in ("stacked", "stacked-t10k"):
        exp = resolved["stacked_experiments"][name]
        assert exp["layers"] == {
            "hidden_sizes": [200, 200],
            "rho": 0.1,
            "lambda_": 3e-3,
            "beta": 3,
        }
        assert exp["softmax"] == {"lambda_": 1e-4, "max_iter": 100}
        for stage in ("pretraining", "finetuning"):
            assert exp[stage]["chunks"] * exp[stage]["iterations_per_chunk"] == 400
        assert exp["optimizer"]["maxcor"] == 100
    default = resolved["stacked_experiments"]["stacked"]["dataset"]
    assert default["train"] == {"split": "train", "start": 0, "stop": None}
    assert default["test"] == {"split": "test", "start": 0, "stop": None}
    t10k = resolved["stacked_experiments"]["stacked-t10k"]["dataset"]
    assert t10k["train"] == {"split": "test", "start": 0, "stop": 5000}
    assert t10k["test"] == {"split": "test", "start": 5000, "stop": None}


def test_single_layer_experiments_are_unaffected():
    config = shipped()
    without = copy.deepcopy(config)
    del without["stacked_experiments"]
    a, b = resolve_config(config, SCHEMA), resolve_config(without, SCHEMA)
    assert a["experiments"] == b["experiments"] and a["run"] == b["run"] == ["natural"]
    assert a["run_stacked"] == [] and b["stacked_experiments"] == {}


def test_defaults_fill_a_minimal_stacked_experiment():
    config = {"run": ["deep"], "stacked_experiments": {"deep": {}}}
    exp = resolve_config(config, SCHEMA)["stacked_experiments"]["deep"]
    assert exp["layers"]["hidden_sizes"] == [200, 200]
    assert exp["finetuning"] == {
        "chunks": 8,
        "iterations_per_chunk": 50,
        "progress_every": 10,
        "dtype": "float64",
        "device": "cpu",
    }
    assert exp["gradcheck"]["bound"] == 1e-9 and exp["resources"]["train"]["threads"] == 2
    assert exp["optimizer"]["method"] == "lbfgs"


@pytest.mark.parametrize("stage", ["pretraining", "finetuning"])
@pytest.mark.parametrize(
    ("field", "value", "only"), [("dtype", "float32", "float64"), ("device", "cuda", "cpu")]
)
def test_stacked_stages_train_in_float64_on_the_cpu_only(stage, field, value, only):
    with pytest.raises(ConfigError) as error:
        resolve_config(_with(**{f"{stage}__{field}": value}), SCHEMA)
    message = str(error.value)
    assert f"'stacked_experiments.stacked-t10k.{stage}.{field}' = \"{value}\"" in message
    assert f"allowed: '{only}'" in message


def _with(**changes) -> dict:
    config = with_t10k()
    exp = config["stacked_experiments"]["stacked-t10k"]
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = exp
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            {"dataset__test__start": 4000},
            ["'stacked_experiments.stacked-t10k.dataset.test'", "overlaps", "disjoint"],
        ),
        (
            {"dataset__train__stop": 20000},
            ["'stacked_experiments.stacked-t10k.dataset.train.stop' = 20000", "10000 images"],
        ),
        (
            {"layers__rho": [0.1, 0.2, 0.3]},
            ["'stacked_experiments.stacked-t10k.layers.rho' lists 3 values for 2 layers"],
        ),
        (
            {"layers__rho": 1.5},
            ["'stacked_experiments.stacked-t10k.layers.rho'", "0 < rho < 1"],
        ),
        (
            {"layers__hidden_sizes": []},
            ["'stacked_experiments.stacked-t10k.layers.hidden_sizes'", "1 to 5 integers"],
        ),
        (
            {"finetuning__iterations": 400},
            ["'iterations'", "'stacked_experiments.stacked-t10k.finetuning'"],
        ),
        (
            {"softmax__lambda_": -1},
            ["'stacked_experiments.stacked-t10k.softmax.lambda_' = -1", "0 <= lambda_ <= 1e6"],
        ),
        (
            {"dataset__train__split": "validation"},
            [
                "'stacked_experiments.stacked-t10k.dataset.train.split'",
                "train (60,000 digits) or test",
            ],
        ),
        (
            {"gradcheck__num_examples": 6000},
            ["'stacked_experiments.stacked-t10k.gradcheck.num_examples' = 6000"],
        ),
        # The rules experiments have, applied to every stage.
        (
            {"optimizer__gtol": 1e9},
            [
                "'stacked_experiments.stacked-t10k.optimizer.gtol' = 1000000000.0",
                "0 <= gtol < 0.01",
            ],
        ),
        (
            {"optimizer__maxfun": 1},
            ["'stacked_experiments.stacked-t10k.optimizer.maxfun' = 1", "400 iterations"],
        ),
        (
            {"pretraining__chunks": 100000, "pretraining__iterations_per_chunk": 1},
            [
                "'stacked_experiments.stacked-t10k.pretraining.chunks' = 100000",
                "1 <= chunks <= 10000",
            ],
        ),
        (
            {"layers__lambda_": 1e300},
            ["'stacked_experiments.stacked-t10k.layers.lambda_' = 1e+300", "0 <= lambda_ <= 1e6"],
        ),
        (
            {"layers__hidden_sizes": [2000000000, 5]},
            ["'stacked_experiments.stacked-t10k.layers.hidden_sizes'", "MB", "this machine"],
        ),
    ],
)
def test_bad_settings_name_the_key(changes, expected):
    with pytest.raises(ConfigError) as info:
        resolve_config(_with(**changes), SCHEMA)
    for text in expected:
        assert text in str(info.value), str(info.value)


def test_a_name_used_twice_is_refused():
    config = with_t10k()
    config["stacked_experiments"]["natural"] = {}
    with pytest.raises(
        ConfigError,
        match="'stacked_experiments.natural': name 'natural' clashes with config key "
        "'experiments.natural'",
    ):
        resolve_config(config, SCHEMA)


def test_unknown_run_name_lists_the_stacked_experiments_too():
    config = with_t10k()
    config["run"] = ["nope"]
    with pytest.raises(ConfigError, match="stacked-t10k"):
        resolve_config(config, SCHEMA)


def test_per_layer_lists_and_layer_settings():
    config = _with(layers__rho=[0.1, 0.05], layers__hidden_sizes=[100, 50])
    exp = resolve_config(config, SCHEMA)["stacked_experiments"]["stacked-t10k"]
    assert layer_settings(exp, 1) == {
        "visible_size": 784, "hidden_size": 100, "rho": 0.1, "lambda_": 3e-3, "beta": 3,
    }  # fmt: skip
    assert layer_settings(exp, 2)["visible_size"] == 100
    assert layer_settings(exp, 2)["rho"] == 0.05


def test_stage_trajectories_change_exactly_with_what_decides_them():
    base = resolve_config(with_t10k(), SCHEMA)["stacked_experiments"]["stacked-t10k"]
    stages = ("layer1", "layer2", "softmax", "finetune")

    def changed(**changes):
        exp = resolve_config(_with(**changes), SCHEMA)["stacked_experiments"]["stacked-t10k"]
        return [s for s in stages if stage_fingerprint(exp, s) != stage_fingerprint(base, s)]

    assert changed(finetuning__chunks=10) == []
    assert changed(finetuning__iterations_per_chunk=40) == ["finetune"]
    assert changed(softmax__lambda_=1e-3) == ["softmax", "finetune"]
    assert changed(pretraining__chunks=10) == ["layer2", "softmax", "finetune"]
    assert changed(layers__hidden_sizes=[200, 100]) == ["layer2", "softmax", "finetune"]
    assert changed(layers__beta=[3, 2]) == ["layer2", "softmax", "finetune"]
    assert changed(seed=2) == list(stages)
    assert (
        changed(gradcheck__bound=1e-8, description="x", resources={"train": {"threads": 1}}) == []
    )
    assert changed(pretraining__progress_every=1) == []
    assert stage_trajectory(base, "layer1")["layers"] == [layer_settings(base, 1)]


def test_layer_seeds_are_distinct_children():
    from sparseae.config import PURPOSES, rng

    assert PURPOSES["stacked_init"] == 4 and PURPOSES["stacked_gradcheck"] == 5
    first = np.random.default_rng(np.random.SeedSequence(1, spawn_key=(4, 1))).random(3)
    second = np.random.default_rng(np.random.SeedSequence(1, spawn_key=(4, 2))).random(3)
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, rng(1, "init").random(3))
