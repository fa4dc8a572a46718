"""Reader for MNIST's IDX files, plain or gzip-compressed: two zero bytes, a type byte, the
number of dimensions, one big-endian uint32 per dimension, then the data in C order (magic
``2051``: images, ubyte 3-D; ``2049``: labels, ubyte 1-D)."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from sparseae.errors import DatasetError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain, told by content) into a native-endian array. Raises
    DatasetError, naming the file, when the magic number (``expected_magic`` if given), type or
    size disagree with the header."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"IDX file {path} does not exist") from None
    except OSError as exc:
        raise DatasetError(f"cannot read IDX file {path}: {exc}") from None
    # Decide by content, not by name: a .gz that was already decompressed still reads.
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{path} is a damaged gzip file: {exc}") from None
    if len(raw) < 4:
        raise DatasetError(f"{path} is too short ({len(raw)} bytes) to be an IDX file")
    magic = int.from_bytes(raw[:4], "big")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES or raw[3] == 0:
        raise DatasetError(
            f"{path} is not an IDX file: magic number {magic} (0x{magic:08x}); IDX files start "
            f"with 0x0000, a type byte in {sorted(_TYPES)} and a dimension count"
        )
    if expected_magic is not None and magic != expected_magic:
        raise DatasetError(f"{path}: magic number {magic}, expected {expected_magic}")
    dtype, ndim = np.dtype(_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: header of {ndim} dimensions is cut short")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        raise DatasetError(
            f"{path}: header says shape {shape} ({expected} data bytes) but the file holds "
            f"{found} data bytes; the file is truncated or not what its header claims"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)
