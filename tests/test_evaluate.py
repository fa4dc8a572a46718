"""Self-taught-learning evaluation: the split, the softmax regularization, real MNIST accuracy."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from http_mirror import MNIST_TEST_FILES, MirrorServer
from PIL import Image
from shared_data import shared_file
from sklearn.linear_model import LogisticRegression

from sparseae import autoencoder, train
from sparseae.datasets import fetch, load_mnist
from sparseae.evaluate import (
    evaluate_features,
    evaluation_blocks,
    fit_softmax,
    save_evaluation,
    self_taught_split,
    softmax_C,
    softmax_cost,
    take_split,
)
from sparseae.visualize import plot_confusion_matrix

pytestmark = pytest.mark.fast

# t10k per-digit counts 0..9, from ../shared/data/README.md (checked there by parsing the file)
T10K_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _labels_like_t10k() -> np.ndarray:
    """Labels with the t10k class counts, in a shuffled order (no file needed)."""
    labels = np.repeat(np.arange(10), T10K_COUNTS)
    return np.random.default_rng(123).permutation(labels)


def _separable_problem(rng, d=20, m=300, k=5):
    """A noisy linear classification problem (features × m)."""
    X = rng.normal(size=(d, m))
    W = rng.normal(size=(k, d))
    y = np.argmax(W @ X + 2.0 * rng.normal(size=(k, m)), axis=0)
    return X, y


# ---------------------------------------------------------------------------------------------
# split
# ---------------------------------------------------------------------------------------------


def test_split_is_disjoint_complete_and_has_the_right_digits():
    labels = _labels_like_t10k()
    split = self_taught_split(labels, rng=np.random.default_rng(0))
    unlabeled, train, test = split["unlabeled"], split["train"], split["test"]
    assert set(np.unique(labels[unlabeled])) == {5, 6, 7, 8, 9}
    assert set(np.unique(labels[train])) == set(np.unique(labels[test])) == {0, 1, 2, 3, 4}
    # pairwise disjoint and together exactly all examples (every digit is used here)
    combined = np.concatenate([unlabeled, train, test])
    assert np.unique(combined).size == combined.size == labels.size
    assert unlabeled.size == sum(T10K_COUNTS[5:])  # 4861: all of digits 5-9
    for key in split:
        assert split[key].dtype == np.int64
        assert np.all(np.diff(split[key]) > 0), f"{key} must be sorted"


def test_split_is_stratified_half_per_digit():
    labels = _labels_like_t10k()
    split = self_taught_split(labels, rng=np.random.default_rng(0))
    for digit in range(5):
        n = T10K_COUNTS[digit]
        n_train = np.sum(labels[split["train"]] == digit)
        assert n_train == int(np.floor(n / 2 + 0.5)), digit  # round half up: 1135 -> 568
        assert np.sum(labels[split["test"]] == digit) == n - n_train


def test_split_train_fraction_and_custom_digits():
    labels = _labels_like_t10k()
    split = self_taught_split(
        labels,
        unlabeled_digits=[0, 1],
        labeled_digits=[7, 9],
        train_fraction=0.25,
        rng=np.random.default_rng(5),
    )
    assert set(np.unique(labels[split["unlabeled"]])) == {0, 1}
    assert split["train"].size == round(0.25 * 1028) + round(0.25 * 1009)
    # digits in neither list (2-6, 8) are left out
    used = np.concatenate(list(split.values()))
    assert set(np.unique(labels[used])) == {0, 1, 7, 9}


def test_split_is_deterministic_given_the_seed_and_changes_with_it():
    labels = _labels_like_t10k()
    a = self_taught_split(labels, rng=np.random.default_rng(42))
    b = self_taught_split(labels, rng=np.random.default_rng(42))
    c = self_taught_split(labels, rng=np.random.default_rng(43))
    for key in ("unlabeled", "train", "test"):
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(a["unlabeled"], c["unlabeled"])  # no randomness there
    assert not np.array_equal(a["train"], c["train"])
    # a different seed moves many examples, not one
    assert np.setdiff1d(a["train"], c["train"]).size > 0.3 * a["train"].size


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"unlabeled_digits": (4, 5), "labeled_digits": (0, 4)}, "overlap in \\[4\\]"),
        ({"unlabeled_digits": ()}, "unlabeled_digits must not be empty"),
        ({"train_fraction": 1.0}, "train_fraction must be in"),
        ({"labeled_digits": (0, 11)}, "digits \\[11\\] do not occur"),
    ],
)
def test_split_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        self_taught_split(_labels_like_t10k(), rng=np.random.default_rng(0), **kwargs)


def test_split_requires_a_generator():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        self_taught_split(_labels_like_t10k(), rng=0)


def test_take_split_gathers_matching_columns():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, size=200)
    images = np.vstack([np.arange(200.0), labels.astype(float)])  # row 1 carries the label
    split = self_taught_split(labels, rng=rng)
    parts = take_split(images, labels, split)
    np.testing.assert_array_equal(parts["X_train"][0], split["train"])
    np.testing.assert_array_equal(parts["X_test"][1], parts["y_test"])
    np.testing.assert_array_equal(parts["unlabeled"][1], labels[split["unlabeled"]])
    with pytest.raises(ValueError, match="one column per label"):
        take_split(images.T, labels, split)


# ---------------------------------------------------------------------------------------------
# softmax: the C mapping really gives UFLDL's objective
# ---------------------------------------------------------------------------------------------


def test_softmax_cost_gradient_matches_central_differences():
    rng = np.random.default_rng(2)
    X, y = _separable_problem(rng, d=6, m=40, k=4)
    theta = 0.3 * rng.normal(size=(4, 6))
    lam = 0.05
    _, grad = softmax_cost(theta, X, y, lambda_=lam)
    numeric = np.zeros_like(theta)
    eps = 1e-4
    for index in np.ndindex(theta.shape):
        step = np.zeros_like(theta)
        step[index] = eps
        numeric[index] = (
            softmax_cost(theta + step, X, y, lambda_=lam)[0]
            - softmax_cost(theta - step, X, y, lambda_=lam)[0]
        ) / (2 * eps)
    assert np.linalg.norm(numeric - grad) / np.linalg.norm(numeric + grad) < 1e-9


def test_softmax_cost_value_on_a_hand_computed_case():
    # theta = 0 gives p = 1/k for every class: J = log k; decay adds (λ/2)||θ||²
    X = np.array([[1.0, -2.0, 0.5]])
    y = np.array([0, 1, 2])
    cost, _ = softmax_cost(np.zeros((3, 1)), X, y, lambda_=0.3)
    assert cost == pytest.approx(np.log(3))
    theta = np.array([[1.0], [0.0], [0.0]])
    cost, _ = softmax_cost(theta, X, y, lambda_=0.3)
    expected = (
        -np.mean(
            [np.log(np.e / (np.e + 2)), np.log(1 / (np.exp(-2) + 2)), np.log(1 / (np.exp(0.5) + 2))]
        )
        + 0.15
    )
    assert cost == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n_classes", [5, 2])
@pytest.mark.parametrize("lam", [1e-4, 1e-2, 1.0])
def test_fit_softmax_minimizes_the_ufldl_objective(n_classes, lam):
    """At scikit-learn's solution the gradient of UFLDL's J (our numpy code) vanishes."""
    rng = np.random.default_rng(3)
    X, y = _separable_problem(rng, k=5)
    if n_classes == 2:
        y = (y > 2).astype(np.int64)
    model = fit_softmax(X, y, lambda_=lam, max_iter=5000, tol=1e-12)
    assert model.converged
    assert model.C == pytest.approx(softmax_C(lam, y.size, n_classes))
    cost, grad = softmax_cost(model.theta, X, y, lambda_=lam)
    assert np.abs(grad).max() < 1e-7
    # and the check can fail: the usual mistake C = 1/λ (forgetting m) is not stationary (its
    # gradient is at least 100 times the bound above, even at λ = 1e-4 where decay is tiny)
    wrong = LogisticRegression(
        C=1 / lam, l1_ratio=0.0, fit_intercept=False, max_iter=5000, tol=1e-12
    ).fit(X.T, y)
    coef = wrong.coef_ if n_classes > 2 else np.vstack([-wrong.coef_ / 2, wrong.coef_ / 2])
    wrong_cost, wrong_grad = softmax_cost(coef, X, y, lambda_=lam)
    assert np.abs(wrong_grad).max() > 1e-5
    assert wrong_cost > cost


def test_fit_softmax_model_predicts_like_scikit_learn():
    rng = np.random.default_rng(4)
    X, y = _separable_problem(rng)
    y = y + 3  # labels need not start at 0
    model = fit_softmax(X, y, lambda_=1e-3)
    reference = LogisticRegression(
        C=softmax_C(1e-3, y.size, 5), l1_ratio=0.0, fit_intercept=False, tol=model.tol
    ).fit(X.T, y)
    np.testing.assert_array_equal(model.predict(X), reference.predict(X.T))
    np.testing.assert_array_equal(model.classes, np.arange(3, 8))
    assert np.all(model.intercept == 0)


def test_fit_softmax_default_tolerance_implies_minfuncs_stopping_rule():
    """When it stops before max_iter, sum |∇J| <= 1e-5 holds, as minFunc's optTol demands."""
    rng = np.random.default_rng(8)
    X, y = _separable_problem(rng, d=30, m=400)
    model = fit_softmax(X, y, lambda_=1e-3, max_iter=2000)
    assert model.converged
    assert model.tol == pytest.approx(1e-5 / (5 * 30))
    _, grad = softmax_cost(model.theta, X, y, lambda_=1e-3)
    assert np.abs(grad).sum() <= 1e-5


