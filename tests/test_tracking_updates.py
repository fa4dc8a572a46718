"""MLflow tracking when outputs change after a first log, and the evaluation's figures.

Real result folders (tests/conftest.py's ``build_result_folder``: a small real L-BFGS run), a
real self-taught evaluation (``sparseae.analysis.evaluate.evaluate_features`` +
``save_evaluation`` on the trained tiny autoencoder), real sqlite stores read back through
``MlflowClient``. Covers:
the evaluation's nested numbers as metrics and its files as expected outputs; a recomputed
derived output (same config, same chunk 1) updating the run instead of failing; the training
history still guarding the run's identity; artifacts re-uploaded on a same-size change;
sweep parents identified by their settings; the workflow naming the evaluation outputs as
``log_mlflow`` inputs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from workflow_helpers import BIN, REPO, copy_workflow, workflow_environment

from sparseae.io import read_json, write_json
from sparseae.tracking import log_results, log_sweep
from sparseae.tracking.results import EVALUATION_FILES, load_chunk

pytestmark = pytest.mark.fast


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def enable_evaluation(results: Path) -> None:
    """Mark the folder's experiment as evaluated (config ``evaluation.enabled``)."""
    config = read_json(results / "config.json")
    config["evaluation"] = {"enabled": True, "train_fraction": 0.5}
    write_json(results / "config.json", config)


def evaluate(results: Path, *, max_iter: int = 100, seed: int = 3) -> dict:
    """A real softmax evaluation of the folder's trained autoencoder on seeded labeled data."""
    from sparseae.analysis.evaluate import evaluate_features, save_evaluation

    config = read_json(results / "config.json")
    visible, hidden = config["model"]["visible_size"], config["model"]["hidden_size"]
    with np.load(results / "theta.npz", allow_pickle=False) as data:
        theta = data["theta"]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=240)
    # Three classes with distinct mean patches, so accuracy is well above chance.
    centres = rng.random((visible, 3))
    X = np.clip(centres[:, labels] + 0.15 * rng.standard_normal((visible, labels.size)), 0, 1)
    result = evaluate_features(
        theta,
        X[:, :160],
        labels[:160],
        X[:, 160:],
        labels[160:],
        visible_size=visible,
        hidden_size=hidden,
        max_iter=max_iter,
    )
    save_evaluation(result, results, extra={"protocol": {"seed": seed, "source": "synthetic"}})
    return read_json(results / "evaluation.json")


def test_evaluation_figures_are_metrics_and_its_files_are_expected(
    result_folder_factory, sqlite_store, tmp_path
):
    results = result_folder_factory("digits")
    enable_evaluation(results)
    client = MlflowClient(sqlite_store)

    # Logged before the evaluation ran: a partial run that names the evaluation's files.
    run_id = log_results(results, experiment_name="digits", tracking_uri=sqlite_store)
    run = client.get_run(run_id)
    assert run.data.tags["sparseae.status"] == "partial"
    for name in EVALUATION_FILES:
        assert f"`{name}`" in run.data.tags["mlflow.note.content"], name
    assert run.info.status == "RUNNING"

    evaluation = evaluate(results)
    assert log_results(results, experiment_name="digits", tracking_uri=sqlite_store) == run_id
    run = client.get_run(run_id)
    metrics, params = run.data.metrics, run.data.params
    assert run.data.tags["sparseae.status"] == "complete" and run.info.status == "FINISHED"
    assert metrics["accuracy_features"] == evaluation["accuracy_features"]
    softmax, seconds = evaluation["softmax"], evaluation["seconds"]
    for name in ("features", "raw"):
        assert metrics[f"softmax.n_iter_{name}"] == softmax[f"n_iter_{name}"]
        assert metrics[f"softmax.converged_{name}"] == float(softmax[f"converged_{name}"])
        assert metrics[f"seconds.fit_{name}"] == seconds[f"fit_{name}"]
        for label, accuracy in zip(
            evaluation["classes"], evaluation[f"per_class_accuracy_{name}"], strict=True
        ):
            assert metrics[f"per_class_accuracy_{name}.{label}"] == accuracy
    assert metrics["seconds.encode"] == seconds["encode"]
    # Settings and counts stay in evaluation.json; the confusion matrices are artifacts only.
    assert not [k for k in params if k.startswith(("evaluation.softmax.", "evaluation.n_"))]
    assert not [k for k in (*metrics, *params) if "confusion" in k or k.endswith("classes")]
    assert set(EVALUATION_FILES) <= {a.path for a in client.list_artifacts(run_id)}
    local = Path(client.download_artifacts(run_id, "evaluation.json", str(tmp_path / "dl")))
    assert json.loads(local.read_text())["confusion_features"] == evaluation["confusion_features"]
    contexts = {
        d.dataset.name: {t.value for t in d.tags if t.key == "mlflow.data.context"}
        for d in run.inputs.dataset_inputs
    }
    assert sorted(contexts.values(), key=sorted) == [{"evaluation"}, {"training"}], contexts
    note = run.data.tags["mlflow.note.content"]
    assert f"{100 * evaluation['accuracy_features']:.2f}% on hidden-layer features" in note
    assert f"{100 * evaluation['accuracy_raw']:.2f}% on raw pixels" in note


