"""The one MLflow sync engine: find a run by its identity tags, add only what it lacks, so a
rerun after any failure fills in what is missing and duplicates nothing (docs/pipeline.md)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparseae.data.download import file_digests
from sparseae.errors import TrackingError
from sparseae.tracking.results import MAX_PARAM_LENGTH, MetricPoint, param_value
from sparseae.tracking.store import Session

_log = logging.getLogger(__name__)

#: Project tags (at most ten on a run).
RUN_KEY_TAG = "sparseae.trajectory"
EXPERIMENT_TAG = "sparseae.experiment"
STATUS_TAG = "sparseae.status"
MANIFEST_TAG = "sparseae.manifest_sha256"
SUPERSEDED_TAG = "sparseae.superseded_by"
CHANGED_PARAMS_TAG = "sparseae.changed_params"
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"
#: The artifact listing every other artifact's sha256 and size.
MANIFEST_NAME = "manifest.json"
#: Relative difference under which a stored metric value counts as the same value.
VALUE_TOLERANCE = 1e-12


@dataclass
class RunSpec:
    """What one run must hold, read from the files on disk (the truth)."""

    #: Tags that find the run again; a new run is created with them.
    identity: dict[str, str]
    name: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[MetricPoint] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    #: (local file, artifact folder or "" for the root)
    artifacts: list[tuple[Path, str]] = field(default_factory=list)
    #: Start of a new run and base of the metric timestamps (ms; default: now).
    start_time: int | None = None
    #: Mark the run FINISHED (at ``end_time`` ms when given).
    finished: bool = True
    end_time: int | None = None


@dataclass
class Synced:
    """What :func:`sync_run` did: the run, counts of what it added, what differs."""

    run: Any
    logged: dict[str, Any]
    #: ``key@step: run value, files value`` of points that differ (kept as they are).
    conflicts: list[str]
    #: Artifact paths uploaded by this call.
    uploaded: list[str]


def sync_run(
    session: Session,
    experiment_id: str,
    spec: RunSpec,
    extra: Callable[[Any, int], Mapping[str, int]] | None = None,
) -> Synced:
    """Find or create the run of ``spec`` and add what it lacks; ``extra(run, start_ms)`` logs
    what only some runs have (images, datasets, a model) and returns its counts."""
    from mlflow.entities import Metric, Param

    # The oldest run of the experiment carrying the identity tags, else a new one.
    condition = " and ".join(f"tags.`{k}` = '{_quote(v)}'" for k, v in spec.identity.items())
    order = ["attributes.start_time ASC"]
    found = session.search_runs([experiment_id], filter_string=condition, order_by=order)
    made = spec.start_time or int(time.time() * 1000)
    run = found[0] if found else session.create_run(experiment_id, made, spec.identity, spec.name)
    run_id = run.info.run_id
    # Params keep their first value (MLflow cannot change them); changed ones are listed.
    existing = run.data.params
    params = [Param(k, v[:MAX_PARAM_LENGTH]) for k, v in sorted(spec.params.items())]
    changed = {p.key: spec.params[p.key] for p in params if existing.get(p.key, p.value) != p.value}
    params = [p for p in params if p.key not in existing]
    start = run.info.start_time or spec.start_time or 0
    history: dict[str, list] = {}
    for key in sorted({p.key for p in spec.metrics} & set(run.data.metrics)):
        points = session.get_metric_history(run_id, key)
        history[key] = sorted(points, key=lambda m: (m.step, m.timestamp))
    todo, revised, conflicts = [], [], []
    for point in spec.metrics:
        known = history.get(point.key, [])
        if point.derived and known:
            # A recomputed figure: a differing value gets a new point at the next step.
            if not same_value(known[-1].value, point.value):
                now = int(time.time() * 1000)
                todo.append(Metric(point.key, point.value, now, known[-1].step + 1))
                revised.append(point.key)
            continue
        have = {m.step: m.value for m in known}
        if point.step not in have:
            todo.append(Metric(point.key, point.value, start + point.offset_ms, point.step))
        elif not point.wallclock and not same_value(have[point.step], point.value):
            conflicts.append(
                f"{point.key}@{point.step}: run {have[point.step]!r}, files {point.value!r}"
            )
    if conflicts:
        # MLflow cannot replace points; the result files hold the current values.
        warning = "run %s keeps %d metric points that differ from the files, e.g. %s"
        _log.warning(warning, run_id, len(conflicts), conflicts[0])
    log_batch(session, run_id, params=params, metrics=todo)
    counts = dict(extra(run, start)) if extra else {}
    wanted = dict(spec.tags)
    uploaded: list[str] = []
    if spec.artifacts:
        uploaded, wanted[MANIFEST_TAG] = log_artifacts(session, run, spec.artifacts)
    if changed:
        text = "; ".join(f"{k}={v}" for k, v in sorted(changed.items()))
        wanted[CHANGED_PARAMS_TAG] = truncate_tag(text)
    tags = tag_updates(run, wanted)
    log_batch(session, run_id, tags=tags)
    # Tags that no longer apply: the run is current again, or the params are back.
    for stale in (SUPERSEDED_TAG, CHANGED_PARAMS_TAG):
        if stale in run.data.tags and stale not in wanted:
            session.delete_tag(run_id, stale)
    end = max(spec.end_time, start) if spec.end_time is not None else None
    ended = run.info.status == "FINISHED" and (end is None or run.info.end_time == end)
    if spec.finished and not ended:
        session.set_terminated(run_id, "FINISHED", end_time=end)
    logged = {"params": len(params), "metric_points": len(todo), "artifacts": len(uploaded)}
    logged.update(tags=len(tags), **counts)
    # Recomputed outputs and changed settings, reported only when this call recorded them.
    if revised or CHANGED_PARAMS_TAG in tags:
        logged["revised_metrics"] = sorted(revised)
        logged["changed_params"] = sorted(changed) if CHANGED_PARAMS_TAG in tags else []
    return Synced(run, logged, conflicts, uploaded)


def supersede(session: Session, experiment_id: str, name: str, current) -> list[str]:
    """Mark the other runs of experiment ``name`` (other trajectories) superseded."""
    condition = f"tags.`{EXPERIMENT_TAG}` = '{_quote(name)}'"
    others = session.search_runs([experiment_id], filter_string=condition)
    wanted = {STATUS_TAG: "superseded", SUPERSEDED_TAG: current.info.run_id}
    marked = []
    for run in others:
        if run.info.run_id == current.info.run_id:
            continue
        if todo := tag_updates(run, wanted):
            log_batch(session, run.info.run_id, tags=todo)
            marked.append(run.info.run_id)
        if run.info.status == "RUNNING":  # interrupted while logging: it will never finish
            session.set_terminated(run.info.run_id, "KILLED")
    return marked


def log_batch(session: Session, run_id: str, *, params=(), metrics=(), tags=None) -> None:
    """Send params, metric points and tags; MLflow's client splits them into allowed batches."""
    from mlflow.entities import RunTag

    params, metrics, tags = list(params), list(metrics), [RunTag(*t) for t in (tags or {}).items()]
    if params or metrics or tags:
        session.log_batch(run_id, metrics=metrics, params=params, tags=tags)