def test_fit_softmax_reports_the_iteration_limit_without_warning():
    rng = np.random.default_rng(5)
    X, y = _separable_problem(rng)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the expected ConvergenceWarning must not escape
        model = fit_softmax(X, y, lambda_=1e-4, max_iter=3)
    assert model.n_iter == 3
    assert not model.converged


def test_fit_softmax_rejects_transposed_features():
    X, y = _separable_problem(np.random.default_rng(6))
    with pytest.raises(ValueError, match="one example per column"):
        fit_softmax(X.T, y)
    with pytest.raises(ValueError, match="at least 2 classes"):
        fit_softmax(X, np.zeros(X.shape[1], dtype=int))


def test_softmax_C_rejects_negative_lambda():
    with pytest.raises(ValueError, match="lambda_"):
        softmax_C(-1e-4, 10, 5)
    assert softmax_C(0.0, 10, 5) == float("inf")


# ---------------------------------------------------------------------------------------------
# confusion matrix figure
# ---------------------------------------------------------------------------------------------


def test_plot_confusion_matrix_writes_a_png(tmp_path):
    matrix = [[50, 2, 0], [3, 40, 1], [0, 0, 60]]
    path = plot_confusion_matrix(
        matrix, [0, 1, 2], tmp_path / "sub" / "confusion.png", "raw pixels: 95.6%"
    )
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("L"))
    assert width > 100 and height > 100
    assert pixels.min() < 80 and pixels.max() > 200  # dark cells and white background
    assert [p.name for p in path.parent.iterdir()] == ["confusion.png"]  # no temporaries
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix([[1, 2]], [0], tmp_path / "bad.png", "bad")
    assert not (tmp_path / "bad.png").exists()


