"""Stacked sparse autoencoders with a softmax output: layout, fine-tuning cost, prediction.

UFLDL's "Building Deep Networks for Classification": ``L`` sigmoid encoder layers, each the
first layer of a sparse autoencoder trained greedily on the previous layer's activations, then
softmax regression (:mod:`sparseae.model.softmax`); fine-tuning backpropagates the softmax
cost (decay on its ``θ`` only) through the whole stack (``stackedAECost``; docs/stacked.md).

Parameters: one flat float64 vector in the tutorial's column-major order
``[θ(:); W¹(:); b¹; W²(:); b²; …]``, so a theta written by the Octave code loads unchanged."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sparseae.model import autoencoder, softmax
from sparseae.model.gradcheck import DEFAULT_BOUND, compare_gradients


def layer_shapes(input_size: int, hidden_sizes: Sequence[int]) -> list[tuple[int, int]]:
    """``(rows, cols)`` of each encoder weight matrix ``Wˡ``: ``(hidden_l, input_l)``."""
    sizes = [int(input_size), *(int(h) for h in hidden_sizes)]
    return [(sizes[i + 1], sizes[i]) for i in range(len(sizes) - 1)]


def stack_parameter_count(input_size: int, hidden_sizes: Sequence[int], num_classes: int) -> int:
    """Length of the stack's ``theta``: ``K·h_L + Σ_l (h_l·in_l + h_l)``."""
    shapes = layer_shapes(input_size, hidden_sizes)
    return int(num_classes) * shapes[-1][0] + sum(r * c + r for r, c in shapes)


def unpack_stack(theta, input_size: int, hidden_sizes: Sequence[int], num_classes: int):
    """``softmax_theta`` (classes × last hidden) and ``layers`` ``[(W, b), …]``: Fortran-ordered
    views into ``theta``, which must be 1-D of :func:`stack_parameter_count` entries."""
    theta = np.asarray(theta)
    expected = stack_parameter_count(input_size, hidden_sizes, num_classes)
    if theta.ndim != 1 or theta.shape[0] != expected:
        raise ValueError(
            f"theta has shape {theta.shape}, expected ({expected},) for input_size="
            f"{input_size}, hidden_sizes={list(hidden_sizes)}, num_classes={num_classes}"
        )
    k, last = int(num_classes), int(hidden_sizes[-1])
    softmax_theta = theta[: k * last].reshape((k, last), order="F")
    layers = []
    start = k * last
    for rows, cols in layer_shapes(input_size, hidden_sizes):
        W = theta[start : start + rows * cols].reshape((rows, cols), order="F")
        start += rows * cols
        layers.append((W, theta[start : start + rows]))
        start += rows
    return softmax_theta, layers


def pack_stack(softmax_theta, layers) -> np.ndarray:
    """Inverse of :func:`unpack_stack`: ``[θ(:); W¹(:); b¹; …]`` (column-major), float64."""
    softmax_theta = np.asarray(softmax_theta)
    parts = [softmax_theta.ravel(order="F")]
    previous = None
    for index, (W, b) in enumerate(layers, start=1):
        W, b = np.asarray(W), np.ravel(b)
        if W.ndim != 2 or b.shape != (W.shape[0],) or (previous and W.shape[1] != previous):
            raise ValueError(
                f"layer {index}: W {W.shape}, b {b.shape} do not chain (expected W with "
                f"{previous or 'any'} columns and b of length W's rows)"
            )
        previous = W.shape[0]
        parts += [W.ravel(order="F"), b]
    if softmax_theta.shape[1] != previous:
        raise ValueError(
            f"softmax_theta has {softmax_theta.shape[1]} columns, the last layer {previous} units"
        )
    return np.concatenate(parts).astype(np.float64, copy=False)


