"""Public entry points: fetch a source, load its images or digits, checksum what was loaded."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from sparseae.data.download import ProgressCallback, ensure_files, file_digests
from sparseae.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from sparseae.data.images import (
    SAMPLE_RECIPE,
    list_image_folder,
    load_image_folder,
    load_mat_images,
    sample_photo_files,
    sample_photo_tiles,
)
from sparseae.data.sources import Source, get_source, source_from_config
from sparseae.data.stl10 import load_mat_patches, read_images
from sparseae.data.whitening import whiten_images
from sparseae.errors import DatasetError
from sparseae.io import write_json

logger = logging.getLogger("sparseae.datasets")


def _dest(source: Source, dest: str | os.PathLike | None) -> Path:
    """``dest``, or where downloads go when no folder is given: ``resources/{source}``."""
    return Path(dest) if dest is not None else Path("resources", source.name)


def _image_folder(path, dest):
    folder = path if path is not None else dest
    if folder is None:
        raise DatasetError("source 'image-folder' needs a folder of images (path or dest)")
    return folder


def fetch(
    source: str | Source,
    dest: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    *,
    config: Mapping | None = None,
    files: Iterable[str] | None = None,
    split: str | None = None,
    timeout: float = 30.0,
    retries: int = 2,
    retry_wait: float = 1.0,
    progress: ProgressCallback | None = None,
    marker: str | os.PathLike | None = None,
) -> list[Path]:
    """Make a source's files available in ``dest`` (default ``resources/<source>``; for
    ``image-folder`` the folder of images), verified; download only what is missing.

    ``config`` sets mirrors and checksums as :func:`~sparseae.data.sources.source_from_config`
    reads it; ``mirrors`` given here replace them; ``files`` or ``split`` select files;
    ``marker`` gets a JSON list of what was fetched. Returns the verified files. Raises
    ChecksumError (a wrong present file is not replaced), DownloadError or DatasetError."""
    src = source_from_config(source, config)
    if src.kind == "local":
        fetched = source_files(src, dest)
    else:
        urls = tuple(src.mirrors if mirrors is None else mirrors)
        options = dict(timeout=timeout, retries=retries, retry_wait=retry_wait, progress=progress)
        specs = src.select(files, split)
        fetched = ensure_files(specs, _dest(src, dest), urls, src.archive, **options)
    if marker is not None:
        files, where = [str(f) for f in fetched], None if dest is None else str(dest)
        write_json(marker, {"source": src.name, "split": split, "dest": where, "files": files})
    logger.info("fetched %s (%s) into %s: %d files", src.name, split, dest, len(fetched))
    return fetched


def fetch_source(source: str, dest=None, config: Mapping | None = None, **kwargs) -> list[Path]:
    """:func:`fetch` with ``config`` third, as the workflow's fetch rule and the CLI pass it."""
    return fetch(source, dest, config=config, **kwargs)


def load_images(
    source: str | Source,
    dest: str | os.PathLike | None = None,
    *,
    path: str | os.PathLike | None = None,
    whiten: bool | None = None,
    channels: int = 1,
    split: str = "unlabeled",
    count: int | None = None,
) -> np.ndarray:
    """Load a source's images as float64 ``H × W × N`` (``channels=3``: RGB ``H × W × 3 × N``,
    sample-photos; stl10 is always RGB: the first ``count`` images of ``split``).

    ``dest`` is the folder fetched to (as :func:`fetch`), ``path`` a ``.mat`` file (for stl10:
    stlSampledPatches.mat, its patches as 8 × 8 × 3 images) or image folder to read instead;
    ``whiten`` (default: the source's setting) applies
    :func:`~sparseae.data.whitening.whiten_images`."""
    src = get_source(source)
    if src.loader == "mat":
        images = load_mat_images(source_files(src, dest, path=path)[0], src.variable)
    elif src.loader == "sample-photos":
        images = sample_photo_tiles(channels=channels)
    elif src.loader == "image-folder":
        images = load_image_folder(_image_folder(path, dest))
    elif src.loader == "stl10" and path is not None:  # UFLDL's stlSampledPatches.mat
        images = load_mat_patches(path)
    elif src.loader == "stl10":
        images = read_images(_dest(src, dest) / f"{split}_X.bin", count) / 255.0
    else:
        raise DatasetError(f"source {src.name!r} holds labelled digits, not images; use load_mnist")
    if src.whiten if whiten is None else whiten:
        images = whiten_images(images)
    return images