def test_recomputed_evaluation_updates_the_run(result_folder_factory, sqlite_store):
    results = result_folder_factory("digits")
    enable_evaluation(results)
    first = evaluate(results, max_iter=100)
    run_id = log_results(results, experiment_name="digits", tracking_uri=sqlite_store)
    client = MlflowClient(sqlite_store)

    # The evaluate rule rerun with other settings: same config.json, same chunk 1.
    second = evaluate(results, max_iter=2)
    assert second["softmax"]["n_iter_features"] != first["softmax"]["n_iter_features"]
    assert log_results(results, experiment_name="digits", tracking_uri=sqlite_store) == run_id

    run = client.get_run(run_id)
    last = read_json(results / "summary.json")["iterations"]
    assert history(client, run_id, "softmax.n_iter_features") == [
        (last, first["softmax"]["n_iter_features"]),
        (last + 1, second["softmax"]["n_iter_features"]),
    ]
    # The latest value is the file's; unchanged figures got no new point.
    assert run.data.metrics["softmax.n_iter_features"] == second["softmax"]["n_iter_features"]
    assert [s for s, _ in history(client, run_id, "iterations")] == [last]
    record = read_json(results / "mlflow.json")
    assert "softmax.n_iter_features" in record["logged_this_time"]["revised_metrics"]

    # Logging again adds nothing.
    log_results(results, experiment_name="digits", tracking_uri=sqlite_store)
    logged = read_json(results / "mlflow.json")["logged_this_time"]
    assert logged == {
        "params": 0,
        "metric_points": 0,
        "artifacts": 0,
        "tags": 0,
        "filter_images": 0,
        "datasets": 0,
        "models": 0,
    }
    experiment = client.get_experiment_by_name("digits")
    assert len(client.search_runs([experiment.experiment_id])) == 1


def test_differing_history_of_the_same_trajectory_never_blocks(result_folder_factory, sqlite_store):
    results = result_folder_factory("tiny")
    run_id = log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    client = MlflowClient(sqlite_store)
    before = history(client, run_id, "cost")
    # Chunk 2 recomputed with other last bits (another thread count) and other timings.
    arrays, meta = load_chunk(results / "chunks" / "2.npz")
    arrays["cost"] = arrays["cost"] * (1 + 1e-9)
    arrays["seconds"] = arrays["seconds"] + 5.0
    meta["wall_seconds"] = 99.0
    arrays["meta"] = np.asarray(json.dumps(meta))
    np.savez(results / "chunks" / "2.npz", **arrays)
    assert log_results(results, experiment_name="tiny", tracking_uri=sqlite_store) == run_id
    record = read_json(results / "mlflow.json")
    # The 4 costs differ (reported); the wall-clock figures are never compared.
    assert record["differing_points"]["count"] == 4
    assert all(p.startswith("cost@") for p in record["differing_points"]["first"])
    assert record["logged_this_time"]["metric_points"] == 0
    assert history(client, run_id, "cost") == before  # no point twice


def test_same_size_changed_artifact_is_uploaded_again(result_folder_factory, sqlite_store):
    results = result_folder_factory("tiny")
    run_id = log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)
    client = MlflowClient(sqlite_store)
    text = (results / "history.tsv").read_text()
    changed = text.replace("iteration", "Iteration", 1)
    assert len(changed) == len(text) and changed != text
    (results / "history.tsv").write_text(changed)

    log_results(results, experiment_name="tiny", tracking_uri=sqlite_store)

    assert read_json(results / "mlflow.json")["logged_this_time"]["artifacts"] == 1
    artifact_dir = Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    assert (artifact_dir / "history.tsv").read_text() == changed


