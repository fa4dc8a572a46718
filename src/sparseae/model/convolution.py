"""Convolution and pooling as UFLDL's "Convolution and Pooling" exercise defines them.

A feature learned on ``p × p × C`` patches (rows of ``W``, each a patch flattened as MATLAB's
``patch(:)``: column-major within a channel, channel after channel) is applied at every valid
position of an image, then averaged over non-overlapping ``pool × pool`` regions.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from sparseae.model.autoencoder import sigmoid_of_negated

__all__ = ["convolve", "fold_whitening", "mean_pool"]


def fold_whitening(W, b, zca=None, zca_mean=None) -> tuple[np.ndarray, np.ndarray]:
    """``(W', b')`` with ``W' = W · ZCAWhite`` and ``b' = b − W' · mean``: the features of the
    preprocessed patch ``ZCAWhite (x − mean)`` as one affine map of the raw patch ``x``, so an
    image is convolved once, never whitened position by position. ``None``: identity / zero."""
    W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if zca is not None:
        W = W @ np.asarray(zca, dtype=np.float64)
    if zca_mean is not None:
        b = b - W @ np.asarray(zca_mean, dtype=np.float64)
    return W, b


def convolve(images, W, b, patch: int) -> np.ndarray:
    """``σ(W · patch(r, c) + b)`` of every feature at every valid position of every image.

    ``images`` is ``H × W × C × n``, ``W`` features × ``patch² · C``; returns features ×
    ``(H − patch + 1)`` × ``(W − patch + 1)`` × n. One GEMM over all windows (im2col), so
    pass images in batches: the windows take ``patch² · C`` times the images' memory."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4:
        raise ValueError(f"images must be H × W × C × n, got shape {images.shape}")
    channels = images.shape[2]
    kernels = np.asarray(W).reshape((W.shape[0], patch, patch, channels), order="F")
    # windows[r, c, channel, image, a, b] = images[r + a, c + b, channel, image]
    windows = sliding_window_view(images, (patch, patch), axis=(0, 1))
    z = np.tensordot(windows, kernels, axes=([4, 5, 2], [1, 2, 3]))  # rows × cols × n × F
    z = np.negative(z + b, out=z)
    with np.errstate(over="ignore"):  # exp(−z) = inf gives σ = 0, as it should
        sigmoid_of_negated(z)
    return z.transpose(3, 0, 1, 2)


def mean_pool(convolved, pool: int) -> np.ndarray:
    """Means over non-overlapping ``pool × pool`` regions of axes 1 and 2: features × rows/pool
    × cols/pool × n (any later axes kept). Rows and columns that fill no whole region are
    dropped: the config refuses such pool sizes, photographs are cropped so."""
    features, rows, cols, *rest = np.shape(convolved)
    rows, cols = rows // pool, cols // pool
    blocks = np.asarray(convolved)[:, : rows * pool, : cols * pool]
    return blocks.reshape(features, rows, pool, cols, pool, *rest).mean(axis=(2, 4))
