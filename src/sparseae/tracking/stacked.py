"""MLflow logging of a stacked experiment: one run keyed by the stage fingerprints (a changed
trajectory gets a new run), a nested run per stage keyed by its fingerprint."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from sparseae.identity import key_of
from sparseae.io import read_json, write_json
from sparseae.pipeline.chunks import read_chunks
from sparseae.tracking import sync
from sparseae.tracking.results import MetricPoint, flatten_params, param_value
from sparseae.tracking.store import exclusive_lock, init_store
from sparseae.tracking.sync import RunSpec, Session

STAGE_TAG = "sparseae.stage"
KIND_TAG = "sparseae.kind"
STACKED_ARTIFACTS = (
    "stacked_config.json",
    "stacked_gradcheck.json",
    "stacked_evaluation.json",
    "confusion_before.png",
    "confusion_after.png",
    "filters_before.png",
    "filters_after.png",
    "stacked_cost_curves.png",
    "stack.npz",
)


def log_stacked(
    result_dir,
    *,
    experiment_name: str,
    tracking_uri: str,
    stages: Mapping[str, list],
    log_dir=None,
    output=None,
) -> str:
    """Log a finished stacked experiment (``results/{name}``) and its stages; return the run id.

    ``stages`` maps each stage (``layer1`` … ``softmax``, ``finetune``) to its checkpoint files
    in order; ``log_dir`` (default ``logs/{name}`` beside ``results``) is attached under
    ``logs/``; ``output`` gets ``{"run_id", "stage_runs", "tracking_uri", "logged"}``."""
    folder = Path(result_dir).resolve()
    config = read_json(folder / "stacked_config.json")
    evaluation = read_json(folder / "stacked_evaluation.json")
    name = config["name"]
    params = flatten_params(config["experiment"])
    params.update({f"fingerprint.{s}": f for s, f in config["fingerprints"].items()})
    # The results' own "metrics" and "params" blocks say what MLflow shows of them.
    metrics = []
    for result in (evaluation, read_json(folder / "stacked_gradcheck.json")):
        params.update({k: param_value(v) for k, v in result.get("params", {}).items()})
        metrics += [
            MetricPoint(k, float(v), 0, derived=True) for k, v in result.get("metrics", {}).items()
        ]
    artifacts = [(folder / file, "") for file in STACKED_ARTIFACTS]
    # As for a single run: the rule logs beside results/ unless given.
    logs = sorted(Path(log_dir or folder.parent.parent / "logs" / folder.name).glob("*.log"))
    artifacts += [(path, "logs") for path in logs if path.name != "log_stacked.log"]
    parent_spec = RunSpec(
        identity={sync.RUN_KEY_TAG: key_of(config["fingerprints"]), sync.EXPERIMENT_TAG: name},
        name=name,
        params=params,
        metrics=metrics,
        tags={
            KIND_TAG: "stacked",
            sync.STATUS_TAG: "complete",
            sync.NOTE_TAG: f"Stacked autoencoder **{name}**, results in `{folder}`; one nested run "
            f"per stage with its cost and gradient norm per L-BFGS iteration.",
        },
        artifacts=artifacts,
    )
    session = Session(tracking_uri, folder)
    with exclusive_lock(f"{tracking_uri}#{experiment_name}#{name}"):
        experiment_id = init_store(tracking_uri, experiment_name, results_dir=folder)[
            experiment_name
        ]
        synced = sync.sync_run(session, experiment_id, parent_spec)
        parent_id = synced.run.info.run_id
        logged, stage_runs = {"parent": synced.logged}, {}
        for stage, paths in stages.items():
            spec = _stage_spec(stage, paths, parent_id, config, evaluation)
            stage_synced = sync.sync_run(session, experiment_id, spec)
            logged[stage] = stage_synced.logged
            stage_runs[stage] = stage_synced.run.info.run_id
        superseded = sync.supersede(session, experiment_id, name, synced.run)
    if output is not None:
        record = {"run_id": parent_id, "stage_runs": stage_runs, "tracking_uri": tracking_uri}
        record.update(experiment=experiment_name, superseded_runs=superseded, logged=logged)
        write_json(output, record)
    logging.getLogger(__name__).info("logged %s to %s, run %s", folder, tracking_uri, parent_id)
    return parent_id


def _stage_spec(stage: str, paths, parent_id: str, config: Mapping, evaluation: Mapping):
    """A stage's child run: its trajectory, cost and gradient norm per iteration, seconds."""
    _, records, metas = read_chunks(paths)
    trajectory = next((m["trajectory"] for m in reversed(metas) if "trajectory" in m), {})
    points = [MetricPoint("seconds", evaluation["seconds"].get(stage, 0.0), 0, wallclock=True)]
    points += [
        MetricPoint(key, float(r[key]), int(r["iteration"]), int(1000 * float(r["seconds"])))
        for r in records
        for key in ("cost", "grad_norm")
    ]
    fingerprint = config["fingerprints"].get(stage) or key_of(trajectory)
    return RunSpec(
        identity={sync.RUN_KEY_TAG: fingerprint, STAGE_TAG: stage, sync.PARENT_TAG: parent_id},
        name=f"{config['name']} {stage}",
        params=flatten_params(trajectory),
        metrics=points,
    )
