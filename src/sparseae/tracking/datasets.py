"""The data a run trained (and was evaluated) on, as MLflow dataset inputs.

Shown in the runs table's Dataset column: source and split, the data checksum as digest,
where it comes from (the first mirror's URL, or the local path) and the shape the model saw.
"""

from __future__ import annotations

import json
from typing import Any

#: MLflow's limit on a dataset digest (``mlflow.utils.validation.MAX_DATASET_DIGEST_SIZE``
#: is read at run time; this is the fallback).
DIGEST_LENGTH = 36


def describe_dataset(folder) -> dict[str, Any] | None:
    """Name, digest, source and schema of the training data of a result folder, or ``None``.

    ``None`` when summary.json (with the data checksum) or the dataset settings are missing.
    """
    checksum = folder.summary.get("dataset_checksum")
    block = folder.config.get("experiment", folder.config)
    dataset = block.get("dataset") if isinstance(block, dict) else None
    if not isinstance(checksum, str) or not isinstance(dataset, dict):
        return None
    source_name = str(dataset.get("source", "unknown"))
    split = dataset.get("split")
    name = f"{source_name}-{split}" if split else source_name
    model = block.get("model") or {}
    visible = model.get("visible_size")
    examples = folder.summary.get("num_examples")
    location = _source_location(source_name, dataset)
    spec = {"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, visible]}}
    return {
        "name": name,
        "digest": _digest(checksum),
        "source": location,
        "source_type": "http" if location.startswith("http") else "local",
        "schema": {"mlflow_tensorspec": {"features": json.dumps([spec]), "targets": None}},
        "profile": {"num_examples": examples, "visible_size": visible, "checksum": checksum},
    }


def dataset_inputs(folder) -> list:
    """The :class:`mlflow.entities.DatasetInput` list of a result folder (may be empty).

    Training data with context ``training``; an evaluated experiment adds its labeled digits
    with context ``evaluation`` (same files, the labeled classes).
    """
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    described = describe_dataset(folder)
    if described is None:
        return []

    def entity(name: str, profile: dict) -> Any:
        return Dataset(
            name=name,
            digest=described["digest"],
            source_type=described["source_type"],
            source=json.dumps({"uri": described["source"]}),
            schema=json.dumps(described["schema"]),
            profile=json.dumps(profile),
        )

    inputs = [
        DatasetInput(
            entity(described["name"], described["profile"]),
            [InputTag(MLFLOW_DATASET_CONTEXT, "training")],
        )
    ]
    evaluation = folder.evaluation
    if evaluation:
        classes = evaluation.get("classes")
        label = f" digits {''.join(map(str, classes))}" if isinstance(classes, list) else ""
        profile = {
            "n_train": evaluation.get("n_train"),
            "n_test": evaluation.get("n_test"),
            "checksum": described["profile"]["checksum"],
        }
        inputs.append(
            DatasetInput(
                entity(f"{described['name']} labeled{label}", profile),
                [InputTag(MLFLOW_DATASET_CONTEXT, "evaluation")],
            )
        )
    return inputs


def _digest(checksum: str) -> str:
    try:
        from mlflow.utils.validation import MAX_DATASET_DIGEST_SIZE as limit
    except ImportError:  # pragma: no cover - older MLflow
        limit = DIGEST_LENGTH
    text = checksum.split(":", 1)[-1]  # "sha256:<hex>" -> "<hex>"
    return text[:limit]


def _source_location(source_name: str, dataset: dict) -> str:
    """URL of the first mirror for downloaded sources, else the local path or source name."""
    if dataset.get("path"):
        return str(dataset["path"])
    try:
        from sparseae.data import get_source

        source = get_source(source_name)
    except Exception:  # noqa: BLE001 - an unknown source is described by its name
        return source_name
    if source.mirrors and source.files:
        return source.mirrors[0] + source.files[0].name
    return f"sparseae.data:{source_name}"
