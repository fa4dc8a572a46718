"""The gradient check passes the real gradient and rejects every classic wrong one."""

from __future__ import annotations

import numpy as np
import pytest

from sparseae.model import autoencoder as ae
from sparseae.model import gradcheck as gc

pytestmark = pytest.mark.fast

PARAMS = dict(lambda_=1e-4, beta=3.0, rho=0.01)
RNG = np.random.default_rng


def test_quadratic_sanity_figure_matches_the_exercise():
    # The exercise (and shared/reference/README.md) expect ≈ 2.1452e-12.
    assert gc.check_quadratic() == pytest.approx(2.1452e-12, rel=1e-3)


def test_numerical_gradient_of_a_known_function():
    x = np.array([0.3, -1.2, 2.0])
    num = gc.numerical_gradient(lambda p: float(np.sum(np.sin(p))), x)
    np.testing.assert_allclose(num, np.cos(x), rtol=1e-8)
    np.testing.assert_array_equal(x, [0.3, -1.2, 2.0])  # input untouched


def test_relative_difference_definition():
    a, b = np.array([1.0, 2.0]), np.array([1.0, 3.0])
    assert gc.relative_difference(a, b) == pytest.approx(1 / np.hypot(2, 5))
    assert gc.relative_difference(np.zeros(3), np.zeros(3)) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        gc.relative_difference(a, np.zeros(3))


@pytest.mark.parametrize(
    "params",
    [PARAMS, dict(lambda_=3e-3, beta=3.0, rho=0.1)],
    ids=["natural", "mnist"],
)
def test_autoencoder_gradient_passes(params):
    result = gc.check_gradient(visible_size=8, hidden_size=5, num_examples=10, rng=RNG(3), **params)
    assert result["quadratic"] == pytest.approx(2.1452e-12, rel=1e-3)
    assert result["autoencoder"] < 1e-9
    assert result["passed"] and result["bound"] == 1e-9
    assert result["num_parameters"] == 2 * 8 * 5 + 8 + 5


def test_autoencoder_gradient_passes_on_the_reference_point(reference):
    ref = reference("sae_small")
    data, theta = ref["data"][:, :10], ref["theta"]
    result = gc.check_gradient(
        data=data,
        theta=theta,
        hidden_size=int(ref["hidden"]),
        lambda_=float(ref["lam"]),
        beta=float(ref["beta"]),
        rho=float(ref["rho"]),
    )
    assert result["autoencoder"] < 1e-9


def test_our_numerical_gradient_matches_the_octave_one(reference):
    ref = reference("sae_small")
    kwargs = dict(
        visible_size=int(ref["visible"]),
        hidden_size=int(ref["hidden"]),
        lambda_=float(ref["lam"]),
        beta=float(ref["beta"]),
        rho=float(ref["rho"]),
    )
    theta = ref["theta"].copy()
    # A spread of coordinates (every 97th) keeps this fast; same central difference as Octave.
    for i in range(0, theta.size, 97):
        old = theta[i]
        theta[i] = old + 1e-4
        plus = ae.cost_and_grad(theta, ref["data"], **kwargs)[0]
        theta[i] = old - 1e-4
        minus = ae.cost_and_grad(theta, ref["data"], **kwargs)[0]
        theta[i] = old
        assert (plus - minus) / 2e-4 == pytest.approx(ref["numgrad"][i], abs=1e-9)


# Deliberately wrong gradients (not divided by m, no λW, no sparsity term, ...), built on
# the plain transcription so each differs from the right one in exactly one place.
def _wrong(variant):
    def cost_fn(theta, data, *, visible_size, hidden_size, lambda_, beta, rho):
        W1, W2, b1, b2 = ae.unpack(theta, visible_size, hidden_size)
        m = data.shape[1]
        a2 = 1 / (1 + np.exp(-(W1 @ data + b1[:, None])))
        a3 = 1 / (1 + np.exp(-(W2 @ a2 + b2[:, None])))
        rhohat = a2.mean(axis=1)
        kl = rho * np.log(rho / rhohat) + (1 - rho) * np.log((1 - rho) / (1 - rhohat))
        cost = (
            np.sum((a3 - data) ** 2) / (2 * m)
            + lambda_ / 2 * (np.sum(W1**2) + np.sum(W2**2))
            + beta * np.sum(kl)
        )
        d3 = -(data - a3) * a3 * (1 - a3)
        sparse = beta * (-rho / rhohat + (1 - rho) / (1 - rhohat))
        if variant == "per_example_rhohat":
            sparse_term = beta * (-rho / a2 + (1 - rho) / (1 - a2))
        elif variant == "no_sparsity_in_delta2":
            sparse_term = 0.0
        else:
            sparse_term = sparse[:, None]
        d2 = (W2.T @ d3 + sparse_term) * a2 * (1 - a2)
        scale = 1.0 if variant == "not_divided_by_m" else 1.0 / m
        decay = 0.0 if variant == "no_lambda_w" else lambda_
        gW1 = d2 @ data.T * scale + decay * W1
        gW2 = d3 @ a2.T * scale + decay * W2
        gb1 = d2.sum(axis=1) * scale
        gb2 = d3.sum(axis=1) * scale
        if variant == "decayed_biases":
            gb1 = gb1 + lambda_ * b1
            gb2 = gb2 + lambda_ * b2
        return float(cost), ae.pack(gW1, gW2, gb1, gb2)

    return cost_fn


def test_the_transcription_used_for_wrong_variants_is_itself_right():
    result = gc.check_gradient(rng=RNG(4), cost_fn=_wrong("none"), **PARAMS)
    assert result["passed"], result["autoencoder"]


@pytest.mark.parametrize(
    "variant",
    [
        "not_divided_by_m",
        "no_lambda_w",
        "no_sparsity_in_delta2",
        "per_example_rhohat",
        "decayed_biases",
    ],
)
def test_wrong_gradients_are_rejected(variant):
    result = gc.check_gradient(rng=RNG(4), cost_fn=_wrong(variant), **PARAMS)
    assert not result["passed"]
    assert result["autoencoder"] > 1e3 * result["bound"]


def test_check_gradient_validates_inputs():
    with pytest.raises(ValueError, match="theta has shape"):
        gc.check_gradient(theta=np.zeros(5), **PARAMS)
    with pytest.raises(ValueError, match="epsilon"):
        gc.numerical_gradient(lambda p: 0.0, np.zeros(2), epsilon=0)