# ---------------------------------------------------------------------------------------------
# real MNIST (t10k) through the datasets module and a loopback mirror of ../shared/data
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def t10k(tmp_path_factory):
    """The 10,000 real t10k digits, downloaded md5-verified from a loopback HTTP mirror."""
    for name in MNIST_TEST_FILES:
        folder = shared_file(f"data/{name}").parent
    dest = tmp_path_factory.mktemp("mnist")
    with MirrorServer(folder) as mirror:
        fetch("mnist", dest, [mirror.url], split="test", retries=0)
        assert sorted(name for name, _ in mirror.requests) == sorted(MNIST_TEST_FILES)
    return load_mnist(dest, "test")


@pytest.fixture(scope="module")
def t10k_parts(t10k):
    X, labels = t10k
    split = self_taught_split(labels, rng=np.random.default_rng(2024))
    return split, take_split(X, labels, split)


def test_t10k_split_sizes(t10k, t10k_parts):
    _, labels = t10k
    split, parts = t10k_parts
    assert split["unlabeled"].size == 4861  # 892 + 958 + 1028 + 974 + 1009 (README counts)
    # half of each of 980, 1135, 1032, 1010, 982, rounding half up: 490+568+516+505+491
    assert split["train"].size == 2570
    assert split["test"].size == 2569
    assert parts["unlabeled"].shape == (784, 4861)
    assert np.all(labels[split["unlabeled"]] >= 5)


@pytest.mark.slow  # 100 full L-BFGS iterations on 784 features: 5-12 s on the shared machine
def test_raw_pixel_softmax_on_t10k_digits_0_to_4(t10k_parts):
    """Softmax on raw pixels of real digits: chance is 20 %; about 95 % measured here."""
    _, parts = t10k_parts
    n = 500  # a subset of the 2570 training digits keeps this test to a few seconds
    model = fit_softmax(parts["X_train"][:, :n], parts["y_train"][:n], lambda_=1e-4)
    predicted = model.predict(parts["X_test"])
    accuracy = np.mean(predicted == parts["y_test"])
    assert accuracy > 0.90
    for digit in range(5):  # every class is learned, not just the frequent ones
        assert np.mean(predicted[parts["y_test"] == digit] == digit) > 0.8, digit


