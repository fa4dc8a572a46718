"""Read a result folder into what MLflow should hold: params, metric points, artifacts."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparseae.config.keys import flatten
from sparseae.environment import environment_info
from sparseae.errors import ResultsError
from sparseae.io import check_result_file, read_json
from sparseae.model.train import records_to_arrays
from sparseae.pipeline.chunks import read_checkpoint
from sparseae.pipeline.experiment import EVALUATION_FILES, RESULT_FILES

#: MLflow 3's limit on a param value (``mlflow.utils.validation.MAX_PARAM_VAL_LENGTH``).
MAX_PARAM_LENGTH = 6000
TRUNCATION_NOTE = " ...[truncated; full value in the config.json artifact]"
#: MLflow allows these characters in keys; anything else is replaced by "_".
_KEY_FORBIDDEN = re.compile(r"[^A-Za-z0-9_\-./ ]")
#: Per-iteration series logged as metrics: checkpoint array -> metric key.
ITERATION_METRICS = {
    "cost": "cost",
    "grad_norm": "grad_norm",
    "fun_evals": "fun_evals",
    "seconds": "elapsed_seconds",
}
#: Top-level files uploaded as artifacts, by suffix; ``mlflow.json`` is our own output.
ARTIFACT_SUFFIXES = (".png", ".json", ".tsv", ".npz")
NOT_ARTIFACTS = ("mlflow.json", "patches.npz")
#: JSON files in a result folder that are not results (our records; the config's settings).
NOT_RESULT_JSON = ("manifest.json", "config.json")
#: The cost terms of a checkpoint's meta, logged as ``J_*`` at each chunk end.
_TERMS = ("reconstruction", "weight_decay", "sparsity")
#: Config sections that define the science, shown as params; the rest (resources, progress,
#: gradient-check settings, the optimizer's safety limits) is in the config.json artifact.
SCIENCE_SECTIONS = ("dataset", "patches", "model", "cost", "optimizer", "training", "seed")
NOT_SCIENCE = ("training.progress_every", "evaluation.enabled", "evaluation.softmax.max_iter")
NOT_SCIENCE += ("optimizer.ftol", "optimizer.maxfun", "optimizer.maxls")
#: Prefixes of result-file figures that repeat a series' last point (``final_cost`` = ``cost``).
TWIN_PREFIXES = ("final_", "total_")


@dataclass(frozen=True)
class MetricPoint:
    """One metric value at one step; ``offset_ms`` is added to the run's start time."""

    key: str
    value: float
    step: int
    offset_ms: int = 0
    #: Computed from the training outputs: a recomputation may change it (same execution).
    derived: bool = False
    #: Wall-clock: another execution measures other times, so it is never compared.
    wallclock: bool = False


