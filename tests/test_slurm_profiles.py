"""The Slurm profiles' ``groups`` against the workflow's own rules (no cluster needed).

Snakemake submits a rule listed under ``localrules`` only while it is in no group (a grouped
local rule goes to Slurm with its group), and a compute rule left out of the groups is sent as
a Slurm job of its own. So the groups must name exactly the workflow's compute rules: every
rule that is not local, all of them steps of one experiment. tests/test_slurm.py proves on a
real cluster what these groups do; this test catches a rule added to or renamed in the
workflow without the profiles following.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from workflow_helpers import REPO, copy_workflow

pytestmark = pytest.mark.fast

PROFILES = REPO / "profiles"


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> dict[str, dict]:
    """Every rule of the workflow as Snakemake parses it: its wildcards, whether it is local,
    its resources."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import (
        ConfigSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
    )

    folder = copy_workflow(tmp_path_factory.mktemp("workflow"))
    # natural on a GPU: test_a_cuda_experiment_asks_slurm_for_one_gpu reads its resource.
    config = yaml.safe_load((folder / "config" / "config.yaml").read_text())
    config["experiments"]["natural"].setdefault("training", {})["device"] = "cuda"
    (folder / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with contextlib.chdir(folder), SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(),
            storage_settings=StorageSettings(),
            snakefile=folder / "Snakefile",
            workdir=folder,
        )._workflow
        # Private attribute: the names under `localrules` (is_local() answers True for every
        # rule outside a cluster executor).
        local = set(workflow._localrules)
        return {
            rule.name: {
                "wildcards": set(rule.wildcard_names),
                "local": rule.name in local,
                "resources": rule.resources,
            }
            for rule in workflow.rules
        }


def profile_groups(name: str) -> dict[str, str]:
    profile = yaml.safe_load(Path(PROFILES / name / "profile.yaml").read_text())
    return profile.get("groups", {})


def compute_rules(rules: dict[str, dict]) -> set[str]:
    return {name for name, rule in rules.items() if not rule["local"]}


def test_the_workflow_has_local_and_compute_rules(rules):
    # A light step on the submitting host and a compute step sent to Slurm.
    assert rules["write_trajectory"]["local"], rules["write_trajectory"]
    assert not rules["train_chunk"]["local"], rules["train_chunk"]
    assert {"all", "fetch", "log_mlflow"} <= {n for n, r in rules.items() if r["local"]}


@pytest.mark.parametrize("profile", ["slurm", "slurm-chunks"])
def test_no_local_rule_is_grouped_and_every_grouped_rule_exists(rules, profile):
    groups = profile_groups(profile)
    assert set(groups) <= set(rules), f"{profile}: groups name unknown rules"
    grouped_local = sorted(name for name in groups if rules[name]["local"])
    assert not grouped_local, f"{profile}: grouped local rules go to Slurm: {grouped_local}"


def test_every_compute_step_is_in_its_experiments_one_group(rules):
    """profiles/slurm: the compute rules are all per-experiment steps and all in the group
    `experiment`, so that each experiment is one Slurm job."""
    groups = profile_groups("slurm")
    compute = compute_rules(rules)
    assert {"sample_patches", "check_gradient", "train_chunk", "finalize", "evaluate"} <= compute
    for name in sorted(compute):
        assert "experiment" in rules[name]["wildcards"], f"{name} is not a per-experiment step"
    assert set(groups) == compute, (
        f"not grouped: {sorted(compute - set(groups))}; grouped: {sorted(groups)}"
    )
    assert set(groups.values()) == {"experiment"}, groups


def test_the_chunks_profile_submits_each_chunk_alone(rules):
    """profiles/slurm-chunks: training chunks in no group; every other compute step grouped."""
    groups = profile_groups("slurm-chunks")
    chunks = {"train_chunk", "train_layer_chunk", "finetune_chunk"}
    assert not chunks & set(groups), groups
    assert set(groups) == compute_rules(rules) - chunks, groups


def test_a_cuda_experiment_asks_slurm_for_one_gpu(rules):
    """training.device: cuda gives train_chunk the executor plugin's `gpu` resource, which it
    turns into `--gpus=1` on the sbatch line; a cpu experiment's job asks for no GPU."""
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Resources(dict):
        __getattr__ = dict.__getitem__

    def sbatch_gres(experiment):
        value = (
            rules["train_chunk"]["resources"]["gpu"]
            .evaluate(SimpleNamespace(experiment=experiment))
            .value
        )
        return set_gres_string(SimpleNamespace(resources=Resources(gpu=value)))

    assert sbatch_gres("natural") == " --gpus=1"
    assert sbatch_gres("mnist") == ""
