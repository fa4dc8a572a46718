"""Stacked sparse autoencoders with a softmax output: layout, fine-tuning cost, prediction.

The deep network of UFLDL's "Building Deep Networks for Classification" (stacked
autoencoders): ``L`` sigmoid encoder layers, each the first layer of a sparse autoencoder
trained greedily on the previous layer's activations, followed by softmax regression. After
pretraining, the whole network is *fine-tuned* on the labels by backpropagation, minimising
the softmax cost of the stack (UFLDL's ``stackedAECost``; the equations are in
``docs/stacked.md``)::

    a¹ = x;  aˡ⁺¹ = f(Wˡ aˡ + bˡ);  P = softmax(θ aᴸ⁺¹)          (columns are examples)
    J  = −(1/m) Σᵢ log P[yᵢ, i] + (λ/2) ‖θ‖²                     (no decay on the Wˡ)

Parameter layout
----------------
One flat float64 vector, column-major (MATLAB) like :mod:`sparseae.model.autoencoder`, in the
order of the tutorial's ``[softmaxTheta(:); stack2params(stack)]``::

    theta = [θ(:); W¹(:); b¹; W²(:); b²; …]

with ``θ`` of shape ``num_classes × hidden_sizes[-1]`` and ``Wˡ`` of shape
``hidden_sizes[l] × (input_size or hidden_sizes[l-1])``, so a theta written by the original
MATLAB/Octave code loads unchanged. Data follow the package convention: one example per
column; labels are class indices ``0 … num_classes-1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import expit

from sparseae.model import autoencoder
from sparseae.model.gradcheck import DEFAULT_BOUND, numerical_gradient, relative_difference

__all__ = [
    "layer_shapes",
    "stack_parameter_count",
    "unpack_stack",
    "pack_stack",
    "stack_from_autoencoders",
    "stack_activations",
    "finetune_cost_and_grad",
    "naive_finetune_cost_and_grad",
    "softmax_objective",
    "predict",
    "check_finetune_gradient",
]


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------
def layer_shapes(input_size: int, hidden_sizes: Sequence[int]) -> list[tuple[int, int]]:
    """``(rows, cols)`` of each encoder weight matrix ``Wˡ``: ``(hidden_l, input_l)``."""
    sizes = [int(input_size), *(int(h) for h in hidden_sizes)]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(
            f"need input_size >= 1 and at least one hidden size >= 1, got input_size="
            f"{input_size}, hidden_sizes={list(hidden_sizes)}"
        )
    return [(sizes[i + 1], sizes[i]) for i in range(len(sizes) - 1)]


def stack_parameter_count(input_size: int, hidden_sizes: Sequence[int], num_classes: int) -> int:
    """Length of the stack's ``theta``: ``K·h_L + Σ_l (h_l·in_l + h_l)``."""
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    shapes = layer_shapes(input_size, hidden_sizes)
    return int(num_classes) * shapes[-1][0] + sum(r * c + r for r, c in shapes)


def unpack_stack(theta, input_size: int, hidden_sizes: Sequence[int], num_classes: int):
    """Split ``theta`` into the softmax weights and the encoder layers (views, no copies).

    Parameters
    ----------
    theta : ndarray, shape (stack_parameter_count(...),)
        ``[θ(:); W¹(:); b¹; W²(:); b²; …]``, column-major.
    input_size : int
    hidden_sizes : sequence of int
        Units of each encoder layer, first layer first.
    num_classes : int

    Returns
    -------
    softmax_theta : ndarray, shape (num_classes, hidden_sizes[-1])
        Fortran-ordered view.
    layers : list of (W, b)
        ``W`` of shape (hidden_l, input_l) (Fortran-ordered view), ``b`` of shape (hidden_l,).

    Raises
    ------
    ValueError
        If ``theta`` is not 1-D of the right length.
    """
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
    """Inverse of :func:`unpack_stack`: ``[θ(:); W¹(:); b¹; …]`` (column-major), float64.

    Raises
    ------
    ValueError
        If consecutive shapes do not chain (``Wˡ⁺¹`` must have ``Wˡ``'s rows as columns,
        ``bˡ`` one entry per row of ``Wˡ``, ``θ`` the last layer's rows as columns).
    """
    softmax_theta = np.asarray(softmax_theta)
    if softmax_theta.ndim != 2 or not layers:
        raise ValueError("softmax_theta must be 2-D (classes × last hidden) and layers non-empty")
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
    """The pretrained stack: each autoencoder's encoder ``(W1, b1)`` plus the softmax weights.

    Parameters
    ----------
    softmax_theta : ndarray, shape (num_classes, hidden_sizes[-1])
    autoencoder_thetas : sequence of ndarray
        Layer ``l``'s sparse autoencoder parameters (:mod:`sparseae.model.autoencoder` layout),
        trained on layer ``l-1``'s activations.
    input_size : int
    hidden_sizes : sequence of int

    Returns
    -------
    ndarray
        Flat stack parameters (:func:`pack_stack`).
    """
    shapes = layer_shapes(input_size, hidden_sizes)
    if len(autoencoder_thetas) != len(shapes):
        raise ValueError(f"{len(autoencoder_thetas)} autoencoders for {len(shapes)} layers")
    layers = []
    for (rows, cols), theta in zip(shapes, autoencoder_thetas, strict=True):
        W1, _, b1, _ = autoencoder.unpack(np.asarray(theta, dtype=np.float64), cols, rows)
        layers.append((W1, b1))
    return pack_stack(softmax_theta, layers)


