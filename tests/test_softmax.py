"""Softmax regression (UFLDL's exercise): cost, gradient check, L-BFGS fit, prediction."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from sparseae.model import softmax
from sparseae.model.gradcheck import numerical_gradient, relative_difference

pytestmark = pytest.mark.fast


def separable_problem(rng, d=20, m=300, k=5):
    """A noisy linear classification problem (features × m)."""
    X = rng.normal(size=(d, m))
    W = rng.normal(size=(k, d))
    y = np.argmax(W @ X + 2.0 * rng.normal(size=(k, m)), axis=0)
    return X, y


def ufldl_cost(theta, X, y, *, num_classes, lambda_):
    """J written out with the one-hot matrix and explicit probabilities, as the exercise does."""
    W = theta.reshape((num_classes, X.shape[0]), order="F")
    m = X.shape[1]
    ground = np.zeros((num_classes, m))
    ground[y, np.arange(m)] = 1.0
    p = np.exp(W @ X) / np.exp(W @ X).sum(axis=0)
    return -np.sum(ground * np.log(p)) / m + lambda_ / 2 * np.sum(W**2)


def test_cost_is_the_exercise_formula_and_its_value_by_hand():
    rng = np.random.default_rng(1)
    X, y = separable_problem(rng, d=6, m=40, k=4)
    theta = 0.3 * rng.normal(size=24)
    kw = dict(labels=y, num_classes=4, lambda_=0.05)
    cost, _ = softmax.cost_and_grad(theta, X, **kw)
    assert cost == pytest.approx(ufldl_cost(theta, X, y, num_classes=4, lambda_=0.05), rel=1e-13)
    # theta = 0 gives p = 1/k for every class: J = log k; decay adds (λ/2)||θ||²
    X1, y1 = np.array([[1.0, -2.0, 0.5]]), np.array([0, 1, 2])
    kw = dict(labels=y1, num_classes=3, lambda_=0.3)
    assert softmax.cost_and_grad(np.zeros(3), X1, **kw)[0] == pytest.approx(np.log(3))
    expected = -np.mean(
        [np.log(np.e / (np.e + 2)), np.log(1 / (np.exp(-2) + 2)), np.log(1 / (np.exp(0.5) + 2))]
    )
    cost, _ = softmax.cost_and_grad(np.array([1.0, 0.0, 0.0]), X1, **kw)
    assert cost == pytest.approx(expected + 0.15, rel=1e-12)


def test_gradient_check_passes_and_rejects_a_gradient_without_decay():
    rng = np.random.default_rng(7)
    features, labels = rng.random((5, 30)), rng.integers(0, 4, 30)
    theta = rng.normal(size=20)  # column-major 4 × 5: a row-major mix-up would fail here
    kw = dict(labels=labels, num_classes=4, lambda_=1e-3)
    _, grad = softmax.cost_and_grad(theta, features, **kw)
    numeric = numerical_gradient(lambda t: softmax.cost_and_grad(t, features, **kw), theta)
    assert relative_difference(numeric, grad) < 1e-9
    kw["lambda_"] = 0.1
    _, grad = softmax.cost_and_grad(theta, features, **kw)
    numeric = numerical_gradient(lambda t: softmax.cost_and_grad(t, features, **kw), theta)
    assert relative_difference(numeric, grad - 0.1 * theta) > 1e-6  # λθ left out: caught


def test_large_scores_do_not_overflow():
    rng = np.random.default_rng(5)
    X, y = separable_problem(rng, d=4, m=10, k=3)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        cost, grad = softmax.cost_and_grad(1e4 * rng.normal(size=12), X, labels=y, num_classes=3,
                                           lambda_=0.0)  # fmt: skip
    assert np.isfinite(cost) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("n_classes", [5, 2])
@pytest.mark.parametrize("lam", [1e-4, 1e-2, 1.0])
def test_fit_minimizes_the_ufldl_objective(n_classes, lam):
    """At the fit the gradient of J vanishes; two classes need no special case."""
    rng = np.random.default_rng(3)
    X, y = separable_problem(rng, k=5)
    if n_classes == 2:
        y = (y > 2).astype(np.int64)
    model = softmax.fit(X, y, lambda_=lam, max_iter=5000, tol=1e-10)
    assert model.converged and model.weights.shape == (n_classes, 20)
    kw = dict(labels=y, num_classes=n_classes, lambda_=lam)
    cost, grad = softmax.cost_and_grad(model.weights.ravel(order="F"), X, **kw)
    assert np.abs(grad).max() < 1e-7 and cost == pytest.approx(model.cost, rel=1e-12)
    # and the check can fail: the usual scaling mistake (λ·m) is not a minimizer of J
    wrong = softmax.fit(X, y, lambda_=lam * y.size, max_iter=5000, tol=1e-10)
    wrong_cost, wrong_grad = softmax.cost_and_grad(wrong.weights.ravel(order="F"), X, **kw)
    assert np.abs(wrong_grad).max() > 1e-5 and wrong_cost > cost


def test_fit_agrees_with_scikit_learn_solving_the_same_objective():
    """An independent solver: scikit-learn's multinomial L2 logistic regression without
    intercept minimizes J / λ when C = 1 / (λ m), so both find the same weights."""
    rng = np.random.default_rng(4)
    X, y = separable_problem(rng)
    y = y + 3  # labels need not start at 0
    model = softmax.fit(X, y, lambda_=1e-3, max_iter=1000)
    reference = LogisticRegression(
        C=1 / (1e-3 * y.size), l1_ratio=0.0, fit_intercept=False, tol=1e-10, max_iter=1000
    ).fit(X.T, y)
    np.testing.assert_array_equal(model.classes, np.arange(3, 8))
    np.testing.assert_array_equal(model.predict(X), reference.predict(X.T))
    np.testing.assert_allclose(model.weights, reference.coef_, atol=1e-4)


def test_default_tolerance_implies_minfuncs_stopping_rule():
    """When it stops before max_iter, sum |∇J| <= 1e-5 holds, as minFunc's optTol demands."""
    rng = np.random.default_rng(8)
    X, y = separable_problem(rng, d=30, m=400)
    model = softmax.fit(X, y, lambda_=1e-3, max_iter=2000)
    assert model.converged and model.tol == pytest.approx(1e-5 / (5 * 30))
    kw = dict(labels=y, num_classes=5, lambda_=1e-3)
    _, grad = softmax.cost_and_grad(model.weights.ravel(order="F"), X, **kw)
    assert np.abs(grad).sum() <= 1e-5


def test_iteration_limit_is_reported_not_warned():
    X, y = separable_problem(np.random.default_rng(5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = softmax.fit(X, y, lambda_=1e-4, max_iter=3)
    assert model.n_iter == 3 and not model.converged


def test_fit_is_deterministic():
    X, y = separable_problem(np.random.default_rng(9))
    a, b = (softmax.fit(X, y, lambda_=1e-4) for _ in range(2))
    assert np.array_equal(a.weights, b.weights) and a.n_iter == b.n_iter


def test_bad_inputs_are_refused():
    X, y = separable_problem(np.random.default_rng(6))
    with pytest.raises(ValueError, match="one example per column"):
        softmax.fit(X.T, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        softmax.fit(X, np.zeros(X.shape[1], dtype=int))
    with pytest.raises(ValueError, match="labels must lie in 0..4"):
        softmax.cost_and_grad(np.zeros(100), X, labels=y + 1, num_classes=5, lambda_=0.0)
    model = softmax.fit(X, y, max_iter=2)
    with pytest.raises(ValueError, match="20 × m"):
        model.predict(X.T)
