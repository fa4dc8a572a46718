"""The stacked network's numerics: layout, fine-tuning cost and gradient, gradient check."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from sparseae.model import autoencoder, softmax, stacked

pytestmark = pytest.mark.fast

INPUT, HIDDEN, CLASSES = 6, [4, 3], 3


def tiny(seed=0, m=7, input_size=INPUT, hidden=HIDDEN, classes=CLASSES):
    rng = np.random.default_rng(seed)
    n = stacked.stack_parameter_count(input_size, hidden, classes)
    theta = rng.normal(0, 0.5, n)
    data = rng.random((input_size, m))
    labels = rng.integers(0, classes, m)
    kw = dict(labels=labels, input_size=input_size, hidden_sizes=hidden, num_classes=classes)
    return theta, data, kw


def test_pack_unpack_round_trip_column_major():
    theta, _, _ = tiny()
    softmax_theta, layers = stacked.unpack_stack(theta, INPUT, HIDDEN, CLASSES)
    assert softmax_theta.shape == (3, 3)
    assert [W.shape for W, _ in layers] == [(4, 6), (3, 4)]
    assert [b.shape for _, b in layers] == [(4,), (3,)]
    # views into theta, MATLAB order: theta(1:9) is softmaxTheta(:), then W1(:), b1, ...
    assert np.shares_memory(softmax_theta, theta) and np.shares_memory(layers[1][0], theta)
    assert softmax_theta[1, 0] == theta[1] and softmax_theta[0, 1] == theta[3]
    assert layers[0][0][1, 0] == theta[9 + 1] and layers[0][0][0, 1] == theta[9 + 4]
    assert np.array_equal(layers[0][1], theta[9 + 24 : 9 + 28])
    assert np.array_equal(layers[1][0], theta[37:49].reshape((3, 4), order="F"))
    assert np.array_equal(stacked.pack_stack(softmax_theta, layers), theta)
    assert theta.size == 3 * 3 + (4 * 6 + 4) + (3 * 4 + 3)


def test_unpack_and_pack_refuse_inconsistent_shapes():
    theta, _, _ = tiny()
    with pytest.raises(ValueError, match="expected \\(52,\\)"):
        stacked.unpack_stack(theta[:-1], INPUT, HIDDEN, CLASSES)
    softmax_theta, layers = stacked.unpack_stack(theta, INPUT, HIDDEN, CLASSES)
    with pytest.raises(ValueError, match="layer 2"):
        stacked.pack_stack(softmax_theta, [layers[0], (layers[1][0].T, layers[1][1])])
    with pytest.raises(ValueError, match="softmax_theta has 2 columns"):
        stacked.pack_stack(softmax_theta[:, :2], layers)


def test_stack_from_autoencoders_takes_each_encoder():
    rng = np.random.default_rng(3)
    ae1 = rng.normal(size=autoencoder.parameter_count(INPUT, 4))
    ae2 = rng.normal(size=autoencoder.parameter_count(4, 3))
    softmax_theta = rng.normal(size=(CLASSES, 3))
    theta = stacked.stack_from_autoencoders(softmax_theta, [ae1, ae2], INPUT, HIDDEN)
    got_softmax, layers = stacked.unpack_stack(theta, INPUT, HIDDEN, CLASSES)
    assert np.array_equal(got_softmax, softmax_theta)
    for (W, b), ae, (v, h) in zip(layers, (ae1, ae2), ((INPUT, 4), (4, 3)), strict=True):
        W1, _, b1, _ = autoencoder.unpack(ae, v, h)
        assert np.array_equal(W, W1) and np.array_equal(b, b1)
    data = rng.random((INPUT, 5))
    features = autoencoder.hidden_activations(
        ae2,
        autoencoder.hidden_activations(ae1, data, visible_size=INPUT, hidden_size=4),
        visible_size=4,
        hidden_size=3,
    )
    top = stacked.stack_activations(stacked.unpack_stack(theta, INPUT, HIDDEN, CLASSES)[1], data)[
        -1
    ]
    np.testing.assert_allclose(top, features, rtol=0, atol=1e-15)


def loop_cost_and_grad(
    theta, data, *, labels, input_size, hidden_sizes, num_classes, lambda_
) -> tuple[float, np.ndarray]:
    """The fine-tuning cost and gradient one example at a time with explicit loops.

    A direct transcription of the equations: no matrix over examples, the softmax normaliser
    summed class by class, every weight gradient accumulated as an outer product.
    """
    theta = np.asarray(theta, dtype=np.float64)
    softmax_theta, layers = stacked.unpack_stack(theta, input_size, hidden_sizes, num_classes)
    X, y, m = data, labels, data.shape[1]
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
    grad = stacked.pack_stack(
        g_softmax / m + lambda_ * softmax_theta, [(gW / m, gb / m) for gW, gb in g_layers]
    )
    return float(cost), grad


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cost_and_gradient_equal_the_loop_computation(seed):
    theta, data, kw = tiny(seed)
    for lambda_ in (0.0, 1e-4, 0.3):
        cost, grad = stacked.finetune_cost_and_grad(theta, data, lambda_=lambda_, **kw)
        ref_cost, ref_grad = loop_cost_and_grad(theta, data, lambda_=lambda_, **kw)
        assert abs(cost - ref_cost) <= 1e-12 * max(1.0, abs(ref_cost)), (cost, ref_cost)
        np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=1e-12)


def test_cost_is_the_softmax_cost_of_the_top_features():
    theta, data, kw = tiny(4)
    softmax_theta, _ = stacked.unpack_stack(theta, INPUT, HIDDEN, CLASSES)
    top = stacked.stack_activations(stacked.unpack_stack(theta, INPUT, HIDDEN, CLASSES)[1], data)[
        -1
    ]
    reference, ref_grad = softmax.cost_and_grad(
        softmax_theta.ravel(order="F"), top, labels=kw["labels"], num_classes=CLASSES, lambda_=1e-2
    )
    cost, grad = stacked.finetune_cost_and_grad(theta, data, lambda_=1e-2, **kw)
    assert cost == pytest.approx(reference, rel=1e-13)
    np.testing.assert_allclose(grad[:9], ref_grad, rtol=1e-12, atol=1e-15)


def test_large_scores_do_not_overflow():
    theta, data, kw = tiny(5)
    theta[:9] *= 1e4  # exp(θ a) would overflow without the max subtraction
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        cost, grad = stacked.finetune_cost_and_grad(theta, data, lambda_=0.0, **kw)
    assert np.isfinite(cost) and np.all(np.isfinite(grad))


def test_predict_is_the_argmax_of_the_softmax():
    theta, data, kw = tiny(0, m=20)
    theta *= 4  # spread the activations and scores so that several classes win
    softmax_theta, layers = stacked.unpack_stack(theta, INPUT, HIDDEN, CLASSES)
    a = data
    for W, b in layers:
        a = expit(W @ a + b[:, None])
    expected = np.argmax(softmax_theta @ a, axis=0)
    got = stacked.predict(theta, data, input_size=INPUT, hidden_sizes=HIDDEN, num_classes=CLASSES)
    assert np.array_equal(got, expected) and len(set(got.tolist())) > 1


def test_labels_out_of_range_are_refused():
    theta, data, kw = tiny()
    kw["labels"] = kw["labels"].copy()
    kw["labels"][0] = CLASSES
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        stacked.finetune_cost_and_grad(theta, data, lambda_=0.0, **kw)


# ------------------------------------------------------------------ gradient check


def small_problem(seed=11):
    rng = np.random.default_rng(seed)
    return rng.random((8, 6)), rng.integers(0, 4, 6)


def test_gradient_check_passes_on_a_small_stack():
    data, labels = small_problem()
    result = stacked.check_finetune_gradient(
        data, labels, hidden_sizes=[5, 4], num_classes=4, lambda_=1e-4,
        rng=np.random.default_rng(1),
    )  # fmt: skip
    assert result["passed"] and result["finetune"] < 1e-9, result
    assert result["num_parameters"] == 4 * 4 + (5 * 8 + 5) + (4 * 5 + 4)


def broken_cost(decay_in_gradient=True, sigmoid_derivative=(True, True)):
    """The vectorized cost written out again, with one piece optionally left out."""

    def cost_fn(theta, data, *, labels, input_size, hidden_sizes, num_classes, lambda_):
        softmax_theta, layers = stacked.unpack_stack(theta, input_size, hidden_sizes, num_classes)
        a = [data]
        for W, b in layers:
            a.append(expit(W @ a[-1] + b[:, None]))
        m = data.shape[1]
        scores = softmax_theta @ a[-1]
        scores -= scores.max(axis=0)
        p = np.exp(scores) / np.exp(scores).sum(axis=0)
        ground = np.zeros_like(p)
        ground[labels, np.arange(m)] = 1.0
        cost = -np.sum(ground * np.log(p)) / m + lambda_ / 2 * np.sum(softmax_theta**2)
        g_softmax = -(ground - p) @ a[-1].T / m
        if decay_in_gradient:
            g_softmax += lambda_ * softmax_theta
        delta = -(softmax_theta.T @ (ground - p))
        grads = []
        for index in range(len(layers) - 1, -1, -1):
            if sigmoid_derivative[index]:
                delta = delta * a[index + 1] * (1 - a[index + 1])
            grads.append((delta @ a[index].T / m, delta.sum(axis=1) / m))
            delta = layers[index][0].T @ delta
        return cost, stacked.pack_stack(g_softmax, grads[::-1])

    return cost_fn


@pytest.mark.parametrize(
    "variant, passes",
    [
        ({}, True),  # the same code complete: the check is not failing everything
        ({"decay_in_gradient": False}, False),
        ({"sigmoid_derivative": (False, True)}, False),
        ({"sigmoid_derivative": (True, False)}, False),
    ],
)
def test_gradient_check_rejects_broken_gradients(variant, passes):
    data, labels = small_problem()
    result = stacked.check_finetune_gradient(
        data, labels, hidden_sizes=[5, 4], num_classes=4, lambda_=0.1,
        rng=np.random.default_rng(1), cost_fn=broken_cost(**variant),
    )  # fmt: skip
    assert result["passed"] is passes, result
    if not passes:
        assert result["finetune"] > 1e-6, result
