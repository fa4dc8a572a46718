"""Patch sampling (offsets, flattening, validation) and normalizeData (docs/model.md)."""

from __future__ import annotations

import numpy as np
import pytest

from sparseae.data.patches import normalize_patches, sample_patches

pytestmark = pytest.mark.fast


def _coordinate_images(height=512, width=512, count=10):
    """Images whose pixel value encodes (row, column, image): ``1e6 n + 1e3 row + column``."""
    rows = np.arange(height)[:, None, None]
    cols = np.arange(width)[None, :, None]
    which = np.arange(count)[None, None, :]
    return (1e6 * which + 1e3 * rows + cols).astype(np.float64)


def _decode(values):
    values = np.rint(values).astype(np.int64)
    return values // 1_000_000, (values // 1000) % 1000, values % 1000


def test_offsets_are_zero_based_and_reach_the_last_position():
    images = _coordinate_images()
    patches = sample_patches(images, 8, 10_000, np.random.default_rng(0))
    assert patches.shape == (64, 10_000) and patches.dtype == np.float64
    which, rows, cols = _decode(patches[0])  # top-left pixel of every patch
    assert rows.min() == 0 and cols.min() == 0
    assert rows.max() == 504 and cols.max() == 504  # 512 - 8, inclusive
    assert len(np.unique(rows)) == 505 and len(np.unique(cols)) == 505
    assert set(np.unique(which)) == set(range(10))


def test_flattening_is_column_major():
    images = _coordinate_images(40, 30, 3)
    p = 5
    patches = sample_patches(images, p, 200, np.random.default_rng(1))
    which, rows, cols = _decode(patches)
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    # element a + b*p is pixel (row0 + a, col0 + b): rows vary fastest, like MATLAB patch(:)
    expected_a = np.broadcast_to(a.ravel(order="F")[:, None], rows.shape)
    expected_b = np.broadcast_to(b.ravel(order="F")[:, None], cols.shape)
    np.testing.assert_array_equal(rows - rows[0], expected_a)
    np.testing.assert_array_equal(cols - cols[0], expected_b)
    assert np.all(which == which[0])  # one image per patch
    # and every patch equals a direct slice of its image
    for i in range(0, 200, 37):
        r0, c0, n = rows[0, i], cols[0, i], which[0, i]
        np.testing.assert_array_equal(
            patches[:, i], images[r0 : r0 + p, c0 : c0 + p, n].ravel(order="F")
        )


def test_non_square_images_use_their_own_ranges():
    images = _coordinate_images(20, 9, 2)
    patches = sample_patches(images, 4, 3000, np.random.default_rng(2))
    _, rows, cols = _decode(patches[0])
    assert rows.max() == 16 and cols.max() == 5 and rows.min() == 0 and cols.min() == 0


def test_patch_as_large_as_the_image_is_the_image():
    images = _coordinate_images(6, 6, 2)
    patches = sample_patches(images, 6, 10, np.random.default_rng(3))
    which, _, _ = _decode(patches[0])
    for i in range(10):
        np.testing.assert_array_equal(patches[:, i], images[:, :, which[i]].ravel(order="F"))


def test_seeded_and_reproducible():
    images = np.random.default_rng(9).standard_normal((64, 64, 3))
    a = sample_patches(images, 8, 100, np.random.default_rng(7))
    b = sample_patches(images, 8, 100, np.random.default_rng(7))
    c = sample_patches(images, 8, 100, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("images", "patch", "message"),
    [
        (np.zeros((10, 10)), 4, "3-D"),
        (np.zeros((10, 10, 2)), 11, "larger than the images"),
        (np.zeros((10, 12, 2)), 11, "larger than the images"),
        (np.full((10, 10, 2), np.nan), 4, "non-finite"),
        (np.zeros((10, 10, 2)), 0, "patch_size must be positive"),
    ],
)
def test_bad_inputs_are_rejected_clearly(images, patch, message):
    with pytest.raises(ValueError, match=message):
        sample_patches(images, patch, 5, np.random.default_rng(0))


def test_non_finite_error_names_the_pixel():
    images = np.zeros((10, 10, 3))
    images[2, 7, 1] = np.inf
    with pytest.raises(ValueError, match="row 2, column 7, image 1"):
        sample_patches(images, 4, 5, np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        sample_patches(np.zeros((10, 10, 1)), 4, 5, 0)


def _normalize_transcription(patches):
    """UFLDL's normalizeData written out with explicit loops, independent of the module."""
    pix, num = patches.shape
    centred = patches.copy()
    for j in range(num):
        centred[:, j] -= sum(patches[:, j]) / pix
    values = centred.ravel()
    mean = values.sum() / values.size
    pstd = 3 * np.sqrt(((values - mean) ** 2).sum() / (values.size - 1))
    out = np.minimum(np.maximum(centred, -pstd), pstd) / pstd
    return (out + 1) * 0.4 + 0.1


def test_normalize_patches_matches_a_direct_transcription():
    rng = np.random.default_rng(4)
    # heavy tails so that clipping at 3σ really happens, and per-patch offsets
    patches = rng.standard_t(2, size=(64, 500)) + rng.normal(0, 5, size=500)
    out = normalize_patches(patches)
    np.testing.assert_allclose(out, _normalize_transcription(patches), rtol=0, atol=1e-14)
    assert out.min() == pytest.approx(0.1) and out.max() == pytest.approx(0.9)
    assert np.mean(out == 0.1) > 0.001  # clipping happened
    np.testing.assert_array_equal(patches, patches.copy())  # input untouched


def test_normalize_uses_ddof_1_and_per_patch_means():
    patches = np.array([[0.0, 10.0], [1.0, 12.0], [2.0, 14.0]])
    out = normalize_patches(patches)
    centred = patches - patches.mean(axis=0)
    pstd = 3 * np.std(centred, ddof=1)
    np.testing.assert_allclose(out, (np.clip(centred, -pstd, pstd) / pstd + 1) * 0.4 + 0.1)
    # with ddof=0 or a global mean the numbers differ: the test above would notice
    assert not np.isclose(pstd, 3 * np.std(centred))
    assert not np.allclose(out, (patches - patches.mean() + 1) * 0.4 + 0.1)


def test_normalize_rejects_constant_or_bad_input():
    with pytest.raises(ValueError, match="constant"):
        normalize_patches(np.ones((4, 5)))
    with pytest.raises(ValueError, match="2-D"):
        normalize_patches(np.ones(5))
    with pytest.raises(ValueError, match="non-finite"):
        normalize_patches(np.array([[1.0, np.nan], [0.0, 2.0]]))
