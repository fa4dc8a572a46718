"""Per-unit diagnostics: what each hidden unit responds to, measured on the training examples.

The filter grid shows each unit's weight direction, the input of norm ≤ 1 that drives it most.
Real inputs are not norm-bounded, so this module measures, from the final ``theta`` over the
training examples, whether the weight direction is what actually drives a unit.

With ``x = x_c + μ·1`` (``μ`` the mean of the example's pixels, ``x_c`` the example with its
mean removed) and ``w_c`` the weight vector with its own mean removed, a unit's input is

    z = W1[i]·x + b1[i] = ‖w_c‖ ‖x_c‖ cos(w_c, x_c) + μ ΣW1[i] + b1[i]

because ``W1[i]·x_c = w_c·x_c`` (``x_c`` sums to zero). Two factors of the example compete:
its **alignment** ``cos(w_c, x_c)`` with the weight direction and its **contrast**
``‖x_c‖``. Means are removed before every cosine: normalized patches sit around 0.5 and the
constant part would otherwise dominate every cosine.

Measured per hidden unit ``i``:

- the top-k activating examples (:func:`top_k_examples`) and their activations;
- ``alignment_top_k``: the mean of ``cos(w_c, x_c)`` over the top-k examples, against
  ``alignment_random`` (the same cosine, mean over random examples drawn with the
  ``"diagnostics"`` generator) and ``alignment_random_abs`` (mean ``|cos|``, the chance level
  of the cosine's size);
- ``activation_norm_corr``: the Pearson correlation, over all examples, between the unit's
  activation and the example's contrast ``‖x_c‖`` (undefined, ``None``, for a constant
  activation);
- ``topk_norm_ratio``: the top-k examples' mean contrast over the mean contrast of all
  examples (1: the unit picks examples of ordinary contrast; ≫ 1: high-contrast examples win);
- ``rhohat`` (mean activation), ``dead`` (``rhohat < dead_fraction · ρ``) and ``saturated``
  (``rhohat > saturated_threshold``).

For the model: the fraction of variance explained by the reconstruction
``1 − Σ‖a3 − x‖² / Σ‖x − x̄‖²`` (``x̄`` the mean example; 1 is perfect, 0 is no better than
always answering ``x̄``, negative is worse), and the mean number of units active (activation
above :data:`ACTIVE_THRESHOLD`) per example.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.special import expit

from sparseae.errors import DiagnosticsError
from sparseae.model.autoencoder import hidden_activations, unpack

__all__ = [
    "ACTIVE_THRESHOLD",
    "DEFAULT_SETTINGS",
    "DiagnosticsError",
    "top_k_examples",
    "centre_examples",
    "cosines",
    "fraction_variance_explained",
    "unit_diagnostics",
    "write_diagnostics",
]

#: A hidden unit counts as active on an example when its activation exceeds this.
ACTIVE_THRESHOLD = 0.5

#: Defaults of the ``diagnostics`` config section (the schema holds the same values).
DEFAULT_SETTINGS = {
    "top_k": 8,
    "random_examples": 1000,
    "dead_fraction": 0.1,
    "saturated_threshold": 0.9,
}

#: Scalar figures of :func:`unit_diagnostics` copied into the ``metrics`` block.
METRIC_KEYS = (
    "fraction_variance_explained",
    "dead_units",
    "saturated_units",
    "mean_active_units",
    "alignment_top_k",
    "alignment_random",
    "alignment_random_abs",
    "activation_norm_corr",
    "topk_norm_ratio",
)


def top_k_examples(activations: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` largest values and their column indices, largest first.

    Selection by :func:`numpy.argpartition` (linear in the number of columns), then a sort of
    the ``k`` selected values only; equal values are ordered by column index.

    Parameters
    ----------
    activations : ndarray, shape (h, m)
        One row per hidden unit, one column per example.
    k : int
        ``1 ≤ k ≤ m``.

    Returns
    -------
    indices : ndarray of int64, shape (h, k)
    values : ndarray of float64, shape (h, k)
        ``values[i, j] == activations[i, indices[i, j]]``, non-increasing along each row.
    """
    a = np.asarray(activations, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"activations must be 2-D (units × examples), got shape {a.shape}")
    m = a.shape[1]
    k = int(k)
    if not 1 <= k <= m:
        raise ValueError(f"k must be between 1 and the number of examples {m}, got {k}")
    chosen = np.argpartition(a, m - k, axis=1)[:, m - k :]
    values = np.take_along_axis(a, chosen, axis=1)
    order = np.lexsort((chosen, -values), axis=1)  # value descending, then index ascending
    indices = np.take_along_axis(chosen, order, axis=1).astype(np.int64, copy=False)
    return indices, np.take_along_axis(values, order, axis=1)


