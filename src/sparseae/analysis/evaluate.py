"""Self-taught-learning evaluation (UFLDL): the autoencoder trains on unlabeled digits; softmax
(same λ and budget) on hidden activations and on raw pixels is fitted on half of the labeled
digits and tested on the other half. One example per **column**."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from sparseae.analysis.visualize import plot_confusion_matrix
from sparseae.io import write_json
from sparseae.model import softmax
from sparseae.model.autoencoder import hidden_activations


def self_taught_split(
    labels: np.ndarray,
    *,
    unlabeled_digits: Sequence[int] = (5, 6, 7, 8, 9),
    labeled_digits: Sequence[int] = (0, 1, 2, 3, 4),
    train_fraction: float = 0.5,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Sorted int64 indices ``unlabeled``, ``train``, ``test`` of a self-taught split. Labeled
    digits are split per digit, so both halves keep the class proportions. The digit sets and
    ``train_fraction`` are the config's (checked there); what the labels hold is checked here."""
    labels = np.asarray(labels)
    present = set(np.unique(labels).tolist())
    missing = sorted({*unlabeled_digits, *labeled_digits} - present)
    if missing:
        raise ValueError(f"digits {missing} do not occur in labels (present: {sorted(present)})")

    unlabeled = np.flatnonzero(np.isin(labels, unlabeled_digits)).astype(np.int64)
    train_parts, test_parts = [], []
    for digit in sorted(set(labeled_digits)):  # sorted: the draws from rng in a fixed order
        members = rng.permutation(np.flatnonzero(labels == digit))
        # round half up (Python's round() is banker's rounding)
        n_train = int(np.floor(train_fraction * members.size + 0.5))
        train_parts.append(members[:n_train])
        test_parts.append(members[n_train:])
    train = np.sort(np.concatenate(train_parts)).astype(np.int64)
    test = np.sort(np.concatenate(test_parts)).astype(np.int64)
    if train.size == 0 or test.size == 0:
        raise ValueError(
            f"the split leaves {train.size} training and {test.size} test examples; "
            f"need at least one of each (labeled examples: {train.size + test.size})"
        )
    return {"unlabeled": unlabeled, "train": train, "test": test}


