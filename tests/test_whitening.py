"""Olshausen's 1/f whitening filter and UFLDL's ZCA, on synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from sparseae.data.whitening import ZCA, whiten_images, whitening_filter

pytestmark = pytest.mark.fast


def olshausen_filter(n: int) -> np.ndarray:
    """sparsenet's recipe, literally: meshgrid(-N/2:N/2-1), rho, f0 = 0.4 N, fftshift."""
    fx, fy = np.meshgrid(np.arange(-n / 2, n / 2), np.arange(-n / 2, n / 2))
    rho = np.sqrt(fx * fx + fy * fy)
    f0 = 0.4 * n
    return np.fft.fftshift(rho * np.exp(-((rho / f0) ** 4)))


def radial_profile(power: np.ndarray, rho: np.ndarray, bands: np.ndarray) -> np.ndarray:
    return np.array(
        [
            power[(rho >= lo) & (rho < hi)].mean()
            for lo, hi in zip(bands[:-1], bands[1:], strict=True)
        ]
    )


def radius(n: int) -> np.ndarray:
    k = np.fft.fftfreq(n) * n
    return np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)


@pytest.mark.parametrize("n", [8, 64, 512])
def test_square_filter_is_olshausens(n):
    np.testing.assert_allclose(whitening_filter(n, n), olshausen_filter(n), rtol=1e-14, atol=0)
    assert whitening_filter(n, n)[0, 0] == 0.0


def test_non_square_filter_uses_cycles_per_pixel():
    wide = whitening_filter(64, 128)
    square = whitening_filter(128, 128)
    assert wide.shape == (64, 128) and wide[0, 0] == 0
    # Along the long axis, frequency k is k cycles/image as for the 128×128 image ...
    np.testing.assert_allclose(wide[0, :], square[0, :], rtol=1e-14)
    # ... along the short axis, k cycles per 64 pixels is the same as 2k per 128.
    np.testing.assert_allclose(wide[1:32, 0], square[2:64:2, 0], rtol=1e-14)
    odd = whitening_filter(7, 5)
    assert odd.shape == (7, 5) and odd[0, 0] == 0
    np.testing.assert_allclose(odd[1:, :], odd[:0:-1, :])  # symmetric: the output stays real


def test_impulse_response_is_the_filter_kernel():
    n = 32
    impulse = np.zeros((n, n, 1))
    impulse[0, 0, 0] = 1.0
    out = whiten_images(impulse)[:, :, 0]
    kernel = np.real(np.fft.ifft2(olshausen_filter(n)))
    scale = out[0, 0] / kernel[0, 0]
    np.testing.assert_allclose(out, scale * kernel, atol=1e-12 * abs(out).max())
    assert abs(out.sum()) < 1e-10  # zero DC gain
    np.testing.assert_allclose(out[1:, 1:], out[:0:-1, :0:-1], atol=1e-14)  # point symmetric
    # A centre-surround kernel: positive peak at the impulse, negative ring around it (the
    # cut-off at 0.4 cycles/pixel makes the centre about two pixels wide).
    assert out[0, 0] == out.max() > 0
    assert out[0, 2] < 0 and out[2, 0] < 0 and out[1, 1] < 0
    # The cut-off is in cycles per pixel, so the kernel's shape does not depend on image size.
    big = np.zeros((128, 128))
    big[0, 0] = 1.0
    big_out = whiten_images(big)
    np.testing.assert_allclose(big_out[:4, :4] / big_out[0, 0], out[:4, :4] / out[0, 0], atol=0.01)


def test_one_over_f_images_come_out_flat_times_rolloff():
    n, count = 128, 6
    rng = np.random.default_rng(11)
    rho = radius(n)
    amplitude = np.where(rho > 0, 1.0 / np.maximum(rho, 1), 0.0)  # 1/f amplitude spectrum
    images = np.stack(
        [
            np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * amplitude))
            for _ in range(count)
        ],
        axis=2,
    )
    out = whiten_images(images)
    rolloff = np.exp(-((rho / (0.4 * n)) ** 4))
    power_in = (abs(np.fft.fft2(images, axes=(0, 1))) ** 2).mean(axis=2)
    power_out = (abs(np.fft.fft2(out, axes=(0, 1))) ** 2).mean(axis=2)
    bands = np.array([2, 4, 8, 16, 32, 48, 60])
    before = radial_profile(power_in, rho, bands)
    after = radial_profile(power_out / np.maximum(rolloff, 1e-300) ** 2, rho, bands)
    assert before[0] / before[-1] > 100  # strongly 1/f² power before
    assert after.max() / after.min() < 1.3  # flat (within noise) after, apart from the rolloff
    assert radial_profile(power_out, rho, np.array([50, 64]))[0] < 0.5 * after.mean()


