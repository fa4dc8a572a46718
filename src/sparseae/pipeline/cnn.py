"""The convolution-and-pooling exercise: three steps of an experiment with a ``cnn`` section.

``prepare_images``: the labeled train and test images, read once into ``cnn_images.npz``;
``convolve_pool`` chunk ``k`` (from 1): features ``[(k−1)·F, k·F)``, F =
``cnn.features_per_chunk``, convolved over every image and mean-pooled into ``pooled/{k}.npz``;
``classify_pooled``: softmax on the pooled features and on raw pixels. The convolved maps
(gigabytes) live only for one batch of images, so a pooling setting recomputes the pooled
chunks, never the features. Every file carries the key of what decides it; a foreign one is
refused.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from sparseae import data as datasets
from sparseae.config import ConfigError, fingerprint
from sparseae.config.rules import cnn_range
from sparseae.data import stl10
from sparseae.errors import DatasetError, ResultFileError
from sparseae.identity import key_of
from sparseae.io import ParameterFileError, atomic_path, read_npz, write_json
from sparseae.model import autoencoder, softmax
from sparseae.model.convolution import convolve, fold_whitening, mean_pool
from sparseae.pipeline.chunks import refuse_foreign
from sparseae.pipeline.experiment import load_patches, load_theta

log = logging.getLogger(__name__)

#: Images convolved at once: their windows (patch² × channels values per position) stay small.
BATCH = 500


def pooling_config(experiment: Mapping) -> dict:
    """The ``cnn`` settings that decide the pooled chunks (all but the classifier's)."""
    cnn = experiment["cnn"]
    return {k: copy.deepcopy(cnn[k]) for k in ("images", "pool_size", "features_per_chunk")}


def num_pooled_chunks(experiment: Mapping) -> int:
    """Pooled chunks of an experiment: the hidden units, ``features_per_chunk`` at a time."""
    return -(-experiment["model"]["hidden_size"] // experiment["cnn"]["features_per_chunk"])


def chunk_key(trajectory: Mapping, pooling: Mapping, k: int) -> str:
    """The key of pooled chunk ``k``: the features' trajectory, the pooling, the chunk."""
    return key_of({"trajectory_key": fingerprint(trajectory), "pooling": pooling, "chunk": k})


def labeled_images(images: Mapping, resources="resources") -> dict:
    """``{part: (images H × W × C × n, labels)}`` of the train and test ranges of ``images``."""
    folder = Path(resources) / images["source"]
    if images["source"] == "mnist":
        X, labels = datasets.load_mnist(folder, images["split"] or "test")
        side = int(round(np.sqrt(X.shape[0])))
        # Columns are images flattened column-major: Fortran order restores rows × columns.
        loaded = dict.fromkeys(("train", "test"), (X.reshape(side, side, 1, -1, order="F"), labels))
    else:  # stl10: the `classes` of the split of each part's name, resized, or UFLDL's .mat
        classes, size, loaded = images["classes"] or stl10.TUTORIAL_CLASSES, images["size"], {}
        for p in ("train", "test"):
            mat = images[p].get("path")  # absent: keys of results from before it stay
            load = stl10.load_mat_subset if mat else stl10.load_subset
            loaded[p] = load(mat or folder, p, classes, size)
    parts = {}
    for part, (X, labels) in loaded.items():
        (start, stop), where = cnn_range(images, part), images[part].get("path")
        if stop > labels.size:  # a smaller copy of the files than the source's own
            raise DatasetError(
                f"cnn.images.{part} = {start}..{stop}, but {where or folder} holds {labels.size} "
                f"such images; allowed: stop <= {labels.size}; use the whole files or lower it"
            )
        parts[part] = X[..., start:stop], labels[start:stop]
    return parts


def prepare_images(output, *, name: str, images: Mapping, resources="resources") -> dict:
    """Rule ``prepare_images``: ``cnn_images.npz`` (``train``, ``test``, ``train_labels``,
    ``test_labels``, ``key`` of ``images``), read once for every pooled chunk and the classifier."""
    (train, train_labels), (test, test_labels) = labeled_images(images, resources).values()
    arrays = dict(train=train, train_labels=train_labels, test=test, test_labels=test_labels)
    with atomic_path(output, suffix=".npz") as tmp:
        np.savez(tmp, **arrays, key=np.array(key_of(images)))
    shapes = {member: array.shape for member, array in arrays.items()}
    log.info("%s: wrote %s: %s", name, output, shapes)
    return shapes


def _read_keyed(path, members: list, what: str, expected: str, name: str) -> dict:
    """``members`` of a result file, refused unless it carries the key ``expected``."""
    fix = "delete it and rerun"
    try:
        found = read_npz(path, [*members, "key"], label=f"{what} {path}")
    except (FileNotFoundError, ParameterFileError) as err:
        raise ResultFileError(f"{err}; {fix}") from None
    refuse_foreign(path, f"{what} key", str(found["key"][()]), expected, name, fix)
    return found


def read_labeled(path, *, name: str, pooling: Mapping) -> dict:
    """``{part: (images, labels)}`` of ``cnn_images.npz``, checked to hold ``cnn.images``."""
    members, expected = ["train", "train_labels", "test", "test_labels"], key_of(pooling["images"])
    found = _read_keyed(path, members, "labeled images", expected, name)
    return {part: (found[part], found[f"{part}_labels"]) for part in ("train", "test")}


def convolve_pool(
    output, *, k: int, theta, patches, labeled, name: str, trajectory, pooling
) -> dict:
    """Rule ``convolve_pool``: pooled chunk ``k`` (``train``, ``test``: features × rows × cols
    × n; ``key``; ``seconds``), the whitening of ``patches.npz`` folded into the features."""
    started, k = time.perf_counter(), int(k)
    v, h = trajectory["model"]["visible_size"], trajectory["model"]["hidden_size"]
    W1, _, b1, _ = autoencoder.unpack(load_theta(theta, name=name, trajectory=trajectory), v, h)
    load_patches(patches, name=name, experiment=trajectory)  # refuses another data key
    zca = read_npz(patches, [], optional=["zca", "zca_mean"], label=f"patches file {patches}")
    W, b = fold_whitening(W1, b1, zca.get("zca"), zca.get("zca_mean"))
    size, pool = pooling["features_per_chunk"], pooling["pool_size"]
    rows = slice((k - 1) * size, min(k * size, h))
    if rows.start >= h:
        raise ConfigError(
            f"pooled chunk {k} of experiment '{name}' would start at feature {rows.start}, but "
            f"model.hidden_size is {h}; allowed: chunks 1..{-(-h // size)}"
        )
    pooled = {}
    for part, (images, _) in read_labeled(labeled, name=name, pooling=pooling).items():
        patch = int(round(np.sqrt(v / images.shape[2])))
        batches = range(0, images.shape[-1], BATCH)
        convolved = (convolve(images[..., i : i + BATCH], W[rows], b[rows], patch) for i in batches)
        pooled[part] = np.concatenate([mean_pool(c, pool) for c in convolved], axis=-1)
        text = "%s: features %d..%d over %d %s images, pooled to %s (%.1f s)"
        shown = (rows.start, rows.stop - 1, images.shape[-1], part, pooled[part].shape)
        log.info(text, name, *shown, time.perf_counter() - started)
    seconds = time.perf_counter() - started
    with atomic_path(output, suffix=".npz") as tmp:
        np.savez(tmp, **pooled, key=np.array(chunk_key(trajectory, pooling, k)), seconds=seconds)
    log.info("wrote %s in %.1f s", output, seconds)
    return {"features": (rows.start, rows.stop), "seconds": seconds}


def read_pooled(chunks: Sequence, *, name: str, trajectory, pooling) -> dict:
    """``{"train", "test": features × n}`` and ``seconds`` of pooled chunks 1..K, each checked."""
    parts, seconds = {"train": [], "test": []}, 0.0
    for k, path in enumerate(chunks, start=1):
        expected = chunk_key(trajectory, pooling, k)
        members = _read_keyed(path, ["train", "test", "seconds"], "pooled chunk", expected, name)
        seconds += float(members["seconds"])
        for part, values in parts.items():
            values.append(members[part])
    pooled = {p: np.concatenate(v).reshape(-1, v[0].shape[-1]) for p, v in parts.items()}
    return {**pooled, "seconds": seconds, "shape": parts["train"][0].shape[1:3]}


def classify_pooled(chunks, output, *, labeled, name: str, trajectory, pooling, settings) -> dict:
    """Rule ``classify_pooled``: ``cnn_evaluation.json``, softmax test accuracy on the pooled
    features and on raw pixels (the same images), the sizes and the times."""
    pooled = read_pooled(chunks, name=name, trajectory=trajectory, pooling=pooling)
    (train, y_train), (test, y_test) = read_labeled(labeled, name=name, pooling=pooling).values()
    result, seconds = {}, {"convolve_pool": pooled["seconds"]}
    inputs = {"": (pooled["train"], pooled["test"])}
    inputs["_raw"] = (train.reshape(-1, train.shape[-1]), test.reshape(-1, test.shape[-1]))
    for suffix, (X_train, X_test) in inputs.items():
        started = time.perf_counter()
        model = softmax.fit(X_train, y_train, **settings)
        result[f"accuracy{suffix}"] = float(np.mean(model.predict(X_test) == y_test))
        result[f"softmax{suffix}"] = {"iterations": model.n_iter, "converged": model.converged}
        seconds[f"softmax{suffix}"] = time.perf_counter() - started
    rows, cols = (int(n) for n in pooled["shape"])
    sizes = {"n_train": int(y_train.size), "n_test": int(y_test.size), "pooled_rows": rows}
    sizes.update(features=trajectory["model"]["hidden_size"], pooled_cols=cols)
    sizes.update(pooled_features=pooled["train"].shape[0])
    metrics = {"cnn_accuracy": result["accuracy"], "cnn_accuracy_raw": result["accuracy_raw"]}
    record = {"experiment": name, "trajectory_key": fingerprint(trajectory), **result, **sizes}
    write_json(output, {**record, "seconds": seconds, "metrics": metrics})
    text = "%s: test accuracy %.4f on %d pooled features, %.4f on raw pixels (%d test images)"
    shown = (sizes["pooled_features"], result["accuracy_raw"], sizes["n_test"])
    log.info(text, name, result["accuracy"], *shown)
    return record