def tag_updates(run, wanted: Mapping[str, str]) -> dict[str, str]:
    """The tags of ``wanted`` that the run does not hold with that value yet."""
    return {tag: value for tag, value in wanted.items() if run.data.tags.get(tag) != value}


def truncate_tag(text: str) -> str:
    """``text`` cut to MLflow's tag length, with a note where the rest is."""
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    return param_value(text, MAX_TAG_VAL_LENGTH)


def read_manifest(session: Session, run_id: str, run_tags: Mapping) -> dict[str, dict]:
    """The run's ``manifest.json`` files (path -> sha256, size) if its hash tag confirms it; an
    absent, unreadable or unconfirmed manifest confirms nothing."""
    from mlflow.exceptions import MlflowException

    expected = run_tags.get(MANIFEST_TAG)
    failures = (MlflowException, OSError, ValueError, TypeError, KeyError)
    with tempfile.TemporaryDirectory(prefix="sparseae-manifest-") as tmp, suppress(*failures):
        data = Path(session.download_artifacts(run_id, MANIFEST_NAME, tmp)).read_bytes()
        if expected and hashlib.sha256(data).hexdigest() == expected:
            return dict(json.loads(data)["files"])
    return {}


def log_artifacts(
    session: Session, run, artifacts: list[tuple[Path, str]]
) -> tuple[list[str], str]:
    """Upload what is absent or changed, then the manifest; return (uploaded, manifest sha)."""
    run_id, run_tags = run.info.run_id, run.data.tags
    folders = sorted({""} | {folder for _, folder in artifacts})
    listed = [info for f in folders for info in session.list_artifacts(run_id, f or None)]
    existing = {info.path: info.file_size for info in listed if not info.is_dir}
    recorded = read_manifest(session, run_id, run_tags) if existing else {}
    manifest: dict[str, dict] = {}
    uploaded: list[str] = []
    for local, folder in artifacts:
        artifact_path = f"{folder}/{local.name}" if folder else local.name
        entry = {"sha256": file_digests(local, ["sha256"])["sha256"], "size": local.stat().st_size}
        manifest[artifact_path] = entry
        if existing.get(artifact_path) == entry["size"] and recorded.get(artifact_path) == entry:
            continue
        try:
            session.log_artifact(run_id, str(local), folder or None)
        except OSError as exc:
            raise TrackingError(
                f"uploading {local} to the artifacts of run {run_id} failed: {exc}; check the "
                f"experiment's artifact location (init_store checks it before training)"
            ) from exc
        uploaded.append(artifact_path)
    text = json.dumps({"files": manifest}, indent=1, sort_keys=True)
    sha = hashlib.sha256(text.encode()).hexdigest()
    if uploaded or run_tags.get(MANIFEST_TAG) != sha:
        session.log_text(run_id, text, MANIFEST_NAME)
    return uploaded, sha


def same_value(stored: float, value: float) -> bool:
    """Whether two metric values are the same within :data:`VALUE_TOLERANCE` (NaN == NaN)."""
    if math.isnan(stored) or math.isnan(value):
        return math.isnan(stored) and math.isnan(value)
    return abs(stored - value) <= VALUE_TOLERANCE * max(1.0, abs(value))


def _quote(text: str) -> str:
    return text.replace("'", "\\'")
