"""Per-unit diagnostics on the training examples: whether a unit's weight direction (alignment,
a cosine with means removed) or the examples' contrast picks its top examples (docs/model.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sparseae.errors import DiagnosticsError
from sparseae.model.autoencoder import hidden_activations, unpack

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
_ALIGNMENTS = ("alignment_top_k", "alignment_random", "alignment_random_abs")


def top_k_examples(activations: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` largest values and their column indices (both h × k), largest first."""
    a = np.asarray(activations, dtype=np.float64)
    m = a.shape[1]
    k = int(k)
    if not 1 <= k <= m:
        raise ValueError(f"k must be between 1 and the number of examples {m}, got {k}")
    chosen = np.argpartition(a, m - k, axis=1)[:, m - k :]
    values = np.take_along_axis(a, chosen, axis=1)
    order = np.lexsort((chosen, -values), axis=1)  # value descending, then index ascending
    indices = np.take_along_axis(chosen, order, axis=1).astype(np.int64, copy=False)
    return indices, np.take_along_axis(values, order, axis=1)


def _centred_examples(data: np.ndarray) -> np.ndarray:
    data = np.asarray(data, dtype=np.float64)
    return data - data.mean(axis=0, keepdims=True)


def _cosine(products: np.ndarray, norms: np.ndarray) -> np.ndarray:
    # 0 where a weight row or an example is constant (no direction); rounding clipped.
    out = np.divide(products, norms, out=np.zeros_like(products), where=norms > 0)
    return np.clip(out, -1.0, 1.0, out=out)


def cosines(weights: np.ndarray, examples: np.ndarray) -> np.ndarray:
    """``cos(w_c, x_c)`` (h × n) for every row of ``W1`` and example column, means removed."""
    W = np.asarray(weights, dtype=np.float64)
    Wc = W - W.mean(axis=1, keepdims=True)
    Xc = _centred_examples(examples)
    norms = np.linalg.norm(Wc, axis=1)[:, None] * np.linalg.norm(Xc, axis=0)[None, :]
    return _cosine(Wc @ Xc, norms)


def fraction_variance_explained(reconstruction: np.ndarray, data: np.ndarray) -> float:
    """``1 − Σ‖a3 − x‖² / Σ‖x − x̄‖²`` over the examples; NaN when there is no variance."""
    X = np.asarray(data, dtype=np.float64)
    R = np.asarray(reconstruction, dtype=np.float64)
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
    output: str = "sigmoid",
) -> dict[str, Any]:
    """Per-unit evidence and model figures for ``theta`` on ``data`` (v × m, the training set;
    ``output``: the model's output layer). Returns the scalars of :data:`METRIC_KEYS`, index
    arrays, ``contrast`` and ``units``."""
    theta = np.asarray(theta, dtype=np.float64)
    X = np.asarray(data, dtype=np.float64)
    v, h = int(visible_size), int(hidden_size)
    m = X.shape[1]
    if not 1 <= int(top_k) <= m:
        raise DiagnosticsError(
            f"config key 'diagnostics.top_k': {top_k} is not allowed for {m} training "
            f"examples; allowed: an integer 1 <= top_k <= {m} (the number of examples)"
        )
    W1, W2, b1, b2 = unpack(theta, v, h)
    a2 = hidden_activations(theta, X, visible_size=v, hidden_size=h)
    z3 = W2 @ a2 + b2[:, None]
    from scipy.special import expit  # here: seconds most jobs need not pay

    a3 = z3 if output == "linear" else expit(z3)

    rhohat = a2.mean(axis=1)
    indices, activations = top_k_examples(a2, int(top_k))

    Wc = W1 - W1.mean(axis=1, keepdims=True)
    weight_norm = np.linalg.norm(Wc, axis=1)
    Xc = _centred_examples(X)
    contrast = np.linalg.norm(Xc, axis=0)

    # cos(w_c[i], x_c[:, indices[i, j]]) for the top-k examples of each unit, in one product.
    chosen = Xc[:, indices]  # (v, h, k)
    norms = weight_norm[:, None] * contrast[indices]
    top_cos = _cosine(np.einsum("hv,vhk->hk", Wc, chosen), norms)

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
        **{key: float(units[key].mean()) for key in _ALIGNMENTS},
        "activation_norm_corr": _nanmean(corr),
        "topk_norm_ratio": _nanmean(ratio),
        "random_indices": random_indices,
        "contrast": contrast,
        "units": units,
    }


def _nanmean(values: np.ndarray) -> float:
    return float(values[np.isfinite(values)].mean()) if np.isfinite(values).any() else math.nan


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


def write_diagnostics(
    theta, data, *, json_path, png_path, experiment, model, settings, seed, trajectory_key=None
) -> dict:
    """Write ``diagnostics.json`` and ``units.png`` for the final ``theta`` of ``experiment``
    (named in a :class:`DiagnosticsError`); returns the record."""
    from sparseae.analysis.visualize import plot_units
    from sparseae.config import rng
    from sparseae.io import write_json

    settings = {**DEFAULT_SETTINGS, **dict(settings)}
    theta = np.asarray(theta, dtype=np.float64)
    kwargs = {k: model[k] for k in ("visible_size", "hidden_size", "rho")}
    generator, output = rng(seed, "diagnostics"), model.get("output", "sigmoid")
    try:
        result = unit_diagnostics(theta, data, rng=generator, output=output, **kwargs, **settings)
    except DiagnosticsError as error:
        raise DiagnosticsError(f"experiment '{experiment}': {error}") from None
    W1 = unpack(theta, model["visible_size"], model["hidden_size"])[0]
    title = f"{experiment}: weights, then the {settings['top_k']} most activating examples\n"
    title += "cos: alignment, top-k (random); ×: contrast of top-k / mean contrast"
    plot_units(W1, data, result["units"], png_path, title)
    record = {key: _jsonable(value) for key, value in result.items() if key != "contrast"}
    record["experiment"] = experiment
    record["settings"] = {**settings, "active_threshold": ACTIVE_THRESHOLD}
    record["metrics"] = {
        key: float(result[key])
        for key in METRIC_KEYS
        if result[key] is not None and math.isfinite(float(result[key]))
    }
    if trajectory_key is not None:
        record["trajectory_key"] = trajectory_key
    write_json(json_path, record)
    return record
