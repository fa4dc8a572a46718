"""display_network (exact original algorithm), PNG output and training plots."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sparseae.analysis.visualize import (
    display_network,
    grid_shape,
    plot_cost_curve,
    plot_rhohat,
    plot_units,
    save_filter_grid,
    save_png,
    scale_tiles,
)
from sparseae.model import autoencoder as ae

pytestmark = pytest.mark.fast


@pytest.mark.parametrize(
    ("M", "expected"),
    [
        (25, (5, 5)),
        (196, (14, 14)),
        (8, (2, 4)),  # n: 3 → 4 (8 mod 3 ≠ 0 and 3 < 1.2√8 = 3.39)
        (10, (3, 4)),  # n = 4 already ≥ 1.2√10 = 3.79: stop although 10 mod 4 ≠ 0
        (200, (12, 17)),  # 15 → 16 → 17, then 17 ≥ 16.97
        (2, (1, 2)),
        (1, (1, 1)),
    ],
)
def test_grid_rule(M, expected):
    assert grid_shape(M) == expected


def test_grid_with_explicit_columns():
    assert grid_shape(25, cols=10) == (3, 10)


@pytest.mark.parametrize(("pixels", "filters", "size"), [(64, 25, 46), (784, 196, 407)])
def test_sizes_from_the_exercise(pixels, filters, size):
    A = np.random.default_rng(0).standard_normal((pixels, filters))
    assert display_network(A).shape == (size, size)


def test_hand_computed_example():
    # L = 4 (2×2 tiles), M = 2 → grid 1 × 2, array 4 × 7. Global mean of 1..8 is 4.5.
    A = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0], [4.0, 8.0]])
    out = display_network(A)
    c0 = np.array([-3.5, -2.5, -1.5, -0.5]) / 3.5
    c1 = np.array([0.5, 1.5, 2.5, 3.5]) / 3.5
    expected = -np.ones((4, 7))
    expected[1:3, 1:3] = c0.reshape(2, 2, order="F")  # column-major tile
    expected[1:3, 4:6] = c1.reshape(2, 2, order="F")
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-15)


def test_borders_order_normalisation_and_orientation():
    rng = np.random.default_rng(1)
    sz, M = 3, 6  # grid 2 × 3
    A = rng.standard_normal((sz * sz, M)) * np.arange(1, M + 1)  # very different scales
    out = display_network(A)
    assert out.shape == (1 + 2 * 4, 1 + 3 * 4)
    border = np.ones(out.shape, dtype=bool)
    centred = A - A.mean()
    for k in range(M):
        i, j = divmod(k, 3)  # row by row
        tile = out[1 + 4 * i : 4 + 4 * i, 1 + 4 * j : 4 + 4 * j]
        border[1 + 4 * i : 4 + 4 * i, 1 + 4 * j : 4 + 4 * j] = False
        column = centred[:, k] / np.abs(centred[:, k]).max()
        np.testing.assert_allclose(tile, column.reshape(sz, sz, order="F"), atol=1e-15)
        assert np.abs(tile).max() == pytest.approx(1.0)  # per-filter max-abs scaling
        assert tile[1, 0] == pytest.approx(column[1])  # down the first column first
    assert np.all(out[border] == -1.0)
    assert out.min() >= -1 and out.max() <= 1


def test_unused_tiles_stay_background_and_constant_filters_do_not_produce_nan():
    # Every column constant: after removing the global mean all are 0 (MATLAB: 0/0 = NaN).
    constant = display_network(np.ones((4, 2)))
    assert np.all(np.isfinite(constant))
    np.testing.assert_array_equal(constant[1:3, 1:3], 0.0)
    padded = display_network(np.random.default_rng(2).standard_normal((4, 5)), cols=3)
    assert padded.shape == (7, 10)
    np.testing.assert_array_equal(padded[4:6, 7:9], -1.0)  # 6th slot unused: background


def test_display_network_validates_input():
    with pytest.raises(ValueError, match="not a square"):
        display_network(np.zeros((10, 4)))
    with pytest.raises(ValueError, match="2-D"):
        display_network(np.zeros(16))
    with pytest.raises(ValueError, match="non-finite"):
        display_network(np.full((4, 2), np.nan))


def test_filters_of_the_octave_trained_model(tmp_path, reference):
    ref = reference("sae_train_small")
    W1 = ae.unpack(ref["opttheta"].reshape(-1), int(ref["visible"]), int(ref["hidden"]))[0]
    grid = display_network(W1.T)
    assert grid.shape == (46, 46)
    path = tmp_path / "filters.png"
    save_png(grid, path, scale=4)
    with Image.open(path) as image:
        assert image.size == (184, 184) and image.mode == "L"


def test_filter_grid_keeps_the_exact_array_and_draws_it_large_and_numbered(tmp_path, reference):
    ref = reference("sae_train_small")
    W1 = ae.unpack(ref["opttheta"].reshape(-1), int(ref["visible"]), int(ref["hidden"]))[0]
    array = save_filter_grid(W1.T, tmp_path / "filters.png", tmp_path / "filters_array.npy")
    # The array file is display_network's, bit for bit: the one fidelity checks compare.
    exact = np.load(tmp_path / "filters_array.npy", allow_pickle=False)
    assert exact.dtype == np.float64 and np.array_equal(exact, display_network(W1.T))
    assert np.array_equal(array, exact)
    with Image.open(tmp_path / "filters.png") as image:
        assert image.size == (46 * 14, 46 * 14) and image.mode == "RGB"  # ≥ 600 px, integer
        pixels = np.asarray(image)
    scale = 14
    # Nearest neighbour: away from the numbers each array pixel is a flat grey block.
    expected = np.rint((np.clip(exact, -1, 1) + 1) * 127.5).astype(np.uint8)
    tile = (slice(5 * scale, 9 * scale), slice(1 * scale, 9 * scale))  # lower half of tile 1
    assert np.array_equal(
        pixels[tile][..., 0], np.repeat(np.repeat(expected[5:9, 1:9], scale, axis=0), scale, axis=1)
    )
    # Unit numbers: yellow text (red ≠ blue) in the top-left corner of tiles 1 and 25 only.
    yellow = (pixels[..., 0].astype(int) - pixels[..., 2]) > 100
    assert yellow[scale : 4 * scale, scale : 4 * scale].any()  # "1"
    last = (1 + 4 * 9) * scale
    assert yellow[last : last + 3 * scale, last : last + 4 * scale].any()  # "25"
    assert not yellow[5 * scale : 9 * scale, :].any()  # lower halves of the first row


def test_filter_grid_leaves_numbers_out_where_they_do_not_fit(tmp_path):
    A = np.random.default_rng(5).standard_normal((4, 900))  # 900 tiles of 2×2 pixels
    save_filter_grid(A, tmp_path / "f.png", tmp_path / "f.npy")
    with Image.open(tmp_path / "f.png") as image:
        pixels = np.asarray(image)
    assert max(pixels.shape[:2]) >= 600
    assert np.array_equal(pixels[..., 0], pixels[..., 2])  # grey only: no number drawn


def test_save_png_grey_map_and_nearest_neighbour(tmp_path):
    array = np.array([[-1.0, 0.0], [1.0, 0.5]])
    path = tmp_path / "sub" / "a.png"
    save_png(array, path, scale=3)
    with Image.open(path) as image:
        pixels = np.asarray(image)
    assert pixels.shape == (6, 6) and pixels.dtype == np.uint8
    assert pixels[0, 0] == 0 and pixels[0, 3] == 128 and pixels[3, 0] == 255
    assert pixels[3, 3] == round(1.5 * 127.5)
    np.testing.assert_array_equal(pixels[:3, :3], 0)  # blocks, no interpolation
    assert [p.name for p in path.parent.iterdir()] == ["a.png"]
    with pytest.raises(ValueError, match="non-finite"):
        save_png(np.array([[np.nan]]), tmp_path / "b.png")


def _records(n=120, chunk=40):
    return [
        {"iteration": i, "cost": 50.0 / i + 1.6, "grad_norm": 1.0, "fun_evals": i, "seconds": i}
        for i in range(1, n + 1)
    ]


def _legend_texts(fig):
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_plot_cost_curve(tmp_path):
    records = _records()
    iterations = np.array([r["iteration"] for r in records])
    costs = np.array([r["cost"] for r in records])
    fig = plot_cost_curve(iterations, costs, tmp_path / "a.png", chunk_boundaries=[40, 80])
    ax = fig.axes[0]
    assert "cost" in ax.get_title().lower() and ax.get_xlabel() and ax.get_ylabel()
    assert ax.get_yscale() == "log"
    assert _legend_texts(fig) == ["cost J(θ)", "chunk boundary (warm restart)"]
    assert len(ax.lines) == 3  # the curve and two boundaries
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), costs)
    fig2 = plot_cost_curve(iterations, costs, tmp_path / "b.png", chunk_boundaries=[40])
    np.testing.assert_array_equal(fig2.axes[0].lines[0].get_xdata(), iterations)
    for name in ("a.png", "b.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size[0] > 300
    with pytest.raises(ValueError, match="iterations but"):
        plot_cost_curve(iterations, costs[:-1], tmp_path / "c.png")


def test_cost_curve_labels_its_real_range(tmp_path):
    # A run that ends between 0.36 and 0.5: the ticks are labelled inside that range.
    iterations = np.arange(1, 401)
    costs = 0.36 + 0.14 * np.exp(-iterations / 60)
    fig = plot_cost_curve(iterations, costs, tmp_path / "a.png")
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    labelled = [t for t in ax.get_yticks() if low <= t <= high]
    assert ax.get_yscale() == "log" and len(labelled) >= 3
    assert all(0.34 < t < 0.52 for t in labelled)
    # A wide range keeps 1-2-5 steps, labelled in plain numbers.
    fig = plot_cost_curve(iterations, 0.36 + 40 / iterations, tmp_path / "b.png")
    texts = {t.get_text() for t in fig.axes[0].get_yticklabels()}
    assert {"0.5", "1", "2", "5", "10", "20"} <= texts
    # ... and an inset on a linear axis shows the tail that the log axis squeezes.
    (inset,) = fig.axes[0].child_axes
    assert inset.get_yscale() == "linear" and inset.get_ylim()[1] < 1
    assert not ax.child_axes  # no steep start, no inset


def test_plot_rhohat(tmp_path):
    rhohat = np.random.default_rng(3).uniform(0.005, 0.05, 25)
    fig = plot_rhohat(rhohat, 0.01, tmp_path / "rhohat.png")
    ax = fig.axes[0]
    assert not ax.patches  # points, no bars from zero
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), rhohat)
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), np.arange(1, 26))
    low, high = ax.get_ylim()
    assert 0 < low < 0.005 and 0.05 < high < 0.1  # the axis spans the points around ρ
    assert any("0.01" in t for t in _legend_texts(fig))
    assert ax.get_title() and ax.get_xlabel().startswith("hidden unit")
    with Image.open(tmp_path / "rhohat.png") as image:
        assert image.format == "PNG"


def grey(tile):
    """save_png's grey map of a tile scaled by 4 (8x8 tiles are drawn 4x)."""
    g = np.rint((np.clip(tile, -1, 1) + 1) * 127.5).astype(np.uint8)
    return np.repeat(np.repeat(g, 4, axis=0), 4, axis=1)


