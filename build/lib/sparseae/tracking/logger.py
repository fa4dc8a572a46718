"""Idempotent logging of a result folder (and of a sweep) into MLflow.

The result files are the source of truth; MLflow is filled from them, and filled again by a
rerun, which reads back what the run already holds and logs only what is missing:

- the run is found again by the tag ``sparseae.run_key`` (see :meth:`ResultFolder.run_key`:
  resolved config + first checkpoint, so a resumed execution keeps its run and a new one gets
  a new run);
- params already there with the same value are skipped. A different value of a config param
  (or the dataset checksum) is an error naming the key: it means another execution. Environment
  params (versions, git commit, threads) keep the first value logged, because they describe
  the training, not the logging process. Params of derived outputs (gradcheck.json,
  summary.json, evaluation.json, which a rerun of their rule may recompute) keep the first
  value too, since MLflow params cannot change, and the tag ``sparseae.param.<key>`` shows
  the current value;
- a training metric point (per iteration, chunk end) is logged only when the run has no point
  for that key at that step, with a timestamp derived from the run's start time and the
  recorded elapsed seconds, so even a point sent twice by a race is the identical row that
  the store deduplicates; a different value at that step is an error (another execution).
  A derived metric (step 0 figures of summary/gradcheck/evaluation) whose latest point
  differs from the file is logged again as a new point at the next step, so the run's
  latest value is the file's and the history shows each recomputation;
- an artifact is uploaded when absent, of a different size, or of a different sha256 than
  the one recorded in its tag ``sparseae.sha256.<artifact path>`` by the last upload.

MLflow calls are batched (params, metrics and tags go through ``log_batch``), because each
call is one sqlite transaction or HTTP round trip.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from sparseae.io import read_json, write_json

from .results import MAX_PARAM_LENGTH, ResultFolder, read_result_folder
from .settings import SWEEP_TAG, configure_http_retries
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
#: Tag of a sweep's parent run: hash of its params (settings and member count), see log_sweep.
SWEEP_KEY_TAG = "sparseae.sweep_key"
SWEEP_ROLE_TAG = "sparseae.sweep_role"
SWEEP_PARENT_TAG = "sparseae.sweep_parent_run_id"
#: Prefix of the tags holding each uploaded artifact's sha256 (``<prefix><artifact path>``).
ARTIFACT_SHA_PREFIX = "sparseae.sha256."
#: Prefix of the tags holding the current value of a derived param that changed.
PARAM_UPDATE_PREFIX = "sparseae.param."
MAX_METRICS_PER_BATCH = 1000  # mlflow.utils.validation.MAX_METRICS_PER_BATCH
MAX_PARAMS_PER_BATCH = 100  # mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH
MAX_ENTITIES_PER_BATCH = 1000  # mlflow.utils.validation.MAX_ENTITIES_PER_BATCH
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
    artifacts: Iterable | None = None,
) -> str:
    """Log a sweep: a parent run with the summary table, member runs tagged and attached.

    The parent run is identified by the sweep's name and the tag ``sparseae.sweep_key``, a
    hash of its params (the sweep settings and the member count): rerunning with the same
    sweep finds it again and adds only what is missing, while a changed sweep (another grid,
    base or overrides) gets a new parent run instead of contradicting the old one's params.

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
    summary_path : path-like or list of path-like, optional
        Summary table(s) (TSV/HTML/PNG/...) uploaded as artifacts of the parent run; same as
        ``artifacts``, kept for callers that attach one table.
    params : mapping, optional
        Sweep settings logged as params of the parent run (nested dicts are flattened).
    output : path-like, optional
        Where to write ``{"run_id", "members"}`` as JSON (atomically).
    artifacts : iterable of path-like, optional
        Files uploaded to the parent run's artifact root; a file whose content changed since
        its last upload (sha256 tag) is uploaded again.

    Returns
    -------
    str
        The parent run's id. Member runs in the same experiment get ``mlflow.parentRunId``, so
        the UI nests them; runs in other experiments get ``sparseae.sweep_parent_run_id`` only.
    """
    from .results import flatten_params

    files = _as_paths(summary_path) + _as_paths(artifacts)
    for path in files:
        if not path.is_file():
            raise TrackingError(f"sweep artifact {path} does not exist")
    configure_http_retries()
    check_reachable(tracking_uri)
    member_runs = {str(m): _member_run_id(m, tracking_uri) for m in members}
    experiment_name = experiment_name or sweep_name
    wanted = {"sweep.name": sweep_name, "sweep.members": str(len(member_runs))}
    wanted.update(flatten_params(dict(params or {})))
    sweep_key = hashlib.sha256(
        json.dumps(wanted, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:32]
    with exclusive_lock(f"{tracking_uri}#{experiment_name}#sweep#{sweep_name}"):
        experiment_id = ensure_experiment(tracking_uri, experiment_name)
        mlflow_client = client(tracking_uri)
        found = call(
            tracking_uri,
            mlflow_client.search_runs,
            [experiment_id],
            filter_string=f"tags.`{SWEEP_TAG}` = '{_quote(sweep_name)}' and "
            f"tags.`{SWEEP_ROLE_TAG}` = 'parent' and tags.`{SWEEP_KEY_TAG}` = '{sweep_key}'",
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
                tags={SWEEP_TAG: sweep_name, SWEEP_ROLE_TAG: "parent", SWEEP_KEY_TAG: sweep_key},
            )
        parent_id = parent.info.run_id
        params_todo = _params_todo(parent_id, dict(parent.data.params), wanted, {}, {})[0]
        _log_batch(tracking_uri, mlflow_client, parent_id, params=params_todo)
        uploaded = _log_artifacts(
            tracking_uri, mlflow_client, parent_id, [(f, "") for f in files], parent.data.tags
        )
        _log_batch(tracking_uri, mlflow_client, parent_id, tags=_tag_updates(parent, uploaded))
        for run_id in member_runs.values():
            member = call(tracking_uri, mlflow_client.get_run, run_id)
            wanted_tags = {SWEEP_TAG: sweep_name, SWEEP_PARENT_TAG: parent_id}
            if member.info.experiment_id == experiment_id:
                wanted_tags["mlflow.parentRunId"] = parent_id
            _log_batch(tracking_uri, mlflow_client, run_id, tags=_tag_updates(member, wanted_tags))
        if parent.info.status != "FINISHED":
            call(tracking_uri, mlflow_client.set_terminated, parent_id, "FINISHED")
    if output is not None:
        write_json(
            output,
            {
                "run_id": parent_id,
                "experiment_id": experiment_id,
                "tracking_uri": tracking_uri,
                "sweep_key": sweep_key,
                "members": member_runs,
                "artifacts_uploaded": sorted(k[len(ARTIFACT_SHA_PREFIX) :] for k in uploaded),
            },
        )
    return parent_id


def _as_paths(value) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, str | Path) or hasattr(value, "__fspath__"):
        return [Path(value)]
    return [Path(v) for v in value]


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
    if not run.data.tags.get(RUN_KEY_TAG):
        # A run found by search_runs carries its data; one just created does not need it.
        run = call(uri, mlflow_client.get_run, run_id, results_dir=folder.path)
    params_todo, param_updates = _params_todo(
        run_id, dict(run.data.params), folder.params, folder.environment, folder.derived_params
    )

    # Metric points: only keys the run already has need their history read back.
    existing: dict[str, list] = {}
    planned_keys = {point.key for point in folder.metrics}
    for metric_key in sorted(planned_keys & set(run.data.metrics)):
        history = call(
            uri, mlflow_client.get_metric_history, run_id, metric_key, results_dir=folder.path
        )
        existing[metric_key] = sorted(history, key=lambda m: (m.step, m.timestamp))
    start = run.info.start_time or folder.start_time_ms
    missing_points = []
    revised: list[str] = []
    for point in folder.metrics:
        history = existing.get(point.key, [])
        if point.derived and history:
            # Derived figures may be recomputed: compare with the latest point only, and log a
            # differing value as a new point at the next step (its timestamp: now).
            latest = history[-1]
            if not _same_value(latest.value, point.value):
                missing_points.append(
                    Metric(point.key, point.value, int(time.time() * 1000), latest.step + 1)
                )
                revised.append(point.key)
            continue
        have = {m.step: m.value for m in history}
        if point.step in have:
            if not _same_value(have[point.step], point.value):
                raise TrackingError(
                    f"run {run_id} already has metric {point.key!r} at step {point.step} = "
                    f"{have[point.step]!r}, but {folder.path} says {point.value!r}: the training "
                    f"history belongs to another execution (same config and chunks/1.npz, other "
                    f"later chunks); log it into another run with --run-key, or delete the run"
                )
            continue
        missing_points.append(Metric(point.key, point.value, start + point.offset_ms, point.step))
    _log_batch(
        uri,
        mlflow_client,
        run_id,
        params=params_todo,
        metrics=missing_points,
        results_dir=folder.path,
    )

    uploaded = _log_artifacts(
        uri, mlflow_client, run_id, folder.artifacts, run.data.tags, results_dir=folder.path
    )
    wanted_tags = _run_tags(folder, key, experiment_name, extra_tags, parent_run_id)
    wanted_tags.update(param_updates)
    wanted_tags.update(uploaded)
    tags_todo = _tag_updates(run, wanted_tags)
    _log_batch(uri, mlflow_client, run_id, tags=tags_todo, results_dir=folder.path)
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
        "params": len(params_todo),
        "metric_points": len(missing_points),
        "artifacts": len(uploaded),
        "tags": len(tags_todo),
    }
    # Recomputed derived outputs, reported only when this call recorded the change.
    changed_params = sorted(
        k[len(PARAM_UPDATE_PREFIX) :] for k in tags_todo if k.startswith(PARAM_UPDATE_PREFIX)
    )
    if revised or changed_params:
        logged["revised_metrics"] = sorted(revised)
        logged["changed_params"] = changed_params
    total = {
        "params": len(folder.params) + len(folder.environment) + len(folder.derived_params),
        "metric_points": len(folder.metrics),
        "artifacts": len(folder.artifacts),
    }
    return logged, total


def _params_todo(
    run_id, existing: dict, strict: dict, first_wins: dict, derived: dict
) -> tuple[list, dict[str, str]]:
    """Params to log, and ``sparseae.param.<key>`` tags for derived params that changed."""
    from mlflow.entities import Param

    conflicts = [
        f"{k!r}: run has {existing[k]!r}, results say {v!r}"
        for k, v in strict.items()
        if k in existing and existing[k] != v[:MAX_PARAM_LENGTH]
    ]
    if conflicts:
        raise TrackingError(
            f"run {run_id} already has different values for params: {'; '.join(conflicts[:5])}"
            f"{' ...' if len(conflicts) > 5 else ''}; the run belongs to another execution "
            f"(MLflow params cannot change); pass another run key"
        )
    updates = {
        f"{PARAM_UPDATE_PREFIX}{k}": v
        for k, v in derived.items()
        if k in existing and existing[k] != v[:MAX_PARAM_LENGTH] and k not in strict
    }
    wanted = {
        **{k: v for k, v in first_wins.items() if k not in strict},
        **{k: v for k, v in derived.items() if k not in strict},
        **strict,
    }
    todo = [Param(k, v[:MAX_PARAM_LENGTH]) for k, v in sorted(wanted.items()) if k not in existing]
    return todo, updates


def _log_batch(uri, mlflow_client, run_id, *, params=(), metrics=(), tags=None, results_dir=None):
    """Send params, metric points and tags in as few ``log_batch`` calls as MLflow allows."""
    from mlflow.entities import RunTag

    params, metrics = list(params), list(metrics)
    tag_list = [RunTag(k, v) for k, v in (tags or {}).items()]
    while params or metrics or tag_list:
        batch_params, params = params[:MAX_PARAMS_PER_BATCH], params[MAX_PARAMS_PER_BATCH:]
        batch_tags, tag_list = tag_list[:MAX_PARAMS_PER_BATCH], tag_list[MAX_PARAMS_PER_BATCH:]
        room = min(
            MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(batch_params) - len(batch_tags)
        )
        batch_metrics, metrics = metrics[:room], metrics[room:]
        call(
            uri,
            mlflow_client.log_batch,
            run_id,
            metrics=batch_metrics,
            params=batch_params,
            tags=batch_tags,
            results_dir=results_dir,
        )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _log_artifacts(
    uri, mlflow_client, run_id, artifacts, run_tags: Mapping, results_dir=None
) -> dict[str, str]:
    """Upload what is absent or changed; return the sha256 tags of the files uploaded.

    A file counts as changed when its size differs from the stored artifact's, or its sha256
    differs from the tag recorded at its last upload (a same-size change, e.g. a recomputed
    table); a file without such a tag (logged by an older version) is uploaded once more.
    """
    existing: dict[str, int | None] = {}
    folders = {""} | {folder for _, folder in artifacts if folder}
    for folder in sorted(folders):
        for info in call(
            uri, mlflow_client.list_artifacts, run_id, folder or None, results_dir=results_dir
        ):
            if not info.is_dir:
                existing[info.path] = info.file_size
    uploaded: dict[str, str] = {}
    for local, folder in artifacts:
        artifact_path = f"{folder}/{local.name}" if folder else local.name
        sha_tag = f"{ARTIFACT_SHA_PREFIX}{artifact_path}"
        sha = _file_sha256(local)
        if existing.get(artifact_path, -1) == local.stat().st_size and run_tags.get(sha_tag) == sha:
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
        uploaded[sha_tag] = sha
    return uploaded


def _run_tags(
    folder: ResultFolder, key, experiment_name, extra_tags, parent_run_id
) -> dict[str, str]:
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
    return wanted


def _tag_updates(run, wanted: Mapping[str, str]) -> dict[str, str]:
    """The tags of ``wanted`` that the run does not hold with that value yet."""
    return {tag: value for tag, value in wanted.items() if run.data.tags.get(tag) != value}


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
    evaluation = folder.evaluation
    accuracies = {
        name: evaluation.get(f"accuracy_{name}")
        for name in ("features", "raw")
        if isinstance(evaluation.get(f"accuracy_{name}"), int | float)
    }
    if accuracies:
        labels = {"features": "hidden-layer features", "raw": "raw pixels"}
        text = " vs ".join(f"{100 * v:.2f}% on {labels[name]}" for name, v in accuracies.items())
        lines.append(
            f"Self-taught evaluation (softmax, {evaluation.get('n_test', '?')} test digits): "
            f"test accuracy {text}; confusion matrices `confusion_features.png`, "
            f"`confusion_raw.png`."
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
