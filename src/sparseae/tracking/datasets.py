"""The data a run trained (and was evaluated) on, as MLflow dataset inputs."""

from __future__ import annotations

import json


def dataset_inputs(folder) -> list:
    """The :class:`mlflow.entities.DatasetInput` list of a result folder (may be empty)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
    from mlflow.utils.validation import MAX_DATASET_DIGEST_SIZE

    checksum = folder.summary.get("dataset_checksum")
    block = folder.config.get("experiment", folder.config)
    dataset = block.get("dataset") if isinstance(block, dict) else None
    if not isinstance(checksum, str) or not isinstance(dataset, dict):
        return []
    source_name = str(dataset.get("source", "unknown"))
    split = dataset.get("split")
    name = f"{source_name}-{split}" if split else source_name
    visible = (block.get("model") or {}).get("visible_size")
    location = _source_location(source_name, dataset)
    spec = {"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, visible]}}
    schema = {"mlflow_tensorspec": {"features": json.dumps([spec]), "targets": None}}

    def entry(entity_name: str, profile: dict, context: str):
        entity = Dataset(
            name=entity_name,
            digest=checksum.split(":", 1)[-1][:MAX_DATASET_DIGEST_SIZE],  # "sha256:<hex>"
            source_type="http" if location.startswith("http") else "local",
            source=json.dumps({"uri": location}),
            schema=json.dumps(schema),
            profile=json.dumps(profile),
        )
        return DatasetInput(entity, [InputTag(MLFLOW_DATASET_CONTEXT, context)])

    examples = folder.summary.get("num_examples")
    profile = {"num_examples": examples, "visible_size": visible, "checksum": checksum}
    inputs = [entry(name, profile, "training")]
    evaluation = folder.evaluation
    if evaluation:
        classes = evaluation.get("classes")
        label = f" digits {''.join(map(str, classes))}" if isinstance(classes, list) else ""
        profile = {"n_train": evaluation.get("n_train"), "n_test": evaluation.get("n_test")}
        profile["checksum"] = checksum
        inputs.append(entry(f"{name} labeled{label}", profile, "evaluation"))
    return inputs


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