def take_split(
    images: np.ndarray, labels: np.ndarray, split: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``unlabeled``, ``X_train``, ``y_train``, ``X_test``, ``y_test`` of a split (copies)."""
    labels = np.asarray(labels, dtype=np.int64)
    return {
        "unlabeled": np.ascontiguousarray(images[:, split["unlabeled"]]),
        "X_train": np.ascontiguousarray(images[:, split["train"]]),
        "y_train": labels[split["train"]],
        "X_test": np.ascontiguousarray(images[:, split["test"]]),
        "y_test": labels[split["test"]],
    }


def evaluate_features(
    theta: np.ndarray,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    visible_size: int,
    hidden_size: int,
    lambda_: float = 1e-4,
    max_iter: int = 100,
    tol: float | None = None,
) -> dict:
    """Test accuracy of softmax on hidden activations and on raw pixels (a JSON-ready dict).
    One example per column; ``y_test`` may hold only labels that ``y_train`` has."""
    unseen = sorted(set(np.unique(y_test).tolist()) - set(np.unique(y_train).tolist()))
    if unseen:
        raise ValueError(f"test labels {unseen} never occur in the training labels")
    start = time.perf_counter()
    shape = dict(visible_size=visible_size, hidden_size=hidden_size)
    F_train = hidden_activations(theta, X_train, **shape)
    F_test = hidden_activations(theta, X_test, **shape)
    seconds = {"encode": time.perf_counter() - start}
    result: dict = {
        "n_train": int(y_train.size),
        "n_test": int(y_test.size),
        "n_features_features": int(F_train.shape[0]),
        "n_features_raw": int(visible_size),
    }
    settings = {"lambda": float(lambda_), "max_iter": int(max_iter), "solver": "lbfgs"}
    for name, train, test in (("features", F_train, F_test), ("raw", X_train, X_test)):
        start = time.perf_counter()
        model = softmax.fit(train, y_train, lambda_=lambda_, max_iter=max_iter, tol=tol)
        seconds[f"fit_{name}"] = time.perf_counter() - start
        result.update(scores(name, y_test, model.predict(test), model.classes))
        confusion = np.asarray(result[f"confusion_{name}"])
        support = confusion.sum(axis=1)
        per_class = np.divide(
            np.diag(confusion), support, out=np.full(support.shape, np.nan), where=support > 0
        )
        result[f"per_class_accuracy_{name}"] = [float(a) for a in per_class]
        result["classes"] = model.classes.tolist()
        settings.update({f"{k}_{name}": getattr(model, k) for k in SOFTMAX_FIGURES})
    result["softmax"] = settings
    result["seconds"] = seconds
    return result


#: What each softmax fit adds to ``softmax``: ``<figure>_features``, ``<figure>_raw``.
SOFTMAX_FIGURES = ("n_iter", "tol", "converged", "cost")


def save_evaluation(result: dict, folder: str | Path, *, extra: dict | None = None) -> dict:
    """Write ``evaluation.json`` (``result`` plus ``extra``, which may not overwrite it) and
    the two confusion figures into ``folder``; returns their paths by name."""
    folder = Path(folder)
    clash = sorted(set(extra or {}) & set(result))
    if clash:
        raise ValueError(f"extra would overwrite result keys {clash}")
    paths = {f"confusion_{name}": folder / f"confusion_{name}.png" for name in ("features", "raw")}
    labels = {"features": "softmax on hidden-layer features", "raw": "softmax on raw pixels"}
    plot_confusions(result, labels, paths)
    # the JSON last: its presence means the figures are there too
    paths["evaluation"] = folder / "evaluation.json"
    record = {**result, **(extra or {})}
    write_json(paths["evaluation"], {**record, **evaluation_blocks(record)})
    return paths


#: Nested sections of an evaluation whose numbers are measurements (metric names start with
#: these after the section's name); the rest of a section is settings.
MEASURED = {"softmax": ("n_iter_", "converged_", "tol_", "cost_"), "seconds": ("",)}
#: Entries kept in ``evaluation.json`` and its figures only (whole matrices, the labels).
FILE_ONLY = ("classes", "confusion_features", "confusion_raw")


def evaluation_blocks(record: Mapping) -> dict:
    """The ``metrics`` and ``params`` blocks of ``evaluation.json``: what MLflow shows of it."""
    metrics: dict = {}
    params: dict = {}
    classes = record.get("classes")

    def section(prefix: str, values: Mapping, measured: tuple) -> None:
        for key, value in values.items():
            name = f"{prefix}.{key}"
            if isinstance(value, Mapping):
                section(name, value, measured)
            elif any(key.startswith(p) for p in measured) and isinstance(value, int | float):
                metrics[name] = value
            else:
                params[f"evaluation.{name}"] = value

    for key, value in record.items():
        if key in FILE_ONLY or key in ("metrics", "params"):
            continue
        if isinstance(value, Mapping):
            section(key, value, MEASURED.get(key, ()))
        elif isinstance(value, list):  # per-class figures: one metric per class label
            labels = classes if len(classes or ()) == len(value) else range(len(value))
            metrics.update({f"{key}.{label}": v for label, v in zip(labels, value, strict=True)})
        elif isinstance(value, int) and not isinstance(value, bool):
            params[f"evaluation.{key}"] = value  # counts such as n_train
        elif isinstance(value, float):
            metrics[key] = value
        elif isinstance(value, str | bool):
            params[f"evaluation.{key}"] = value
    return {"metrics": metrics, "params": params}


def scores(name: str, y_true: np.ndarray, predicted: np.ndarray, classes) -> dict:
    """``accuracy_<name>`` and ``confusion_<name>`` (:func:`confusion_matrix`) of a prediction."""
    confusion = confusion_matrix(y_true, predicted, np.asarray(classes))
    accuracy = float(np.mean(predicted == y_true))
    return {f"accuracy_{name}": accuracy, f"confusion_{name}": confusion.tolist()}


def plot_confusions(result: Mapping, labels: Mapping[str, str], paths: Mapping) -> None:
    """Each ``confusion_<name>`` of ``result`` at ``paths["confusion_<name>"]``, titled by
    ``labels[name]`` and its test accuracy."""
    for name, label in labels.items():
        title = f"{label}: test accuracy {100 * result[f'accuracy_{name}']:.2f}%"
        matrix, path = result[f"confusion_{name}"], paths[f"confusion_{name}"]
        plot_confusion_matrix(matrix, result["classes"], path, title)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Counts with row = true class, column = predicted class, both in ``classes`` order."""
    k = classes.size
    rows = np.searchsorted(classes, y_true)
    cols = np.searchsorted(classes, y_pred)
    return np.bincount(rows * k + cols, minlength=k * k).reshape(k, k).astype(np.int64)