def test_variance_scaling_and_invariances():
    rng = np.random.default_rng(2)
    images = rng.standard_normal((40, 40, 5))
    images[:, :, 1] *= 3.0  # a higher-contrast image keeps its higher contrast
    out = whiten_images(images)
    variances = out.reshape(-1, 5).var(axis=0, ddof=1)
    assert variances.mean() == pytest.approx(0.1, rel=1e-12)
    assert variances[1] / np.delete(variances, 1).mean() == pytest.approx(9.0, rel=0.15)
    # One global scale: affine changes of the input (contrast, offset) do not matter.
    np.testing.assert_allclose(whiten_images(7.0 * images + 100.0), out, atol=1e-10)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), 0.0, atol=1e-12)
    assert whiten_images(images[:, :, 0]).shape == (40, 40)


def test_whiten_images_bad_input():
    with pytest.raises(ValueError, match="H × W or H × W × N"):
        whiten_images(np.zeros(10))
    bad = np.ones((8, 8, 2))
    bad[0, 0, 1] = np.nan
    with pytest.raises(ValueError, match="1 non-finite"):
        whiten_images(bad)
    with pytest.raises(ValueError, match="no contrast"):
        whiten_images(np.full((8, 8, 2), 3.0))


# --------------------------------------------------------------------------- ZCA


@pytest.fixture
def correlated():
    rng = np.random.default_rng(4)
    mixing = rng.standard_normal((16, 16))
    return mixing @ rng.standard_normal((16, 5000)) + rng.standard_normal((1, 5000))


def test_zca_without_epsilon_gives_identity_covariance(correlated):
    white = ZCA(epsilon=0.0).fit(correlated).transform(correlated)
    cov = white @ white.T / white.shape[1]
    # Mean removal per patch leaves one direction (all-ones) with zero variance.
    ones = np.ones(16) / 4.0
    np.testing.assert_allclose(cov, np.eye(16) - np.outer(ones, ones), atol=1e-6)
    values = np.linalg.eigvalsh(cov)
    np.testing.assert_allclose(values[1:], 1.0, atol=1e-8)
    assert abs(values[0]) < 1e-8


def test_zca_epsilon_shrinks_eigenvalues_and_matrix_is_symmetric(correlated):
    zca = ZCA(epsilon=0.1).fit(correlated)
    white = zca.transform(correlated)
    cov = white @ white.T / white.shape[1]
    s = zca.eigenvalues_
    expected = np.sort(s / (s + 0.1))
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(cov)), expected, atol=1e-10)
    np.testing.assert_allclose(zca.matrix_, zca.matrix_.T, atol=1e-12)
    again = ZCA(0.1)
    np.testing.assert_array_equal(again.fit(correlated).transform(correlated), white)
    np.testing.assert_array_equal(again.matrix_, zca.matrix_)


def test_zca_removes_each_patch_mean_not_each_pixel_mean(correlated):
    zca = ZCA(0.1).fit(correlated)
    shifted = correlated + np.arange(correlated.shape[1])[None, :]  # a constant per patch
    np.testing.assert_allclose(zca.transform(shifted), zca.transform(correlated), atol=1e-8)
    pixel_offsets = correlated + np.arange(16)[:, None]  # a constant per pixel is kept
    assert not np.allclose(zca.transform(pixel_offsets), zca.transform(correlated))


def test_zca_errors(correlated):
    with pytest.raises(RuntimeError, match="before fit"):
        ZCA().transform(correlated)
    with pytest.raises(ValueError, match="fitted on 16"):
        ZCA().fit(correlated).transform(correlated[:9])
    with pytest.raises(ValueError, match="pixels × m"):
        ZCA().fit(correlated.ravel())
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        ZCA(-1.0)
