"""Data sources: a registry, verified downloads and loaders (``ufldl-images``, ``olshausen-raw``
whitened here, ``mnist``, ``stl10`` (see :mod:`sparseae.data.stl10`), the offline default
``sample-photos``, ``image-folder``). The rest lies in the submodules: ``sources`` (registry),
``download``, ``idx``, ``images``, ``stl10``, ``patches``, ``whitening``."""

from sparseae.data.api import dataset_checksum, fetch, fetch_source, load_images, load_mnist
from sparseae.data.download import file_digests
from sparseae.data.sources import SOURCES, get_source
from sparseae.errors import DatasetError

__all__ = [
    "SOURCES",
    "DatasetError",
    "dataset_checksum",
    "fetch",
    "fetch_source",
    "file_digests",
    "get_source",
    "load_images",
    "load_mnist",
]
