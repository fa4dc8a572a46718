"""Logging a result folder, a sweep and a stacked experiment into MLflow through the one sync
engine; a run is keyed by its trajectory (config.json's ``fingerprint``, a stacked experiment's
stage fingerprints), so a changed trajectory gets a new run, the old superseded."""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from sparseae.errors import ResultsError
from sparseae.identity import key_of
from sparseae.io import read_json, write_json
from sparseae.pipeline.chunks import read_chunks
from sparseae.tracking import sync
from sparseae.tracking.results import (
    MetricPoint,
    ResultFolder,
    flatten_params,
    load_chunk,
    param_value,
    read_result_folder,
)
from sparseae.tracking.settings import SWEEP_TAG
from sparseae.tracking.store import RUNS_VIEW_TAG, TrackingError, exclusive_lock, init_store
from sparseae.tracking.sync import RunSpec, Session

_log = logging.getLogger(__name__)

DATA_TAG = "sparseae.data_checksum"
FINAL_CHUNK_TAG = "sparseae.final_chunk"
STOP_TAG = "sparseae.optimizer_stop"
#: The software versions and threads of the training, as one JSON tag (not science params).
ENVIRONMENT_TAG = "sparseae.environment"
#: A sweep parent's role tag (its name is :data:`SWEEP_TAG`, its key ``sparseae.trajectory``).
SWEEP_ROLE_TAG = "sparseae.sweep_role"
#: Image series of the filter grid, one image per chunk end.
FILTERS_KEY = "filters"
#: The logged model's tag with its theta.npz's sha256.
MODEL_THETA_TAG = "sparseae.theta_sha256"
#: How many differing metric points mlflow.json lists (their number is always given).
CONFLICTS_LISTED = 10
#: Longest edge the filter images are enlarged to (whole-number nearest-neighbour factor).
FILTER_IMAGE_EDGE = 480
#: A stacked experiment's stage runs and parent run.
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
    """Log ``results/{experiment}`` into one MLflow run, adding only what is missing; write
    ``mlflow.json`` last. Returns the run id."""
    results_dir = Path(results_dir).resolve()
    folder = read_result_folder(results_dir, log_dir=log_dir, chunks=chunks)
    key = run_key or folder.fingerprint
    if not key:
        raise ResultsError(
            f"{results_dir}: config.json with its fingerprint is not there, so nothing "
            f"identifies the execution; rerun `snakemake` to write it, or pass run_key explicitly"
        )
    name = folder.name or results_dir.name
    start = folder.start_time_ms or int(time.time() * 1000)
    stamp = datetime.fromtimestamp(start / 1000, tz=timezone.utc)
    spec = RunSpec(
        identity={sync.RUN_KEY_TAG: key, sync.EXPERIMENT_TAG: name},
        name=f"{name} {stamp:%Y-%m-%d %H:%M}",
        params=folder.params,
        metrics=folder.metrics,
        tags=_run_tags(folder, name, dict(tags or {}), parent_run_id),
        artifacts=folder.artifacts,
        start_time=start,
        finished=folder.complete,
        end_time=folder.end_time_ms,
    )
    session = Session(tracking_uri, results_dir)

    def extra(run, start_ms: int) -> dict[str, int]:
        return {
            "filter_images": _log_filter_images(session, run.info.run_id, folder, start_ms),
            "datasets": _log_datasets(session, run, folder),
            "models": _log_model(session, run, folder, name),
        }

    # One logger per result folder and per run at a time (lock files live in the temp folder,
    # so the result folder is not touched until mlflow.json is written).
    with (
        exclusive_lock(f"results#{results_dir}"),
        exclusive_lock(f"{tracking_uri}#{experiment_name}#{name}"),
    ):
        experiment_id = init_store(tracking_uri, experiment_name, results_dir=results_dir)[
            experiment_name
        ]
        if SWEEP_TAG not in spec.tags:  # a sweep's view is set by log_sweep
            step = max((step for step, _ in folder.chunk_ends.values()), default=0)
            set_view(session, experiment_id, step, evaluated=bool(folder.evaluation))
        synced = sync.sync_run(session, experiment_id, spec, extra)
        superseded = sync.supersede(session, experiment_id, name, synced.run)
    run, conflicts = synced.run, synced.conflicts
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
        "logged_this_time": synced.logged,
        "total": {
            "params": len(spec.params),
            "metric_points": len(folder.metrics),
            "artifacts": len(folder.artifacts),
            "filter_images": len(folder.chunk_ends) + 1,
        },
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
    _log.info("logged %s to %s, run %s", results_dir, tracking_uri, run.info.run_id)
    return run.info.run_id