def test_sweep_parent_follows_its_settings_and_artifacts(
    result_folder_factory, sqlite_store, tmp_path
):
    members = [result_folder_factory(f"m{i}", seed=i) for i in range(2)]
    for folder in members:
        log_results(folder, experiment_name="grid", tracking_uri=sqlite_store)
    table, page = tmp_path / "summary.tsv", tmp_path / "summary.html"
    table.write_text("experiment\tfinal_cost\nm0\t0.4\nm1\t0.5\n")
    page.write_text("<table></table>\n")
    settings = {"base": "tiny", "grid": {"cost.beta": [1, 3]}}
    client = MlflowClient(sqlite_store)

    parent = log_sweep(
        "grid", members, tracking_uri=sqlite_store, params=settings, artifacts=[table, page]
    )
    assert {a.path for a in client.list_artifacts(parent)} == {
        "summary.tsv",
        "summary.html",
        "manifest.json",
    }
    # A same-size change of the table is uploaded again; the same settings keep the parent.
    table.write_text("experiment\tfinal_cost\nm0\t0.4\nm1\t0.6\n")
    output = tmp_path / "sweep.json"
    again = log_sweep(
        "grid",
        members,
        tracking_uri=sqlite_store,
        params=settings,
        artifacts=[table, page],
        output=output,
    )
    assert again == parent
    assert read_json(output)["artifacts_uploaded"] == ["summary.tsv"]
    local = client.download_artifacts(parent, "summary.tsv", str(tmp_path / "dl"))
    assert Path(local).read_text() == table.read_text()

    # Another grid: a new parent run (the old one keeps its params), members re-attached.
    changed = {"base": "tiny", "grid": {"cost.beta": [1, 5]}}
    new_parent = log_sweep(
        "grid", members, tracking_uri=sqlite_store, params=changed, artifacts=[table]
    )
    assert new_parent != parent
    assert client.get_run(parent).data.params["grid.cost.beta"] == "[1, 3]"
    assert client.get_run(new_parent).data.params["grid.cost.beta"] == "[1, 5]"
    for folder in members:
        tags = client.get_run(read_json(folder / "mlflow.json")["run_id"]).data.tags
        assert tags["mlflow.parentRunId"] == new_parent


def test_sweep_tag_has_one_definition():
    common = (REPO / "workflow" / "rules" / "common.smk").read_text(encoding="utf-8")
    assert "SWEEP_TAG" in common and '"sparseae.sweep"' not in common


@pytest.mark.full  # a subprocess
def test_log_mlflow_inputs_name_the_evaluation_outputs(tmp_path):
    copy_workflow(tmp_path)
    env = workflow_environment()
    done = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--cores", "1", "--quiet", "host"]
        + ["--configfile", "config/stl-t10k.yaml"]
        + ["--", "results/stl-t10k/mlflow.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # The dry run's reason for log_mlflow lists its inputs ("updated by another job"); the
    # default profile hides reasons, "--quiet host" shows them.
    lines = (done.stdout + done.stderr).splitlines()
    start = next(i for i, line in enumerate(lines) if "log to MLflow" in line)
    reason = next(line for line in lines[start:] if line.startswith("Reason:"))
    inputs = {f.strip() for f in reason.split("by another job:", 1)[1].split(",")}
    for name in EVALUATION_FILES:
        assert f"results/stl-t10k/{name}" in inputs, name


def test_command_line_sweep_attaches_every_file(result_folder_factory, sqlite_store, tmp_path):
    from sparseae.cli import main

    members = [result_folder_factory(f"m{i}", seed=i) for i in range(2)]
    for folder in members:
        log_results(folder, experiment_name="cli-grid", tracking_uri=sqlite_store)
    files = [tmp_path / "summary.tsv", tmp_path / "summary.png"]
    files[0].write_text("experiment\tfinal_cost\nm0\t0.4\nm1\t0.5\n")
    files[1].write_bytes(b"\x89PNG not really")
    output = tmp_path / "sweep.json"
    argv = ["log-sweep", "--tracking-uri", sqlite_store, "cli-grid", *map(str, members)]
    argv += ["--summary", str(files[0]), "--summary", str(files[1]), "--output", str(output)]
    assert main(argv) == 0
    parent = read_json(output)["run_id"]
    names = {a.path for a in MlflowClient(sqlite_store).list_artifacts(parent)}
    assert names == {"summary.tsv", "summary.png", "manifest.json"}
    assert main([*argv[:-4], "--summary", str(tmp_path / "absent.tsv")]) == 1
