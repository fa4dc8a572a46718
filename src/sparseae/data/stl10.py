"""STL-10 (binary version): the reader, the UFLDL four-class subset for convolution and
pooling, and the unlabeled images as colour images ``H × W × 3 × n`` for patch sampling."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sparseae.errors import DatasetError

#: Class names in label order: label ``k`` is ``CLASSES[k - 1]``.
CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
#: The classes of UFLDL's convolution and pooling exercise, relabelled 1-4 in this order.
TUTORIAL_CLASSES = ("airplane", "car", "cat", "dog")
SIDE = 96


def read_images(path: str | os.PathLike, count: int | None = None) -> np.ndarray:
    """The first ``count`` (default all) images of an ``*_X.bin`` file: uint8 96 × 96 × 3 × n.

    The file stores each image channel by channel, each channel column by column; it is
    memory-mapped, so only the images asked for are read."""
    path, size = Path(path), 3 * SIDE * SIDE
    held = path.stat().st_size // size if path.is_file() else 0
    if not path.is_file() or path.stat().st_size % size or not held:
        raise DatasetError(
            f"{path}: not an STL-10 image file (missing, empty, or a size that is not a whole "
            f"number of {size}-byte 3x96x96 images: truncated?); fetch source 'stl10' again"
        )
    if count is not None and not 1 <= count <= held:
        raise DatasetError(f"{path} holds {held} images; asked for {count}, allowed 1..{held}")
    raw = np.memmap(path, np.uint8, "r", shape=(held, 3, SIDE, SIDE))[:count]
    # Axes of the bytes: image, channel, column, row (column-major) → row, column, channel, n.
    return np.ascontiguousarray(raw.transpose(3, 2, 1, 0))


def read_labels(path: str | os.PathLike, count: int) -> np.ndarray:
    """The ``count`` labels (1-10, int64) of a ``*_y.bin`` file, one byte each."""
    path = Path(path)
    labels = np.fromfile(path, np.uint8).astype(np.int64) if path.is_file() else np.empty(0)
    bad = np.setdiff1d(labels, range(1, 11)).tolist()
    if labels.size != count or bad:
        raise DatasetError(
            f"{path}: expected {count} labels (one per image) in 1..10, found {labels.size}, "
            f"values outside 1..10: {bad or 'none'}; fetch source 'stl10' again"
        )
    return labels


def load_unlabeled(folder: str | os.PathLike, count: int | None = None) -> np.ndarray:
    """The first ``count`` (default all 100,000: 22 GB) unlabeled images, float64 pixels / 255,
    96 × 96 × 3 × n: colour images to sample 8 × 8 × 3 patches from."""
    return read_images(Path(folder) / "unlabeled_X.bin", count) / 255.0


def load_subset(
    folder: str | os.PathLike,
    split: str = "train",
    classes: Sequence[str] = TUTORIAL_CLASSES,
    count: int | None = None,
    size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """UFLDL's subset of ``split`` (train or test): the first ``count / len(classes)`` images
    of each class in file order (all when None), relabelled 1, 2, ... in the order of
    ``classes``, resized to ``size`` × ``size`` (Pillow, bicubic, on the 8-bit RGB image).

    Returns the images (float64 pixels / 255, size × size × 3 × n, in file order) and labels."""
    from PIL import Image

    wanted = [CLASSES.index(c) + 1 for c in classes if c in CLASSES]
    if split not in ("train", "test") or len(set(wanted)) != len(classes) or not wanted:
        raise DatasetError(
            f"STL-10 subset of split {split!r}, classes {list(classes)}: allowed splits train, "
            f"test and distinct classes from {', '.join(CLASSES)}"
        )
    images = read_images(Path(folder) / f"{split}_X.bin")
    labels = read_labels(Path(folder) / f"{split}_y.bin", images.shape[3])
    per_class = None if count is None else count // len(wanted)
    keep = np.zeros(labels.size, dtype=bool)
    for label in wanted:
        found = np.flatnonzero(labels == label)
        if count is not None and (count % len(wanted) or per_class > found.size):
            raise DatasetError(
                f"STL-10 {split} subset: count {count} is not {len(wanted)} classes times at "
                f"most {found.size} images of {CLASSES[label - 1]!r}; allowed: a multiple of "
                f"{len(wanted)} up to {len(wanted) * found.size}"
            )
        keep[found[:per_class]] = True
    resized = [
        np.asarray(Image.fromarray(images[..., i]).resize((size, size), Image.BICUBIC))
        for i in np.flatnonzero(keep)
    ]
    relabel = np.zeros(len(CLASSES) + 1, dtype=np.int64)
    relabel[wanted] = np.arange(1, len(wanted) + 1)
    return np.stack(resized, axis=-1) / 255.0, relabel[labels[keep]]