def load_mnist(
    dest: str | os.PathLike | None, split: str = "train", num_images: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST as UFLDL's ``loadMNISTImages`` / ``loadMNISTLabels`` do.

    ``dest`` holds the IDX files (``.gz`` or not; default ``resources/mnist``); ``split`` is
    ``train`` or ``test``; ``num_images`` keeps the first ones. Returns ``X`` (float64, 784 × N,
    pixels / 255, columns column-major images) and the labels (int64)."""
    src = get_source("mnist")
    if split not in src.splits:
        raise DatasetError(f"MNIST split must be one of {', '.join(src.splits)}, got {split!r}")
    images_path, labels_path = source_files(src, dest, split=split)
    # The magic numbers fix the layouts: unsigned bytes, N × rows × cols and N.
    images, labels = read_idx(images_path, IMAGES_MAGIC), read_idx(labels_path, LABELS_MAGIC)
    if labels.shape[0] != images.shape[0]:
        raise DatasetError(
            f"{labels_path} has {labels.shape[0]} labels but {images_path} has "
            f"{images.shape[0]} images"
        )
    if num_images is not None:
        if not 1 <= num_images <= images.shape[0]:
            raise DatasetError(
                f"num_images must be in 1…{images.shape[0]} for MNIST split "
                f"{split!r}, got {num_images}"
            )
        images, labels = images[:num_images], labels[:num_images]
    count, rows, cols = images.shape
    # (N, rows, cols) → swap to (N, cols, rows) so a C-order reshape reads each image
    # column by column, i.e. img.flatten(order="F").
    X = images.transpose(0, 2, 1).reshape(count, rows * cols).T / 255.0
    return np.ascontiguousarray(X, dtype=np.float64), labels.astype(np.int64)


def source_files(
    source: str | Source,
    dest: str | os.PathLike | None = None,
    *,
    path: str | os.PathLike | None = None,
    split: str | None = None,
) -> list[Path]:
    """The files a loader reads for these arguments (what :func:`dataset_checksum` hashes)."""
    src = get_source(source)
    if src.loader == "mat" or src.loader == "stl10" and path is not None:
        return [Path(path) if path is not None else _dest(src, dest) / src.files[0].name]
    if src.loader == "sample-photos":
        return sample_photo_files()
    if src.loader == "image-folder":
        return list_image_folder(_image_folder(path, dest))
    folder, paths = _dest(src, dest), []
    for spec in src.select(split=split):
        path, plain = folder / spec.name, folder / spec.name.removesuffix(".gz")
        # UFLDL's exercises ship the decompressed files; read those when the .gz is absent.
        paths.append(plain if not path.exists() and plain.exists() else path)
    return paths


def dataset_checksum(
    source: str | Source,
    dest: str | os.PathLike | None = None,
    *,
    path: str | os.PathLike | None = None,
    split: str | None = None,
) -> str:
    """``"sha256:<hex>"`` of the source name, the sample-photo recipe and each file's name
    and sha256 (not its folder, so machines with the same files agree), for MLflow params."""
    src = get_source(source)
    digest = hashlib.sha256(f"source {src.name}\n".encode())
    if src.loader == "sample-photos":
        digest.update(f"recipe {SAMPLE_RECIPE}\n".encode())
    for file in source_files(src, dest, path=path, split=split):
        if not file.is_file():
            raise DatasetError(f"{file} does not exist; fetch source {src.name!r} first")
        digest.update(f"{file.name} {file_digests(file, ['sha256'])['sha256']}\n".encode())
    return "sha256:" + digest.hexdigest()
