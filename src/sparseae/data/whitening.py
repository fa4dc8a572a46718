"""Whitening: Olshausen's 1/f filter for whole images, and ZCA for patches.

:func:`whiten_images` remakes ``IMAGES.mat`` from ``IMAGES_RAW.mat`` (sparsenet's
``make_your_own_images``): the ramp ``rho`` of ``rho * exp(-(rho / f0)**4)`` flattens the ~1/f
amplitude spectrum (and removes the mean), the exponential rolls off the top (noise, aliasing).
:class:`ZCA` (UFLDL): each patch's mean removed (or, for the linear decoder, the mean patch),
``x_zca = U diag(1 / sqrt(s + ε)) Uᵀ x``."""

from __future__ import annotations

import numpy as np

#: Mean per-image variance after :func:`whiten_images` (Olshausen's choice).
TARGET_VARIANCE = 0.1


def whitening_filter(height: int, width: int) -> np.ndarray:
    """The gains ``rho * exp(-(rho / f0)**4)`` for ``numpy.fft.fft2`` of an image this size.
    ``rho`` is the radial frequency in cycles per ``S = max(H, W)`` pixels and ``f0 = 0.4 S``
    (the square-image formula when ``H == W``); index ``[0, 0]`` is DC, gain 0."""
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}×{width}")
    size = max(height, width)
    # Integer frequencies -n/2 … n/2-1 (even n) in FFT order, i.e. MATLAB's fftshift applied
    # to -N/2:N/2-1, exact (no rounding in rho), then in cycles per S pixels.
    fy, fx = (
        np.fft.ifftshift(np.arange(-(n // 2), n - n // 2, dtype=np.float64)) * (size / n)
        for n in (height, width)
    )
    rho = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    f0 = 0.4 * size
    return rho * np.exp(-((rho / f0) ** 4))


def whiten_images(images: np.ndarray) -> np.ndarray:
    """Whiten images (H × W, H × W × N or colour H × W × C × N; each channel alone) with
    Olshausen's filter, to mean variance 0.1 (``var`` with ``ddof=1`` as MATLAB's); raises
    ValueError for bad input or no contrast."""
    array = np.asarray(images, dtype=np.float64)
    if array.ndim not in (2, 3, 4):
        raise ValueError(f"images must be H × W or H × W × N (× C before N), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"images contain {np.count_nonzero(~np.isfinite(array))} non-finite values (NaN or inf)"
        )
    stack = array.reshape(*array.shape[:2], -1)
    height, width, count = stack.shape
    if count == 0 or height * width < 2:
        raise ValueError(f"need at least one image of two pixels, got shape {array.shape}")
    gains = whitening_filter(height, width)[:, :, None]
    spectrum = np.fft.fft2(stack, axes=(0, 1))
    whitened = np.real(np.fft.ifft2(spectrum * gains, axes=(0, 1)))
    variances = whitened.reshape(height * width, count).var(axis=0, ddof=1)
    mean_variance = float(variances.mean())
    if not mean_variance > 0:
        raise ValueError("images have no contrast left after whitening (constant images?)")
    whitened *= np.sqrt(TARGET_VARIANCE) / np.sqrt(mean_variance)
    return whitened.reshape(array.shape)


def _checked_patches(patches: np.ndarray) -> np.ndarray:
    x = np.asarray(patches, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"patches must be pixels × m (one patch per column), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("patches contain non-finite values (NaN or inf)")
    return x


class ZCA:
    """ZCA whitening of patches (pixels × m) as in UFLDL "PCA and Whitening". ``epsilon`` is
    added to the eigenvalues (UFLDL: 0.1) so noise is not amplified. After :meth:`fit`:
    ``eigenvalues_`` (decreasing), ``components_``, ``matrix_`` and ``mean_``. ``centre``:
    "patch" removes each patch's own mean ("PCA and Whitening"), "pixel" the mean patch fitted
    here ("Linear Decoders"; then ``matrix_ @ (x − mean_)`` is the whole transform)."""

    def __init__(self, epsilon: float = 0.1, centre: str = "patch"):
        if not epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        if centre not in ("patch", "pixel"):
            raise ValueError(f"centre must be 'patch' or 'pixel', got {centre!r}")
        self.epsilon, self.centre = float(epsilon), centre

    def _centred(self, x: np.ndarray) -> np.ndarray:
        if self.centre == "pixel":
            return x - self.mean_[:, None]
        return x - x.mean(axis=0, keepdims=True)

    def fit(self, patches: np.ndarray) -> ZCA:
        """Estimate the covariance of mean-removed patches (pixels × m)."""
        x = _checked_patches(patches)
        self.mean_ = x.mean(axis=1) if self.centre == "pixel" else np.zeros(x.shape[0])
        x = self._centred(x)
        sigma = x @ x.T / x.shape[1]
        # eigh on the symmetric covariance gives UFLDL's svd(sigma) up to eigenvector signs,
        # which cancel in U D Uᵀ.
        values, vectors = np.linalg.eigh(sigma)
        order = np.argsort(values)[::-1]
        self.eigenvalues_ = np.clip(values[order], 0.0, None)
        self.components_ = vectors[:, order]
        # Removing each patch's mean leaves the all-ones direction with zero variance; rounding
        # makes that eigenvalue ±1e-16, not 0. Below numpy's pinv tolerance a direction carries
        # no signal: with epsilon 0 it gets no gain (a pseudo-inverse), not 1/sqrt(rounding noise).
        floor = self.eigenvalues_[0] * max(sigma.shape) * np.finfo(np.float64).eps
        gain = (self.eigenvalues_ > floor) | (self.epsilon > 0)
        scale = np.zeros_like(self.eigenvalues_)
        scale[gain] = 1.0 / np.sqrt(self.eigenvalues_[gain] + self.epsilon)
        self.matrix_ = (self.components_ * scale) @ self.components_.T
        return self

    def transform(self, patches: np.ndarray) -> np.ndarray:
        """Remove the mean (as ``centre``) and apply the fitted whitening matrix."""
        if not hasattr(self, "matrix_"):
            raise RuntimeError("ZCA.transform called before fit")
        x = _checked_patches(patches)
        if x.shape[0] != self.matrix_.shape[0]:
            raise ValueError(
                f"patches have {x.shape[0]} pixels, ZCA was fitted on {self.matrix_.shape[0]}"
            )
        return self.matrix_ @ self._centred(x)
