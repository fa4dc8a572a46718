"""Per-unit diagnostics (sparseae.analysis.diagnostics) on constructed cases with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparseae import config
from sparseae.analysis.diagnostics import (
    METRIC_KEYS,
    DiagnosticsError,
    cosines,
    fraction_variance_explained,
    top_k_examples,
    unit_diagnostics,
    write_diagnostics,
)
from sparseae.config import PURPOSES, rng
from sparseae.model.autoencoder import pack
from sparseae.pipeline import experiment

pytestmark = pytest.mark.fast

V, H, M = 16, 6, 300


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture
def unit_norm_data():
    """Examples of equal norm: by Cauchy-Schwarz, w = x_j is maximised by x_j alone."""
    g = np.random.default_rng(3)
    X = 0.1 + 0.8 * g.random((V, M))
    return X / np.linalg.norm(X, axis=0)


def model(W1, b1, *, seed=0):
    """theta with the given W1 and b1, and some decoder."""
    g = np.random.default_rng(seed)
    h, v = W1.shape
    return pack(W1, 0.1 * g.standard_normal((v, h)), b1, 0.1 * g.standard_normal(v))


def run(theta, X, **kwargs):
    kwargs.setdefault("rho", 0.05)
    return unit_diagnostics(
        theta, X, visible_size=X.shape[0], hidden_size=H, rng=rng(1, "diagnostics"), **kwargs
    )


# ------------------------------------------------------------------ top-k selection


@pytest.mark.parametrize("k", [1, 5, 37, M])
def test_top_k_agrees_with_a_brute_force_sort(k):
    a = np.random.default_rng(k).random((H, M))
    indices, values = top_k_examples(a, k)
    brute = np.argsort(-a, axis=1, kind="stable")[:, :k]
    assert np.array_equal(indices, brute)
    assert np.array_equal(values, np.take_along_axis(a, brute, axis=1))
    assert np.all(np.diff(values, axis=1) <= 0)


def test_top_k_with_ties_keeps_the_largest_values_lowest_index_first():
    a = np.array([[0.5, 0.9, 0.5, 0.9, 0.1], [1.0, 1.0, 1.0, 1.0, 1.0]])
    indices, values = top_k_examples(a, 3)
    assert np.array_equal(values, [[0.9, 0.9, 0.5], [1.0, 1.0, 1.0]])
    assert list(indices[0, :2]) == [1, 3] and indices[0, 2] in (0, 2)
    assert len(set(indices[1])) == 3
    with pytest.raises(ValueError, match="between 1 and the number of examples 5"):
        top_k_examples(a, 6)


# ------------------------------------------------------------------ alignment


def test_a_unit_whose_weights_equal_an_example_has_alignment_one_for_it(unit_norm_data):
    X = unit_norm_data
    j = 123
    W1 = np.random.default_rng(5).standard_normal((H, V))
    W1[2] = X[:, j]
    assert cosines(W1, X)[2, j] == pytest.approx(1.0, abs=1e-12)
    # Scaled and shifted weights have the same direction once means are removed.
    W1[4] = 7.0 * X[:, j] - 3.0
    assert cosines(W1, X)[4, j] == pytest.approx(1.0, abs=1e-12)

    result = run(model(W1, np.zeros(H)), X, top_k=4)
    units = result["units"]
    assert units["top_k_indices"][2, 0] == j  # the example itself drives the unit most
    assert units["top_k_cosines"][2, 0] == pytest.approx(1.0, abs=1e-12)
    # Per-unit alignment is the mean cosine over its top-k examples, as computed directly.
    direct = cosines(W1, X)
    expected = np.take_along_axis(direct, units["top_k_indices"], axis=1).mean(axis=1)
    assert np.allclose(units["alignment_top_k"], expected, rtol=0, atol=1e-12)
    assert result["alignment_top_k"] == pytest.approx(expected.mean(), abs=1e-12)
    # The baseline: the same cosine over the seeded random examples.
    random = result["random_indices"]
    assert len(random) == len(set(random)) == min(1000, M)
    assert np.allclose(units["alignment_random"], direct[:, random].mean(axis=1), atol=1e-12)


def test_cosines_remove_each_examples_mean():
    w = np.array([[1.0, -1.0, 0.0, 0.0]])
    x = np.array([[5.5], [3.5], [4.5], [4.5]])  # 4.5 + (1, -1, 0, 0)
    assert cosines(w, x)[0, 0] == pytest.approx(1.0)
    assert cosines(w, np.full((4, 1), 0.5))[0, 0] == 0.0  # a flat example has no direction


def test_random_baseline_draws_from_the_diagnostics_generator(unit_norm_data):
    assert PURPOSES["diagnostics"] == 6
    assert [PURPOSES[p] for p in ("patches", "init", "gradcheck", "split")] == [0, 1, 2, 3]
    W1 = np.random.default_rng(5).standard_normal((H, V))
    theta = model(W1, np.zeros(H))
    a = run(theta, unit_norm_data, random_examples=50)
    b = run(theta, unit_norm_data, random_examples=50)
    expected = np.sort(rng(1, "diagnostics").choice(M, size=50, replace=False))
    assert np.array_equal(a["random_indices"], expected)
    assert np.array_equal(a["random_indices"], b["random_indices"])


# ------------------------------------------------------------------ dead and saturated units


def test_a_unit_that_never_fires_is_dead_and_one_always_on_is_saturated(unit_norm_data):
    W1 = 0.1 * np.random.default_rng(6).standard_normal((H, V))
    b1 = np.zeros(H)
    b1[1] = -50.0  # activation about 2e-22 on every example: never fires
    b1[4] = 50.0  # activation 1 on every example
    result = run(model(W1, b1), unit_norm_data, rho=0.05, dead_fraction=0.1)
    assert result["dead_threshold"] == pytest.approx(0.005)
    assert result["dead_units"] == 1 and list(result["dead_unit_indices"]) == [1]
    assert result["saturated_units"] == 1 and list(result["saturated_unit_indices"]) == [4]
    # Other units sit near 0.5 (small weights, zero bias): neither.
    assert not result["units"]["dead"][[0, 2, 3, 5]].any()
    # Active (> 0.5) units per example, counted directly.
    a2 = sigmoid(W1 @ unit_norm_data + b1[:, None])
    assert result["mean_active_units"] == pytest.approx((a2 > 0.5).sum(axis=0).mean())


# ------------------------------------------------------------------ fraction of variance explained


def direct_fve(R, X):
    mean = sum(X[:, j] for j in range(X.shape[1])) / X.shape[1]
    residual = sum(float(np.dot(R[:, j] - X[:, j], R[:, j] - X[:, j])) for j in range(X.shape[1]))
    total = sum(float(np.dot(X[:, j] - mean, X[:, j] - mean)) for j in range(X.shape[1]))
    return 1.0 - residual / total


def test_fraction_variance_explained_equals_a_direct_computation():
    g = np.random.default_rng(8)
    X = g.random((V, 50))
    R = X + 0.1 * g.standard_normal(X.shape)
    assert fraction_variance_explained(R, X) == pytest.approx(direct_fve(R, X), rel=1e-12)
    assert fraction_variance_explained(X, X) == 1.0
    mean = np.repeat(X.mean(axis=1, keepdims=True), 50, axis=1)
    assert fraction_variance_explained(mean, X) == pytest.approx(0.0, abs=1e-12)
    for constant in (0.0, 0.5, 3.0):
        assert fraction_variance_explained(np.full_like(X, constant), X) <= 0.0
    assert np.isnan(fraction_variance_explained(np.zeros((3, 4)), np.ones((3, 4))))


def test_model_fve_is_the_reconstructions(unit_norm_data):
    X = unit_norm_data
    g = np.random.default_rng(9)
    W1, W2 = g.standard_normal((H, V)), g.standard_normal((V, H))
    b1, b2 = g.standard_normal(H), g.standard_normal(V)
    result = run(pack(W1, W2, b1, b2), X)
    a3 = sigmoid(W2 @ sigmoid(W1 @ X + b1[:, None]) + b2[:, None])
    assert result["fraction_variance_explained"] == pytest.approx(direct_fve(a3, X), rel=1e-10)


# ------------------------------------------------------------------ contrast


def test_contrast_correlation_and_ratio_equal_direct_computations():
    g = np.random.default_rng(10)
    X = 0.5 + g.standard_normal((V, M)) * g.uniform(0.01, 0.3, size=M)  # contrasts vary
    W1 = g.standard_normal((H, V))
    b1 = g.standard_normal(H)
    result = run(model(W1, b1), X, top_k=10)
    contrast = np.linalg.norm(X - X.mean(axis=0), axis=0)
    a2 = sigmoid(W1 @ X + b1[:, None])
    units = result["units"]
    for i in range(H):
        assert units["activation_norm_corr"][i] == pytest.approx(
            np.corrcoef(a2[i], contrast)[0, 1], abs=1e-10
        )
        top = np.argsort(-a2[i], kind="stable")[:10]
        assert units["topk_norm_ratio"][i] == pytest.approx(
            contrast[top].mean() / contrast.mean(), rel=1e-12
        )
        assert np.allclose(units["top_k_activations"][i], a2[i, top], rtol=1e-12, atol=0)


# ------------------------------------------------------------------ the rule's function


def test_write_diagnostics_writes_json_with_the_documented_keys_and_a_figure(
    tmp_path, unit_norm_data
):
    from PIL import Image

    W1 = np.random.default_rng(11).standard_normal((H, V))
    b1 = np.zeros(H)
    b1[0] = -60.0
    W1[1] = 0.0  # activation exactly 0.5 on every example: no correlation with contrast
    theta = model(W1, b1)
    record = write_diagnostics(
        theta,
        unit_norm_data,
        json_path=tmp_path / "diagnostics.json",
        png_path=tmp_path / "units.png",
        experiment="tiny",
        model={"visible_size": V, "hidden_size": H, "rho": 0.05},
        settings={"top_k": 3},
        seed=1,
    )
    written = json.loads((tmp_path / "diagnostics.json").read_text())  # strict JSON: no NaN
    assert written == record
    for key in (
        "fraction_variance_explained",
        "dead_units",
        "saturated_units",
        "mean_active_units",
        "alignment_top_k",
        "alignment_random",
        "activation_norm_corr",
    ):
        assert key in written, key
    assert set(written["metrics"]) <= set(METRIC_KEYS)
    assert written["metrics"]["dead_units"] == 1.0 and written["dead_unit_indices"] == [0]
    assert all(isinstance(v, float) for v in written["metrics"].values())
    assert written["settings"]["top_k"] == 3 and written["settings"]["random_examples"] == 1000
    units = written["units"]
    assert len(units["top_k_indices"]) == H and len(units["top_k_indices"][0]) == 3
    assert units["activation_norm_corr"][1] is None  # NaN in the arrays, null in the JSON
    assert all(isinstance(c, float) for i, c in enumerate(units["activation_norm_corr"]) if i != 1)
    with Image.open(tmp_path / "units.png") as image:
        assert image.format == "PNG" and image.size[1] > H * 4 * 5
    assert not list(tmp_path.glob(".*.tmp-*"))


def test_top_k_above_the_number_of_examples_names_the_key(unit_norm_data):
    theta = model(np.zeros((H, V)), np.zeros(H))
    with pytest.raises(DiagnosticsError, match=r"'diagnostics.top_k': 301 .* 1 <= top_k <= 300"):
        run(theta, unit_norm_data, top_k=301)


# ------------------------------------------------------------------ the workflow step


TINY = {
    "run": ["natural"],
    "experiments": {
        "natural": {
            "patches": {"count": 300},
            "model": {"hidden_size": 6},
            "training": {"chunks": 1, "iterations_per_chunk": 5},
        }
    },
}


def trained(folder):
    """A tiny natural-image experiment trained and finalized in ``folder``; its trajectory."""
    exp = config.resolve_config(json.loads(json.dumps(TINY)))["experiments"]["natural"]
    trajectory = config.trajectory_config(exp)
    experiment.sample_patches(
        folder / "patches.npz", name="natural", data=experiment.data_config(exp)
    )
    chunk = folder / "chunks" / "1.npz"
    experiment.train_chunk(
        chunk,
        k=1,
        previous=None,
        patches=folder / "patches.npz",
        name="natural",
        trajectory=trajectory,
    )
    experiment.finalize(
        [chunk],
        folder / "patches.npz",
        theta=folder / "theta.npz",
        history=folder / "history.tsv",
        summary=folder / "summary.json",
        name="natural",
        trajectory=trajectory,
    )
    return trajectory


def step(folder, trajectory, **settings):
    return experiment.diagnose(
        folder / "theta.npz",
        folder / "patches.npz",
        json_path=folder / "diagnostics.json",
        png_path=folder / "units.png",
        name="natural",
        trajectory=trajectory,
        settings=settings,
    )


def test_the_step_diagnoses_the_trained_theta_and_records_its_trajectory(tmp_path):
    trajectory = trained(tmp_path)
    record = step(tmp_path, trajectory, top_k=4)
    assert record["trajectory_key"] == config.fingerprint(trajectory)
    assert json.loads((tmp_path / "diagnostics.json").read_text()) == record
    theta = experiment.load_theta(tmp_path / "theta.npz", name="natural", trajectory=trajectory)
    data = experiment.load_patches(tmp_path / "patches.npz", name="natural", experiment=trajectory)
    direct = unit_diagnostics(
        theta,
        data,
        visible_size=64,
        hidden_size=6,
        rho=trajectory["model"]["rho"],
        rng=rng(trajectory["seed"], "diagnostics"),
        top_k=4,
    )
    assert record["units"]["top_k_indices"] == direct["units"]["top_k_indices"].tolist()
    assert record["fraction_variance_explained"] == direct["fraction_variance_explained"]


def test_the_step_refuses_a_theta_of_other_settings_and_writes_nothing(tmp_path):
    trajectory = trained(tmp_path)
    other = json.loads(json.dumps(trajectory))
    other["model"]["rho"] = 0.05  # same patches (data settings), another trajectory
    with pytest.raises(experiment.ForeignResultError, match=r"theta.npz belongs to trajectory"):
        step(tmp_path, other)
    assert not (tmp_path / "diagnostics.json").exists()
    assert not (tmp_path / "units.png").exists()


def test_top_k_above_the_examples_is_a_user_error_naming_experiment_and_key(tmp_path):
    from sparseae.errors import SparseaeError

    trajectory = trained(tmp_path)
    with pytest.raises(DiagnosticsError) as error:
        step(tmp_path, trajectory, top_k=301)
    assert isinstance(error.value, SparseaeError)
    assert str(error.value).startswith(
        "experiment 'natural': config key 'diagnostics.top_k': 301 is not allowed for 300"
    )
    assert not (tmp_path / "diagnostics.json").exists()