# --------------------------------------------------------------------------------------------
# Forward pass, cost and gradient
# --------------------------------------------------------------------------------------------
def _as_data(data, input_size):
    X = np.asarray(data, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] != int(input_size):
        raise ValueError(
            f"data must be input_size × m = {input_size} × m (one example per column), got "
            f"shape {X.shape}"
        )
    return X


def _as_labels(labels, m, num_classes):
    y = np.asarray(labels)
    if y.shape != (m,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be {m} integers (one per column of data), got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {y.min()}..{y.max()}")
    return y.astype(np.intp, copy=False)


def stack_activations(theta, data, *, input_size, hidden_sizes, num_classes) -> list:
    """Activations ``[a¹ = x, a², …, aᴸ⁺¹]`` of every encoder layer (float64, units × m)."""
    _, layers = unpack_stack(
        np.asarray(theta, dtype=np.float64), input_size, hidden_sizes, num_classes
    )
    activations = [_as_data(data, input_size)]
    for W, b in layers:
        z = W @ activations[-1]
        z += b[:, None]
        activations.append(expit(z, out=z))
    return activations


def predict(theta, data, *, input_size, hidden_sizes, num_classes) -> np.ndarray:
    """Most probable class (``0 … num_classes-1``) of each column of ``data``."""
    softmax_theta, _ = unpack_stack(
        np.asarray(theta, dtype=np.float64), input_size, hidden_sizes, num_classes
    )
    top = stack_activations(
        theta, data, input_size=input_size, hidden_sizes=hidden_sizes, num_classes=num_classes
    )[-1]
    return np.argmax(softmax_theta @ top, axis=0)


def finetune_cost_and_grad(
    theta, data, *, labels, input_size, hidden_sizes, num_classes, lambda_
) -> tuple[float, np.ndarray]:
    """Fine-tuning cost of the whole stack and its gradient (UFLDL ``stackedAECost``).

    Parameters
    ----------
    theta : ndarray
        Flat stack parameters (see the module docstring).
    data : ndarray, shape (input_size, m)
        One example per column.
    labels : ndarray of int, shape (m,)
        Class indices ``0 … num_classes-1``.
    input_size : int
    hidden_sizes : sequence of int
    num_classes : int
    lambda_ : float
        Weight decay of the softmax weights ``θ`` only (the encoders are not decayed).

    Returns
    -------
    cost : float
    grad : ndarray, float64, same layout as ``theta``
        ``∇θ = −(1/m)(G − P) aᴸ⁺¹ᵀ + λθ``; ``δᴸ⁺¹ = θᵀ(P − G) ∘ a(1 − a)``,
        ``δˡ = (Wˡᵀ δˡ⁺¹) ∘ aˡ(1 − aˡ)``; ``∇Wˡ = (1/m) δˡ⁺¹ aˡᵀ``, ``∇bˡ = (1/m) Σ δˡ⁺¹``.
    """
    theta = np.asarray(theta, dtype=np.float64)
    softmax_theta, layers = unpack_stack(theta, input_size, hidden_sizes, num_classes)
    activations = stack_activations(
        theta, data, input_size=input_size, hidden_sizes=hidden_sizes, num_classes=num_classes
    )
    m = activations[0].shape[1]
    y = _as_labels(labels, m, int(num_classes))
    columns = np.arange(m)

    scores = softmax_theta @ activations[-1]
    scores -= scores.max(axis=0, keepdims=True)  # the softmax is unchanged, exp cannot overflow
    log_p = scores - np.log(np.exp(scores).sum(axis=0, keepdims=True))
    cost = -log_p[y, columns].sum() / m + 0.5 * lambda_ * np.sum(softmax_theta**2)

    residual = np.exp(log_p)  # P
    residual[y, columns] -= 1.0  # P − G
    residual /= m
    grad_softmax = residual @ activations[-1].T + lambda_ * softmax_theta
    a = activations[-1]
    delta = (softmax_theta.T @ residual) * a * (1.0 - a)  # (1/m) δᴸ⁺¹
    grads = []
    for index in range(len(layers) - 1, -1, -1):
        W, _ = layers[index]
        below = activations[index]
        grads.append((delta @ below.T, delta.sum(axis=1)))
        if index > 0:
            delta = (W.T @ delta) * below * (1.0 - below)
    grads.reverse()
    return float(cost), pack_stack(grad_softmax, grads)


def naive_finetune_cost_and_grad(
    theta, data, *, labels, input_size, hidden_sizes, num_classes, lambda_
) -> tuple[float, np.ndarray]:
    """The same cost and gradient, one example at a time with explicit loops (a reference).

    A direct transcription of the equations for tests: no matrix over examples, the softmax
    normaliser summed class by class, every weight gradient accumulated as an outer product.
    """
    theta = np.asarray(theta, dtype=np.float64)
    softmax_theta, layers = unpack_stack(theta, input_size, hidden_sizes, num_classes)
    X = _as_data(data, input_size)
    m = X.shape[1]
    y = _as_labels(labels, m, int(num_classes))
    g_softmax = np.zeros_like(softmax_theta)
    g_layers = [(np.zeros_like(W), np.zeros_like(b)) for W, b in layers]
    log_likelihood = 0.0
    for i in range(m):
        a = [X[:, i]]
        for W, b in layers:
            a.append(1.0 / (1.0 + np.exp(-(W @ a[-1] + b))))
        scores = [float(softmax_theta[k] @ a[-1]) for k in range(num_classes)]
        top = max(scores)
        normaliser = sum(np.exp(s - top) for s in scores)
        p = [np.exp(s - top) / normaliser for s in scores]
        log_likelihood += np.log(p[y[i]])
        error = np.array([p[k] - (1.0 if k == y[i] else 0.0) for k in range(num_classes)])
        g_softmax += np.outer(error, a[-1])
        delta = (softmax_theta.T @ error) * a[-1] * (1.0 - a[-1])
        for index in range(len(layers) - 1, -1, -1):
            g_layers[index][0][...] += np.outer(delta, a[index])
            g_layers[index][1][...] += delta
            if index > 0:
                delta = (layers[index][0].T @ delta) * a[index] * (1.0 - a[index])
    cost = -log_likelihood / m + lambda_ / 2 * float(np.sum(softmax_theta**2))
    grad = pack_stack(
        g_softmax / m + lambda_ * softmax_theta, [(gW / m, gb / m) for gW, gb in g_layers]
    )
    return float(cost), grad


def softmax_objective(theta, features, *, labels, num_classes, lambda_):
    """UFLDL's softmax cost on a flat column-major ``θ`` (``num_classes × features``).

    :func:`sparseae.analysis.evaluate.softmax_cost` with the classes fixed to ``0 … num_classes-1``,
    flattened the way the stack stores ``θ``, for an L-BFGS run with recorded cost curve.
    """
    from sparseae.analysis.evaluate import softmax_cost

    features = np.asarray(features, dtype=np.float64)
    weights = np.asarray(theta, dtype=np.float64).reshape(
        (int(num_classes), features.shape[0]), order="F"
    )
    cost, grad = softmax_cost(
        weights, features, labels, lambda_=lambda_, classes=np.arange(int(num_classes))
    )
    return cost, grad.ravel(order="F")


# --------------------------------------------------------------------------------------------
# Gradient check
# --------------------------------------------------------------------------------------------
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
    """Central-difference check of the fine-tuning gradient on a small stack.

    The point is random: encoders from :func:`sparseae.model.autoencoder.initialize_parameters`
    with biases uniform in ±0.1 (so their gradients are exercised), softmax weights
    ``0.005 · N(0, 1)`` as the tutorial initialises them.

    Parameters
    ----------
    data : ndarray, shape (input_size, m)
        A few examples (one per column).
    labels : ndarray of int, shape (m,)
    hidden_sizes : sequence of int
        The small stack's layers.
    num_classes, lambda_
        As for :func:`finetune_cost_and_grad`.
    rng : numpy.random.Generator
    epsilon, bound : float
        Central-difference step; largest accepted ``‖num − ana‖ / ‖num + ana‖``.
    cost_fn : callable, optional
        Replacement for :func:`finetune_cost_and_grad` (tests pass broken ones).

    Returns
    -------
    dict
        ``finetune`` (the relative difference), ``max_abs_diff``, ``bound``, ``passed``,
        ``epsilon``, ``input_size``, ``hidden_sizes``, ``num_classes``, ``num_examples``,
        ``num_parameters``, ``lambda_``.
    """
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
    kwargs = dict(
        labels=labels,
        input_size=input_size,
        hidden_sizes=list(hidden_sizes),
        num_classes=int(num_classes),
        lambda_=lambda_,
    )

    def fun(point):
        return cost_fn(point, X, **kwargs)

    analytic = np.asarray(fun(theta)[1])
    numeric = numerical_gradient(fun, theta, epsilon)
    difference = relative_difference(numeric, analytic)
    return {
        "finetune": difference,
        "max_abs_diff": float(np.max(np.abs(numeric - analytic))),
        "bound": float(bound),
        "passed": bool(difference < bound),
        "epsilon": float(epsilon),
        "input_size": int(input_size),
        "hidden_sizes": [int(h) for h in hidden_sizes],
        "num_classes": int(num_classes),
        "num_examples": int(X.shape[1]),
        "num_parameters": int(theta.size),
        "lambda_": float(lambda_),
    }
