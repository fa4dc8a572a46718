"""The linear-decoder exercise: the linear output layer's cost and gradient, ZCA with the mean
patch removed (saved in patches.npz), RGB patches in MATLAB's ``patches(:)`` order, colour
filter grids, and the keys of existing results left as they were."""

from __future__ import annotations

import array_api_strict as xps
import numpy as np
import pytest
import yaml
from PIL import Image
from workflow_helpers import REPO

from sparseae.analysis.visualize import display_color_network, save_filter_grid
from sparseae.config import fingerprint, resolve_config
from sparseae.data.images import sample_photo_tiles
from sparseae.data.patches import sample_patches
from sparseae.data.whitening import ZCA
from sparseae.model import autoencoder as ae
from sparseae.model import gradcheck
from sparseae.pipeline import experiment

pytestmark = pytest.mark.fast

# The exercise's settings and its small gradient check: visible 8, hidden 5, 10 examples.
MODEL = {"lambda_": 3e-3, "beta": 5.0, "rho": 0.035}


def small_problem(seed=0, visible=8, hidden=5, m=10):
    rng = np.random.default_rng(seed)
    theta = ae.initialize_parameters(hidden, visible, rng)
    theta[2 * hidden * visible :] = rng.uniform(-0.1, 0.1, hidden + visible)
    # Whitened data is centred and unbounded, unlike the sigmoid's [0.1, 0.9].
    data = rng.standard_normal((visible, m))
    return theta, data, {"visible_size": visible, "hidden_size": hidden, **MODEL}


def test_linear_gradient_matches_central_differences_and_the_sigmoid_one_does_not():
    theta, data, kw = small_problem()
    result = gradcheck.check_gradient(
        lambda_=3e-3, beta=5, rho=0.035, data=data, theta=theta, output="linear"
    )
    assert result["passed"] and result["autoencoder"] < 1e-9 and result["output"] == "linear"
    numeric = gradcheck.numerical_gradient(
        lambda t: ae.cost_and_grad(t, data, **kw, output="linear"), theta
    )
    sigmoid = ae.cost_and_grad(theta, data, **kw)[1]
    assert gradcheck.relative_difference(numeric, sigmoid) > 1e-2


def test_linear_cost_is_the_definition():
    theta, data, kw = small_problem(seed=3)
    W1, W2, b1, b2 = ae.unpack(theta, 8, 5)
    a2 = 1 / (1 + np.exp(-(W1 @ data + b1[:, None])))
    a3 = W2 @ a2 + b2[:, None]  # no sigmoid on the output
    terms = ae.cost_terms(theta, data, **kw, output="linear")
    assert terms["reconstruction"] == pytest.approx(np.sum((a3 - data) ** 2) / 20, rel=1e-13)
    np.testing.assert_allclose(terms["rhohat"], a2.mean(axis=1), rtol=1e-13)


@pytest.mark.parametrize("m", [10, 6000])  # one block, and several blocks on a thread pool
def test_blocked_naive_and_array_api_agree_for_the_linear_decoder(m):
    theta, data, kw = small_problem(seed=1, visible=48, hidden=30, m=m)
    cost, grad = ae.cost_and_grad(theta, data, **kw, output="linear")
    naive_cost, naive_grad = ae.naive_cost_and_grad(theta, data, **kw, output="linear")
    strict_cost, strict_grad = ae.cost_and_grad(
        xps.asarray(theta), xps.asarray(data), **kw, output="linear"
    )
    for other_cost, other_grad in ((naive_cost, naive_grad), (strict_cost, strict_grad)):
        assert other_cost == pytest.approx(cost, rel=1e-12)
        np.testing.assert_allclose(np.asarray(other_grad), grad, rtol=0, atol=1e-12)


