"""STL-10: the binary version's reader and the UFLDL four-class subset for convolution and
pooling; or the tutorial's own ``.mat`` files (sampled patches, the subset), read instead."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sparseae.data.images import read_mat
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


def load_subset(
    folder: str | os.PathLike,
    split: str = "train",
    classes: Sequence[str] = TUTORIAL_CLASSES,
    size: int | None = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """UFLDL's subset of ``split`` (train or test): the images of ``classes`` in file order,
    relabelled 1, 2, ... in the order of ``classes``, resized to ``size`` × ``size`` (Pillow,
    bicubic, on the 8-bit RGB image; None: kept at 96 × 96).

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
    keep = np.flatnonzero(np.isin(labels, wanted))
    size = size or SIDE
    resized = [
        np.asarray(Image.fromarray(images[..., i]).resize((size, size), Image.BICUBIC))
        for i in keep
    ]
    relabel = np.zeros(len(CLASSES) + 1, dtype=np.int64)
    relabel[wanted] = np.arange(1, len(wanted) + 1)
    return np.stack(resized, axis=-1) / 255.0, relabel[labels[keep]]


def load_mat_patches(path: str | os.PathLike) -> np.ndarray:
    """``patches`` of UFLDL's ``stlSampledPatches.mat`` (192 × n: raw 8 × 8 × 3 patches in
    [0, 1], each column laid out as this package's colour patches) as images 8 × 8 × 3 × n."""
    patches = read_mat(path, ["patches"])["patches"]
    if patches.ndim != 2 or patches.shape[0] != 192 or patches.dtype.kind not in "fiu":
        raise DatasetError(
            f"{path}: variable 'patches' is {patches.dtype} {patches.shape}; expected 192 × n "
            f"numbers (8x8x3 colour patches, one a column); use the tutorial's file"
        )
    return patches.reshape(8, 8, 3, -1, order="F").astype(np.float64)


def patch_matrix(patches: np.ndarray, size: int, count: int, path) -> np.ndarray:
    """The first ``count`` patches of :func:`load_mat_patches` as the patch matrix's columns:
    the tutorial's own sample, used as it is (not sampled again)."""
    side, held = patches.shape[0], patches.shape[-1]
    if size != side or count > held:
        raise DatasetError(
            f"patches.size = {size} and patches.count = {count}, but {path} holds {held} "
            f"patches of {side}x{side}x3; allowed: size {side}, count <= {held}"
        )
    return patches.reshape(-1, held, order="F")[:, :count]


def load_mat_subset(path, split: str, classes: Sequence[str], size: int | None):
    """UFLDL's ``stlTrainSubset.mat`` (split train) or ``stlTestSubset.mat`` (test): the
    images as stored (64 × 64 × 3 × n, no resizing) and their labels 1-4 (TUTORIAL_CLASSES)."""
    names = (f"{split}Images", f"{split}Labels")
    images, labels = read_mat(path, names).values()
    labels, side = np.ravel(labels), images.shape[0] if images.ndim == 4 else 0
    outside = np.setdiff1d(labels, range(1, 5)).tolist()
    if images.shape != (side, side, 3, labels.size) or outside:
        raise DatasetError(
            f"{path}: {names[0]} is {images.shape} with {labels.size} {names[1]}, values "
            f"outside 1..4: {outside[:5] or 'none'}; expected H × W × 3 × n images and n labels "
            f"in 1..4 ({', '.join(TUTORIAL_CLASSES)}); use the tutorial's file"
        )
    if tuple(classes) != TUTORIAL_CLASSES or size not in (None, side):
        raise DatasetError(
            f"cnn.images.classes {list(classes)} and size {size}, but {path} holds the classes "
            f"{list(TUTORIAL_CLASSES)} at {side}x{side}; allowed: classes null, size null or {side}"
        )
    return images.astype(np.float64), labels.astype(np.int64)