@pytest.mark.slow
def test_self_taught_chain_on_t10k_reduced(t10k_parts, tmp_path):
    """Train on unlabeled 5-9, encode 0-4, classify: the whole chain on real digits.

    Reduced size (100 hidden units, 1000 unlabeled digits, 100 L-BFGS iterations, 1000
    training / 1500 test digits): 20-50 s on this shared 2-core machine.
    At this size the features are only about as good as raw pixels: over four split /
    initialization seeds, features minus raw was -0.7 to +0.3 percentage points (raw about
    95.5-96.5 %); the full protocol (200 hidden, all 4861 unlabeled digits, 400 iterations,
    bench/mnist_training.py) is where the features must clearly win. So the assertions are:
    well above chance (20 %), and features **not more than 2 percentage points below raw
    pixels**, about three times the worst seed seen.

    What that margin catches, measured on one seed: W1 unpacked row-major (-5.3 points),
    labels out of step with the columns (chance level); NaN features raise. What it does not:
    digits 0-4 are easy enough that untrained random features (-1.3), W2ᵀ as encoder (-1.7) or
    a transposed image layout (-1.2) stay inside it; those are the unit tests' job.
    """
    _, parts = t10k_parts
    hidden, visible = 100, 784
    unlabeled = parts["unlabeled"][:, :1000]
    rng = np.random.default_rng(7)
    theta0 = autoencoder.initialize_parameters(hidden, visible, rng)
    start = time.perf_counter()
    theta, records = train.train_chunk(
        theta0, unlabeled, 100, visible_size=visible, hidden_size=hidden, lambda_=3e-3,
        beta=3.0, rho=0.1, options=train.LBFGSOptions(maxcor=100, maxiter=100),
    )  # fmt: skip
    assert len(records) == 100
    assert records[-1]["cost"] < 0.2 * records[0]["cost"]

    result = evaluate_features(
        theta, parts["X_train"][:, :1000], parts["y_train"][:1000],
        parts["X_test"][:, :1500], parts["y_test"][:1500],
        visible_size=visible, hidden_size=hidden, lambda_=1e-4, max_iter=100,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    assert (result["n_train"], result["n_test"]) == (1000, 1500)
    assert result["classes"] == [0, 1, 2, 3, 4]
    assert result["n_features_features"] == hidden
    assert result["accuracy_features"] > 0.85  # chance: 0.2
    assert result["accuracy_raw"] > 0.85
    assert result["accuracy_features"] >= result["accuracy_raw"] - 0.02, result
    for name in ("features", "raw"):
        confusion = np.array(result[f"confusion_{name}"])
        assert confusion.sum() == 1500
        assert np.trace(confusion) / 1500 == pytest.approx(result[f"accuracy_{name}"])
        np.testing.assert_allclose(
            result[f"per_class_accuracy_{name}"], np.diag(confusion) / confusion.sum(axis=1)
        )
    # what the evaluate rule writes: evaluation.json (plain JSON) and two confusion figures
    paths = save_evaluation(result, tmp_path, extra={"split_seed": 2024})
    written = json.loads(paths["evaluation"].read_text())
    record = {**result, "split_seed": 2024}
    assert written == {**record, **evaluation_blocks(record)}
    # ... whose blocks name what MLflow shows: figures as metrics, settings as params.
    assert written["metrics"]["accuracy_features"] == result["accuracy_features"]
    assert written["metrics"]["per_class_accuracy_raw.4"] == result["per_class_accuracy_raw"][4]
    assert written["metrics"]["softmax.n_iter_raw"] == result["softmax"]["n_iter_raw"]
    assert written["params"]["evaluation.split_seed"] == 2024
    assert written["params"]["evaluation.softmax.solver"] == "lbfgs"
    assert not [k for k in (*written["metrics"], *written["params"]) if "confusion" in k]
    for name in ("confusion_features", "confusion_raw"):
        with Image.open(paths[name]) as image:
            assert image.format == "PNG"
    with pytest.raises(ValueError, match="overwrite result keys \\['n_test'\\]"):
        save_evaluation(result, tmp_path, extra={"n_test": 0})
    print(f"chain: {elapsed:.1f} s, features {result['accuracy_features']:.4f}, "
          f"raw {result['accuracy_raw']:.4f}")  # fmt: skip


def test_evaluate_features_rejects_mismatched_inputs(t10k_parts):
    _, parts = t10k_parts
    theta = autoencoder.initialize_parameters(10, 784, np.random.default_rng(0))
    args = (parts["X_train"][:, :50], parts["y_train"][:50], parts["X_test"][:, :50])
    with pytest.raises(ValueError, match="visible_size=64"):
        evaluate_features(theta, *args, parts["y_test"][:50], visible_size=64, hidden_size=10)
    with pytest.raises(ValueError, match="X_test has 50 columns but its labels have 49"):
        evaluate_features(theta, *args, parts["y_test"][:49], visible_size=784, hidden_size=10)