def test_sigmoid_is_the_default_bit_for_bit_and_unknown_outputs_are_refused():
    theta, data, kw = small_problem(seed=2, m=3000)
    data = data * 0.1 + 0.5
    default, explicit = (
        ae.cost_and_grad(theta, data, **kw),
        ae.cost_and_grad(theta, data, **kw, output="sigmoid"),
    )
    assert default[0] == explicit[0] and np.array_equal(default[1], explicit[1])
    assert ae.cost_and_grad(theta, data, **kw, output="linear")[0] != default[0]
    with pytest.raises(ValueError, match="'sigmoid' or 'linear'"):
        ae.cost_and_grad(theta, data, **kw, output="tanh")


def test_existing_experiments_keep_their_keys():
    """Results written before the new keys existed stay finished: same trajectory and data
    keys (the values main computed before model.output and patches.channels existed)."""
    resolved = resolve_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    natural, mnist = (resolved["experiments"][n] for n in ("natural", "mnist"))
    assert (fingerprint(natural), experiment.data_key(natural)) == (
        "14e9923735144a70",
        "7b9beab47c6bc5b1",
    )
    assert (fingerprint(mnist), experiment.data_key(mnist)) == (
        "13e079e8ea4c8edd",
        "c15776a5f811ed1a",
    )
    assert "output" not in natural.model and "channels" not in natural.patches


def test_mean_patch_zca_is_its_definition():
    rng = np.random.default_rng(5)
    mixing = rng.standard_normal((12, 12))
    x = mixing @ rng.standard_normal((12, 4000)) + rng.standard_normal((12, 1)) * 3
    zca = ZCA(epsilon=0.1, centre="pixel").fit(x)
    np.testing.assert_allclose(zca.mean_, x.mean(axis=1), rtol=1e-12)
    centred = x - x.mean(axis=1, keepdims=True)
    s, U = np.linalg.eigh(centred @ centred.T / x.shape[1])
    np.testing.assert_allclose(zca.matrix_, (U / np.sqrt(s + 0.1)) @ U.T, atol=1e-12)
    white = zca.transform(x)
    # Whitened covariance: U diag(s / (s + ε)) Uᵀ, so its eigenvalues are s / (s + ε).
    got = np.linalg.eigvalsh(white @ white.T / x.shape[1])
    np.testing.assert_allclose(got, np.sort(s / (s + 0.1)), rtol=1e-9, atol=1e-12)
    assert np.allclose(white.mean(axis=1), 0, atol=1e-12)


def test_colour_patches_are_matlab_patches_colon():
    """An 8 × 8 × 3 image with one 8 × 8 patch position: the column is ``patch(:)``."""
    image = np.arange(8 * 8 * 3, dtype=np.float64).reshape(8, 8, 3) * 1.5
    column = sample_patches(image[..., None], 8, 1, np.random.default_rng(0))[:, 0]
    np.testing.assert_array_equal(column, image.ravel(order="F"))
    # Pixel (row 2, column 5) of the green channel sits at 2 + 8 * 5 + 64 * 1.
    assert column[2 + 8 * 5 + 64] == image[2, 5, 1]
    grey = sample_patches(image[:, :, :1], 8, 1, np.random.default_rng(0))[:, 0]
    np.testing.assert_array_equal(grey, image[:, :, 0].ravel(order="F"))


def test_sample_photo_tiles_in_colour_are_the_grey_tiles_channels():
    colour, grey = sample_photo_tiles(channels=3), sample_photo_tiles()
    assert colour.shape == (*grey.shape[:2], 3, grey.shape[2])
    luma = np.tensordot(colour, [0.299, 0.587, 0.114], axes=([2], [0]))
    np.testing.assert_allclose(luma, grey, atol=1e-12)


def test_display_color_network_scales_each_channel_of_each_tile():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((192, 400))
    A[64:128, 7] *= 100  # a strong green channel must not wash out the others of tile 7
    grid = display_color_network(A)
    assert grid.shape == (1 + 20 * 9, 1 + 20 * 9, 3)
    assert grid.min() >= 0 and grid.max() <= 1
    assert np.all(grid[0] == 1) and np.all(grid[:, 9] == 1)  # white gaps
    tile = grid[1:9, 1 + 7 * 9 : 9 + 7 * 9]  # tile 7: row 0, column 7
    for ch in range(3):
        values = A[64 * ch : 64 * (ch + 1), 7].reshape(8, 8, order="F")
        expected = (values / np.abs(values).max() + 1) / 2
        np.testing.assert_allclose(tile[:, :, ch], expected, atol=1e-15)
    with pytest.raises(ValueError, match="3 s²"):
        display_color_network(A[:64])


