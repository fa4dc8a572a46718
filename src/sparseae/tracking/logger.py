"""Idempotent logging of a result folder (and of a sweep) into MLflow.

The result files are the source of truth; MLflow is filled from them, and filled again by a
rerun, which reads back what the run already holds and logs only what is missing:

- a run is the pair (MLflow experiment, trajectory key): the key is config.json's
  ``fingerprint`` (tag ``sparseae.trajectory``), which every setting that can change the
  numbers enters and ``training.chunks`` does not. Training further extends the same run
  (``cost`` steps continue); a changed trajectory gets a new run, and the runs of the same
  config experiment logged before are marked ``sparseae.status = superseded``;
- params keep the first value logged (MLflow params cannot change). A value that changed since
  (a setting outside the trajectory, a recomputed derived output) is listed with its current
  value in the one tag ``sparseae.changed_params``; config.json, re-uploaded, holds them all;
- a metric point is logged only when the run has no point for that key at that step, with a
  timestamp derived from the run's start time and the recorded elapsed seconds, so even a
  point sent twice by a race is the identical row that the store deduplicates. A recomputed
  chunk with identical numbers adds nothing. Wall-clock figures (``elapsed_seconds``,
  ``chunk_wall_seconds``) are never compared: another execution measures other times. A
  different value at a logged step (another thread count changes the last bits) is kept as
  it is, reported in ``mlflow.json`` and the log, and never blocks logging. A derived metric
  (step 0 figures of summary/gradcheck/evaluation) whose latest point differs from the file is
  logged again as a new point at the next step, so the run's latest value is the file's;
- artifacts are uploaded when absent, of another size, or of another sha256 than the run's
  ``manifest.json`` artifact records (path -> sha256, size; its own hash is the tag
  ``sparseae.manifest_sha256``). The manifest is written after the uploads, so an upload cut
  by an outage is repeated on the next call;
- the filter grid at each chunk end is an image series (``log_image(key="filters",
  step=<global iteration>)``), the training data an MLflow dataset input (digest = the data
  checksum), and the final parameters an MLflow logged model made from code
  (:mod:`sparseae.tracking.encoder_model`, no pickle) with ``theta.npz`` as its artifact.

MLflow calls are batched (params, metrics and tags go through ``log_batch``, split by
MLflow's own batch limits), because each call is one sqlite transaction or HTTP round trip.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from sparseae.io import read_json, write_json
from sparseae.tracking.results import (
    MAX_PARAM_LENGTH,
    ResultFolder,
    flatten_params,
    load_chunk,
    read_result_folder,
)
from sparseae.tracking.settings import SWEEP_TAG
from sparseae.tracking.store import (
    TrackingError,
    TrackingUnavailableError,
    call,
    check_reachable,
    client,
    ensure_experiment,
    exclusive_lock,
)

_log = logging.getLogger(__name__)

#: The project's run tags (at most ten per run; the first five are on every run).
EXPERIMENT_TAG = "sparseae.experiment"
RUN_KEY_TAG = "sparseae.trajectory"
STATUS_TAG = "sparseae.status"
DATA_TAG = "sparseae.data_checksum"
MANIFEST_TAG = "sparseae.manifest_sha256"
FINAL_CHUNK_TAG = "sparseae.final_chunk"
STOP_TAG = "sparseae.optimizer_stop"
SUPERSEDED_TAG = "sparseae.superseded_by"
CHANGED_PARAMS_TAG = "sparseae.changed_params"
#: (SWEEP_TAG, from settings, names a sweep member's sweep.)
#: Tags of a sweep's parent run: its role, and a hash of its params (settings, member count).
SWEEP_KEY_TAG = "sparseae.sweep_key"
SWEEP_ROLE_TAG = "sparseae.sweep_role"
#: The artifact listing every other artifact's sha256 and size.
MANIFEST_NAME = "manifest.json"
#: Image series of the filter grid, one image per chunk end.
FILTERS_KEY = "filters"
#: The logged model's tag with its theta.npz's sha256 (the model is named in encoder_model).
MODEL_THETA_TAG = "sparseae.theta_sha256"
#: How many differing metric points mlflow.json lists (their number is always given).
CONFLICTS_LISTED = 10
#: Longest edge the filter images are enlarged to (whole-number nearest-neighbour factor).
FILTER_IMAGE_EDGE = 480
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
    chunks: int | None = None,
) -> str:
    """Log ``results/{experiment}`` into one MLflow run, adding only what is missing.

    Parameters
    ----------
    results_dir : path-like
        The result folder (any file may be missing: what exists is logged, the rest listed in
        ``mlflow.json`` and the run's description; the run's status is then ``partial``).
    experiment_name : str
        MLflow experiment (the config experiment's name, or its sweep's); created if missing.
    tracking_uri : str
        See :func:`sparseae.tracking.resolve_tracking_uri`.
    run_key : str, optional
        Identity of the run; default: the trajectory key (config.json's ``fingerprint``).
    log_dir : path-like, optional
        Rule logs to upload under ``logs/``; default ``logs/{experiment}`` beside ``results``.
    tags : mapping, optional
        Extra run tags.
    parent_run_id : str, optional
        Makes the run a child of that run (``mlflow.parentRunId``).
    chunks : int, optional
        Chunks of the final result (the config's ``training.chunks``); default: what
        summary.json says. Later checkpoints on disk are not logged.

    Returns
    -------
    str
        The run id; ``results_dir/mlflow.json`` records it with the counts logged.

    Raises
    ------
    TrackingUnavailableError
        The server is unreachable (before or during logging); rerun later to fill in.
    TrackingError
        MLflow refused a call (the message says which).
    sparseae.tracking.results.ResultsError
        A result file does not match its contract or belongs to another trajectory.
    """
    results_dir = Path(results_dir).resolve()
    folder = read_result_folder(results_dir, log_dir=log_dir, chunks=chunks)
    key = run_key or folder.run_key()
    name = folder.name or results_dir.name
    check_reachable(tracking_uri, results_dir)
    # One logger per result folder and per run at a time (lock files live in the temp folder,
    # so the result folder is not touched until mlflow.json is written).
    with (
        exclusive_lock(f"results#{results_dir}"),
        exclusive_lock(f"{tracking_uri}#{experiment_name}#{name}"),
    ):
        experiment_id = ensure_experiment(tracking_uri, experiment_name, results_dir)
        mlflow_client = client(tracking_uri)
        run = _find_or_create_run(
            tracking_uri, mlflow_client, experiment_id, name, key, folder, parent_run_id
        )
        logged, total, conflicts = _sync_run(
            tracking_uri, mlflow_client, run, folder, key, name, dict(tags or {}), parent_run_id
        )
        superseded = _supersede(tracking_uri, mlflow_client, experiment_id, name, run)
    record = {
        "tracking_uri": tracking_uri,
        "experiment_name": experiment_name,
        "experiment_id": experiment_id,
        "run_id": run.info.run_id,
        "run_key": key,
        "artifact_uri": run.info.artifact_uri,
        "status": "complete" if folder.complete else "partial",
        "final_chunk": folder.final_chunk,
        "missing": folder.missing,
        "chunks_not_logged": folder.chunks_ignored,
        "superseded_runs": superseded,
        "logged_this_time": logged,
        "total": total,
        "differing_points": {"count": len(conflicts), "first": conflicts[:CONFLICTS_LISTED]},
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
    """Log a sweep: a parent run with the summary table, the member runs nested under it.

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
        run), or run ids. Log them into the sweep's experiment so that the runs table, the
        parallel-coordinates and chart views compare them in one place.
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
        Files uploaded to the parent run's artifact root (the table, the contact sheet of the
        members' filters); a file whose content changed since its last upload (manifest) is
        uploaded again.

    Returns
    -------
    str
        The parent run's id. Members get ``mlflow.parentRunId`` (the UI nests them under it).
    """
    files = _as_paths(summary_path) + _as_paths(artifacts)
    for path in files:
        if not path.is_file():
            raise TrackingError(f"sweep artifact {path} does not exist")
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
        params_todo = _params_todo(dict(parent.data.params), wanted)[0]
        _log_batch(tracking_uri, mlflow_client, parent_id, params=params_todo)
        uploaded, manifest_sha = log_artifacts(
            tracking_uri, mlflow_client, parent_id, [(f, "") for f in files], parent.data.tags
        )
        parent_tags = {
            MANIFEST_TAG: manifest_sha,
            "mlflow.note.content": (
                f"Sweep **{sweep_name}**: {len(member_runs)} member runs nested below (same "
                f"experiment: compare them in the runs table, the parallel-coordinates and "
                f"chart views). Artifacts: the summary table and the contact sheet of the "
                f"members' filters."
            ),
        }
        _log_batch(tracking_uri, mlflow_client, parent_id, tags=_tag_updates(parent, parent_tags))
        for run_id in member_runs.values():
            member = call(tracking_uri, mlflow_client.get_run, run_id)
            wanted_tags = {SWEEP_TAG: sweep_name}
            if member.info.experiment_id == experiment_id:
                wanted_tags["mlflow.parentRunId"] = parent_id
            else:
                _log.warning(
                    "sweep %s: member run %s is in another experiment than the parent run; it "
                    "is tagged but cannot be nested (log members into experiment %r)",
                    sweep_name,
                    run_id,
                    experiment_name,
                )
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
                "artifacts_uploaded": sorted(uploaded),
            },
        )
    _log.info("sweep %s: parent run %s", sweep_name, parent_id)
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


def _find_or_create_run(uri, mlflow_client, experiment_id, name, key, folder, parent_run_id):
    found = call(
        uri,
        mlflow_client.search_runs,
        [experiment_id],
        filter_string=f"tags.`{RUN_KEY_TAG}` = '{_quote(key)}' and "
        f"tags.`{EXPERIMENT_TAG}` = '{_quote(name)}'",
        order_by=["attributes.start_time ASC"],
        results_dir=folder.path,
    )
    if found:
        return found[0]
    start = folder.start_time_ms or int(time.time() * 1000)
    stamp = datetime.fromtimestamp(start / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
    tags = {RUN_KEY_TAG: key, EXPERIMENT_TAG: name}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    return call(
        uri,
        mlflow_client.create_run,
        experiment_id,
        start_time=start,
        tags=tags,
        run_name=f"{name} {stamp}",
        results_dir=folder.path,
    )


def _supersede(uri, mlflow_client, experiment_id, name, current) -> list[str]:
    """Mark the other runs of config experiment ``name`` (other trajectories) superseded."""
    others = call(
        uri,
        mlflow_client.search_runs,
        [experiment_id],
        filter_string=f"tags.`{EXPERIMENT_TAG}` = '{_quote(name)}'",
    )
    marked = []
    for run in others:
        if run.info.run_id == current.info.run_id:
            continue
        wanted = {STATUS_TAG: "superseded", SUPERSEDED_TAG: current.info.run_id}
        todo = _tag_updates(run, wanted)
        if todo:
            _log_batch(uri, mlflow_client, run.info.run_id, tags=todo)
            marked.append(run.info.run_id)
    return marked


def _sync_run(uri, mlflow_client, run, folder: ResultFolder, key, name, extra_tags, parent_run_id):
    from mlflow.entities import Metric

    run_id = run.info.run_id
    if not run.data.tags.get(RUN_KEY_TAG):
        # A run found by search_runs carries its data; one just created does not need it.
        run = call(uri, mlflow_client.get_run, run_id, results_dir=folder.path)
    wanted_params = {**folder.environment, **folder.derived_params, **folder.params}
    params_todo, changed = _params_todo(dict(run.data.params), wanted_params)

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
    conflicts: list[str] = []
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
            if not point.wallclock and not _same_value(have[point.step], point.value):
                conflicts.append(
                    f"{point.key}@{point.step}: run {have[point.step]!r}, files {point.value!r}"
                )
            continue
        missing_points.append(Metric(point.key, point.value, start + point.offset_ms, point.step))
    if conflicts:
        _log.warning(
            "run %s keeps %d metric points that differ from %s (e.g. %s): a recomputed chunk "
            "of the same trajectory gave other last bits (another thread count?); MLflow "
            "cannot replace points, the result files hold the current values",
            run_id,
            len(conflicts),
            folder.path,
            conflicts[0],
        )
    _log_batch(
        uri,
        mlflow_client,
        run_id,
        params=params_todo,
        metrics=missing_points,
        results_dir=folder.path,
    )
    images = _log_filter_images(uri, mlflow_client, run_id, folder, start)
    datasets = _log_datasets(uri, mlflow_client, run, folder)
    models = _log_model(uri, mlflow_client, run, folder)
    uploaded, manifest_sha = log_artifacts(
        uri, mlflow_client, run_id, folder.artifacts, run.data.tags, results_dir=folder.path
    )
    wanted_tags = _run_tags(folder, key, name, extra_tags, parent_run_id)
    wanted_tags[MANIFEST_TAG] = manifest_sha
    if changed:
        text = "; ".join(f"{k}={v}" for k, v in sorted(changed.items()))
        wanted_tags[CHANGED_PARAMS_TAG] = _truncate_tag(text)
    tags_todo = _tag_updates(run, wanted_tags)
    _log_batch(uri, mlflow_client, run_id, tags=tags_todo, results_dir=folder.path)
    # Tags that no longer apply: the run is current again (its trajectory was logged once
    # more), or every param is back at its logged value.
    for stale in (SUPERSEDED_TAG, CHANGED_PARAMS_TAG):
        if stale in run.data.tags and stale not in wanted_tags:
            call(uri, mlflow_client.delete_tag, run_id, stale, results_dir=folder.path)
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
        "filter_images": images,
        "datasets": datasets,
        "models": models,
    }
    # Recomputed outputs and changed settings, reported only when this call recorded them.
    if revised or CHANGED_PARAMS_TAG in tags_todo:
        logged["revised_metrics"] = sorted(revised)
        logged["changed_params"] = sorted(changed) if CHANGED_PARAMS_TAG in tags_todo else []
    total = {
        "params": len(wanted_params),
        "metric_points": len(folder.metrics),
        "artifacts": len(folder.artifacts),
        "filter_images": len(folder.chunk_ends),
    }
    return logged, total, conflicts


def _params_todo(existing: dict, wanted: dict) -> tuple[list, dict[str, str]]:
    """Params not in the run yet, and ``{key: current value}`` of those that changed since."""
    from mlflow.entities import Param

    changed = {
        k: v for k, v in wanted.items() if k in existing and existing[k] != v[:MAX_PARAM_LENGTH]
    }
    todo = [Param(k, v[:MAX_PARAM_LENGTH]) for k, v in sorted(wanted.items()) if k not in existing]
    return todo, changed


def _log_batch(uri, mlflow_client, run_id, *, params=(), metrics=(), tags=None, results_dir=None):
    """Send params, metric points and tags; MLflow's client splits them into allowed batches."""
    from mlflow.entities import RunTag

    params, metrics = list(params), list(metrics)
    tag_list = [RunTag(k, v) for k, v in (tags or {}).items()]
    if params or metrics or tag_list:
        call(
            uri,
            mlflow_client.log_batch,
            run_id,
            metrics=metrics,
            params=params,
            tags=tag_list,
            results_dir=results_dir,
        )


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(uri, mlflow_client, run_id, run_tags: Mapping) -> dict[str, dict]:
    """The run's ``manifest.json`` (artifact path -> sha256, size), if its hash tag confirms it.

    A manifest whose sha256 is not the run's ``sparseae.manifest_sha256`` tag (an upload cut
    before the tag was set) is not trusted: every file is then checked as unconfirmed.
    """
    expected = run_tags.get(MANIFEST_TAG)
    if not expected:
        return {}
    with tempfile.TemporaryDirectory(prefix="sparseae-manifest-") as tmp:
        try:
            local = call(uri, mlflow_client.download_artifacts, run_id, MANIFEST_NAME, tmp)
        except TrackingUnavailableError:
            raise
        except Exception:  # noqa: BLE001 - an absent or unreadable manifest confirms nothing
            return {}
        data = Path(local).read_bytes()
    if hashlib.sha256(data).hexdigest() != expected:
        return {}
    try:
        manifest = json.loads(data)
    except ValueError:
        return {}
    return manifest.get("files", {}) if isinstance(manifest, dict) else {}


def log_artifacts(
    uri, mlflow_client, run_id, artifacts, run_tags: Mapping, results_dir=None
) -> tuple[list[str], str]:
    """Upload what is absent or changed, then the manifest; return (uploaded, manifest sha).

    A file counts as changed when its size differs from the stored artifact's, or its sha256
    differs from the one the run's manifest records (a same-size change, e.g. a recomputed
    table); a file the manifest does not list is uploaded (again).
    """
    existing: dict[str, int | None] = {}
    folders = {""} | {folder for _, folder in artifacts if folder}
    for folder in sorted(folders):
        for info in call(
            uri, mlflow_client.list_artifacts, run_id, folder or None, results_dir=results_dir
        ):
            if not info.is_dir:
                existing[info.path] = info.file_size
    recorded = read_manifest(uri, mlflow_client, run_id, run_tags) if existing else {}
    manifest: dict[str, dict] = {}
    uploaded: list[str] = []
    for local, folder in artifacts:
        artifact_path = f"{folder}/{local.name}" if folder else local.name
        entry = {"sha256": file_sha256(local), "size": local.stat().st_size}
        manifest[artifact_path] = entry
        same_size = existing.get(artifact_path, -1) == entry["size"]
        if same_size and recorded.get(artifact_path) == entry:
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
        uploaded.append(artifact_path)
    text = json.dumps({"files": manifest}, indent=1, sort_keys=True).encode()
    sha = hashlib.sha256(text).hexdigest()
    if uploaded or run_tags.get(MANIFEST_TAG) != sha:
        with tempfile.TemporaryDirectory(prefix="sparseae-manifest-") as tmp:
            path = Path(tmp) / MANIFEST_NAME
            path.write_bytes(text)
            call(uri, mlflow_client.log_artifact, run_id, str(path), results_dir=results_dir)
    return uploaded, sha


def _filter_image_steps(uri, mlflow_client, run_id, results_dir=None) -> set[int]:
    """Steps of the run's ``filters`` image series whose full-size and preview files exist."""
    listed = call(uri, mlflow_client.list_artifacts, run_id, "images", results_dir=results_dir)
    names = [Path(info.path).name for info in listed]
    found: dict[int, set[str]] = {}
    for name in names:
        # images/<key>+step+<step>+timestamp+<ms>+<uuid>[+compressed].(png|webp); older
        # MLflow versions used "%" as the separator.
        parts = name.replace("%", "+").split("+")
        if len(parts) >= 6 and parts[0] == FILTERS_KEY and parts[1] == "step":
            try:
                step = int(parts[2])
            except ValueError:
                continue
            found.setdefault(step, set()).add("preview" if "compressed" in name else "full")
    return {step for step, kinds in found.items() if kinds == {"full", "preview"}}


def filter_image(theta, visible_size: int, hidden_size: int):
    """The filter grid of ``theta`` as an 8-bit grey array, enlarged by a whole factor.

    The grid is :func:`sparseae.analysis.visualize.display_network` of ``W1ᵀ`` (as ``filters.png``),
    each pixel repeated ``s × s`` times (nearest neighbour, so pixels stay sharp) with ``s``
    the largest factor keeping the longer edge within :data:`FILTER_IMAGE_EDGE` pixels.
    """
    import numpy as np

    from sparseae.analysis.visualize import display_network
    from sparseae.model.autoencoder import unpack

    grid = display_network(unpack(theta, visible_size, hidden_size)[0].T)
    grey = np.rint((np.clip(grid, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    scale = max(1, FILTER_IMAGE_EDGE // max(grey.shape))
    return np.repeat(np.repeat(grey, scale, axis=0), scale, axis=1)


def _model_sizes(folder: ResultFolder) -> tuple[int, int] | None:
    block = folder.config.get("experiment", folder.config)
    model = block.get("model") if isinstance(block, dict) else None
    if not isinstance(model, dict):
        return None
    v, h = model.get("visible_size"), model.get("hidden_size")
    if isinstance(v, int) and isinstance(h, int):
        return v, h
    return None


def _log_filter_images(uri, mlflow_client, run_id, folder: ResultFolder, start: int) -> int:
    """Log the filter grid of every chunk end not in the run yet (key ``filters``)."""
    sizes = _model_sizes(folder)
    if sizes is None or math.isqrt(sizes[0]) ** 2 != sizes[0] or not folder.chunk_ends:
        return 0
    done = _filter_image_steps(uri, mlflow_client, run_id, folder.path)
    count = 0
    for _, (step, path) in sorted(folder.chunk_ends.items()):
        if step in done or step == 0:
            continue
        arrays, _ = load_chunk(path)
        image = filter_image(arrays["theta"], *sizes)
        seconds = arrays["seconds"]
        stamp = start + (int(round(float(seconds[-1]) * 1000)) if seconds.size else 0)
        call(
            uri,
            mlflow_client.log_image,
            run_id,
            image,
            key=FILTERS_KEY,
            step=step,
            timestamp=stamp,
            synchronous=True,
            results_dir=folder.path,
        )
        done.add(step)
        count += 1
    return count


def _log_datasets(uri, mlflow_client, run, folder: ResultFolder) -> int:
    """Log the training data (and evaluation data) as dataset inputs not in the run yet."""
    from sparseae.tracking.datasets import dataset_inputs

    wanted = dataset_inputs(folder)
    if not wanted:
        return 0
    inputs = getattr(run, "inputs", None)
    have = {
        (d.dataset.name, d.dataset.digest, tuple(sorted((t.key, t.value) for t in d.tags)))
        for d in (inputs.dataset_inputs if inputs is not None else [])
    }
    todo = [
        d
        for d in wanted
        if (d.dataset.name, d.dataset.digest, tuple(sorted((t.key, t.value) for t in d.tags)))
        not in have
    ]
    if todo:
        call(uri, mlflow_client.log_inputs, run.info.run_id, datasets=todo, results_dir=folder.path)
    return len(todo)


def _log_model(uri, mlflow_client, run, folder: ResultFolder) -> int:
    """Log theta.npz as the run's logged model (models from code) unless already there."""
    from sparseae.tracking.encoder_model import log_encoder

    theta = folder.path / "theta.npz"
    sizes = _model_sizes(folder)
    if not theta.is_file() or sizes is None or "summary.json" in folder.missing:
        return 0
    sha = file_sha256(theta)
    models = call(
        uri,
        mlflow_client.search_logged_models,
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        results_dir=folder.path,
    )
    if any(m.tags.get(MODEL_THETA_TAG) == sha for m in models):
        return 0
    step = int(folder.summary.get("iterations") or 0)
    call(
        uri,
        log_encoder,
        uri,
        run.info.run_id,
        theta,
        visible_size=sizes[0],
        hidden_size=sizes[1],
        step=step,
        tags={MODEL_THETA_TAG: sha, FINAL_CHUNK_TAG: str(folder.final_chunk)},
        results_dir=folder.path,
    )
    return 1


def _run_tags(folder: ResultFolder, key, name, extra_tags, parent_run_id) -> dict[str, str]:
    stop = _last_stop(folder)
    wanted = {
        RUN_KEY_TAG: key,
        EXPERIMENT_TAG: name,
        STATUS_TAG: "complete" if folder.complete else "partial",
        "mlflow.note.content": _description(folder, name),
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": _source_name(folder),
    }
    checksum = folder.summary.get("dataset_checksum")
    if isinstance(checksum, str):
        wanted[DATA_TAG] = checksum
    if folder.final_chunk is not None:
        wanted[FINAL_CHUNK_TAG] = str(folder.final_chunk)
    if stop.get("reason"):
        wanted[STOP_TAG] = str(stop["reason"])
    commit = folder.environment.get("git.commit")
    if commit:
        wanted["mlflow.source.git.commit"] = commit
    if parent_run_id:
        wanted["mlflow.parentRunId"] = parent_run_id
    wanted.update({str(k): str(v) for k, v in extra_tags.items()})
    return wanted


def _source_name(folder: ResultFolder) -> str:
    """The workflow that made the results: the Snakefile beside results/, if there."""
    snakefile = folder.path.parent.parent / "Snakefile"
    return str(snakefile) if snakefile.is_file() else str(folder.path)


def _truncate_tag(text: str) -> str:
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    note = " ...[more in the config.json artifact]"
    if len(text) <= MAX_TAG_VAL_LENGTH:
        return text
    return text[: MAX_TAG_VAL_LENGTH - len(note)] + note


def _last_stop(folder: ResultFolder) -> dict:
    """summary.json's ``stop``, else the last logged chunk's (empty when none recorded)."""
    if folder.stop:
        return folder.stop
    return folder.chunk_stops[max(folder.chunk_stops)] if folder.chunk_stops else {}


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
            f"L-BFGS iterations (final result from chunk {folder.final_chunk}, "
            f"{summary.get('train_seconds', float('nan')):.1f} s of training in the latest "
            f"execution)."
        )
    stop = _last_stop(folder)
    if stop:
        lines.append(
            f"Optimizer stop: {stop.get('reason', '?')} ({stop.get('message', 'no message')})."
        )
    # Chunks that ended before their iteration budget (the later ones then do no iteration).
    early = [
        f"chunk {k}: {s.get('reason')} after {s.get('iterations', '?')} iterations"
        for k, s in sorted(folder.chunk_stops.items())
        if s.get("reason") not in (None, "budget")
    ]
    if early:
        lines.append(f"Chunks stopped before their budget: {'; '.join(early)}.")
    if folder.chunks_ignored:
        lines.append(
            f"Checkpoints of later chunks on disk ({', '.join(map(str, folder.chunks_ignored))}) "
            f"are not part of this result; metric points logged from them before stay in the "
            f"run (MLflow cannot delete points)."
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
        "Charts: `cost` and `grad_norm` per iteration; the image series `filters` shows the "
        "filter grid at each chunk end (step slider). The model `encoder` returns the hidden "
        "activations. Every artifact's sha256 is in `manifest.json`."
    )
    return "\n\n".join(lines)


def _same_value(stored: float, value: float) -> bool:
    if math.isnan(stored) or math.isnan(value):
        return math.isnan(stored) and math.isnan(value)
    return abs(stored - value) <= VALUE_TOLERANCE * max(1.0, abs(value))


def _quote(text: str) -> str:
    return text.replace("'", "\\'")


def log_mlflow(results_dir, *, experiment_name: str, tracking_uri: str, **options) -> str:
    """Rule ``log_mlflow``: :func:`log_results` for one experiment, with a line in its log.

    ``log_results`` writes ``results_dir/mlflow.json`` (run id, what was logged, what was
    missing) atomically as its last step: that file is the rule's output.
    """
    run_id = log_results(
        results_dir, experiment_name=experiment_name, tracking_uri=tracking_uri, **options
    )
    _log.info("logged %s to %s, run %s", results_dir, tracking_uri, run_id)
    return run_id
