"""Data sources: a registry, verified downloads, and loaders.

Public names: :data:`SOURCES`, :func:`fetch`, :func:`fetch_source`, :func:`load_images`,
:func:`load_mnist`, :func:`read_idx`, :func:`dataset_checksum`, and the exceptions
:class:`DatasetError`, :class:`ChecksumError`, :class:`DownloadError`.

Sources: ``ufldl-images`` (IMAGES.mat), ``olshausen-raw`` (IMAGES_RAW.mat, whitened here),
``mnist`` (IDX files), ``sample-photos`` (the offline default; see
:mod:`sparseae.datasets.images` for what it contains) and ``image-folder``.
"""

from ..errors import ChecksumError, DatasetError, DownloadError
from .api import (
    DEFAULT_RESOURCES,
    dataset_checksum,
    fetch,
    fetch_source,
    load_images,
    load_mnist,
    source_files,
)
from .download import file_digests
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from .images import load_image_folder, load_mat_images, sample_photo_files
from .sources import MNIST_FILES, SOURCES, FileSpec, Source, get_source, mirrors_from_config

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