#: Rule ``log_mlflow`` is :func:`log_results` for one experiment.
log_mlflow = log_results


def log_sweep(
    sweep_name: str,
    members: Iterable,
    *,
    tracking_uri: str,
    experiment_name: str | None = None,
    params: Mapping | None = None,
    output=None,
    artifacts: Iterable | None = None,
) -> str:
    """Log a sweep: a parent run with the summary files, the member runs (result folders or
    run ids) nested under it. Returns the parent run's id."""
    from sparseae.config.sweeps import grid_key

    files = [Path(path) for path in artifacts or ()]
    for path in files:
        if not path.is_file():
            raise TrackingError(f"sweep artifact {path} does not exist")
    member_runs = {str(m): _member_run_id(m, tracking_uri) for m in members}
    experiment_name = experiment_name or sweep_name
    wanted = {"sweep.name": sweep_name, "sweep.members": str(len(member_runs))}
    wanted.update(flatten_params(dict(params or {})))
    sweep_key = key_of(wanted, 32)
    note = (
        f"Sweep **{sweep_name}**: {len(member_runs)} member runs nested below (same experiment: "
        f"compare them in the runs table, the parallel-coordinates and chart views). Artifacts: "
        f"the summary table and the contact sheet of the members' filters."
    )
    spec = RunSpec(
        identity={SWEEP_TAG: sweep_name, SWEEP_ROLE_TAG: "parent", sync.RUN_KEY_TAG: sweep_key},
        name=f"sweep {sweep_name}",
        params=wanted,
        tags={sync.NOTE_TAG: note},
        artifacts=[(f, "") for f in files],
    )
    session = Session(tracking_uri)
    with exclusive_lock(f"{tracking_uri}#{experiment_name}#sweep#{sweep_name}"):
        experiment_id = init_store(tracking_uri, experiment_name)[experiment_name]
        synced = sync.sync_run(session, experiment_id, spec)
        parent_id = synced.run.info.run_id
        grid = (params or {}).get("grid")
        swept = [grid_key(k)[0] for k in grid] if isinstance(grid, dict) else []
        last_step = 0
        for folder, run_id in member_runs.items():
            member = session.get_run(run_id)
            config_path = Path(folder) / "config.json"
            if swept and config_path.is_file():
                config = read_json(config_path)
                name = member_name(config.get("experiment", config), swept)
                if member.info.run_name != name:
                    session.update_run(run_id, name=name)
            last_step = max(last_step, int(member.data.metrics.get("iterations", 0)))
            wanted_tags = {SWEEP_TAG: sweep_name}
            if member.info.experiment_id == experiment_id:
                wanted_tags[sync.PARENT_TAG] = parent_id
            else:  # MLflow nests runs of one experiment only
                _log.warning(
                    "sweep %s: member run %s is not in %r", sweep_name, run_id, experiment_name
                )
            sync.log_batch(session, run_id, tags=sync.tag_updates(member, wanted_tags))
        set_view(session, experiment_id, last_step, swept=swept)
    if output is not None:
        record = {"run_id": parent_id, "experiment_id": experiment_id}
        record.update(tracking_uri=tracking_uri, sweep_key=sweep_key, members=member_runs)
        record.update(artifacts_uploaded=sorted(synced.uploaded), logged=synced.logged)
        write_json(output, record)
    _log.info("sweep %s: parent run %s", sweep_name, parent_id)
    return parent_id


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
            # A stage's child run: its trajectory, cost and gradient norm per iteration, seconds.
            _, records, metas = read_chunks(paths)
            trajectory = next((m["trajectory"] for m in reversed(metas) if "trajectory" in m), {})
            seconds = evaluation["seconds"].get(stage, 0.0)
            points = [MetricPoint("seconds", seconds, 0, wallclock=True)]
            points += [
                MetricPoint(m, float(r[m]), int(r["iteration"]), int(1000 * float(r["seconds"])))
                for r in records
                for m in ("cost", "grad_norm")
            ]
            key = config["fingerprints"].get(stage) or key_of(trajectory)
            spec = RunSpec(
                identity={sync.RUN_KEY_TAG: key, STAGE_TAG: stage, sync.PARENT_TAG: parent_id},
                name=f"{name} {stage}",
                params=flatten_params(trajectory),
                metrics=points,
            )
            stage_synced = sync.sync_run(session, experiment_id, spec)
            logged[stage] = stage_synced.logged
            stage_runs[stage] = stage_synced.run.info.run_id
        superseded = sync.supersede(session, experiment_id, name, synced.run)
    if output is not None:
        record = {"run_id": parent_id, "stage_runs": stage_runs, "tracking_uri": tracking_uri}
        record.update(experiment=experiment_name, superseded_runs=superseded, logged=logged)
        write_json(output, record)
    _log.info("logged %s to %s, run %s", folder, tracking_uri, parent_id)
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


