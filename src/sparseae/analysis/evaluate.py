"""Self-taught-learning evaluation: what are the learned features worth to a classifier?

The protocol of the UFLDL "Self-Taught Learning" exercise: train the sparse autoencoder on
*unlabeled* digits 5–9, encode the *labeled* digits 0–4 with its hidden layer, fit a
multinomial softmax regression on half of them and report test accuracy on the other half —
once on the hidden activations and once on the raw pixels, with the same regularization. The
original reports about 98% with features against about 96% with raw pixels.

Softmax regression is scikit-learn's :class:`~sklearn.linear_model.LogisticRegression`
(multinomial loss, L-BFGS), with ``C`` chosen so that it minimizes *exactly* the UFLDL
objective (see :func:`softmax_C`); :func:`softmax_cost` is that objective written out in numpy,
so the equivalence can be checked rather than believed.

Data follow the package convention: one example per **column** (``features × examples``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from sparseae.analysis.visualize import plot_confusion_matrix
from sparseae.io import write_json
from sparseae.model.autoencoder import hidden_activations

__all__ = [
    "SoftmaxModel",
    "evaluate_features",
    "fit_softmax",
    "save_evaluation",
    "evaluation_blocks",
    "self_taught_split",
    "softmax_C",
    "softmax_cost",
    "take_split",
]

# ---------------------------------------------------------------------------------------------
# The split
# ---------------------------------------------------------------------------------------------


def self_taught_split(
    labels: np.ndarray,
    *,
    unlabeled_digits: Sequence[int] = (5, 6, 7, 8, 9),
    labeled_digits: Sequence[int] = (0, 1, 2, 3, 4),
    train_fraction: float = 0.5,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Split example indices into unlabeled / labeled-train / labeled-test sets.

    The unlabeled set is every example whose label is in ``unlabeled_digits`` (no randomness:
    all of them, in file order). The labeled examples are split **stratified by digit**: for
    each labeled digit its examples are shuffled with ``rng`` and the first
    ``round(train_fraction * count)`` go to ``train``, the rest to ``test``. Stratifying keeps
    the class proportions of the two halves equal to those of the data, so the train/test
    accuracy comparison is not disturbed by a chance imbalance. (The original exercise took
    the first and second halves of the labeled digits in file order; a seeded random split
    is reproducible too and avoids any ordering effect in the file.)
    Examples whose label is in neither list are left out.

    Parameters
    ----------
    labels : ndarray of int, shape (m,)
        Digit label of every example.
    unlabeled_digits, labeled_digits : sequence of int
        Disjoint, non-empty sets of digits.
    train_fraction : float
        Share of each labeled digit that goes to ``train``, in (0, 1).
    rng : numpy.random.Generator
        The only source of randomness; the same generator state gives the same split.

    Returns
    -------
    dict
        ``unlabeled``, ``train``, ``test``: sorted int64 index arrays into ``labels``,
        pairwise disjoint.

    Raises
    ------
    ValueError
        If the digit sets overlap or are empty, a requested digit does not occur in
        ``labels``, ``train_fraction`` is outside (0, 1), or train or test would be empty.
    TypeError
        If ``rng`` is not a :class:`numpy.random.Generator`.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    labels = _as_labels(labels, "labels")
    unlabeled_digits = _as_digit_set(unlabeled_digits, "unlabeled_digits")
    labeled_digits = _as_digit_set(labeled_digits, "labeled_digits")
    overlap = sorted(set(unlabeled_digits) & set(labeled_digits))
    if overlap:
        raise ValueError(f"unlabeled_digits and labeled_digits overlap in {overlap}")
    if not 0.0 < float(train_fraction) < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    present = set(np.unique(labels).tolist())
    missing = sorted(set(unlabeled_digits + labeled_digits) - present)
    if missing:
        raise ValueError(f"digits {missing} do not occur in labels (present: {sorted(present)})")

    unlabeled = np.flatnonzero(np.isin(labels, unlabeled_digits)).astype(np.int64)
    train_parts, test_parts = [], []
    for digit in labeled_digits:  # sorted, so the draws from rng are in a fixed order
        members = rng.permutation(np.flatnonzero(labels == digit))
        # round half up (Python's round() is banker's rounding)
        n_train = int(np.floor(train_fraction * members.size + 0.5))
        train_parts.append(members[:n_train])
        test_parts.append(members[n_train:])
    train = np.sort(np.concatenate(train_parts)).astype(np.int64)
    test = np.sort(np.concatenate(test_parts)).astype(np.int64)
    if train.size == 0 or test.size == 0:
        raise ValueError(
            f"the split leaves {train.size} training and {test.size} test examples; "
            f"need at least one of each (labeled examples: {train.size + test.size})"
        )
    return {"unlabeled": unlabeled, "train": train, "test": test}


def take_split(
    images: np.ndarray, labels: np.ndarray, split: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Gather the arrays of a :func:`self_taught_split`.

    Parameters
    ----------
    images : ndarray, shape (visible, m)
        One example per column.
    labels : ndarray of int, shape (m,)
    split : dict
        Output of :func:`self_taught_split` for these labels.

    Returns
    -------
    dict
        ``unlabeled`` (visible × n_unlabeled), ``X_train``, ``y_train``, ``X_test``,
        ``y_test``. Column blocks are copied (C-contiguous) so they can be saved or trained on.
    """
    images = np.asarray(images)
    labels = _as_labels(labels, "labels")
    if images.ndim != 2 or images.shape[1] != labels.size:
        raise ValueError(
            f"images must be visible × m with one column per label: got shape {images.shape} "
            f"for {labels.size} labels"
        )
    for key in ("unlabeled", "train", "test"):
        if key not in split:
            raise ValueError(f"split has no key {key!r} (keys: {sorted(split)})")
    return {
        "unlabeled": np.ascontiguousarray(images[:, split["unlabeled"]]),
        "X_train": np.ascontiguousarray(images[:, split["train"]]),
        "y_train": labels[split["train"]],
        "X_test": np.ascontiguousarray(images[:, split["test"]]),
        "y_test": labels[split["test"]],
    }


