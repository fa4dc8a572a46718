"""The array-API path: array_api_strict arrays (the standard and nothing else) give the numpy
results, the optimizer follows the numpy trajectory, and the device is checked on reading."""

from __future__ import annotations

import array_api_strict as xps
import numpy as np
import pytest

from sparseae.config import resolve_config
from sparseae.config.environment import device_problems
from sparseae.environment import device_missing
from sparseae.model import arrays, train
from sparseae.model import autoencoder as ae
from sparseae.model.lbfgs import minimize_lbfgs

pytestmark = pytest.mark.fast


def _problem(v=64, h=25, m=700, seed=3):
    rng = np.random.default_rng(seed)
    data = rng.random((v, m)) * 0.8 + 0.1
    theta = ae.initialize_parameters(h, v, rng)
    theta[2 * h * v :] = rng.uniform(-0.5, 0.5, h + v)
    return theta, data, dict(visible_size=v, hidden_size=h, lambda_=1e-4, beta=3.0, rho=0.01)


def _strict(x):
    return xps.asarray(x)


def test_cost_and_grad_of_strict_arrays_is_the_numpy_result_in_the_same_library():
    theta, data, kwargs = _problem()
    cost, grad = ae.cost_and_grad(theta, data, **kwargs)
    cost_s, grad_s = ae.cost_and_grad(_strict(theta), _strict(data), **kwargs)
    assert type(grad_s) is type(xps.asarray(0.0)) and grad_s.dtype == xps.float64
    assert cost_s == pytest.approx(cost, rel=1e-12)
    grad_s = arrays.to_numpy(grad_s)
    assert np.max(np.abs(grad_s - grad)) <= 1e-12 * np.max(np.abs(grad))
    terms = ae.cost_terms(_strict(theta), _strict(data), **kwargs)
    assert terms["total"] == pytest.approx(cost, rel=1e-12)
    # float32 products, float64 results, as on the numpy path.
    cost32, grad32 = ae.cost_and_grad(_strict(theta), _strict(data.astype(np.float32)), **kwargs)
    assert grad32.dtype == xps.float64 and cost32 == pytest.approx(cost, rel=1e-5)
    with pytest.raises(TypeError):  # one library per call
        ae.cost_and_grad(_strict(theta), data, **kwargs)


def test_minimize_lbfgs_on_strict_arrays_follows_the_numpy_trajectory():
    theta, data, kwargs = _problem()
    data_s = _strict(data)
    points, points_s = [], []
    result = minimize_lbfgs(
        lambda t: ae.cost_and_grad(t, data, **kwargs),
        theta,
        maxiter=50,
        maxcor=20,
        callback=lambda x, f, g: points.append((f, x.copy())),
    )
    result_s = minimize_lbfgs(
        lambda t: ae.cost_and_grad(t, data_s, **kwargs),
        _strict(theta),
        maxiter=50,
        maxcor=20,
        callback=lambda x, f, g: points_s.append((f, arrays.to_numpy(x))),
    )
    assert type(result_s.x) is type(result_s.jac) is type(xps.asarray(0.0))
    assert result.nit == result_s.nit == 50 and result.nfev == result_s.nfev
    for (f, x), (f_s, x_s) in zip(points, points_s, strict=True):
        assert f_s == pytest.approx(f, rel=1e-10)
        assert np.linalg.norm(x_s - x) <= 1e-10 * np.linalg.norm(x)


def test_a_chunk_on_the_array_api_device_leaves_numpy_checkpoint_data():
    theta, data, kwargs = _problem(m=300)
    cpu = train.train_chunk(theta, data, 5, **kwargs)
    strict = train.train_chunk(theta, data, 5, **kwargs, device="array_api_strict")
    assert type(strict.theta) is np.ndarray and strict.theta.dtype == np.float64
    np.testing.assert_allclose(strict.theta, cpu.theta, rtol=0, atol=1e-12)
    assert [r["fun_evals"] for r in strict.records] == [r["fun_evals"] for r in cpu.records]
    with pytest.raises(ValueError, match="needs method 'lbfgs'"):
        options = train.LBFGSOptions(method="scipy-lbfgsb")
        train.train_chunk(theta, data, 5, **kwargs, options=options, device="array_api_strict")


@pytest.mark.skipif(device_missing("cuda") is None, reason="a GPU is present here")
def test_cuda_without_a_gpu_is_refused_when_the_config_is_read():
    natural = {"natural": {"training": {"device": "cuda"}}}
    config = resolve_config({"experiments": natural, "run": ["natural"]}).to_dict()
    (problem,) = device_problems(config)
    assert problem.startswith(
        "config key 'experiments.natural.training.device' = 'cuda': "
    ) and problem.endswith("install it, run on a GPU node, or set training.device: cpu")
    assert "torch is not installed (pip install 'sparseae[gpu]')" in problem or (
        "finds no CUDA GPU" in problem
    )
    config["experiments"]["natural"]["training"]["device"] = "array_api_strict"
    assert device_problems(config) == []
    config["experiments"]["natural"]["optimizer"]["method"] = "scipy-lbfgsb"
    assert "needs optimizer.method 'lbfgs'" in device_problems(config)[0]


@pytest.mark.parametrize("m", [10_000, 777])
def test_results_do_not_depend_on_the_thread_count(m):
    theta, data, kwargs = _problem(m=m)
    results = []
    try:
        for threads in (1, 2, 3, 16):
            ae.set_num_threads(threads)
            results.append(ae.cost_and_grad(theta, data, **kwargs))
    finally:
        ae.set_num_threads(2)
    for cost, grad in results[1:]:
        assert cost == results[0][0]
        np.testing.assert_array_equal(grad, results[0][1])