def centre_examples(data: np.ndarray) -> np.ndarray:
    """Each example (column) minus the mean of its own pixels, float64."""
    data = np.asarray(data, dtype=np.float64)
    return data - data.mean(axis=0, keepdims=True)


def cosines(weights: np.ndarray, examples: np.ndarray) -> np.ndarray:
    """``cos(w_c, x_c)`` for every weight row and example column, means removed from both.

    Parameters
    ----------
    weights : ndarray, shape (h, v)
        ``W1``: one row per hidden unit.
    examples : ndarray, shape (v, n)
        Examples as columns (their means are removed here).

    Returns
    -------
    ndarray, shape (h, n)
        In ``[-1, 1]``; 0 where a weight row or an example is constant (no direction).
    """
    W = np.asarray(weights, dtype=np.float64)
    Wc = W - W.mean(axis=1, keepdims=True)
    Xc = centre_examples(examples)
    norms = np.linalg.norm(Wc, axis=1)[:, None] * np.linalg.norm(Xc, axis=0)[None, :]
    products = Wc @ Xc
    out = np.divide(products, norms, out=np.zeros_like(products), where=norms > 0)
    return np.clip(out, -1.0, 1.0, out=out)


def fraction_variance_explained(reconstruction: np.ndarray, data: np.ndarray) -> float:
    """``1 − Σ‖a3 − x‖² / Σ‖x − x̄‖²`` over the examples (columns); ``x̄`` the mean example.

    1 for a perfect reconstruction, 0 for always answering ``x̄``, below 0 for worse; NaN when
    every example is the same (no variance to explain).
    """
    X = np.asarray(data, dtype=np.float64)
    R = np.asarray(reconstruction, dtype=np.float64)
    if R.shape != X.shape:
        raise ValueError(f"reconstruction has shape {R.shape}, data {X.shape}")
    residual = float(np.sum((R - X) ** 2))
    total = float(np.sum((X - X.mean(axis=1, keepdims=True)) ** 2))
    return 1.0 - residual / total if total > 0 else math.nan