def _run_tags(folder: ResultFolder, name: str, extra_tags, parent_run_id) -> dict[str, str]:
    stop = _last_stop(folder)
    snakefile = folder.path.parent.parent / "Snakefile"
    wanted = {
        sync.STATUS_TAG: "complete" if folder.complete else "partial",
        sync.NOTE_TAG: _description(folder, name),
        ENVIRONMENT_TAG: sync.truncate_tag(json.dumps(folder.environment, sort_keys=True)),
        "mlflow.source.type": "LOCAL",
        # The workflow that made the results: the Snakefile beside results/, if there.
        "mlflow.source.name": str(snakefile if snakefile.is_file() else folder.path),
    }
    optional = {
        DATA_TAG: folder.summary.get("dataset_checksum"),
        FINAL_CHUNK_TAG: folder.final_chunk,
        STOP_TAG: stop.get("reason"),
        "mlflow.source.git.commit": folder.environment.get("git.commit"),
        sync.PARENT_TAG: parent_run_id,
    }
    wanted.update({key: str(value) for key, value in optional.items() if value})
    wanted.update({str(k): str(v) for k, v in extra_tags.items()})
    return wanted


def _last_stop(folder: ResultFolder) -> dict:
    """summary.json's ``stop``, else the last logged chunk's (empty when none recorded)."""
    stop = folder.summary.get("stop")
    if isinstance(stop, dict) and stop:
        return stop
    return folder.chunk_stops[max(folder.chunk_stops)] if folder.chunk_stops else {}