def stack_from_autoencoders(softmax_theta, autoencoder_thetas, input_size: int, hidden_sizes):
    """The pretrained stack (:func:`pack_stack`): softmax weights, then each encoder."""
    shapes = layer_shapes(input_size, hidden_sizes)
    layers = []
    for (rows, cols), theta in zip(shapes, autoencoder_thetas, strict=True):
        W1, _, b1, _ = autoencoder.unpack(np.asarray(theta, dtype=np.float64), cols, rows)
        layers.append((W1, b1))
    return pack_stack(softmax_theta, layers)


def stack_activations(layers, data) -> list:
    """Activations ``[a¹ = x, a², …, aᴸ⁺¹]`` of every encoder layer ``(W, b)`` of ``layers``
    (:func:`unpack_stack`; float64, units × m)."""
    from scipy.special import expit  # here: seconds most jobs need not pay

    activations = [np.asarray(data, dtype=np.float64)]
    for W, b in layers:
        z = W @ activations[-1]
        z += b[:, None]
        activations.append(expit(z, out=z))
    return activations


def predict(theta, data, *, input_size, hidden_sizes, num_classes) -> np.ndarray:
    """Most probable class (``0 … num_classes-1``) of each column of ``data``."""
    theta = np.asarray(theta, dtype=np.float64)
    softmax_theta, layers = unpack_stack(theta, input_size, hidden_sizes, num_classes)
    return softmax.predict(softmax_theta, stack_activations(layers, data)[-1])


def finetune_cost_and_grad(
    theta, data, *, labels, input_size, hidden_sizes, num_classes, lambda_
) -> tuple[float, np.ndarray]:
    """Fine-tuning cost of the whole stack and its gradient (UFLDL ``stackedAECost``).
    ``lambda_`` decays the softmax weights only; equations in ``docs/stacked.md``."""
    theta = np.asarray(theta, dtype=np.float64)
    softmax_theta, layers = unpack_stack(theta, input_size, hidden_sizes, num_classes)
    activations = stack_activations(layers, data)
    a = activations[-1]
    cost, grad_softmax, error = softmax.layer_cost(softmax_theta, a, labels, lambda_)
    delta = (softmax_theta.T @ error) * a * (1.0 - a)  # (1/m) δᴸ⁺¹
    grads = []
    for index in range(len(layers) - 1, -1, -1):
        W, _ = layers[index]
        below = activations[index]
        grads.append((delta @ below.T, delta.sum(axis=1)))
        if index > 0:
            delta = (W.T @ delta) * below * (1.0 - below)
    grads.reverse()
    return float(cost), pack_stack(grad_softmax, grads)


def check_finetune_gradient(
    data,
    labels,
    *,
    hidden_sizes: Sequence[int],
    num_classes: int,
    lambda_: float,
    rng: np.random.Generator,
    epsilon: float = 1e-4,
    bound: float = DEFAULT_BOUND,
    cost_fn: Callable | None = None,
) -> dict:
    """Central-difference check of the fine-tuning gradient on a small random stack. Returns
    ``finetune`` (``‖num − ana‖ / ‖num + ana‖``), ``max_abs_diff``, ``passed``."""
    X = np.asarray(data, dtype=np.float64)
    input_size = X.shape[0]
    layers = []
    for rows, cols in layer_shapes(input_size, hidden_sizes):
        W1, _, _, _ = autoencoder.unpack(
            autoencoder.initialize_parameters(rows, cols, rng), cols, rows
        )
        layers.append((W1, rng.uniform(-0.1, 0.1, rows)))
    softmax_theta = 0.005 * rng.standard_normal((int(num_classes), int(hidden_sizes[-1])))
    theta = pack_stack(softmax_theta, layers)
    cost_fn = finetune_cost_and_grad if cost_fn is None else cost_fn
    sizes = dict(input_size=int(input_size), hidden_sizes=[int(h) for h in hidden_sizes])
    sizes["num_classes"] = int(num_classes)

    def cost(x):
        return cost_fn(x, X, labels=labels, lambda_=lambda_, **sizes)

    checked = compare_gradients(cost, theta, "finetune", float(epsilon), float(bound))
    return {**checked, **sizes, "num_examples": int(X.shape[1]), "lambda_": float(lambda_)}
