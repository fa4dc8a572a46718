"""Idempotent logging of a result folder (and of a sweep) into MLflow.

The result files are the source of truth; MLflow is filled from them, and filled again by a
rerun, which reads back what the run already holds and logs only what is missing:

- the run is found again by the tag ``sparseae.run_key`` (see :meth:`ResultFolder.run_key`:
  resolved config + first checkpoint, so a resumed execution keeps its run and a new one gets
  a new run);
- params already there with the same value are skipped; a different value is an error naming
  the key, except for environment params (versions, git commit, threads), where the first
  value logged wins because they describe the training, not the logging process;
- a metric point is logged only when the run has no point for that key at that step, with a
  timestamp derived from the run's start time and the recorded elapsed seconds, so even a
  point sent twice by a race is the identical row that the store deduplicates;
- an artifact is uploaded when absent or of a different size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from sparseae.io import read_json, write_json

from .results import MAX_PARAM_LENGTH, ResultFolder, read_result_folder
from .settings import configure_http_retries
from .store import (
    TrackingError,
    TrackingUnavailableError,
    call,
    check_reachable,
    client,
    ensure_experiment,
    exclusive_lock,
)

RUN_KEY_TAG = "sparseae.run_key"
SWEEP_TAG = "sparseae.sweep"
MAX_METRICS_PER_BATCH = 1000  # mlflow.utils.validation.MAX_METRICS_PER_BATCH
MAX_PARAMS_PER_BATCH = 100  # mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH
#: Relative difference under which a stored metric value counts as the same value.
VALUE_TOLERANCE = 1e-12


def log_results(
    results_dir,
    *,
    experiment_name: str,
    tracking_uri: str,
    run_key: str | None = None,
    log_dir=None,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
) -> str:
    """Log ``results/{experiment}`` into one MLflow run, adding only what is missing.

    Parameters
    ----------
    results_dir : path-like
        The result folder (any file may be missing: what exists is logged, the rest listed in
        the tag ``sparseae.missing`` and in ``mlflow.json``).
    experiment_name : str
        MLflow experiment (the config experiment's name); created if missing.
    tracking_uri : str
        See :func:`sparseae.tracking.resolve_tracking_uri`.
    run_key : str, optional
        Identity of the run; default: derived from the config and the first checkpoint.
    log_dir : path-like, optional
        Rule logs to upload under ``logs/``; default ``logs/{experiment}`` beside ``results``.
    tags : mapping, optional
        Extra run tags.
    parent_run_id : str, optional
        Makes the run a child of that run (``mlflow.parentRunId``).

    Returns
    -------
    str
        The run id; ``results_dir/mlflow.json`` records it with the counts logged.

    Raises
    ------
    TrackingUnavailableError
        The server is unreachable (before or during logging); rerun later to fill in.
    TrackingError
        A param or metric point in the run contradicts the result files.
    sparseae.tracking.results.ResultsError
        A result file does not match its contract.
    """
    configure_http_retries()
    results_dir = Path(results_dir).resolve()
    folder = read_result_folder(results_dir, log_dir=log_dir)
    key = run_key or folder.run_key()
    check_reachable(tracking_uri, results_dir)
    # One logger per result folder and per run at a time (lock files live in the temp folder,
    # so the result folder is not touched until mlflow.json is written).
    with (
        exclusive_lock(f"results#{results_dir}"),
        exclusive_lock(f"{tracking_uri}#{experiment_name}#{key}"),
    ):
        experiment_id = ensure_experiment(tracking_uri, experiment_name, results_dir)
        mlflow_client = client(tracking_uri)
        run = _find_or_create_run(
            tracking_uri,
            mlflow_client,
            experiment_id,
            experiment_name,
            key,
            folder,
            explicit_key=run_key is not None,
            parent_run_id=parent_run_id,
        )
        logged, total = _sync_run(
            tracking_uri,
            mlflow_client,
            run,
            folder,
            key,
            experiment_name,
            dict(tags or {}),
            parent_run_id,
        )
    record = {
        "tracking_uri": tracking_uri,
        "experiment_name": experiment_name,
        "experiment_id": experiment_id,
        "run_id": run.info.run_id,
        "run_key": key,
        "artifact_uri": run.info.artifact_uri,
        "status": "complete" if folder.complete else "partial",
        "missing": folder.missing,
        "logged_this_time": logged,
        "total": total,
        "logged_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        write_json(results_dir / "mlflow.json", record)
    except OSError as exc:
        raise TrackingError(
            f"logged to run {run.info.run_id}, but {results_dir / 'mlflow.json'} cannot be "
            f"written: {exc}"
        ) from exc
    return run.info.run_id


def log_sweep(
    sweep_name: str,
    members: Iterable,
    *,
    tracking_uri: str,
    experiment_name: str | None = None,
    summary_path=None,
    params: Mapping | None = None,
    output=None,
) -> str:
    """Log a sweep: a parent run with the summary table, member runs tagged and attached.

    Parameters
    ----------
    sweep_name : str
        The sweep's name; member runs get the tag ``sparseae.sweep=<name>``.
    members : iterable
        Result folders already logged by :func:`log_results` (their ``mlflow.json`` names the
        run), or run ids.
    tracking_uri : str
        Store holding the member runs.
    experiment_name : str, optional
        Experiment of the parent run (default: the sweep's name).
    summary_path : path-like, optional
        Summary table (TSV/CSV/JSON) uploaded as an artifact of the parent run.
    params : mapping, optional
        Sweep settings logged as params of the parent run (nested dicts are flattened).
    output : path-like, optional
        Where to write ``{"run_id", "members"}`` as JSON (atomically).

    Returns
    -------
    str
        The parent run's id. Member runs in the same experiment get ``mlflow.parentRunId``, so
        the UI nests them; runs in other experiments get ``sparseae.sweep_parent_run_id`` only.
    """
    from .results import flatten_params

    configure_http_retries()
    check_reachable(tracking_uri)
    member_runs = {str(m): _member_run_id(m, tracking_uri) for m in members}
    experiment_name = experiment_name or sweep_name
    experiment_id = ensure_experiment(tracking_uri, experiment_name)
    mlflow_client = client(tracking_uri)
    with exclusive_lock(f"{tracking_uri}#{experiment_name}#sweep#{sweep_name}"):
        found = call(
            tracking_uri,
            mlflow_client.search_runs,
            [experiment_id],
            filter_string=f"tags.`{SWEEP_TAG}` = '{_quote(sweep_name)}' and "
            f"tags.`sparseae.sweep_role` = 'parent'",
            order_by=["attributes.start_time ASC"],
        )
        if found:
            parent = found[0]
        else:
            parent = call(
                tracking_uri,
                mlflow_client.create_run,
                experiment_id,
                run_name=f"sweep {sweep_name}",
                tags={SWEEP_TAG: sweep_name, "sparseae.sweep_role": "parent"},
            )
    parent_id = parent.info.run_id
    wanted = {"sweep.name": sweep_name, "sweep.members": str(len(member_runs))}
    wanted.update(flatten_params(dict(params or {})))
    _log_params(tracking_uri, mlflow_client, parent_id, dict(parent.data.params), wanted, {})
    if summary_path is not None:
        summary_path = Path(summary_path)
        if not summary_path.is_file():
            raise TrackingError(f"sweep summary table {summary_path} does not exist")
        _log_artifacts(tracking_uri, mlflow_client, parent_id, [(summary_path, "")], None)
    for run_id in member_runs.values():
        member = call(tracking_uri, mlflow_client.get_run, run_id)
        wanted_tags = {SWEEP_TAG: sweep_name, "sparseae.sweep_parent_run_id": parent_id}
        if member.info.experiment_id == experiment_id:
            wanted_tags["mlflow.parentRunId"] = parent_id
        for tag, value in wanted_tags.items():
            if member.data.tags.get(tag) != value:
                call(tracking_uri, mlflow_client.set_tag, run_id, tag, value)
    if parent.info.status != "FINISHED":
        call(tracking_uri, mlflow_client.set_terminated, parent_id, "FINISHED")
    if output is not None:
        write_json(
            output,
            {
                "run_id": parent_id,
                "experiment_id": experiment_id,
                "tracking_uri": tracking_uri,
                "members": member_runs,
            },
        )
    return parent_id


def _member_run_id(member, tracking_uri: str) -> str:
    path = Path(member)
    record_path = path / "mlflow.json" if path.is_dir() else path
    if record_path.name == "mlflow.json" and record_path.is_file():
        record = read_json(record_path)
        if record.get("tracking_uri") != tracking_uri:
            raise TrackingError(
                f"{record_path} was logged to {record.get('tracking_uri')}, not {tracking_uri}; "
                f"log that result folder into this store first"
            )
        return record["run_id"]
    if path.exists():
        raise TrackingError(
            f"sweep member {path} has no mlflow.json; log it with log_results first"
        )
    return str(member)  # a run id


def _find_or_create_run(
    uri,
    mlflow_client,
    experiment_id,
    experiment_name,
    key,
    folder: ResultFolder,
    *,
    explicit_key: bool,
    parent_run_id,
):
    found = call(
        uri,
        mlflow_client.search_runs,
        [experiment_id],
        filter_string=f"tags.`{RUN_KEY_TAG}` = '{_quote(key)}'",
        order_by=["attributes.start_time ASC"],
        results_dir=folder.path,
    )
    if found:
        return found[0]
    if not explicit_key and folder.chunk1_sha256 and folder.config_sha256:
        # A run logged before chunk 1 existed (a partial folder) belongs to this execution.
        provisional = call(
            uri,
            mlflow_client.search_runs,
            [experiment_id],
            filter_string=(
                f"tags.`sparseae.config_sha256` = '{folder.config_sha256}' and "
                f"tags.`sparseae.chunk1_sha256` = 'none'"
            ),
            order_by=["attributes.start_time ASC"],
            results_dir=folder.path,
        )
        if provisional:
            run_id = provisional[0].info.run_id
            for tag, value in (
                (RUN_KEY_TAG, key),
                ("sparseae.chunk1_sha256", folder.chunk1_sha256),
            ):
                call(uri, mlflow_client.set_tag, run_id, tag, value, results_dir=folder.path)
            return call(uri, mlflow_client.get_run, run_id, results_dir=folder.path)
    start = folder.start_time_ms or int(time.time() * 1000)
    stamp = datetime.fromtimestamp(start / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    tags = {RUN_KEY_TAG: key}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    return call(
        uri,
        mlflow_client.create_run,
        experiment_id,
        start_time=start,
        tags=tags,
        run_name=f"{experiment_name} {stamp}",
        results_dir=folder.path,
    )


def _sync_run(
    uri, mlflow_client, run, folder: ResultFolder, key, experiment_name, extra_tags, parent_run_id
) -> tuple[dict, dict]:
    from mlflow.entities import Metric

    run_id = run.info.run_id
    run = call(uri, mlflow_client.get_run, run_id, results_dir=folder.path)
    logged_params = _log_params(
        uri,
        mlflow_client,
        run_id,
        dict(run.data.params),
        folder.params,
        folder.environment,
        results_dir=folder.path,
    )

    # Metric points: only keys the run already has need their history read back.
    existing: dict[str, dict[int, float]] = {}
    planned_keys = {point.key for point in folder.metrics}
    for metric_key in planned_keys & set(run.data.metrics):
        history = call(
            uri, mlflow_client.get_metric_history, run_id, metric_key, results_dir=folder.path
        )
        existing[metric_key] = {m.step: m.value for m in history}
    start = run.info.start_time or folder.start_time_ms
    missing_points = []
    for point in folder.metrics:
        have = existing.get(point.key, {})
        if point.step in have:
            if not _same_value(have[point.step], point.value):
                raise TrackingError(
                    f"run {run_id} already has metric {point.key!r} at step {point.step} = "
                    f"{have[point.step]!r}, but {folder.path} says {point.value!r}: the run "
                    f"belongs to another execution; pass another run key"
                )
            continue
        missing_points.append(Metric(point.key, point.value, start + point.offset_ms, point.step))
    for begin in range(0, len(missing_points), MAX_METRICS_PER_BATCH):
        call(
            uri,
            mlflow_client.log_batch,
            run_id,
            metrics=missing_points[begin : begin + MAX_METRICS_PER_BATCH],
            results_dir=folder.path,
        )

    logged_artifacts = _log_artifacts(uri, mlflow_client, run_id, folder.artifacts, folder.path)
    logged_tags = _set_tags(
        uri, mlflow_client, run, folder, key, experiment_name, extra_tags, parent_run_id
    )
    if folder.complete and (
        run.info.status != "FINISHED" or run.info.end_time != folder.end_time_ms
    ):
        call(
            uri,
            mlflow_client.set_terminated,
            run_id,
            "FINISHED",
            end_time=max(folder.end_time_ms, start),
            results_dir=folder.path,
        )
    logged = {
        "params": logged_params,
        "metric_points": len(missing_points),
        "artifacts": logged_artifacts,
        "tags": logged_tags,
    }
    total = {
        "params": len(folder.params) + len(folder.environment),
        "metric_points": len(folder.metrics),
        "artifacts": len(folder.artifacts),
    }
    return logged, total


def _log_params(
    uri, mlflow_client, run_id, existing: dict, strict: dict, first_wins: dict, results_dir=None
) -> int:
    from mlflow.entities import Param

    conflicts = [
        f"{k!r}: run has {existing[k]!r}, results say {v!r}"
        for k, v in strict.items()
        if k in existing and existing[k] != v
    ]
    if conflicts:
        raise TrackingError(
            f"run {run_id} already has different values for params: {'; '.join(conflicts[:5])}"
            f"{' ...' if len(conflicts) > 5 else ''}; the run belongs to another execution "
            f"(MLflow params cannot change); pass another run key"
        )
    wanted = {**{k: v for k, v in first_wins.items() if k not in strict}, **strict}
    todo = [Param(k, v[:MAX_PARAM_LENGTH]) for k, v in sorted(wanted.items()) if k not in existing]
    for begin in range(0, len(todo), MAX_PARAMS_PER_BATCH):
        call(
            uri,
            mlflow_client.log_batch,
            run_id,
            params=todo[begin : begin + MAX_PARAMS_PER_BATCH],
            results_dir=results_dir,
        )
    return len(todo)


def _log_artifacts(uri, mlflow_client, run_id, artifacts, results_dir) -> int:
    existing: dict[str, int | None] = {}
    folders = {""} | {folder for _, folder in artifacts if folder}
    for folder in sorted(folders):
        for info in call(
            uri, mlflow_client.list_artifacts, run_id, folder or None, results_dir=results_dir
        ):
            if not info.is_dir:
                existing[info.path] = info.file_size
    uploaded = 0
    for local, folder in artifacts:
        artifact_path = f"{folder}/{local.name}" if folder else local.name
        if existing.get(artifact_path, -1) == local.stat().st_size:
            continue
        try:
            call(
                uri,
                mlflow_client.log_artifact,
                run_id,
                str(local),
                folder or None,
                results_dir=results_dir,
            )
        except TrackingUnavailableError:
            raise
        except OSError as exc:
            raise TrackingError(
                f"uploading {local} to the artifacts of run {run_id} failed: {exc}; check the "
                f"experiment's artifact location (init_store checks it before training)"
            ) from exc
        uploaded += 1
    return uploaded


def _set_tags(
    uri, mlflow_client, run, folder: ResultFolder, key, experiment_name, extra_tags, parent_run_id
) -> int:
    wanted = {
        RUN_KEY_TAG: key,
        "sparseae.experiment": experiment_name,
        "sparseae.config_sha256": folder.config_sha256 or "none",
        "sparseae.chunk1_sha256": folder.chunk1_sha256 or "none",
        "sparseae.status": "complete" if folder.complete else "partial",
        "sparseae.missing": ", ".join(folder.missing) or "none",
        "sparseae.results_dir": str(folder.path),
        "sparseae.environment_source": folder.environment_source,
        "mlflow.note.content": _description(folder, experiment_name),
    }
    commit = folder.environment.get("git.commit")
    if commit:
        wanted["mlflow.source.git.commit"] = commit
    if parent_run_id:
        wanted["mlflow.parentRunId"] = parent_run_id
    wanted.update({str(k): str(v) for k, v in extra_tags.items()})
    changed = 0
    for tag, value in wanted.items():
        if run.data.tags.get(tag) != value:
            call(uri, mlflow_client.set_tag, run.info.run_id, tag, value, results_dir=folder.path)
            changed += 1
    return changed


def _description(folder: ResultFolder, experiment_name: str) -> str:
    """The run's description (shown at the top of the run page in the MLflow UI)."""
    lines = [f"Sparse autoencoder, experiment **{experiment_name}**, results in `{folder.path}`."]
    summary = folder.summary
    if "final_cost" in summary:
        lines.append(
            f"Final cost {summary['final_cost']:.6g} after {summary.get('iterations', '?')} "
            f"L-BFGS iterations ({summary.get('chunks', folder.chunks_expected)} chunks, "
            f"{summary.get('train_seconds', float('nan')):.1f} s of training)."
        )
    grad = folder.gradcheck
    if grad:
        verdict = "passed" if grad.get("passed") else "FAILED"
        lines.append(
            f"Gradient check {verdict}: autoencoder difference "
            f"{grad.get('autoencoder')}, bound {grad.get('bound')}."
        )
    lines.append("Missing files: " + (", ".join(f"`{m}`" for m in folder.missing) or "none") + ".")
    lines.append(
        "Figures: `filters.png` (learned filters), `cost_curve.png`, `rhohat.png` "
        "in the artifacts; metrics `cost` and `grad_norm` per iteration."
    )
    return "\n\n".join(lines)


def _same_value(stored: float, value: float) -> bool:
    if math.isnan(stored) or math.isnan(value):
        return math.isnan(stored) and math.isnan(value)
    return abs(stored - value) <= VALUE_TOLERANCE * max(1.0, abs(value))


def _quote(text: str) -> str:
    return text.replace("'", "\\'")
