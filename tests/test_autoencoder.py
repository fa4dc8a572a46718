"""Cost, gradient and parameter layout against the Octave reference (shared/reference)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from shared_data import load_reference
from threadpoolctl import threadpool_info

from sparseae.model import autoencoder as ae

pytestmark = pytest.mark.fast


def _reference(name):
    ref = load_reference(name)
    kwargs = dict(
        visible_size=int(ref["visible"]),
        hidden_size=int(ref["hidden"]),
        lambda_=float(ref["lam"]),
        beta=float(ref["beta"]),
        rho=float(ref["rho"]),
    )
    return ref, kwargs


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


@pytest.mark.parametrize("name", ["sae_small", "sae_mnist_shape"])
@pytest.mark.parametrize("fn", [ae.cost_and_grad, ae.naive_cost_and_grad])
def test_cost_and_grad_match_octave_reference(name, fn):
    ref, kwargs = _reference(name)
    cost, grad = fn(ref["theta"], ref["data"], **kwargs)
    assert isinstance(cost, float)
    assert grad.dtype == np.float64 and grad.shape == ref["theta"].shape
    assert abs(cost - float(ref["cost"])) <= 1e-12 * float(ref["cost"])
    assert _rel(grad, ref["grad"]) <= 1e-10


@pytest.mark.parametrize("name", ["sae_small", "sae_mnist_shape"])
def test_cost_terms_match_reference_breakdown(name):
    ref, kwargs = _reference(name)
    terms = ae.cost_terms(ref["theta"], ref["data"], **kwargs)
    for key in ("reconstruction", "weight_decay", "sparsity"):
        expected = float(ref[f"J_{key}"])
        assert abs(terms[key] - expected) <= 1e-12 * expected, key
    np.testing.assert_allclose(terms["rhohat"], ref["rhohat"], rtol=1e-12)
    cost, _ = ae.cost_and_grad(ref["theta"], ref["data"], **kwargs)
    assert terms["total"] == pytest.approx(cost, rel=1e-15)
    assert terms["total"] == pytest.approx(
        terms["reconstruction"] + terms["weight_decay"] + terms["sparsity"], rel=1e-15
    )


def test_reference_cost_numbers_written_in_readme():
    # shared/reference/README.md, table "Results": the fixture itself must carry them.
    ref, kwargs = _reference("sae_small")
    cost, _ = ae.cost_and_grad(ref["theta"], ref["data"], **kwargs)
    assert cost == pytest.approx(52.069025157808717, rel=1e-12)


def _problem(v=64, h=25, m=3000, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.random((v, m)) * 0.8 + 0.1
    theta = ae.initialize_parameters(h, v, rng)
    theta[2 * h * v :] = rng.uniform(-0.5, 0.5, h + v)
    kwargs = dict(visible_size=v, hidden_size=h, lambda_=1e-4, beta=3.0, rho=0.01)
    return theta, data, kwargs


@pytest.mark.parametrize("shape", [(64, 25, 3000), (30, 7, 1), (30, 7, 5), (100, 40, 1999)])
def test_fast_path_equals_naive_on_other_shapes(shape):
    theta, data, kwargs = _problem(*shape)
    kwargs.update(visible_size=shape[0], hidden_size=shape[1])
    c_fast, g_fast = ae.cost_and_grad(theta, data, **kwargs)
    c_naive, g_naive = ae.naive_cost_and_grad(theta, data, **kwargs)
    assert c_fast == pytest.approx(c_naive, rel=1e-13)
    assert _rel(g_fast, g_naive) < 1e-13


def test_results_do_not_depend_on_thread_count_or_buffer_reuse():
    theta, data, kwargs = _problem()
    ae.set_num_threads(1)
    try:
        c1, g1 = ae.cost_and_grad(theta, data, **kwargs)
    finally:
        ae.set_num_threads(2)
    c2, g2 = ae.cost_and_grad(theta, data, **kwargs)
    assert c1 == c2
    np.testing.assert_array_equal(g1, g2)
    # Same shapes, other data: cached buffers must not leak state from the previous call.
    other = np.flip(data, axis=1).copy()
    c3, g3 = ae.cost_and_grad(theta, other, **kwargs)
    c4, g4 = ae.naive_cost_and_grad(theta, other, **kwargs)
    assert c3 == pytest.approx(c4, rel=1e-13)
    assert _rel(g3, g4) < 1e-13


def test_interpreter_and_blas_settings_are_restored():
    theta, data, kwargs = _problem(m=6000)
    before = (sys.getswitchinterval(), [i["num_threads"] for i in threadpool_info()])
    ae.cost_and_grad(theta, data, **kwargs)
    assert (sys.getswitchinterval(), [i["num_threads"] for i in threadpool_info()]) == before


def test_fortran_ordered_and_strided_data_give_the_same_result():
    theta, data, kwargs = _problem(m=1000)
    c, g = ae.cost_and_grad(theta, data, **kwargs)
    wide = np.zeros((data.shape[0], 2 * data.shape[1]))
    wide[:, ::2] = data
    for variant in (np.asfortranarray(data), wide[:, ::2]):
        c2, g2 = ae.cost_and_grad(theta, variant, **kwargs)
        assert c2 == pytest.approx(c, rel=1e-13)
        assert _rel(g2, g) < 1e-13


def test_float32_path_matches_float64():
    theta, data, kwargs = _problem(m=5000)
    c64, g64 = ae.cost_and_grad(theta, data, **kwargs)
    c32, g32 = ae.cost_and_grad(theta, data.astype(np.float32), **kwargs)
    c32k, _ = ae.cost_and_grad(theta, data, dtype=np.float32, **kwargs)
    assert g32.dtype == np.float64
    assert abs(c32 - c64) <= 1e-5 * c64
    assert c32k == c32
    assert _rel(g32, g64) < 1e-4
    # The float32 path must really be float32 (otherwise it would agree to ~1e-15).
    assert c32 != c64


def test_float32_reconstruction_sum_is_accumulated_in_float64():
    # Summed in float32 (BLAS sdot), the squared errors of 256 x 5000 values drift by about
    # 1e-6 relative, enough to stall L-BFGS's line search near convergence; summed in
    # float64, only the float32 forward pass remains (about 2e-9 here).
    rng = np.random.default_rng(0)
    data = rng.random((256, 5000)) * 0.8 + 0.1
    theta = ae.initialize_parameters(16, 256, rng)
    kwargs = dict(visible_size=256, hidden_size=16, lambda_=3e-3, beta=3.0, rho=0.1)
    exact = ae.cost_terms(theta, data, **kwargs)["reconstruction"]
    single = ae.cost_terms(theta, data.astype(np.float32), **kwargs)["reconstruction"]
    assert single != exact
    assert abs(single - exact) < 5e-8 * exact


def test_unpack_is_column_major_and_pack_inverts_it():
    v, h = 6, 4
    theta = np.arange(ae.parameter_count(v, h), dtype=np.float64)
    W1, W2, b1, b2 = ae.unpack(theta, v, h)
    assert W1.shape == (h, v) and W2.shape == (v, h) and b1.shape == (h,) and b2.shape == (v,)
    # MATLAB W1(i, j) is element (j - 1) * h + i of theta (1-based): column-major.
    assert W1[1, 2] == 2 * h + 1
    assert W2[3, 1] == h * v + 1 * v + 3
    assert b1[0] == 2 * h * v and b2[-1] == theta[-1]
    assert np.shares_memory(W1, theta)
    np.testing.assert_array_equal(ae.pack(W1, W2, b1, b2), theta)
    with pytest.raises(ValueError, match="expected \\(58,\\)"):
        ae.unpack(theta[:-1], v, h)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        ae.pack(W1, W2.T, b1, b2)


def test_initialize_parameters_range_order_and_seed():
    h, v = 25, 64
    theta = ae.initialize_parameters(h, v, np.random.default_rng(5))
    again = ae.initialize_parameters(h, v, np.random.default_rng(5))
    np.testing.assert_array_equal(theta, again)
    r = np.sqrt(6) / np.sqrt(h + v + 1)
    weights = theta[: 2 * h * v]
    assert np.all(np.abs(weights) <= r)
    assert weights.min() < -0.9 * r and weights.max() > 0.9 * r
    np.testing.assert_array_equal(theta[2 * h * v :], 0.0)
    # Draw order: W1 column-major, then W2, from one stream (as rand(h, v) then rand(v, h)).
    draws = np.random.default_rng(5).random(2 * h * v) * 2 * r - r
    W1, W2, _, _ = ae.unpack(theta, v, h)
    np.testing.assert_array_equal(W1, draws[: h * v].reshape(h, v, order="F"))
    np.testing.assert_array_equal(W2, draws[h * v :].reshape(v, h, order="F"))
    with pytest.raises(TypeError, match="Generator"):
        ae.initialize_parameters(h, v, 5)


def test_hidden_activations_are_the_sigmoid_of_the_first_layer():
    theta, data, kwargs = _problem(m=50)
    W1, _, b1, _ = ae.unpack(theta, 64, 25)
    a2 = ae.hidden_activations(theta, data, visible_size=64, hidden_size=25)
    np.testing.assert_allclose(a2, 1 / (1 + np.exp(-(W1 @ data + b1[:, None]))), rtol=1e-14)
    terms = ae.cost_terms(theta, data, **kwargs)
    np.testing.assert_allclose(a2.mean(axis=1), terms["rhohat"], rtol=1e-13)


@pytest.mark.parametrize("fn", [ae.cost_and_grad, ae.naive_cost_and_grad])
@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_no_log_of_zero_when_rhohat_reaches_zero_or_one(fn, sign):
    v, h, m = 16, 3, 40
    data = np.full((v, m), 0.5)
    theta = np.zeros(ae.parameter_count(v, h))
    W1, _, b1, _ = ae.unpack(theta, v, h)
    b1[:] = sign * 1e4  # the sigmoid saturates to exactly 0 or exactly 1 in float64
    kwargs = dict(visible_size=v, hidden_size=h, lambda_=1e-4, beta=3.0, rho=0.1)
    rhohat = ae.cost_terms(theta, data, **kwargs)["rhohat"]
    assert np.all(rhohat == (0.0 if sign < 0 else 1.0))  # the extreme case really happens
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(divide="raise", invalid="raise"):
            cost, grad = fn(theta, data, **kwargs)
    assert np.isfinite(cost) and np.all(np.isfinite(grad))
    assert cost > 100  # a saturated unit is heavily penalised, not ignored


def test_clipping_leaves_every_interior_rhohat_unchanged():
    rng = np.random.default_rng(1)
    interior = np.concatenate(
        [
            rng.random(1000),
            np.logspace(-300, -1, 50),
            [np.finfo(float).tiny, np.nextafter(1.0, 0.0), 0.5],
        ]
    )
    interior = interior[(interior > 0) & (interior < 1)]
    np.testing.assert_array_equal(ae.clip_rhohat(interior), interior)
    clipped = ae.clip_rhohat(np.array([0.0, 1.0]))
    assert 0 < clipped[0] < 1e-300 and clipped[1] < 1


def test_clear_errors_for_bad_inputs():
    theta, data, kwargs = _problem(m=10)
    with pytest.raises(ValueError, match="visible_size × m"):
        ae.cost_and_grad(theta, data.T, **kwargs)
    with pytest.raises(ValueError, match="theta has shape"):
        ae.cost_and_grad(theta[:-1], data, **kwargs)
    with pytest.raises(ValueError, match="rho"):
        ae.cost_and_grad(theta, data, **{**kwargs, "rho": 0.0})
    with pytest.raises(ValueError, match="dtype"):
        ae.cost_and_grad(theta, data, dtype=np.int32, **kwargs)