def _row_correlation(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row with ``values``; NaN for a constant row."""
    rc = rows - rows.mean(axis=1, keepdims=True)
    vc = values - values.mean()
    denominator = np.linalg.norm(rc, axis=1) * np.linalg.norm(vc)
    out = np.full(rows.shape[0], np.nan)
    np.divide(rc @ vc, denominator, out=out, where=denominator > 0)
    return np.clip(out, -1.0, 1.0, out=out)


def unit_diagnostics(
    theta: np.ndarray,
    data: np.ndarray,
    *,
    visible_size: int,
    hidden_size: int,
    rho: float,
    rng: np.random.Generator,
    top_k: int = DEFAULT_SETTINGS["top_k"],
    random_examples: int = DEFAULT_SETTINGS["random_examples"],
    dead_fraction: float = DEFAULT_SETTINGS["dead_fraction"],
    saturated_threshold: float = DEFAULT_SETTINGS["saturated_threshold"],
) -> dict[str, Any]:
    """Per-unit evidence and model figures for ``theta`` on ``data`` (see the module text).

    Parameters
    ----------
    theta : ndarray
        Flat parameters ``[W1(:); W2(:); b1; b2]``.
    data : ndarray, shape (visible_size, m)
        The training examples as columns.
    visible_size, hidden_size : int
        Layer sizes.
    rho : float
        The sparsity target (the dead-unit threshold is ``dead_fraction · rho``).
    rng : numpy.random.Generator
        Draws the random baseline examples (the experiment's ``"diagnostics"`` generator).
    top_k : int
        Examples kept per unit, ``1 ≤ top_k ≤ m``.
    random_examples : int
        Random examples of the alignment baseline (at most ``m``, drawn without replacement).
    dead_fraction, saturated_threshold : float
        A unit is dead when ``rhohat < dead_fraction · rho``, saturated when
        ``rhohat > saturated_threshold``.

    Returns
    -------
    dict
        Scalars (the names in :data:`METRIC_KEYS`, plus ``dead_threshold``), ``dead_unit_indices``,
        ``saturated_unit_indices``, ``random_indices`` and ``units``: per-unit ndarrays
        ``rhohat``, ``top_k_indices`` (h, k), ``top_k_activations`` (h, k), ``top_k_cosines``
        (h, k), ``alignment_top_k``, ``alignment_random``, ``alignment_random_abs``,
        ``activation_norm_corr`` (NaN where undefined), ``topk_norm_ratio``, ``weight_norm``
        (of the mean-removed weights), ``dead``, ``saturated``. Also ``contrast`` (m,), the
        norm of every mean-removed example.
    """
    theta = np.asarray(theta, dtype=np.float64)
    X = np.asarray(data, dtype=np.float64)
    v, h = int(visible_size), int(hidden_size)
    if X.ndim != 2 or X.shape[0] != v:
        raise ValueError(f"data must be visible_size × m = {v} × m, got shape {X.shape}")
    m = X.shape[1]
    if not 1 <= int(top_k) <= m:
        raise DiagnosticsError(
            f"config key 'diagnostics.top_k': {top_k} is not allowed for {m} training "
            f"examples; allowed: an integer 1 <= top_k <= {m} (the number of examples)"
        )
    W1, W2, b1, b2 = unpack(theta, v, h)
    a2 = hidden_activations(theta, X, visible_size=v, hidden_size=h)
    a3 = expit(W2 @ a2 + b2[:, None])

    rhohat = a2.mean(axis=1)
    indices, activations = top_k_examples(a2, int(top_k))

    Wc = W1 - W1.mean(axis=1, keepdims=True)
    weight_norm = np.linalg.norm(Wc, axis=1)
    Xc = centre_examples(X)
    contrast = np.linalg.norm(Xc, axis=0)

    # cos(w_c[i], x_c[:, indices[i, j]]) for the top-k examples of each unit, in one product.
    chosen = Xc[:, indices]  # (v, h, k)
    norms = weight_norm[:, None] * contrast[indices]
    products = np.einsum("hv,vhk->hk", Wc, chosen)
    top_cos = np.divide(products, norms, out=np.zeros_like(products), where=norms > 0)
    np.clip(top_cos, -1.0, 1.0, out=top_cos)

    n_random = min(int(random_examples), m)
    random_indices = np.sort(rng.choice(m, size=n_random, replace=False))
    random_cos = cosines(W1, X[:, random_indices])

    corr = _row_correlation(a2, contrast)
    mean_contrast = float(contrast.mean())
    ratio = (
        contrast[indices].mean(axis=1) / mean_contrast if mean_contrast > 0 else np.full(h, np.nan)
    )

    dead_threshold = float(dead_fraction) * float(rho)
    dead = rhohat < dead_threshold
    saturated = rhohat > float(saturated_threshold)
    units = {
        "rhohat": rhohat,
        "top_k_indices": indices,
        "top_k_activations": activations,
        "top_k_cosines": top_cos,
        "alignment_top_k": top_cos.mean(axis=1),
        "alignment_random": random_cos.mean(axis=1),
        "alignment_random_abs": np.abs(random_cos).mean(axis=1),
        "activation_norm_corr": corr,
        "topk_norm_ratio": ratio,
        "weight_norm": weight_norm,
        "dead": dead,
        "saturated": saturated,
    }
    return {
        "num_examples": m,
        "visible_size": v,
        "hidden_size": h,
        "fraction_variance_explained": fraction_variance_explained(a3, X),
        "dead_threshold": dead_threshold,
        "dead_units": int(dead.sum()),
        "saturated_units": int(saturated.sum()),
        "dead_unit_indices": np.flatnonzero(dead),
        "saturated_unit_indices": np.flatnonzero(saturated),
        "mean_active_units": float((a2 > ACTIVE_THRESHOLD).sum(axis=0).mean()),
        "alignment_top_k": float(units["alignment_top_k"].mean()),
        "alignment_random": float(units["alignment_random"].mean()),
        "alignment_random_abs": float(units["alignment_random_abs"].mean()),
        "activation_norm_corr": _nanmean(corr),
        "topk_norm_ratio": _nanmean(ratio),
        "random_indices": random_indices,
        "contrast": contrast,
        "units": units,
    }


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _jsonable(value: Any) -> Any:
    """ndarrays and numpy scalars -> lists / Python numbers; NaN and infinities -> None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def diagnostics_record(result: Mapping[str, Any], *, experiment: str, settings: Mapping) -> dict:
    """The JSON content of ``diagnostics.json`` for a :func:`unit_diagnostics` result.

    Scalars at the top level, per-unit lists under ``units``, the settings used under
    ``settings``, and ``metrics``: every finite scalar of :data:`METRIC_KEYS` (what tracking
    logs). The per-example ``contrast`` array is left out (it is a property of the data).
    """
    record = {key: _jsonable(value) for key, value in result.items() if key != "contrast"}
    record["experiment"] = experiment
    record["settings"] = {**dict(settings), "active_threshold": ACTIVE_THRESHOLD}
    record["metrics"] = {
        key: float(result[key])
        for key in METRIC_KEYS
        if result[key] is not None and math.isfinite(float(result[key]))
    }
    return record


def write_diagnostics(
    theta: np.ndarray,
    data: np.ndarray,
    *,
    json_path: str | os.PathLike,
    png_path: str | os.PathLike,
    experiment: str,
    model: Mapping,
    settings: Mapping,
    seed: int,
    trajectory_key: str | None = None,
) -> dict:
    """``diagnostics.json`` and ``units.png`` for the final ``theta`` on its training data.

    The workflow's step (checked inputs) is :func:`sparseae.pipeline.experiment.diagnose`.

    Parameters
    ----------
    theta : ndarray
        The final parameters (packed).
    data : ndarray, shape (visible_size, m)
        The training examples (``patches.npz``).
    json_path, png_path : path-like
        The outputs, each written atomically (the figure first, the JSON last).
    experiment : str
        The experiment's name (recorded, and shown in the figure's title).
    model : mapping
        The experiment's ``model`` section (sizes and ``rho``).
    settings : mapping
        The ``diagnostics`` config section (:data:`DEFAULT_SETTINGS` fills missing keys).
    seed : int
        The experiment's seed; the random baseline uses its ``"diagnostics"`` generator.
    trajectory_key : str, optional
        Recorded as ``trajectory_key``: the trajectory ``theta`` belongs to.

    Returns
    -------
    dict
        The record written to ``json_path``.
    """
    from sparseae.analysis.visualize import plot_units
    from sparseae.config import rng
    from sparseae.io import write_json

    settings = {**DEFAULT_SETTINGS, **dict(settings)}
    theta = np.asarray(theta, dtype=np.float64)
    result = unit_diagnostics(
        theta,
        data,
        visible_size=model["visible_size"],
        hidden_size=model["hidden_size"],
        rho=model["rho"],
        rng=rng(seed, "diagnostics"),
        **settings,
    )
    W1 = unpack(theta, model["visible_size"], model["hidden_size"])[0]
    plot_units(
        W1,
        data,
        result["units"]["top_k_indices"],
        alignment=result["units"]["alignment_top_k"],
        baseline=result["units"]["alignment_random"],
        contrast_ratio=result["units"]["topk_norm_ratio"],
        dead=result["units"]["dead"],
        path=png_path,
        title=(
            f"{experiment}: weights, then the {settings['top_k']} most activating examples\n"
            f"cos: alignment, top-k (random); ×: contrast of top-k / mean contrast"
        ),
    )
    record = diagnostics_record(result, experiment=experiment, settings=settings)
    if trajectory_key is not None:
        record["trajectory_key"] = trajectory_key
    write_json(json_path, record)
    return record