# ---------------------------------------------------------------------------------------------
# Softmax regression
# ---------------------------------------------------------------------------------------------


def softmax_C(lambda_: float, n_samples: int, n_classes: int) -> float:
    """The scikit-learn ``C`` that makes ``LogisticRegression`` minimize the UFLDL objective.

    UFLDL's ``softmaxCost`` (no intercept; the weight decay covers all of θ, shape
    classes × features) is::

        J(θ) = -(1/m) Σ_i log p(y_i | x_i; θ) + (λ/2) ||θ||²

    scikit-learn's multinomial L2 logistic regression (``n_classes ≥ 3``) minimizes over
    ``W`` (classes × features, the same over-parametrized layout)::

        S(W) = C Σ_i -log p(y_i | x_i; W) + (1/2) ||W||²

    With ``C = 1 / (λ m)``, ``S = J / λ``: a positive multiple, hence the same minimizer.
    (Internally scikit-learn even optimizes ``S / (C m)``, which is then ``J`` itself, so its
    ``tol`` acts on the gradient of ``J``.)

    For two classes scikit-learn fits a single vector ``w`` with the logistic loss, which is
    the softmax likelihood as a function of ``w = θ_1 - θ_0``. For fixed ``w`` the UFLDL decay
    ``(λ/2)(||θ_0||² + ||θ_1||²)`` is smallest at ``θ_1 = -θ_0 = w/2`` where it equals
    ``(λ/4)||w||²``; so ``J = -(1/m) Σ log p + (λ/4)||w||²`` and ``C = 2 / (λ m)``.

    Parameters
    ----------
    lambda_ : float
        UFLDL weight decay λ (≥ 0; 0 gives ``inf``, i.e. no penalty).
    n_samples : int
        Number of training examples m.
    n_classes : int
        Number of classes (≥ 2).

    Returns
    -------
    float
    """
    if not lambda_ >= 0.0 or not np.isfinite(lambda_):
        raise ValueError(f"lambda_ must be a finite number >= 0, got {lambda_!r}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if n_classes < 2:
        raise ValueError(f"softmax needs at least 2 classes, got {n_classes}")
    if lambda_ == 0.0:
        return float("inf")
    factor = 2.0 if n_classes == 2 else 1.0
    return factor / (lambda_ * n_samples)


def softmax_cost(
    theta: np.ndarray,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    lambda_: float,
    classes: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """UFLDL's softmax regression objective and its gradient (no intercept).

    ``J = -(1/m) Σ_i log p(y_i | x_i) + (λ/2) ||θ||²`` with ``p(k | x) ∝ exp(θ_k · x)``;
    ``∇J = -(1/m) (G - P) Xᵀ + λ θ`` where ``G`` is the one-hot ground truth and ``P`` the
    probabilities (classes × m).

    Parameters
    ----------
    theta : ndarray, shape (n_classes, n_features)
    features : ndarray, shape (n_features, m)
        One example per column.
    labels : ndarray of int, shape (m,)
    lambda_ : float
        Weight decay λ.
    classes : ndarray, optional
        Class of each row of ``theta`` (default: the sorted unique labels).

    Returns
    -------
    cost : float
    grad : ndarray, shape (n_classes, n_features)
    """
    features = np.asarray(features, dtype=np.float64)
    labels = _as_labels(labels, "labels")
    classes = np.unique(labels) if classes is None else np.asarray(classes)
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (classes.size, features.shape[0]):
        raise ValueError(
            f"theta must be n_classes × n_features = {(classes.size, features.shape[0])}, "
            f"got {theta.shape}"
        )
    if not np.all(np.isin(labels, classes)):
        raise ValueError(f"labels contain values outside classes {classes.tolist()}")
    index = np.searchsorted(classes, labels)
    m = labels.size
    scores = theta @ features
    scores -= scores.max(axis=0, keepdims=True)  # stabilizes exp without changing p
    log_p = scores - np.log(np.exp(scores).sum(axis=0, keepdims=True))
    columns = np.arange(m)
    cost = -log_p[index, columns].sum() / m + 0.5 * lambda_ * np.sum(theta**2)
    residual = np.exp(log_p)
    residual[index, columns] -= 1.0  # P - G
    grad = residual @ features.T / m + lambda_ * theta
    return float(cost), grad


@dataclass(frozen=True)
class SoftmaxModel:
    """A fitted softmax regression in UFLDL layout.

    Attributes
    ----------
    theta : ndarray, shape (n_classes, n_features)
        Weights; for two classes the symmetric ``[-w/2, w/2]`` (see :func:`softmax_C`).
    intercept : ndarray, shape (n_classes,)
        Zeros unless fitted with ``fit_intercept=True``.
    classes : ndarray
        Label of each row of ``theta``.
    lambda_, C : float
        UFLDL weight decay and the scikit-learn ``C`` it maps to.
    n_iter : int
        L-BFGS iterations used.
    tol : float
        The gradient tolerance used.
    converged : bool
        False when the solver stopped at ``max_iter`` (or otherwise warned).
    """

    theta: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray
    lambda_: float
    C: float
    n_iter: int
    tol: float
    converged: bool

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        """Class scores ``θ x + b``, shape (n_classes, m), for features × m input."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[0] != self.theta.shape[1]:
            raise ValueError(
                f"features must be {self.theta.shape[1]} × m (one example per column), "
                f"got shape {features.shape}"
            )
        return self.theta @ features + self.intercept[:, None]

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Most probable class of each column of ``features``."""
        return self.classes[np.argmax(self.decision_function(features), axis=0)]


def fit_softmax(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    lambda_: float = 1e-4,
    max_iter: int = 100,
    tol: float | None = None,
    fit_intercept: bool = False,
) -> SoftmaxModel:
    """Fit multinomial softmax regression with UFLDL's regularization.

    scikit-learn's ``LogisticRegression`` (L2, ``solver="lbfgs"``) with ``C`` from
    :func:`softmax_C`, so the minimizer is that of UFLDL's ``softmaxCost`` (derivation there).

    Choices, matching the original ``softmaxTrain`` (minFunc L-BFGS, ``maxIter`` 100):

    * ``fit_intercept=False`` by default: the original model has no bias term. (With an
      intercept scikit-learn leaves it undecayed; then the objective is no longer UFLDL's.)
    * ``max_iter`` counts L-BFGS iterations, as minFunc's ``maxIter`` does. Stopping there is
      the normal case, not an error: the ``ConvergenceWarning`` is caught and reported as
      ``converged=False``.
    * Tolerance: minFunc stops when ``sum |∇J| ≤ 1e-5`` (its ``optTol``); scipy's L-BFGS-B,
      under scikit-learn, when ``max |∇J| ≤ tol`` (on J itself, see :func:`softmax_C`). The
      default ``tol = 1e-5 / θ.size`` makes scipy's test imply minFunc's
      (``sum ≤ size · max``), so the run does not end earlier than the original would have.
      (A tolerance of 1e-5 on max stopped the raw-pixel t10k fit at 76 iterations with
      ``sum |∇J|`` still 3e-3; scikit-learn's default is 1e-4.)

    Parameters
    ----------
    features : ndarray, shape (n_features, m)
        One example per column (package convention).
    labels : ndarray of int, shape (m,)
    lambda_ : float
        Weight decay λ of the UFLDL objective (1e-4 in the original).
    max_iter : int
        L-BFGS iterations (100 in the original).
    tol : float, optional
        Stop when max |∇J| ≤ tol; default ``1e-5 / (n_classes · n_features)`` (see above).
    fit_intercept : bool
        Add an (unregularized) intercept; off to match the original.

    Returns
    -------
    SoftmaxModel
    """
    features = _as_features(features, "features")
    labels = _as_labels(labels, "labels")
    if features.shape[1] != labels.size:
        raise ValueError(
            f"features has {features.shape[1]} columns (examples) but labels has "
            f"{labels.size} entries; features must be n_features × m, one example per column"
        )
    if int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    classes = np.unique(labels)
    C = softmax_C(lambda_, labels.size, classes.size)
    if tol is None:
        tol = 1e-5 / (classes.size * features.shape[0])
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    estimator = LogisticRegression(
        C=C,
        l1_ratio=0.0,
        solver="lbfgs",
        max_iter=int(max_iter),
        tol=tol,
        fit_intercept=fit_intercept,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        # scikit-learn wants examples × features, C-ordered (it would copy otherwise)
        estimator.fit(np.ascontiguousarray(features.T), labels)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    for w in caught:  # pass on anything that is not the expected iteration-limit notice
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    coef = np.asarray(estimator.coef_, dtype=np.float64)
    intercept = np.asarray(estimator.intercept_, dtype=np.float64) * np.ones(coef.shape[0])
    if classes.size == 2:
        # scikit-learn's one binary vector w = θ_1 - θ_0; the decay-minimal split is ±w/2
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    if not fit_intercept:
        intercept = np.zeros(classes.size)
    return SoftmaxModel(
        theta=coef,
        intercept=intercept,
        classes=classes,
        lambda_=float(lambda_),
        C=float(C),
        n_iter=int(np.max(estimator.n_iter_)),
        tol=float(tol),
        converged=converged,
    )


# ---------------------------------------------------------------------------------------------
# The evaluation
# ---------------------------------------------------------------------------------------------


def evaluate_features(
    theta: np.ndarray,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    visible_size: int,
    hidden_size: int,
    lambda_: float = 1e-4,
    max_iter: int = 100,
    tol: float | None = None,
    fit_intercept: bool = False,
) -> dict:
    """Test accuracy of softmax regression on hidden activations and on raw pixels.

    Both classifiers see the same examples and use the same λ, iteration limit and solver;
    only the representation differs (``hidden_activations`` of the trained autoencoder vs
    the visible input itself).

    Parameters
    ----------
    theta : ndarray
        Trained autoencoder parameters (flat, UFLDL layout).
    X_train, X_test : ndarray, shape (visible_size, m_train / m_test)
        Labeled examples, one per column.
    y_train, y_test : ndarray of int
    visible_size, hidden_size : int
        Autoencoder shape.
    lambda_, max_iter, tol, fit_intercept
        Passed to :func:`fit_softmax`.

    Returns
    -------
    dict
        JSON-ready: ``accuracy_features``, ``accuracy_raw``, ``n_train``, ``n_test``,
        ``classes``, ``confusion_features`` / ``confusion_raw`` (lists of rows; row = true
        class, column = predicted class, in ``classes`` order), ``per_class_accuracy_features``
        / ``per_class_accuracy_raw`` (lists in ``classes`` order), ``n_features_features``,
        ``n_features_raw``, ``softmax`` (λ, C per representation, iterations, convergence,
        solver, scikit-learn version) and ``seconds`` (time to encode and to fit each).
    """
    X_train = _as_features(X_train, "X_train")
    X_test = _as_features(X_test, "X_test")
    y_train = _as_labels(y_train, "y_train")
    y_test = _as_labels(y_test, "y_test")
    for name, X, y in (("X_train", X_train, y_train), ("X_test", X_test, y_test)):
        if X.shape[0] != visible_size:
            raise ValueError(
                f"{name} has {X.shape[0]} rows, expected visible_size={visible_size} "
                f"(one example per column)"
            )
        if X.shape[1] != y.size:
            raise ValueError(
                f"{name} has {X.shape[1]} columns but its labels have {y.size} entries"
            )
    unseen = sorted(set(np.unique(y_test).tolist()) - set(np.unique(y_train).tolist()))
    if unseen:
        raise ValueError(f"test labels {unseen} never occur in the training labels")

    start = time.perf_counter()
    F_train = hidden_activations(theta, X_train, visible_size=visible_size, hidden_size=hidden_size)
    F_test = hidden_activations(theta, X_test, visible_size=visible_size, hidden_size=hidden_size)
    seconds = {"encode": time.perf_counter() - start}

    result: dict = {
        "n_train": int(y_train.size),
        "n_test": int(y_test.size),
        "n_features_features": int(F_train.shape[0]),
        "n_features_raw": int(visible_size),
    }
    softmax: dict = {
        "lambda": float(lambda_),
        "max_iter": int(max_iter),
        "fit_intercept": bool(fit_intercept),
        "solver": "lbfgs",
        "sklearn_version": sklearn.__version__,
    }
    for name, train, test in (("features", F_train, F_test), ("raw", X_train, X_test)):
        start = time.perf_counter()
        model = fit_softmax(
            train, y_train, lambda_=lambda_, max_iter=max_iter, tol=tol, fit_intercept=fit_intercept
        )
        seconds[f"fit_{name}"] = time.perf_counter() - start
        predicted = model.predict(test)
        confusion = _confusion(y_test, predicted, model.classes)
        support = confusion.sum(axis=1)
        per_class = np.divide(
            np.diag(confusion), support, out=np.full(support.shape, np.nan), where=support > 0
        )
        result[f"accuracy_{name}"] = float(np.mean(predicted == y_test))
        result[f"confusion_{name}"] = confusion.tolist()
        result[f"per_class_accuracy_{name}"] = [float(a) for a in per_class]
        result["classes"] = model.classes.tolist()
        softmax[f"C_{name}"] = model.C
        softmax[f"n_iter_{name}"] = model.n_iter
        softmax[f"tol_{name}"] = model.tol
        softmax[f"converged_{name}"] = model.converged
    result["softmax"] = softmax
    result["seconds"] = seconds
    return result


def save_evaluation(result: dict, folder: str | Path, *, extra: dict | None = None) -> dict:
    """Write an :func:`evaluate_features` result as ``evaluation.json`` plus two figures.

    Files (each written atomically): ``evaluation.json`` (``result`` updated with ``extra``,
    e.g. the split settings and seed), ``confusion_features.png``, ``confusion_raw.png``.

    Parameters
    ----------
    result : dict
        Output of :func:`evaluate_features`.
    folder : path-like
        Destination folder (``results/{experiment}`` in the workflow).
    extra : dict, optional
        More JSON-ready entries for ``evaluation.json``; may not overwrite result keys.

    Returns
    -------
    dict
        ``{"evaluation": Path, "confusion_features": Path, "confusion_raw": Path}``.
    """
    folder = Path(folder)
    missing = [k for k in ("accuracy_features", "accuracy_raw", "classes",
                           "confusion_features", "confusion_raw") if k not in result]  # fmt: skip
    if missing:
        raise ValueError(f"result lacks {missing}; pass the dict evaluate_features returned")
    clash = sorted(set(extra or {}) & set(result))
    if clash:
        raise ValueError(f"extra would overwrite result keys {clash}")
    paths = {}
    for name in ("features", "raw"):
        label = "hidden-layer features" if name == "features" else "raw pixels"
        paths[f"confusion_{name}"] = plot_confusion_matrix(
            result[f"confusion_{name}"], result["classes"], folder / f"confusion_{name}.png",
            f"softmax on {label}: test accuracy {100 * result[f'accuracy_{name}']:.2f}%",
        )  # fmt: skip
    # the JSON last: its presence means the figures are there too
    paths["evaluation"] = folder / "evaluation.json"
    record = {**result, **(extra or {})}
    write_json(paths["evaluation"], {**record, **evaluation_blocks(record)})
    return paths


#: Nested sections of an evaluation whose numbers are measurements (metric names start with
#: these after the section's name); the rest of a section is settings.
MEASURED = {"softmax": ("n_iter_", "converged_", "C_", "tol_"), "seconds": ("",)}
#: Entries kept in ``evaluation.json`` and its figures only (whole matrices, the labels).
FILE_ONLY = ("classes", "confusion_features", "confusion_raw")


def evaluation_blocks(record: Mapping) -> dict:
    """The ``metrics`` and ``params`` blocks of ``evaluation.json``: what MLflow shows of it.

    Metrics: the accuracies (``accuracy_features``, ``accuracy_raw``), one
    ``per_class_accuracy_<name>.<label>`` per class, and the measurements of the
    :data:`MEASURED` sections by dotted path (``softmax.n_iter_features``,
    ``seconds.encode``). Params ``evaluation.<dotted path>``: the counts (``n_train``), the
    softmax settings, the split protocol and the other strings and flags. The confusion
    matrices and class list stay in the file.
    """
    metrics: dict = {}
    params: dict = {}
    classes = record.get("classes")

    def section(prefix: str, values: Mapping, measured: tuple) -> None:
        for key, value in values.items():
            name = f"{prefix}.{key}"
            if isinstance(value, Mapping):
                section(name, value, measured)
            elif any(key.startswith(p) for p in measured) and isinstance(value, int | float):
                metrics[name] = value
            else:
                params[f"evaluation.{name}"] = value

    for key, value in record.items():
        if key in FILE_ONLY or key in ("metrics", "params"):
            continue
        if isinstance(value, Mapping):
            section(key, value, MEASURED.get(key, ()))
        elif isinstance(value, list):
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
                labels = (
                    classes
                    if isinstance(classes, list) and len(classes) == len(value)
                    else range(len(value))
                )
                metrics.update(
                    {f"{key}.{label}": v for label, v in zip(labels, value, strict=True)}
                )
        elif isinstance(value, int) and not isinstance(value, bool):
            params[f"evaluation.{key}"] = value  # counts such as n_train
        elif isinstance(value, float):
            metrics[key] = value
        elif isinstance(value, str | bool):
            params[f"evaluation.{key}"] = value
    return {"metrics": metrics, "params": params}


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Counts with row = true class, column = predicted class, both in ``classes`` order."""
    k = classes.size
    rows = np.searchsorted(classes, y_true)
    cols = np.searchsorted(classes, y_pred)
    return np.bincount(rows * k + cols, minlength=k * k).reshape(k, k).astype(np.int64)


def _as_labels(labels: np.ndarray, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise ValueError(f"{name} must be integer class labels, got dtype {labels.dtype}")
        labels = labels.astype(np.int64)
    return labels.astype(np.int64, copy=False)


def _as_features(features: np.ndarray, name: str) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"{name} must be n_features × m, got shape {features.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return features


def _as_digit_set(digits: Sequence[int], name: str) -> tuple[int, ...]:
    values = sorted({int(d) for d in digits})
    if not values:
        raise ValueError(f"{name} must not be empty")
    return tuple(values)
