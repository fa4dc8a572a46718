"""Softmax regression as UFLDL's "Softmax Regression" exercise defines it.

With ``θ`` of shape ``num_classes × n_features`` (no bias term, so the decay covers all of
``θ``), ``X`` one example per column and ``G`` the one-hot labels (classes × m)::

    P = softmax(θ X)   (per column);   J = −(1/m) Σᵢ log P[yᵢ, i] + (λ/2) ‖θ‖²
    ∇J = (1/m) (P − G) Xᵀ + λ θ

One function for the self-taught evaluation and the stacked network; flat ``θ(:)`` column-major."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparseae.model.lbfgs import minimize_lbfgs

__all__ = ["SoftmaxModel", "cost_and_grad", "fit", "layer_cost", "predict"]


def layer_cost(weights, features, labels, lambda_: float):
    """Softmax cost, its gradient in ``weights`` (classes × features) and the output error
    ``(P − G) / m`` (classes × m, what a network below backpropagates); ``features`` one
    example per column, ``labels`` m class indices (integers in 0 … classes − 1)."""
    weights = np.asarray(weights, dtype=np.float64)
    m, y = features.shape[1], np.asarray(labels)
    if y.shape != (m,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be {m} integers (one per column of data), got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= weights.shape[0]):
        raise ValueError(f"labels must lie in 0..{weights.shape[0] - 1}, got {y.min()}..{y.max()}")
    columns = np.arange(m)
    scores = weights @ features
    scores -= scores.max(axis=0, keepdims=True)  # the softmax is unchanged, exp cannot overflow
    log_p = scores - np.log(np.exp(scores).sum(axis=0, keepdims=True))
    cost = -log_p[y, columns].sum() / m + 0.5 * lambda_ * np.sum(weights**2)
    error = np.exp(log_p)  # P
    error[y, columns] -= 1.0  # P − G
    error /= m
    return float(cost), error @ features.T + lambda_ * weights, error


def cost_and_grad(theta, features, *, labels, num_classes: int, lambda_: float):
    """:func:`layer_cost` on a flat column-major ``θ(:)``: the form L-BFGS and chunks train."""
    features = np.asarray(features, dtype=np.float64)
    weights = np.asarray(theta, dtype=np.float64).reshape(
        (int(num_classes), features.shape[0]), order="F"
    )
    cost, grad, _ = layer_cost(weights, features, labels, lambda_)
    return cost, grad.ravel(order="F")


def predict(weights, features) -> np.ndarray:
    """Most probable class index of each column of ``features`` (argmax of ``θ X``)."""
    return np.argmax(np.asarray(weights) @ features, axis=0)


@dataclass(frozen=True)
class SoftmaxModel:
    """A fitted softmax regression: ``weights`` (classes × features), each row's label and the
    L-BFGS run's outcome."""

    weights: np.ndarray
    classes: np.ndarray
    cost: float
    n_iter: int
    converged: bool
    tol: float

    def predict(self, features) -> np.ndarray:
        """Predicted label (from ``classes``) of each column of ``features``."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[0] != self.weights.shape[1]:
            raise ValueError(
                f"features must be {self.weights.shape[1]} × m (one example per column), "
                f"got shape {features.shape}"
            )
        return self.classes[predict(self.weights, features)]


def fit(features, labels, *, lambda_=1e-4, max_iter=100, tol=None, maxcor=100) -> SoftmaxModel:
    """Train softmax regression on any integer labels, as UFLDL's ``softmaxTrain`` does.

    L-BFGS from ``θ = 0`` for at most ``max_iter`` iterations (minFunc's ``maxIter``). minFunc
    stops when ``Σ|∇J| ≤ 1e-5``; the default ``tol = 1e-5 / θ.size`` on ``max|∇J|`` implies it,
    so a run never ends earlier than the original's. ``features`` has one example per column;
    ``labels`` at least two distinct values, whose sorted order gives the rows of ``weights``."""
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if features.ndim != 2 or labels.shape != (features.shape[1],):
        raise ValueError(
            f"features must be n_features × m with one example per column and labels one "
            f"per column: got features {features.shape}, labels {labels.shape}"
        )
    classes = np.unique(labels)
    if classes.size < 2:
        raise ValueError(f"softmax needs at least 2 classes, got {classes.tolist()}")
    shape = (classes.size, features.shape[0])
    tol = 1e-5 / (shape[0] * shape[1]) if tol is None else float(tol)
    kwargs = dict(labels=np.searchsorted(classes, labels), num_classes=shape[0], lambda_=lambda_)
    result = minimize_lbfgs(
        lambda theta: cost_and_grad(theta, features, **kwargs),
        np.zeros(shape[0] * shape[1]),
        maxcor=maxcor,
        maxiter=int(max_iter),
        maxfun=max(1000, 10 * int(max_iter)),
        gtol=tol,
    )
    return SoftmaxModel(
        weights=result.x.reshape(shape, order="F"),
        classes=classes,
        cost=float(result.fun),
        n_iter=int(result.nit),
        converged=result.reason == "converged",
        tol=tol,
    )