def test_filter_grid_png_is_in_colour(tmp_path):
    A = np.random.default_rng(6).standard_normal((192, 25))
    array = save_filter_grid(A, tmp_path / "f.png", tmp_path / "f.npy", colour=True)
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy", allow_pickle=False), array)
    pixels = np.asarray(Image.open(tmp_path / "f.png"))
    assert pixels.ndim == 3 and pixels.shape[0] >= 600
    assert np.any(pixels[..., 0] != pixels[..., 1])  # not grey


def test_sample_patches_step_saves_the_fitted_transform(tmp_path):
    text = (REPO / "config" / "linear-photos.yaml").read_text()
    config = yaml.safe_load(text)
    config["experiments"]["linear-photos"]["patches"]["count"] = 2000
    exp = resolve_config(config)["experiments"]["linear-photos"]
    out = tmp_path / "patches.npz"
    data = experiment.sample_patches(out, name="linear-photos", data=experiment.data_config(exp))
    with np.load(out, allow_pickle=False) as saved:
        zca, mean = saved["zca"], saved["zca_mean"]
        np.testing.assert_array_equal(saved["data"], data)
    assert zca.shape == (192, 192) and mean.shape == (192,)
    # The saved pair is the whole transform: raw patches of the same draw map onto the data.
    raw = sample_patches(
        sample_photo_tiles(channels=3), 8, 2000, experiment.rng(exp["seed"], "patches")
    )
    np.testing.assert_allclose(zca @ (raw - mean[:, None]), data, atol=1e-10)
    np.testing.assert_allclose(mean, raw.mean(axis=1), atol=1e-12)


def test_diagnostics_reconstruct_through_the_linear_output():
    from sparseae.analysis.diagnostics import unit_diagnostics

    theta, data, kw = small_problem(seed=7, visible=16, hidden=6, m=50)
    result = unit_diagnostics(
        theta,
        data,
        visible_size=16,
        hidden_size=6,
        rho=0.035,
        rng=np.random.default_rng(0),
        top_k=3,
        random_examples=10,
        output="linear",
    )
    squared_error = 2 * 50 * ae.cost_terms(theta, data, **kw, output="linear")["reconstruction"]
    spread = np.sum((data - data.mean(axis=1, keepdims=True)) ** 2)
    assert result["fraction_variance_explained"] == pytest.approx(1 - squared_error / spread)


def test_digit_patches_are_cut_from_the_digits(tmp_path):
    """The convolution exercise's data: random 8x8 patches of the first t10k digits."""
    from shared_data import shared_file

    from sparseae.data import load_mnist

    folder = tmp_path / "resources" / "mnist"
    folder.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).symlink_to(shared_file(f"data/{name}"))
    config = {
        "run": ["digits"],
        "experiments": {
            "digits": {
                "dataset": {"source": "mnist", "split": "test", "num_images": 50},
                "patches": {"size": 8, "count": 300, "normalize": False},
            }
        },
    }
    exp = resolve_config(config)["experiments"]["digits"]
    data = experiment.data_config(exp)
    X = experiment.sample_patches(
        tmp_path / "p.npz", name="digits", data=data, resources=tmp_path / "resources"
    )
    digits = load_mnist(folder, "test", 50)[0].reshape(28, 28, 50, order="F")
    expected = sample_patches(digits, 8, 300, experiment.rng(exp["seed"], "patches"))
    np.testing.assert_array_equal(X, expected)
    assert X.shape == (64, 300) and X.max() > 0.9  # strokes, not only background
