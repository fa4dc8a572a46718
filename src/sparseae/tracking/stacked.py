"""MLflow logging of a stacked experiment: one run, a nested run per stage.

The parent run (tag ``sparseae.run_key`` = experiment name and the sha256 of ``stack.npz``, so
one execution is one run) holds the resolved config as params, the accuracies before and after
fine-tuning (and of softmax on raw pixels), the training time of every stage, the gradient
check, the figures and files as artifacts. Each stage (``layer1`` … ``layerL``, ``softmax``,
``finetune``) is a child run (``mlflow.parentRunId``) with its trajectory as params and its
cost and gradient norm per L-BFGS iteration (``step`` = iteration) as metrics.

Like :func:`sparseae.tracking.log_results`, logging is idempotent: a rerun finds the runs
again by their tags and adds only the params, metric points and artifacts still missing, so a
tracking failure is repaired by running ``snakemake`` again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

from sparseae.io import read_json, write_json
from sparseae.model.train import load_checkpoint
from sparseae.tracking.logger import MANIFEST_TAG, file_sha256, log_artifacts
from sparseae.tracking.results import param_value
from sparseae.tracking.store import call, client, ensure_experiment

__all__ = ["log_stacked", "STACKED_ARTIFACTS"]

RUN_KEY_TAG = "sparseae.run_key"
STAGE_TAG = "sparseae.stage"
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


def _flatten(obj, prefix="") -> dict[str, str]:
    if isinstance(obj, Mapping):
        out: dict[str, str] = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    text = obj if isinstance(obj, str) else json.dumps(obj)
    return {prefix[:-1]: text[:6000]}


def _find_or_create(uri, mlflow, experiment_id, key, tags, name, folder):
    found = call(
        uri,
        mlflow.search_runs,
        [experiment_id],
        filter_string=f"tags.`{RUN_KEY_TAG}` = '{key}'",
        results_dir=folder,
    )
    if found:
        return found[0]
    return call(
        uri,
        mlflow.create_run,
        experiment_id,
        tags={RUN_KEY_TAG: key, **tags},
        run_name=name,
        results_dir=folder,
    )


def _sync(uri, mlflow, run, *, params, metrics, artifacts, folder) -> dict:
    """Add what ``run`` lacks: params, metric points (key, value, step), artifacts."""
    from mlflow.entities import Metric, Param

    run_id = run.info.run_id
    run = call(uri, mlflow.get_run, run_id, results_dir=folder)
    todo_params = [Param(k, v) for k, v in sorted(params.items()) if k not in run.data.params]
    have: dict[str, set] = {}
    for key in sorted({m[0] for m in metrics} & set(run.data.metrics)):
        history = call(uri, mlflow.get_metric_history, run_id, key, results_dir=folder)
        have[key] = {m.step for m in history}
    now = int(time.time() * 1000)
    todo_metrics = [
        Metric(key, float(value), now, int(step))
        for key, value, step in metrics
        if int(step) not in have.get(key, set())
    ]
    # MLflow's client splits the batch into the sizes its store accepts.
    call(
        uri,
        mlflow.log_batch,
        run_id,
        metrics=todo_metrics,
        params=todo_params,
        results_dir=folder,
    )
    uploaded: list[str] = []
    if artifacts:
        # The same manifest as a single experiment's run: what changed is uploaded again.
        tags = run.data.tags
        uploaded, sha = log_artifacts(uri, mlflow, run_id, artifacts, tags, results_dir=folder)
        if tags.get(MANIFEST_TAG) != sha:
            call(uri, mlflow.set_tag, run_id, MANIFEST_TAG, sha, results_dir=folder)
    counts = {
        "params": len(todo_params),
        "metric_points": len(todo_metrics),
        "artifacts": len(uploaded),
    }
    if run.info.status != "FINISHED":
        call(uri, mlflow.set_terminated, run_id, "FINISHED", results_dir=folder)
    return counts


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

    Parameters
    ----------
    result_dir : path-like
        The experiment's result folder (files listed in :data:`STACKED_ARTIFACTS`).
    experiment_name : str
        MLflow experiment.
    tracking_uri : str
    stages : mapping
        Stage name -> its checkpoint files in order (``layer1`` … ``softmax``, ``finetune``).
    log_dir : path-like, optional
        The rule logs, attached to the parent run under ``logs/``.
    output : path-like, optional
        Where to write ``{"run_id", "stage_runs", "tracking_uri", "logged"}`` (atomically).
    """
    folder = Path(result_dir)
    config = read_json(folder / "stacked_config.json")
    evaluation = read_json(folder / "stacked_evaluation.json")
    gradcheck = read_json(folder / "stacked_gradcheck.json")
    mlflow = client(tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, experiment_name, results_dir=folder)
    key = f"{config['name']}:{file_sha256(folder / 'stack.npz')[:16]}"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    parent = _find_or_create(
        tracking_uri,
        mlflow,
        experiment_id,
        key,
        {"sparseae.kind": "stacked", "sparseae.results_dir": str(folder)},
        f"{config['name']} {stamp}",
        folder,
    )
    params = _flatten(config["experiment"])
    params.update({f"fingerprint.{s}": f for s, f in config["fingerprints"].items()})
    # The results' own "metrics" and "params" blocks say what MLflow shows of them.
    metrics = []
    for result in (evaluation, gradcheck):
        params.update({k: param_value(v) for k, v in result.get("params", {}).items()})
        metrics += [(k, v, 0) for k, v in result.get("metrics", {}).items()]
    artifacts = [(folder / name, "") for name in STACKED_ARTIFACTS]
    if log_dir is not None and Path(log_dir).is_dir():
        artifacts += [(path, "logs") for path in sorted(Path(log_dir).glob("*.log"))]
        artifacts = [(p, s) for p, s in artifacts if p.name != "log_stacked.log"]
    logged = {"parent": _sync(
        tracking_uri, mlflow, parent, params=params, metrics=metrics,
        artifacts=artifacts, folder=folder,
    )}  # fmt: skip
    stage_runs = {}
    for stage, paths in stages.items():
        records, trajectory = [], {}
        for path in paths:
            _, recs, meta = load_checkpoint(path)
            records += recs
            trajectory = meta.get("trajectory", trajectory)
        run = _find_or_create(
            tracking_uri,
            mlflow,
            experiment_id,
            f"{key}/{stage}",
            {"mlflow.parentRunId": parent.info.run_id, STAGE_TAG: stage},
            f"{config['name']} {stage}",
            folder,
        )
        points = [("cost", r["cost"], r["iteration"]) for r in records]
        points += [("grad_norm", r["grad_norm"], r["iteration"]) for r in records]
        points += [("seconds", evaluation["seconds"].get(stage, 0.0), 0)]
        logged[stage] = _sync(
            tracking_uri, mlflow, run, params=_flatten(trajectory), metrics=points,
            artifacts=[], folder=folder,
        )  # fmt: skip
        stage_runs[stage] = run.info.run_id
    if output is not None:
        write_json(
            output,
            {
                "run_id": parent.info.run_id,
                "stage_runs": stage_runs,
                "tracking_uri": tracking_uri,
                "experiment": experiment_name,
                "logged": logged,
            },
        )
    logging.getLogger(__name__).info(
        "logged %s to %s, run %s", folder, tracking_uri, parent.info.run_id
    )
    return parent.info.run_id