def test_units_figure_rows_hold_the_weight_tile_then_the_top_examples(tmp_path):
    rng = np.random.default_rng(4)
    W1, X = rng.standard_normal((3, 64)), rng.random((64, 40))
    top = np.array([[5, 7], [0, 39], [12, 12]])
    units = {"top_k_indices": top, "alignment_top_k": np.array([0.9, 0.1, -0.2])}
    image = plot_units(W1, X, units, tmp_path / "u.png")
    with Image.open(tmp_path / "u.png") as written:
        assert np.array_equal(np.asarray(written), image)
    weights, examples = scale_tiles(W1.T), scale_tiles(X[:, top.ravel()]).reshape(3, 2, 8, 8)
    # Layout (array pixels, drawn 4x): 1-pixel border, weight tile, a 4-pixel gap, examples.
    for unit in range(3):
        top_px = 4 * (1 + 9 * unit)
        assert np.array_equal(image[top_px : top_px + 32, 4:36], grey(weights[unit]))
        for j in range(2):
            left = 4 * (1 + 9 + 4 + 9 * j)
            tile = image[top_px : top_px + 32, left : left + 32]
            assert np.array_equal(tile, grey(examples[unit, j]))
    # The same example twice (the third unit) is drawn twice, identically.
    assert np.array_equal(examples[2, 0], examples[2, 1])
    # The alignment is written beside the row (white text on the black background).
    assert image[: 4 * 10, 4 * 33 :].max() == 255 and image[: 4 * 10, 36:52].max() == 0


def test_display_network_tiles_are_scale_tiles():
    A = np.random.default_rng(2).standard_normal((64, 6))
    array = display_network(A, cols=3)
    tiles = scale_tiles(A)
    for k in range(6):
        i, j = divmod(k, 3)
        assert np.array_equal(array[1 + 9 * i : 9 + 9 * i, 1 + 9 * j : 9 + 9 * j], tiles[k])
