"""Numerical gradient checking (docs/model.md, "Gradient checking"): central differences with
``ε = 1e-4`` and the figure ``‖num − ana‖ / ‖num + ana‖``, about 2.1452e-12 for the sanity
function ``h(x) = x1² + 3 x1 x2`` at ``(4, 10)``, below 1e-9 for the autoencoder."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import numpy as np

from sparseae.errors import ConfigError
from sparseae.model import autoencoder

log = logging.getLogger(__name__)

DEFAULT_BOUND = 1e-9  # largest accepted autoencoder figure (UFLDL's criterion)


def numerical_gradient(fun: Callable, theta: np.ndarray, epsilon: float = 1e-4) -> np.ndarray:
    """Central-difference gradient ``(f(θ + εeᵢ) − f(θ − εeᵢ)) / 2ε`` for every coordinate.
    ``fun(theta)`` returns the cost, or a tuple whose first item is the cost (so a
    ``cost_and_grad``-style function can be passed directly); ``theta`` is not modified."""
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    x = np.array(theta, dtype=np.float64, copy=True)
    if x.ndim != 1:
        raise ValueError(f"theta must be 1-D, got shape {x.shape}")

    def value(point):
        out = fun(point)
        return float(out[0] if isinstance(out, tuple) else out)

    grad = np.empty_like(x)
    for i in range(x.size):
        old = x[i]
        x[i] = old + epsilon
        plus = value(x)
        x[i] = old - epsilon
        minus = value(x)
        x[i] = old
        grad[i] = (plus - minus) / (2 * epsilon)
    return grad


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """``‖a − b‖ / ‖a + b‖`` (Euclidean norms); 0 when both are zero."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    denominator = np.linalg.norm(a + b)
    numerator = np.linalg.norm(a - b)
    if denominator == 0.0:
        return 0.0 if numerator == 0.0 else float("inf")
    return float(numerator / denominator)


def quadratic(x: np.ndarray):
    """The exercise's sanity function ``h(x) = x1² + 3 x1 x2`` and its exact gradient."""
    x = np.asarray(x, dtype=np.float64)
    return float(x[0] ** 2 + 3 * x[0] * x[1]), np.array([2 * x[0] + 3 * x[1], 3 * x[0]])


def check_quadratic(epsilon: float = 1e-4) -> float:
    """Relative difference of the numerical and exact gradients of :func:`quadratic` at (4, 10)."""
    x = np.array([4.0, 10.0])
    return relative_difference(numerical_gradient(quadratic, x, epsilon), quadratic(x)[1])


def compare_gradients(fun: Callable, theta: np.ndarray, name: str, epsilon, bound) -> dict:
    """``{name: ‖num − ana‖ / ‖num + ana‖}`` for ``fun``'s analytic gradient at ``theta``
    (``fun(theta)[1]``), with ``max_abs_diff``, ``passed`` (below ``bound``) and the settings."""
    analytic = np.asarray(fun(theta)[1])
    numeric = numerical_gradient(fun, theta, epsilon)
    difference = relative_difference(numeric, analytic)
    return {
        name: difference,
        "max_abs_diff": float(np.max(np.abs(numeric - analytic))),
        "bound": bound,
        "passed": bool(difference < bound),
        "epsilon": epsilon,
        "num_parameters": int(theta.size),
    }


def check_gradient(
    *,
    visible_size: int = 8,
    hidden_size: int = 5,
    num_examples: int = 10,
    lambda_: float,
    beta: float,
    rho: float,
    rng: np.random.Generator | None = None,
    data: np.ndarray | None = None,
    theta: np.ndarray | None = None,
    epsilon: float = 1e-4,
    bound: float = DEFAULT_BOUND,
    cost_fn: Callable | None = None,
    output: str = "sigmoid",
) -> dict:
    """Run the quadratic sanity check and the autoencoder check on a small problem.

    ``num_examples`` random examples in ``[0.1, 0.9]`` and ``initialize_parameters`` with random
    non-zero biases (so their gradients are exercised), from ``rng`` (default: seed 0); ``data``
    and ``theta`` replace them and fix the sizes. ``cost_fn`` replaces
    :func:`~sparseae.model.autoencoder.cost_and_grad` (tests pass wrong ones); ``output``
    ``"linear"`` checks the linear decoder (passed to ``cost_fn`` only then). Returns
    ``quadratic`` and ``autoencoder`` (relative differences), ``max_abs_diff``, ``passed``
    (autoencoder figure below ``bound``) and the settings."""
    rng = np.random.default_rng(0) if rng is None else rng
    cost_fn = autoencoder.cost_and_grad if cost_fn is None else cost_fn

    if data is None:
        data = rng.random((visible_size, num_examples)) * 0.8 + 0.1
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"data must be 2-D (visible × examples), got shape {data.shape}")
    visible_size, num_examples = data.shape
    if theta is None:
        theta = autoencoder.initialize_parameters(hidden_size, visible_size, rng)
        n_weights = 2 * hidden_size * visible_size
        theta[n_weights:] = rng.uniform(-0.1, 0.1, theta.size - n_weights)
    theta = np.asarray(theta, dtype=np.float64)
    autoencoder.unpack(theta, visible_size, hidden_size)  # refuses a theta of other sizes

    sizes = dict(visible_size=int(visible_size), hidden_size=int(hidden_size))
    model = dict(lambda_=float(lambda_), beta=float(beta), rho=float(rho))
    decoder = {} if output == "sigmoid" else {"output": output}

    def cost(point):
        return cost_fn(point, data, **sizes, **model, **decoder)

    checked = compare_gradients(cost, theta, "autoencoder", epsilon, bound)
    record = {"quadratic": check_quadratic(epsilon), **checked, **sizes}
    return {**record, "num_examples": int(num_examples), **model, "output": output}


def require_passed(result: Mapping, differences: Mapping, *, what: str, config_key: str) -> None:
    """Log a check's ``differences``; raise ConfigError naming ``what`` and ``config_key`` when
    ``result`` did not pass: training would follow a gradient that disagrees with central
    differences."""
    text = ", ".join(f"{name} {value:.3e}" for name, value in differences.items())
    bound, n = result["bound"], result["num_parameters"]
    log.info("||num - ana|| / ||num + ana||: %s (bound %.1e, %d parameters)", text, bound, n)
    if not result["passed"]:
        raise ConfigError(
            f"gradient check FAILED for {what}: {text}, bound {result['bound']:.1e} (config key "
            f"{config_key}); the analytic gradient disagrees with central differences, so "
            f"training would not be trustworthy"
        )