@dataclass
class ResultFolder:
    """What a result folder holds, ready to be logged."""

    path: Path
    params: dict[str, str] = field(default_factory=dict)
    #: The software and threads (a tag, not params: they do not define the science).
    environment: dict[str, str] = field(default_factory=dict)
    metrics: list[MetricPoint] = field(default_factory=list)
    #: (local file, artifact folder or "" for the root)
    artifacts: list[tuple[Path, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    #: The trajectory key (``fingerprint`` of config.json), the run's identity.
    fingerprint: str | None = None
    #: The config experiment's name (config.json ``name``), when recorded.
    name: str | None = None
    #: Checkpoints on disk past the chunks making up the final result.
    chunks_ignored: list[int] = field(default_factory=list)
    #: Global iteration at the end of each logged chunk and its checkpoint (filter images).
    chunk_ends: dict[int, tuple[int, Path]] = field(default_factory=dict)
    #: The optimizer's stop of each chunk (the final one: summary.json's ``stop``).
    chunk_stops: dict[int, dict] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    gradcheck: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    start_time_ms: int = 0
    end_time_ms: int = 0

    @property
    def complete(self) -> bool:
        """Whether every expected file is there."""
        return not self.missing

    @property
    def experiment(self) -> dict:
        """config.json's experiment settings (``{}`` if there are none)."""
        block = self.config.get("experiment", self.config)
        return block if isinstance(block, dict) else {}

    @property
    def final_chunk(self) -> int | None:
        """The chunk whose theta is the final result (summary.json's, else the last logged)."""
        value = self.summary.get("final_chunk")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return max(self.chunk_ends, default=None)


def read_result_folder(
    results_dir: str | Path, *, log_dir: str | Path | None = None, chunks: int | None = None
) -> ResultFolder:
    """Describe ``results_dir`` (``results/{experiment}``) and its rule logs; checkpoints past
    ``chunks`` (default: summary.json's ``final_chunk``) are not logged. Raises ResultsError."""
    path = Path(results_dir).resolve()
    if not path.is_dir():
        raise ResultsError(f"result folder {path} does not exist")
    folder = ResultFolder(path=path)
    config_path = path / "config.json"
    config = read_json(config_path) if config_path.is_file() else None
    config = folder.config = _object(config_path, config)
    folder.params.update(science_params(folder.experiment))
    for key in ("fingerprint", "name"):
        if isinstance(config.get(key), str):
            setattr(folder, key, config[key])
    # Every result file once: JSON read (refused if damaged or of another trajectory), the rest
    # checked, so nothing damaged is uploaded as if complete.
    read = {"config.json": config}
    for item in sorted(path.iterdir()):
        named = item.suffix in ARTIFACT_SUFFIXES and item.name not in NOT_ARTIFACTS
        if named and item.is_file() and not item.name.startswith("."):
            if item.suffix != ".json":
                check_result_file(item)
            elif item.name not in read:
                read[item.name] = read_json(item, key=folder.fingerprint)
            folder.artifacts.append((item, ""))
    for key in ("summary", "gradcheck", "evaluation"):
        setattr(folder, key, _object(path / f"{key}.json", read.get(f"{key}.json")))
    stops = folder.summary.get("chunk_stops")
    if isinstance(stops, list):
        # The stops the final result was made of; a chunk's own checkpoint fills in the rest.
        folder.chunk_stops = {k: s for k, s in enumerate(stops, start=1) if isinstance(s, dict)}
    if chunks is None:
        recorded = folder.summary.get("final_chunk", folder.summary.get("chunks"))
        chunks = recorded if isinstance(recorded, int) and recorded >= 1 else None
    metas = _read_chunks(folder, chunks)
    _read_blocks(folder, read)
    # What training recorded (its threads and versions) in chunk 1, else this process's.
    recorded = [m["environment"] for _, m in sorted(metas.items()) if "environment" in m]
    if recorded and isinstance(recorded[0], dict):
        folder.environment = {str(k): param_value(v) for k, v in recorded[0].items()}
    else:
        folder.environment = environment_info(path)
    evaluates = _evaluates(folder.experiment)
    _collect_logs(folder, log_dir, RESULT_FILES + (EVALUATION_FILES if evaluates else ()))
    return folder


def flatten_params(config: dict) -> dict[str, str]:
    """A nested config as MLflow params: ``{"model.hidden_size": "25", ...}``."""
    return {_KEY_FORBIDDEN.sub("_", k): param_value(v) for k, v in flatten(config).items()}


def science_params(experiment: dict) -> dict[str, str]:
    """The params of a run: the settings of :data:`SCIENCE_SECTIONS` (and of the evaluation
    where enabled) that are set."""
    sections = SCIENCE_SECTIONS + (("evaluation",) if _evaluates(experiment) else ())
    flat = flatten_params({k: v for k, v in experiment.items() if k in sections})
    return {k: v for k, v in flat.items() if k not in NOT_SCIENCE and v != "null"}


def _evaluates(experiment: Any) -> bool:
    evaluation = experiment.get("evaluation") if isinstance(experiment, dict) else None
    return isinstance(evaluation, dict) and bool(evaluation.get("enabled"))


def param_value(value: Any, limit: int = MAX_PARAM_LENGTH) -> str:
    """Render a value as an MLflow param (or tag) string, cut to ``limit`` with a note."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - len(TRUNCATION_NOTE)] + TRUNCATION_NOTE


def load_chunk(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """One ``chunks/{k}.npz`` as arrays (``theta`` and one per record field) and meta."""
    theta, records, meta = read_checkpoint(path)
    return {"theta": theta, **records_to_arrays(records)}, meta


def _read_chunks(folder: ResultFolder, expected: int | None) -> dict[int, dict]:
    found = (folder.path / "chunks").glob("*.npz")
    files = {int(p.stem): p for p in found if p.stem.isdigit() and int(p.stem) >= 1}
    if expected is not None:
        folder.chunks_ignored = sorted(k for k in files if k > expected)
        files = {k: f for k, f in files.items() if k <= expected}
    metas: dict[int, dict] = {}
    last_step = 0
    for k in sorted(files):
        arrays, meta = load_chunk(files[k])
        if meta.get("chunk") != k:
            raise ResultsError(f"checkpoint {files[k]} says chunk {meta.get('chunk')}, not {k}")
        key = meta.get("fingerprint")
        if folder.fingerprint and key not in (None, folder.fingerprint):
            raise ResultsError(
                f"{files[k]} belongs to trajectory {key}, but {folder.path / 'config.json'} says "
                f"{folder.fingerprint}: it was written by another experiment or configuration; "
                f"delete it (and the files made from it) and rerun `snakemake` to recompute it"
            )
        metas[k] = meta
        if isinstance(meta.get("stop"), dict):
            folder.chunk_stops.setdefault(k, meta["stop"])
        iterations = arrays["iteration"].astype(np.int64)
        seconds = arrays["seconds"].astype(np.float64)
        for name, key in ITERATION_METRICS.items():
            folder.metrics.extend(
                MetricPoint(key, float(v), int(step), _ms(s), wallclock=name == "seconds")
                for v, step, s in zip(arrays[name], iterations, seconds, strict=True)
            )
        # Chunk-end figures sit at the chunk's last global iteration; a chunk that did no
        # iteration (converged earlier) would repeat the previous step, which already has them.
        if iterations.size and int(iterations[-1]) > last_step:
            step, offset = int(iterations[-1]), _ms(seconds[-1])
            terms, rhohat = meta.get("terms") or {}, meta.get("rhohat") or {}
            figures = {f"J_{t}": terms.get(t) for t in _TERMS}
            figures |= {f"rhohat_{s}": rhohat.get(s) for s in ("mean", "min", "max")}
            figures["chunk_wall_seconds"] = meta.get("wall_seconds")
            folder.metrics.extend(
                MetricPoint(key, float(value), step, offset, wallclock=key == "chunk_wall_seconds")
                for key, value in figures.items()
                if _is_number(value)
            )
        if iterations.size:
            last_step = int(iterations[-1])
        folder.chunk_ends[k] = (last_step, files[k])
    if expected is None:
        expected = max(files, default=0)
    folder.missing.extend(f"chunks/{k}.npz" for k in range(1, expected + 1) if k not in files)
    if not files:
        folder.missing.append("chunks/*.npz")
    return metas


def _read_blocks(folder: ResultFolder, read: dict[str, Any]) -> None:
    """Every result JSON's ``metrics`` block, each figure once at the last step (derived); a
    ``final_``/``total_`` figure whose series is logged is that series' last point."""
    series = {point.key for point in folder.metrics}
    known = set(series)
    last = max((point.step for point in folder.metrics), default=0)
    for file_name, data in sorted(read.items()):
        path = folder.path / file_name
        block = data.get("metrics") if isinstance(data, dict) else None
        if block is None or file_name in NOT_RESULT_JSON:
            continue
        if not isinstance(block, dict):
            raise ResultsError(
                f"{path}: key 'metrics' holds a {type(block).__name__}; it must be an object "
                f"of metric name -> number"
            )
        for name, value in sorted(block.items()):
            key = _KEY_FORBIDDEN.sub("_", str(name))
            for prefix in TWIN_PREFIXES:
                key = key.removeprefix(prefix)
            value = float(value) if isinstance(value, bool) else value
            if not _is_number(value):
                raise ResultsError(
                    f"{path}: metric {name!r} = {value!r} is not a number; the 'metrics' "
                    f"block holds numbers only"
                )
            if key != name and key in series:
                continue
            if key in known:
                raise ResultsError(
                    f"{path}: metric {name!r} is also logged from another result file; rename it"
                )
            known.add(key)
            folder.metrics.append(MetricPoint(key, float(value), last, derived=True))


def _collect_logs(folder: ResultFolder, log_dir, expected: tuple[str, ...]) -> None:
    """The rule logs to upload, missing expected files, the run's time span."""
    # Result files only: the logs folder may hold older logs of shared data rules.
    times = [f.stat().st_mtime for f, _ in folder.artifacts]
    times += [p.stat().st_mtime for p in (folder.path / "chunks").glob("*.npz")]
    if times:
        folder.start_time_ms = int(min(times) * 1000)
        folder.end_time_ms = int(max(times) * 1000)
    for name in expected:
        if not (folder.path / name).exists() and name not in folder.missing:
            folder.missing.append(name)
    if log_dir is not None and not Path(log_dir).is_dir():
        folder.missing.append(f"log folder {log_dir}")
    # The rule logs: by default logs/{experiment} beside results/.
    log_dir = Path(log_dir or folder.path.parent.parent / "logs" / folder.path.name)
    for item in sorted(log_dir.rglob("*.log")):
        if item.is_file() and not item.name.startswith("."):
            parent = (Path("logs") / item.parent.relative_to(log_dir)).as_posix()
            folder.artifacts.append((item, parent))


def _object(path: Path, data: Any) -> dict:
    """A result file's JSON object (``{}`` if the file is absent)."""
    if data is not None and not isinstance(data, dict):
        raise ResultsError(f"{path} holds a {type(data).__name__}, not a JSON object")
    return data or {}


def _is_number(value: Any) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and not (isinstance(value, float) and math.isinf(value))


def _ms(seconds: float) -> int:
    return int(round(float(seconds) * 1000)) if math.isfinite(seconds) else 0