def filter_image(theta, sizes: tuple[int, int]):
    """``filters.png``'s grid of ``theta`` as 8-bit grey, enlarged to :data:`FILTER_IMAGE_EDGE`."""
    from sparseae.analysis.visualize import display_network, grey_pixels
    from sparseae.model.autoencoder import unpack

    grid = display_network(unpack(theta, *sizes)[0].T)
    return grey_pixels(grid, max(1, FILTER_IMAGE_EDGE // max(grid.shape)))


def _model_sizes(folder: ResultFolder) -> tuple[int, int] | None:
    model = folder.experiment.get("model")
    model = model if isinstance(model, dict) else {}
    sizes = (model.get("visible_size"), model.get("hidden_size"))
    return sizes if all(isinstance(size, int) for size in sizes) else None


def _log_filter_images(session: Session, run_id: str, folder: ResultFolder, start: int) -> int:
    """Log the filter grid of the random start (step 0, so the UI's image card, which opens at
    step 0, shows a picture) and of every chunk end not in the run yet (key ``filters``)."""
    from sparseae.pipeline.experiment import initial_theta

    sizes = _model_sizes(folder)
    if sizes is None or math.isqrt(sizes[0]) ** 2 != sizes[0] or not folder.chunk_ends:
        return 0
    # Steps whose full-size and preview files both exist, named
    # images/<key>+step+<step>+timestamp+<ms>+<uuid>[+compressed].(png|webp).
    found: dict[int, set[bool]] = {}
    for info in session.list_artifacts(run_id, "images"):
        match = re.match(rf"{FILTERS_KEY}\+step\+(\d+)\+timestamp", Path(info.path).name)
        if match:
            found.setdefault(int(match[1]), set()).add("compressed" in info.path)
    done = {step for step, kinds in found.items() if len(kinds) == 2}
    seed = folder.experiment.get("seed")
    images = {}
    if 0 not in done and isinstance(seed, int) and not isinstance(seed, bool):
        # The training's random start, drawn as train_chunk draws it.
        layers = {"visible_size": sizes[0], "hidden_size": sizes[1]}
        images[0] = (initial_theta(layers, seed), start)
    for step, path in sorted(folder.chunk_ends.values()):
        if step not in done | {0}:
            arrays = load_chunk(path)[0]
            seconds = arrays["seconds"]
            stamp = start + (int(round(float(seconds[-1]) * 1000)) if seconds.size else 0)
            images[step] = (arrays["theta"], stamp)
    for step, (theta, stamp) in images.items():
        image = filter_image(theta, sizes)
        session.log_image(
            run_id, image, key=FILTERS_KEY, step=step, timestamp=stamp, synchronous=True
        )
    return len(images)


def _log_datasets(session: Session, run, folder: ResultFolder) -> int:
    """Log the training data, digest = its checksum, and the labeled digits of the evaluation
    as the run's dataset inputs, those not in the run yet (none without ``dataset_checksum``)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
    from mlflow.utils.validation import MAX_DATASET_DIGEST_SIZE

    from sparseae.data import SOURCES

    checksum = folder.summary.get("dataset_checksum")
    dataset = folder.experiment.get("dataset")
    if not isinstance(checksum, str) or not isinstance(dataset, dict):
        return 0
    source = str(dataset.get("source", "unknown"))
    name = f"{source}-{dataset['split']}" if dataset.get("split") else source
    visible = (folder.experiment.get("model") or {}).get("visible_size")
    # The data's own path, else the first mirror's URL of a downloaded source.
    known = SOURCES.get(source)
    mirror = known and known.mirrors and known.files and known.mirrors[0] + known.files[0].name
    builtin = f"sparseae.data:{source}" if known else source
    location = str(dataset.get("path") or mirror or builtin)
    spec = {"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, visible]}}
    schema = {"mlflow_tensorspec": {"features": json.dumps([spec]), "targets": None}}

    def entry(entity_name: str, profile: dict, context: str):
        entity = Dataset(
            name=entity_name,
            digest=checksum.split(":", 1)[-1][:MAX_DATASET_DIGEST_SIZE],  # "sha256:<hex>"
            source_type="http" if location.startswith("http") else "local",
            source=json.dumps({"uri": location}),
            schema=json.dumps(schema),
            profile=json.dumps({**profile, "checksum": checksum}),
        )
        return DatasetInput(entity, [InputTag(MLFLOW_DATASET_CONTEXT, context)])

    examples = folder.summary.get("num_examples")
    wanted = [entry(name, {"num_examples": examples, "visible_size": visible}, "training")]
    evaluation = folder.evaluation
    if evaluation:
        classes = evaluation.get("classes")
        label = f" digits {''.join(map(str, classes))}" if isinstance(classes, list) else ""
        profile = {"n_train": evaluation.get("n_train"), "n_test": evaluation.get("n_test")}
        wanted.append(entry(f"{name} labeled{label}", profile, "evaluation"))
    inputs = getattr(run, "inputs", None)
    have = {(d.dataset.name, d.dataset.digest) for d in (inputs.dataset_inputs if inputs else [])}
    todo = [d for d in wanted if (d.dataset.name, d.dataset.digest) not in have]
    if todo:
        session.log_inputs(run.info.run_id, datasets=todo)
    return len(todo)


def _log_model(session: Session, run, folder: ResultFolder, name: str) -> int:
    """Log theta.npz as the run's logged model (models from code) unless already there."""
    from sparseae.data.download import file_digests
    from sparseae.io import read_npz
    from sparseae.tracking.encoder_model import log_encoder

    theta = folder.path / "theta.npz"
    sizes = _model_sizes(folder)
    if not theta.is_file() or sizes is None or "summary.json" in folder.missing:
        return 0
    sha = file_digests(theta, ["sha256"])["sha256"]
    condition = f"source_run_id = '{run.info.run_id}'"
    models = session.search_logged_models([run.info.experiment_id], filter_string=condition)
    if any(m.tags.get(MODEL_THETA_TAG) == sha for m in models):
        return 0
    patches = folder.path / "patches.npz"
    # Three training examples (rows): what the model takes, as MLflow shows and checks it, in
    # the signature's float64 whatever dtype training used.
    data = read_npz(patches, ["data"], label=f"patches file {patches}") if patches.is_file() else {}
    example = data["data"][:, :3].T.astype("float64") if "data" in data else None
    note = (
        f"Encoder of experiment **{name}**: m × {sizes[0]} inputs (rows, as the training "
        f"patches) -> m × {sizes[1]} hidden activations sigmoid(X W1ᵀ + b1); parameters "
        f"`theta.npz` after {folder.summary.get('iterations', '?')} L-BFGS iterations."
    )
    step = int(folder.summary.get("iterations") or 0)
    session.retry(log_encoder)(
        session.uri,
        run.info.run_id,
        theta,
        sizes,
        step=step,
        tags={
            MODEL_THETA_TAG: sha,
            FINAL_CHUNK_TAG: str(folder.final_chunk),
            sync.NOTE_TAG: note,
            # The step that logged it, not Snakemake's temporary copy of its script.
            "mlflow.source.name": "log_mlflow",
            "mlflow.source.type": "LOCAL",
        },
        input_example=example,
    )
    return 1


def _description(folder: ResultFolder, experiment_name: str) -> str:
    """The run's description (shown at the top of the run page in the MLflow UI)."""
    lines = [f"Sparse autoencoder, experiment **{experiment_name}**, results in `{folder.path}`."]
    summary = folder.summary
    if "final_cost" in summary:
        chunks = f"{summary.get('chunks', '?')} chunks"
        lines.append(
            f"Final cost **{summary['final_cost']:.4f}** after {summary.get('iterations', '?')} "
            f"L-BFGS iterations ({chunks}; final result from chunk {folder.final_chunk}). "
            f"Training took {summary.get('train_seconds', math.nan):.1f} s (chunk jobs; the "
            f"optimizer alone {summary.get('optimizer_seconds', math.nan):.1f} s); the run's "
            f"Duration spans the first to the last result file, figures included."
        )
    stop = _last_stop(folder)
    if stop.get("reason") == "budget":
        lines.append("Ran its whole iteration budget (every chunk its iterations_per_chunk).")
    elif stop:
        lines.append(
            f"Optimizer stopped: {stop.get('reason', '?')} ({stop.get('message', 'no message')})."
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
            f"Gradient check {verdict}: relative difference {_sci(grad.get('autoencoder'))} "
            f"(bound {_sci(grad.get('bound'))})."
        )
    evaluation = folder.evaluation
    labels = {"features": "hidden-layer features", "raw": "raw pixels"}
    accuracies = {labels[k]: evaluation.get(f"accuracy_{k}") for k in labels}
    text = " vs ".join(
        f"{100 * v:.2f}% on {k}" for k, v in accuracies.items() if isinstance(v, int | float)
    )
    if text:
        lines.append(
            f"Self-taught evaluation (softmax, {evaluation.get('n_test', '?')} test digits): "
            f"test accuracy {text}; confusion matrices `confusion_features.png`, "
            f"`confusion_raw.png`."
        )
    lines.append("Missing files: " + (", ".join(f"`{m}`" for m in folder.missing) or "none") + ".")
    lines.append(
        "Charts: `cost` (log axis) and `grad_norm` per iteration; image series `filters`: the "
        "filter grid at the random start (step 0) and at each chunk end. Model `encoder`: the "
        "hidden activations. Full config: `config.json`; every artifact's sha256: `manifest.json`."
    )
    return "\n\n".join(lines)


def _sci(value) -> str:
    return f"{value:.1e}" if isinstance(value, int | float) else str(value)


# How an experiment's runs page opens: MLflow's shared view (experiment tag
# ``mlflow.sharedViewState.<key>``, loaded by ``?viewStateShareKey=<key>`` in the address
# ``make ui`` prints), in the UI's own state fields: key figures first, charts ready.

#: Short names of common swept settings in a member's run name (``β3 ρ0.05``).
SYMBOLS = {"beta": "β", "rho": "ρ", "lambda_": "λ", "hidden_size": "h", "seed": "s"}
#: Longest run name the runs table's name column shows whole.
NAME_LENGTH = 16
_SECTIONS = [
    {"uuid": "sparseae-model", "name": "Model metrics", "display": True, "isReordered": True},
    {"uuid": "sparseae-system", "name": "System metrics", "display": True, "isReordered": False},
]


def _card(kind: str, uuid: str, **fields) -> dict:
    card = {"uuid": f"sparseae-{uuid}", "type": kind, "metricSectionId": "sparseae-model"}
    return {**card, "deleted": False, "isGenerated": False, "runsCountToCompare": 100, **fields}


def set_view(
    session, experiment_id: str, step: int, *, swept: list[str] | None = None, evaluated=False
) -> None:
    """Store the experiment's view unless it already holds it: one experiment's (final cost,
    and accuracies if ``evaluated``, first; filters at ``step``, the cost chart), or a sweep's
    (members listed flat by final cost, as sorting un-nests them; the ``swept`` values as
    columns, parallel coordinates of them against the cost)."""
    # A line card's settings, as the UI writes them (per step, no smoothing, global x axis).
    line = {"xAxisKey": "step", "xAxisScaleType": "linear", "lineSmoothness": 0, "range": {}}
    line.update(useGlobalXaxisKey=True, useGlobalLineSmoothing=True, selectedXAxisMetricKey="")
    line.update(metricKey="cost", selectedMetricKeys=["cost"], scaleType="log")
    charts = [_card("IMAGE", "filters", imageKeys=["filters"], step=step)]
    charts.append(_card("LINE", "cost", **line))
    columns, facets = ["metrics.`cost`"], {}
    if swept is not None:
        parallel = _card("PARALLEL", "parallel", selectedParams=swept, selectedMetrics=["cost"])
        charts.insert(0, parallel)
        columns += [f"params.`{key}`" for key in swept]
        facets = {"orderByKey": "metrics.`cost`", "orderByAsc": True, "runsHiddenMode": "SHOW_ALL"}
    elif evaluated:
        columns += ["metrics.`accuracy_features`", "metrics.`accuracy_raw`"]
    columns += ["metrics.`iterations`", "attributes.`Models`"]
    state = {"selectedColumns": columns, "columnOrder": columns, "compareRunCharts": charts}
    state.update(compareRunSections=_SECTIONS, isAccordionReordered=True, hideEmptyCharts=True)
    value = json.dumps({**state, **facets}, separators=(",", ":"), ensure_ascii=False)
    if session.get_experiment(experiment_id).tags.get(RUNS_VIEW_TAG) != value:
        session.set_experiment_tag(experiment_id, RUNS_VIEW_TAG, value)


def member_name(experiment: Mapping, swept: Iterable[str]) -> str:
    """A sweep member's run name from its swept values only (``β3 ρ0.05``), at most
    :data:`NAME_LENGTH` characters."""
    from sparseae.config.sweeps import format_value

    tokens = []
    for path in swept:
        node = experiment
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        leaf = path.rsplit(".", 1)[-1]
        tokens.append(f"{SYMBOLS.get(leaf, leaf.replace('_', ''))}{format_value(node)}")
    return " ".join(tokens)[:NAME_LENGTH]
