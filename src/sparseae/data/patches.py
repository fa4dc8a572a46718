"""Random image patches, flattened column-major (MATLAB ``patch(:)``; colour channel after
channel) into the columns of a pixels × num_patches matrix, and the exercise's
``normalizeData`` (docs/model.md)."""

from __future__ import annotations

import numpy as np


def sample_patches(
    images: np.ndarray, patch_size: int, num_patches: int, rng: np.random.Generator
) -> np.ndarray:
    """``num_patches`` square patches drawn uniformly from ``images`` (H × W × N, or colour
    H × W × C × N; finite).

    For each patch ``rng`` draws an image, then row and column offsets in 0 … size − patch_size
    (505 values for 8 of 512 pixels). Returns float64 ``C patch_size² × num_patches``, each
    column a patch flattened as MATLAB's ``patch(:)`` of a size × size × C array. Raises
    ValueError for bad shapes, sizes or pixels."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"images must be a 3-D array H × W × N (or 4-D H × W × C × N, image index last), "
            f"got shape {images.shape}"
        )
    if not np.issubdtype(images.dtype, np.number) or np.iscomplexobj(images):
        raise ValueError(f"images must be real numbers, got dtype {images.dtype}")
    patch_size, num_patches = int(patch_size), int(num_patches)
    for key, value in (("patch_size", patch_size), ("num_patches", num_patches)):
        if value < 1:
            raise ValueError(f"{key} must be positive, got {value}")
    images = images[:, :, None] if images.ndim == 3 else images
    height, width, channels, count = images.shape
    if count < 1:
        raise ValueError("images holds no image (last axis has length 0)")
    if patch_size > height or patch_size > width:
        raise ValueError(f"patch_size {patch_size} is larger than the images ({height} × {width})")
    # One reduction instead of an image-sized boolean temporary; locate the culprit only if
    # the sum is not finite (it also overflows for absurdly large but finite pixels).
    if not np.isfinite(np.sum(images, dtype=np.float64)) and not np.all(np.isfinite(images)):
        bad = np.argwhere(~np.isfinite(images))[0]
        raise ValueError(
            f"images contain non-finite values (first at row {bad[0]}, column {bad[1]}, "
            f"image {bad[3]})"
        )

    which = rng.integers(0, count, size=num_patches)
    rows = rng.integers(0, height - patch_size + 1, size=num_patches)
    cols = rng.integers(0, width - patch_size + 1, size=num_patches)

    step = np.arange(patch_size)
    # Index arrays shaped (num, channel, b, a): a (row within the patch) varies fastest once
    # flattened, then b, then the channel: MATLAB's column-major patch(:).
    r = (rows[:, None] + step)[:, None, None, :]
    c = (cols[:, None] + step)[:, None, :, None]
    channel = np.arange(channels)[None, :, None, None]
    gathered = images[r, c, channel, which[:, None, None, None]]
    return np.ascontiguousarray(gathered.reshape(num_patches, -1).T, dtype=np.float64)


def normalize_patches(patches: np.ndarray) -> np.ndarray:
    """The exercise's ``normalizeData`` on pixels × patches (a new float64 array). Remove each
    column's mean, clip to ``±pstd = ±3 std`` (``ddof=1``), divide by ``pstd``, map to
    ``[0.1, 0.9]``. Raises ValueError for constant patches or bad input."""
    p = np.array(patches, dtype=np.float64, copy=True)
    if p.ndim != 2:
        raise ValueError(f"patches must be 2-D (pixels × patches), got shape {p.shape}")
    if p.size < 2:
        raise ValueError(f"patches must hold at least two values for std(ddof=1), got {p.size}")
    if not np.all(np.isfinite(p)):
        raise ValueError("patches contain non-finite values")
    p -= p.mean(axis=0, keepdims=True)
    pstd = 3.0 * np.std(p, ddof=1)
    if not pstd > 0:
        raise ValueError("every patch is constant: standard deviation is 0, cannot normalize")
    np.clip(p, -pstd, pstd, out=p)
    return (p / pstd + 1.0) * 0.4 + 0.1
