"""Data sources: a registry, verified downloads and loaders (``ufldl-images``, ``olshausen-raw``
whitened here, ``mnist``, the offline default ``sample-photos``, ``image-folder``)."""

from sparseae.data.api import dataset_checksum, fetch, load_images, load_mnist
from sparseae.data.download import file_digests
from sparseae.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from sparseae.data.images import load_mat_images, sample_photo_files
from sparseae.data.sources import SOURCES, FileSpec, Source, get_source, mirrors_from_config
from sparseae.errors import ChecksumError, DatasetError, DownloadError

__all__ = [
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "SOURCES",
    "ChecksumError",
    "DatasetError",
    "DownloadError",
    "FileSpec",
    "Source",
    "dataset_checksum",
    "fetch",
    "file_digests",
    "get_source",
    "load_images",
    "load_mat_images",
    "load_mnist",
    "mirrors_from_config",
    "read_idx",
    "sample_photo_files",
]
