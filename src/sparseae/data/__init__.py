"""Data sources: a registry, verified downloads, and loaders.

Public names: :data:`SOURCES`, :func:`fetch`, :func:`fetch_source`, :func:`load_images`,
:func:`load_mnist`, :func:`read_idx`, :func:`dataset_checksum`, and the exceptions
:class:`DatasetError`, :class:`ChecksumError`, :class:`DownloadError`.

Sources: ``ufldl-images`` (IMAGES.mat), ``olshausen-raw`` (IMAGES_RAW.mat, whitened here),
``mnist`` (IDX files), ``sample-photos`` (the offline default; see
:mod:`sparseae.data.images` for what it contains) and ``image-folder``.
"""

from sparseae.data.api import (
    DEFAULT_RESOURCES,
    dataset_checksum,
    fetch,
    fetch_source,
    load_images,
    load_mnist,
    source_files,
)
from sparseae.data.download import file_digests
from sparseae.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from sparseae.data.images import load_image_folder, load_mat_images, sample_photo_files
from sparseae.data.sources import (
    MNIST_FILES,
    SOURCES,
    FileSpec,
    Source,
    get_source,
    mirrors_from_config,
)
from sparseae.errors import ChecksumError, DatasetError, DownloadError

__all__ = [
    "DEFAULT_RESOURCES",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "MNIST_FILES",
    "SOURCES",
    "ChecksumError",
    "DatasetError",
    "DownloadError",
    "FileSpec",
    "Source",
    "dataset_checksum",
    "fetch",
    "fetch_source",
    "file_digests",
    "get_source",
    "load_image_folder",
    "load_images",
    "load_mat_images",
    "load_mnist",
    "mirrors_from_config",
    "read_idx",
    "sample_photo_files",
    "source_files",
]
