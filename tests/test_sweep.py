"""Sweeps end to end: a 2x2 grid (beta x rho) on `natural` through the real workflow.

The workflow is copied into a temporary folder and run once with ``snakemake --cores 2`` (two
1-thread training jobs at a time) into a fresh sqlite MLflow store. Checked: the sweep table
``results/sweeps/{sweep}/summary.tsv`` lists every member once, its parameter columns hold the
values each member really ran with (its config.json) and its result columns equal the
member's summary.json / gradcheck.json; the PNG and HTML views exist; MLflow holds a parent
run with the three views as artifacts and the four member runs tagged with the sweep; the
table does not depend on tracking; and ``sparseae.pipeline.sweep.sweep_table`` on the member folders
gives the same table, with clear errors for broken member folders.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from itertools import product
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import BIN, REPO, copy_workflow, dry_run, workflow_environment

from sparseae.config.sweeps import expand_sweep, grid_settings
from sparseae.errors import SweepError
from sparseae.pipeline.sweep import MEMBER_FILES, RESULT_COLUMNS, read_sweep_table, sweep_table

pytestmark = [pytest.mark.full, pytest.mark.slow]


SWEEP = "tinysweep"
GRID = {"rho": [0.01, 0.05], "beta": [1, 3]}  # written out of naming order on purpose
CHUNKS, PER_CHUNK = 1, 8
SWEEP_CONFIG = {
    "run": [SWEEP],
    "sweeps": {
        SWEEP: {
            "base": "natural",
            "overrides": {
                "patches": {"count": 1000},
                "training": {"chunks": CHUNKS, "iterations_per_chunk": PER_CHUNK},
                "gradcheck": {"num_examples": 5, "hidden_size": 3},
                # One core per training job: two members train at the same time.
                "resources": {"train": {"threads": 1}},
            },
            "grid": GRID,
        }
    },
}


def members() -> list[str]:
    """Member names as the workflow expands them (sparseae.config, the workflow's own code)."""
    shipped = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    return list(expand_sweep(SWEEP, SWEEP_CONFIG["sweeps"][SWEEP], shipped["experiments"]))


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    # Targets and options first: --configfile takes several values and would swallow them.
    return subprocess.run(
        [str(BIN / "snakemake"), *args, "--cores", "2", "--configfile", "config/sweep.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
        env=workflow_environment(),
    )


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """The workflow run once on the tiny sweep, in a fresh folder with a fresh MLflow store."""
    workdir = copy_workflow(tmp_path_factory.mktemp("sweep") / "work")
    (workdir / "config" / "sweep.yaml").write_text(yaml.safe_dump(SWEEP_CONFIG))
    result = snakemake(workdir)
    output = result.stdout + result.stderr
    (workdir / "snakemake-output.txt").write_text(output)
    assert result.returncode == 0, output[-6000:]
    return workdir


def test_table_lists_every_member_with_its_parameters_and_results(swept):
    table = read_sweep_table(swept / "results" / "sweeps" / SWEEP / "summary.tsv")
    names = members()
    assert len(names) == 4
    assert list(table["experiment"]) == names  # one row each, in grid order
    # Parameter columns in naming order (beta before rho), then the result columns.
    assert list(table.columns) == ["experiment", "beta", "rho", *(c for c, _, _ in RESULT_COLUMNS)]
    assert sorted(zip(table["beta"], table["rho"], strict=True)) == sorted(
        product(GRID["beta"], GRID["rho"])
    )
    for _, row in table.iterrows():
        folder = swept / "results" / row["experiment"]
        config = json.loads((folder / "config.json").read_text())["experiment"]
        summary = json.loads((folder / "summary.json").read_text())
        gradcheck = json.loads((folder / "gradcheck.json").read_text())
        assert row["beta"] == config["model"]["beta"] and row["rho"] == config["model"]["rho"]
        assert row["rho_target"] == summary["rho"] == row["rho"]
        # Values read back from the TSV equal the members' files exactly (round-trip floats).
        for column in ("final_cost", "reconstruction", "weight_decay", "sparsity"):
            assert row[column] == summary[column], column
        for column in ("rhohat_mean", "rhohat_min", "rhohat_max", "train_seconds"):
            assert row[column] == summary[column], column
        assert row["iterations"] == summary["iterations"] == CHUNKS * PER_CHUNK
        assert row["fun_evals"] == summary["fun_evals"] >= row["iterations"]
        assert row["gradcheck_difference"] == gradcheck["autoencoder"] < 1e-9
        assert row["final_cost"] == pytest.approx(
            row["reconstruction"] + row["weight_decay"] + row["sparsity"], rel=1e-12
        )
    # beta and rho really change the training: no two members end at the same cost.
    assert table["final_cost"].nunique() == 4


def test_png_and_html_views_exist(swept):
    from PIL import Image

    folder = swept / "results" / "sweeps" / SWEEP
    with Image.open(folder / "summary.png") as image:
        assert image.format == "PNG" and image.size[0] >= 800 and image.size[1] >= 300
    page = (folder / "summary.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and f"sweep {SWEEP}" in page
    assert all(name in page for name in members())
    assert 'src="data:image/png;base64,' in page  # self-contained, also as an MLflow artifact
    assert not list(folder.glob(".*.tmp-*")), "a temporary file was left behind"
    assert (swept / "logs" / "_sweeps" / SWEEP / "summarize_sweep.log").is_file()
    console = (swept / "snakemake-output.txt").read_text()
    assert f"results/sweeps/{SWEEP}/summary.html" in console  # onsuccess says where it is


def test_mlflow_sweep_is_one_experiment_with_members_nested_under_the_parent(swept):
    from mlflow.tracking import MlflowClient

    record = json.loads((swept / "results" / "sweeps" / SWEEP / "mlflow.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{swept / 'mlflow.db'}")
    assert record["tracking_uri"] == f"sqlite:///{swept / 'mlflow.db'}"
    parent = client.get_run(record["run_id"])
    assert client.get_experiment(parent.info.experiment_id).name == SWEEP
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["sparseae.sweep"] == SWEEP
    assert parent.data.params["grid.beta"] == "[1, 3]"
    assert parent.data.params["sweep.members"] == "4"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    # The table's three views, the contact sheet of the members' filters, the manifest.
    assert artifacts == {
        "summary.tsv",
        "summary.html",
        "summary.png",
        "filters.png",
        "manifest.json",
    }
    assert (swept / "results" / "sweeps" / SWEEP / "filters.png").is_file()

    expected = {
        json.loads((swept / "results" / name / "mlflow.json").read_text())["run_id"]
        for name in members()
    }
    tagged = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`sparseae.sweep` = '{SWEEP}'",
    )
    member_runs = [r for r in tagged if r.data.tags.get("sparseae.sweep_role") != "parent"]
    assert {r.info.run_id for r in member_runs} == expected and len(member_runs) == 4
    # One MLflow experiment, named after the sweep, holds the parent and its four children.
    sweep_experiment = client.get_experiment_by_name(SWEEP)
    assert sweep_experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    in_experiment = client.search_runs([sweep_experiment.experiment_id])
    assert len(in_experiment) == 5
    for run in member_runs:
        assert run.info.experiment_id == sweep_experiment.experiment_id
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        folder = swept / "results" / run.data.tags["sparseae.experiment"]
        summary = json.loads((folder / "summary.json").read_text())
        assert run.data.metrics["cost"] == pytest.approx(summary["final_cost"], rel=1e-9)


def test_table_does_not_depend_on_tracking_and_rerun_has_nothing_to_do(swept):
    # Dry runs in this process (workflow_helpers.dry_run): one import of Snakemake for both.
    target = f"results/sweeps/{SWEEP}/summary.tsv"
    jobs = dry_run(swept, ["config/sweep.yaml"], target, forceall=True)
    assert jobs.get("summarize_sweep") == 1 and jobs.get("finalize") == len(members()), jobs
    for rule in ("init_store", "log_mlflow", "log_sweep"):
        assert rule not in jobs, f"the sweep table waits for {rule}: {jobs}"
    assert dry_run(swept, ["config/sweep.yaml"]) == {}


def test_unknown_sweep_target_is_named(swept):
    result = snakemake(swept, "results/sweeps/nosuchsweep/summary.tsv", "-n")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "no sweep named 'nosuchsweep'" in output and SWEEP in output


# ------------------------------------------------------------------ the package's table builder


def test_sweep_table_on_member_folders_equals_the_rule_output(swept):
    folders = {name: swept / "results" / name for name in members()}
    table = sweep_table(folders, grid_settings(GRID))
    written = read_sweep_table(swept / "results" / "sweeps" / SWEEP / "summary.tsv")
    pd.testing.assert_frame_equal(table, written)
    # Dotted paths as column names.
    paths = ("model.rho", "patches.count", "patches.whitening")
    by_path = sweep_table(folders, {path: path for path in paths})
    assert list(by_path["experiment"]) == list(folders)
    assert list(by_path["model.rho"]) == list(table["rho"])
    assert set(by_path["patches.count"]) == {1000}
    # A whole section as one JSON cell (it survives the TSV), not a Python repr.
    whitening = json.loads((folders[members()[0]] / "config.json").read_text())
    assert (
        json.loads(by_path["patches.whitening"][0])
        == whitening["experiment"]["patches"]["whitening"]
    )


@pytest.fixture
def member_copy(swept, tmp_path) -> Path:
    """A copy of one member's result files, to break."""
    name = members()[0]
    folder = tmp_path / name
    folder.mkdir()
    for filename in MEMBER_FILES:
        shutil.copy2(swept / "results" / name / filename, folder / filename)
    return folder


def test_missing_member_file_is_named(member_copy):
    (member_copy / "gradcheck.json").unlink()
    with pytest.raises(SweepError, match="gradcheck.json does not exist"):
        sweep_table({member_copy.name: member_copy}, {"beta": "model.beta"})


def test_member_folder_of_another_experiment_is_refused(member_copy, tmp_path):
    renamed = tmp_path / "other-name"
    member_copy.rename(renamed)
    with pytest.raises(SweepError, match=r"written for experiment '.*', not 'other-name'"):
        sweep_table({"other-name": renamed}, {"beta": "model.beta"})


def test_unknown_setting_and_missing_result_key_are_named(member_copy):
    with pytest.raises(SweepError, match=r"no setting 'model\.gamma'"):
        sweep_table({member_copy.name: member_copy}, {"gamma": "model.gamma"})
    with pytest.raises(SweepError, match="clash with result columns"):
        sweep_table({member_copy.name: member_copy}, {"final_cost": "model.beta"})
    summary = json.loads((member_copy / "summary.json").read_text())
    del summary["rhohat_mean"]
    (member_copy / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(SweepError, match="summary.json has no key 'rhohat_mean'"):
        sweep_table({member_copy.name: member_copy}, {"beta": "model.beta"})


def test_report_holds_the_sweep_table_and_figure(swept):
    import zipfile

    result = snakemake(swept, "--report", "report.zip")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    with zipfile.ZipFile(swept / "report.zip") as archive:
        names = [Path(name).name for name in archive.namelist()]
    assert "summary.png" in names and "summary.tsv" in names, names


# ------------------------------------------------------------------ the shipped whitening sweep

DIAGNOSTIC_COLUMNS = (
    "fraction_variance_explained",
    "alignment_top_k",
    "alignment_random",
    "activation_norm_corr",
    "topk_norm_ratio",
    "dead_units",
)


def test_whitening_sweep_reduced_runs_end_to_end_with_the_diagnostic_columns(tmp_path):
    """The shipped `whitening` sweep for one seed, each member trained briefly."""
    workdir = copy_workflow(tmp_path / "work")
    reduced = {
        "run": ["whitening"],
        "sweeps": {
            "whitening": {
                "grid": {"seed": [1]},  # merged into the shipped grid
                "overrides": {
                    "patches": {"count": 1000},
                    "training": {"chunks": 1, "iterations_per_chunk": 10},
                    "gradcheck": {"num_examples": 5, "hidden_size": 3},
                    "resources": {"train": {"threads": 1}},
                },
            }
        },
    }
    (workdir / "config" / "sweep.yaml").write_text(yaml.safe_dump(reduced))
    result = snakemake(workdir, "results/sweeps/whitening/summary.tsv")
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]

    table = read_sweep_table(workdir / "results" / "sweeps" / "whitening" / "summary.tsv")
    grid = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["sweeps"]["whitening"]
    grid = {**grid["grid"], "seed": [1]}
    columns = list(grid_settings(grid))
    assert set(columns) == {"seed", "dataset.whiten", "patches.normalize"}
    assert list(table.columns)[1 : 1 + len(columns)] == columns
    assert set(DIAGNOSTIC_COLUMNS) <= set(table.columns)
    assert sorted(zip(table["dataset.whiten"], table["patches.normalize"], strict=True)) == sorted(
        product(grid["dataset.whiten"], grid["patches.normalize"])
    )
    for _, row in table.iterrows():
        folder = workdir / "results" / row["experiment"]
        diagnostics = json.loads((folder / "diagnostics.json").read_text())
        for column in DIAGNOSTIC_COLUMNS:
            assert row[column] == diagnostics[column], (row["experiment"], column)
        assert -1 <= row["alignment_top_k"] <= 1 and row["fraction_variance_explained"] < 1
        assert (folder / "units.png").is_file()
    # Whitening changes the training data, so the members learn different models.
    assert table["fraction_variance_explained"].nunique() == len(table)
    page = (workdir / "results" / "sweeps" / "whitening" / "summary.html").read_text()
    assert "fraction_variance_explained" in page


# --------------------------------------------------------------------------------------------
# config validation of sweeps (the path `sparseae check-config FILE` takes: FILE merged over
# config/config.yaml, then resolve_config); no workflow run


def check_config(tmp_path: Path, text: str) -> dict:
    from sparseae.config import resolve_config

    path = tmp_path / "sweep.yaml"
    path.write_text(text, encoding="utf-8")
    return resolve_config(files=[REPO / "config" / "config.yaml", path])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(  # a sweep hides the experiment of its name
            "sweeps: {natural: {grid: {rho: [0.05]}}}",
            ["'sweeps.natural'", "'natural'", "'experiments.natural'", "rename"],
            id="sweep-vs-experiment",
        ),
        pytest.param(  # a member hides the sweep of its name (run: [a-seed1])
            "sweeps: {a: {grid: {seed: [1]}}, a-seed1: {grid: {rho: [0.05]}}}\nrun: [a-seed1]",
            ["'sweeps.a.grid'", "member 'a-seed1'", "'sweeps.a-seed1'"],
            id="member-vs-sweep",
        ),
        pytest.param(
            "experiments: {s-rho0.05: {}}\nsweeps: {s: {grid: {rho: [0.05]}}}",
            ["'sweeps.s.grid'", "member 's-rho0.05'", "'experiments.s-rho0.05'"],
            id="member-vs-experiment",
        ),
        pytest.param(  # members of two sweeps: t-rho0.05-seed1 from both
            "sweeps: {t: {grid: {seed: [1], rho: [0.05]}}, t-rho0.05: {grid: {seed: [1]}}}",
            ["'sweeps.t-rho0.05.grid'", "member 't-rho0.05-seed1'", "'sweeps.t.grid'"],
            id="member-vs-member-of-another-sweep",
        ),
        pytest.param(
            "stacked_experiments: {s-rho0.05: {}}\nsweeps: {s: {grid: {rho: [0.05]}}}",
            ["'sweeps.s.grid'", "member 's-rho0.05'", "'stacked_experiments.s-rho0.05'"],
            id="member-vs-stacked",
        ),
        pytest.param(
            "stacked_experiments: {natural: {}}",
            ["'stacked_experiments.natural'", "'experiments.natural'"],
            id="stacked-vs-experiment",
        ),
        pytest.param(  # values whose text breaks the experiment-name rule
            'sweeps: {s: {grid: {dataset.path: ["ok.npz", "x/y.npz"]}}}',
            ["'sweeps.s.grid.dataset.path'", "'x/y.npz'", "'s-pathx/y.npz'"],
            id="grid-value-makes-a-bad-name",
        ),
        pytest.param(  # free text is no setting; members would be identical runs
            'sweeps: {s: {grid: {description: ["a b", "c/d"]}}}',
            ["'sweeps.s.grid.description'", "'a b'", "'c/d'", "free text"],
            id="grid-over-description",
        ),
        pytest.param(  # the grid would silently replace the override
            "sweeps: {s: {overrides: {model: {rho: 0.2}}, grid: {rho: [0.05]}}}",
            ["'sweeps.s.overrides.model.rho'", "'sweeps.s.grid.rho'", "model.rho"],
            id="override-and-grid-set-one-key",
        ),
        pytest.param(  # an override of a whole subtree the grid writes into
            "sweeps: {s: {overrides: {patches: {count: 500}}, grid: {patches.count: [100]}}}",
            ["'sweeps.s.overrides.patches.count'", "'sweeps.s.grid.patches.count'"],
            id="override-and-dotted-grid-key",
        ),
    ],
)
def test_bad_sweep_config_is_one_message_naming_the_keys(tmp_path, text, expected):
    from sparseae.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        check_config(tmp_path, text)
    message = str(info.value)
    assert message.count("\n  - ") == 1, message  # one problem, one message
    assert "allowed:" in message and "fix:" in message, message
    for part in expected:
        assert part in message, (part, message)


def test_valid_sweep_still_expands_as_before(tmp_path):
    resolved = check_config(
        tmp_path,
        "sweeps: {s: {overrides: {training: {chunks: 2}}, grid: {rho: [0.01, 0.05], beta: [1]}}}"
        "\nrun: [s, sparsity]",
    )
    assert resolved["sweep_members"]["s"] == ["s-beta1-rho0.01", "s-beta1-rho0.05"]
    assert resolved["run"] == [
        "s-beta1-rho0.01",
        "s-beta1-rho0.05",
        "sparsity-beta1-rho0.01",
        "sparsity-beta1-rho0.05",
        "sparsity-beta3-rho0.01",
        "sparsity-beta3-rho0.05",
    ]
    member = resolved["experiments"]["s-beta1-rho0.05"]
    assert (member["model"]["rho"], member["model"]["beta"]) == (0.05, 1)
    assert member["training"]["chunks"] == 2
    assert "natural" in resolved["experiments"]  # the base experiment stays itself
