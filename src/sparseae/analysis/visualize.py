"""Figures: the ``display_network`` filter grid, training curves, unit rows, confusion matrices;
matplotlib's Agg canvas directly (no pyplot state), every file written atomically."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from sparseae.io import atomic_path

__all__ = [
    "grid_shape",
    "scale_tiles",
    "display_network",
    "display_color_network",
    "save_png",
    "save_filter_grid",
    "new_figure",
    "save_figure",
    "plot_cost_curve",
    "plot_rhohat",
    "plot_units",
    "plot_confusion_matrix",
]


def grid_shape(num_filters: int, cols: int | None = None) -> tuple[int, int]:
    """Rows and columns of the tile grid by the original rule (``cols`` forces the columns)."""
    M = int(num_filters)
    if cols is not None:
        return -(-M // int(cols)), int(cols)
    root = math.isqrt(M)
    if root * root == M:
        return root, root
    n = math.ceil(math.sqrt(M))
    while M % n != 0 and n < 1.2 * math.sqrt(M):
        n += 1
    return -(-M // n), n


def _square_columns(A) -> tuple[np.ndarray, int, int]:
    """``A`` as float64 pixels × tiles, the number of tiles and the tile edge (checked); a
    column of 3 s² values (never a square) is an RGB tile, channel after channel."""
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"A must be 2-D (pixels × filters), got shape {A.shape}")
    L, M = A.shape
    sz = math.isqrt(L) if math.isqrt(L) ** 2 == L else math.isqrt(L // 3)
    if sz * sz * (1 if sz * sz == L else 3) != L or L == 0:
        raise ValueError(
            f"each column must be a square image: {L} pixels is not a square (nor 3 squares)"
        )
    return A, M, sz


def scale_tiles(A: np.ndarray) -> np.ndarray:
    """``display_network``'s scaling of ``A`` (pixels × tiles): M square tiles in ``[-1, 1]``
    (M × s × s, or M × s × s × 3 for RGB columns)."""
    A, M, sz = _square_columns(A)
    A = A - A.mean()
    clim = np.max(np.abs(A), axis=0)
    scaled = np.divide(A, clim, out=np.zeros_like(A), where=clim > 0)
    channels = A.shape[0] // (sz * sz)
    tiles = scaled.T.reshape(M, channels, sz, sz).transpose(0, 3, 2, 1)
    return tiles[..., 0] if channels == 1 else tiles


def display_network(A: np.ndarray, cols: int | None = None) -> np.ndarray:
    """Tile the columns of ``A`` (pixels × filters, e.g. ``W1.T``) into one image array."""
    A = _square_columns(A)[0]
    if not np.all(np.isfinite(A)):
        raise ValueError("A contains non-finite values")
    return _tile_grid(scale_tiles(A), cols, -1.0)


def display_color_network(A: np.ndarray, cols: int | None = None) -> np.ndarray:
    """Tile RGB filters (columns of ``A``, s² values per channel, channel after channel, e.g.
    ``(W1 · ZCAWhite)ᵀ``) as the linear-decoder exercise's ``displayColorNetwork``: each
    channel of each tile divided by its largest magnitude, mapped to [0, 1]; white gaps."""
    A, _, sz = _square_columns(A)
    if 3 * sz * sz != A.shape[0] or not np.all(np.isfinite(A)):
        raise ValueError(f"A must be finite, 3 s² × filters (s × s RGB tiles), got {A.shape}")
    if A.min() >= 0:  # as the original: a non-negative basis is centred first
        A = A - A.mean()
    channels = A.reshape(3, sz * sz, A.shape[1])
    clim = np.max(np.abs(channels), axis=1, keepdims=True)
    scaled = np.divide(channels, clim, out=np.zeros_like(channels), where=clim > 0)
    # [channel, column, row, tile] -> [tile, row, column, channel]
    return _tile_grid((scaled.reshape(3, sz, sz, -1).transpose(3, 2, 1, 0) + 1) / 2, cols, 1.0)


def _tile_grid(tiles: np.ndarray, cols: int | None, background: float) -> np.ndarray:
    """Tiles (M × s × s, or × 3) row by row in a grid with one-pixel gaps of ``background``."""
    M, sz = tiles.shape[:2]
    rows, n = grid_shape(M, cols)
    array = np.full((1 + rows * (sz + 1), 1 + n * (sz + 1), *tiles.shape[3:]), background)
    for k, tile in enumerate(tiles):
        i, j = divmod(k, n)  # row by row, as the original's k loop
        top, left = 1 + i * (sz + 1), 1 + j * (sz + 1)
        array[top : top + sz, left : left + sz] = tile
    return array


def save_png(array: np.ndarray, path: str | os.PathLike, scale: int = 4) -> None:
    """Save a display array as an 8-bit grey PNG (-1 → 0, +1 → 255), ``scale``× enlarged."""
    from PIL import Image

    array = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError("array contains non-finite values")
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(grey_pixels(array, scale), mode="L").save(tmp, format="PNG")


def grey_pixels(array: np.ndarray, scale: int) -> np.ndarray:
    """:func:`save_png`'s grey map (8-bit), each pixel enlarged to a ``scale × scale`` block."""
    grey = np.rint((np.clip(array, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return np.repeat(np.repeat(grey, scale, axis=0), scale, axis=1)


def save_filter_grid(A: np.ndarray, png, npy, *, edge: int = 600, colour=False) -> np.ndarray:
    """``display_network(A)`` (``colour``: :func:`display_color_network`) exactly as ``npy``
    (for fidelity checks) and as ``png``, enlarged to ``edge`` pixels or more (a report shows
    it readable), tiles numbered where that fits."""
    from PIL import Image, ImageDraw

    array = display_color_network(A) if colour else display_network(A)
    M, sz = np.shape(A)[1], math.isqrt(np.shape(A)[0] // (3 if colour else 1))
    cols = grid_shape(M)[1]
    scale = -(-int(edge) // max(array.shape[:2]))
    # grey_pixels maps [-1, 1] to 0..255; the colour grid lies in [0, 1].
    image = Image.fromarray(grey_pixels(array * 2 - 1 if colour else array, scale)).convert("RGB")
    font_px = min(14, sz * scale // 3)
    if font_px >= 8:  # smaller digits would hide more of a tile than they tell
        draw, font = ImageDraw.Draw(image), _mono_font(font_px)
        for k in range(M):
            i, j = divmod(k, cols)
            xy = ((1 + j * (sz + 1)) * scale + 2, (1 + i * (sz + 1)) * scale + 1)
            draw.text(xy, str(k + 1), fill="gold", font=font, stroke_width=1, stroke_fill="black")
    with atomic_path(npy, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)
    with atomic_path(png, suffix=".png") as tmp:
        image.save(tmp, format="PNG")
    return array


def new_figure(size=(7.0, 4.5), rows: int = 1, cols: int = 1, **subplots):
    """A figure on matplotlib's Agg canvas (no pyplot state) and its ``rows × cols`` axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, **subplots)


def save_figure(fig, path):
    """Write ``fig`` as a PNG atomically; returns it."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return fig


def plot_cost_curve(
    iterations, costs, path, *, chunk_boundaries=None, title="Sparse autoencoder training cost"
):
    """Cost per L-BFGS iteration (log scale when positive) saved as PNG; returns the figure."""
    iterations = np.asarray(iterations, dtype=np.float64).reshape(-1)
    costs = np.asarray(costs, dtype=np.float64).reshape(-1)
    if iterations.shape != costs.shape:
        raise ValueError(f"{iterations.size} iterations but {costs.size} costs")
    fig, ax = new_figure()
    ax.plot(iterations, costs, color="tab:blue", linewidth=1.2, label="cost J(θ)")
    for index, boundary in enumerate(chunk_boundaries or []):
        label = "chunk boundary (warm restart)" if index == 0 else None
        ax.axvline(boundary, color="tab:gray", linestyle="--", linewidth=0.8, label=label)
    if np.all(costs > 0):
        _log_axis_ticks(ax, float(costs.min()), float(costs.max()))
        _zoom_on_the_tail(ax, iterations, costs)
    ax.set_xlabel("L-BFGS iteration")
    ax.set_ylabel("cost (log scale)" if np.all(costs > 0) else "cost")
    ax.set_title(f"{title}\nfinal cost {costs[-1]:.6g} after iteration {iterations[-1]:.0f}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper right")
    return save_figure(fig, path)


def _log_axis_ticks(ax, low: float, high: float) -> None:
    """A log y-axis labelled in plain numbers: 1-2-5 steps, or even steps within one decade
    (matplotlib's default labels only powers of ten, which may all lie outside the data)."""
    from matplotlib import ticker

    ax.set_yscale("log")
    wide = high / low >= 10
    locator = ticker.LogLocator(subs=(1.0, 2.0, 5.0)) if wide else ticker.MaxNLocator(6)
    ax.yaxis.set_major_locator(locator)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:.3g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_ylim(low / 1.03, high * 1.03)


def _zoom_on_the_tail(ax, iterations: np.ndarray, costs: np.ndarray) -> None:
    """A linear inset from where the cost is within 50 % of its final value: after a steep
    start the log axis squeezes the part that decides the result."""
    from matplotlib import ticker

    start = int(np.argmax(costs <= 1.5 * costs[-1]))
    if costs[0] < 3 * costs[-1] or costs.size - start < 5:
        return  # no steep start: the main axis already shows the range
    inset = ax.inset_axes((0.32, 0.3, 0.63, 0.45), zorder=5, facecolor="white")
    inset.plot(iterations[start:], costs[start:], color="tab:blue", linewidth=1.2)
    inset.yaxis.set_major_locator(ticker.MaxNLocator(5))
    inset.set_title(f"from iteration {iterations[start]:.0f} (linear)", fontsize="small")
    inset.tick_params(labelsize="small")
    inset.grid(True, alpha=0.3)


def plot_rhohat(rhohat, rho: float, path, *, title: str = "Mean activation of each hidden unit"):
    """Each unit's ``rhohat`` as a point on a stem from the target ``ρ`` (bars from zero would
    hide the deviations the sparsity penalty acts on); returns the figure."""
    rhohat = np.asarray(rhohat, dtype=np.float64).reshape(-1)
    fig, ax = new_figure()
    units = np.arange(1, rhohat.size + 1)
    ax.vlines(units, rho, rhohat, color="tab:blue", linewidth=0.8, alpha=0.5)
    ax.plot(units, rhohat, "o", color="tab:blue", markersize=4, label="ρ̂ (mean activation)")
    ax.axhline(rho, color="tab:red", linestyle="--", linewidth=1.2, label=f"target ρ = {rho:g}")
    ax.set_xlabel("hidden unit (numbered as in the filter grid)")
    ax.set_ylabel("mean activation over the training examples")
    ax.set_title(
        f"{title}\nρ̂ from {rhohat.min():.3g} to {rhohat.max():.3g}, mean {rhohat.mean():.3g}"
    )
    ax.set_xlim(0.4, rhohat.size + 0.6)
    low, high = min(float(rhohat.min()), rho), max(float(rhohat.max()), rho)
    pad = 0.1 * (high - low) or 0.1 * rho
    ax.set_ylim(low - pad, high + 3 * pad)  # headroom for the legend
    ax.legend(loc="upper right")
    return save_figure(fig, path)


#: Units per column of :func:`plot_units` before the rows wrap into another column.
UNITS_PER_COLUMN = 50


def _mono_font(size: int):
    """DejaVu Sans Mono (shipped with matplotlib) at ``size`` pixels, else Pillow's default."""
    from PIL import ImageFont

    try:
        import matplotlib

        path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSansMono.ttf")
        return ImageFont.truetype(path, size)
    except (ImportError, OSError):
        return ImageFont.load_default(size=size)


def plot_units(W1, data, units: Mapping, path: str | os.PathLike, title: str = "") -> np.ndarray:
    """One row per hidden unit: its weight tile, its top-k examples, its figures beside. ``units``:
    :func:`~sparseae.analysis.diagnostics.unit_diagnostics`' per-unit arrays (``top_k_indices``,
    ``alignment_top_k``; ``alignment_random``, ``topk_norm_ratio``, ``dead`` where given).
    Writes the PNG atomically and returns its grey image."""
    from PIL import Image, ImageDraw

    W1 = np.asarray(W1, dtype=np.float64)
    X = np.asarray(data, dtype=np.float64)
    idx = np.asarray(units["top_k_indices"], dtype=np.int64)
    alignment, baseline = units["alignment_top_k"], units.get("alignment_random")
    contrast_ratio, dead = units.get("topk_norm_ratio"), units.get("dead")
    h, k = idx.shape
    weights = scale_tiles(W1.T)  # (h, sz, sz), or (h, sz, sz, 3)
    examples = scale_tiles(X[:, idx.ravel()]).reshape(h, k, *weights.shape[1:])
    sz = weights.shape[1]

    buf, gap = 1, max(2, sz // 2)
    scale = max(1, round(32 / sz))  # tiles of about 32 screen pixels
    row_px = sz + buf  # array pixels per unit row
    font_px = int(min(12, 0.42 * row_px * scale))
    label = 32  # characters of the text beside a row, and a margin
    text_w = math.ceil((0.61 * font_px * label + 12) / scale)
    block_w = buf + (sz + buf) + gap + k * (sz + buf) + text_w
    per_column = h if h <= UNITS_PER_COLUMN else math.ceil(h / math.ceil(h / UNITS_PER_COLUMN))
    columns = math.ceil(h / per_column)
    array = -np.ones((buf + per_column * row_px, columns * block_w, *weights.shape[3:]))
    for unit in range(h):
        c, r = divmod(unit, per_column)
        top, left = buf + r * row_px, c * block_w + buf
        array[top : top + sz, left : left + sz] = weights[unit]
        left += sz + buf + gap
        for j in range(k):
            array[top : top + sz, left : left + sz] = examples[unit, j]
            left += sz + buf

    grey = grey_pixels(array, scale)
    lines = title.splitlines() if title else []
    title_px = 8 + 16 * len(lines) if lines else 0
    font, title_font = _mono_font(font_px), _mono_font(12)
    title_w = max((math.ceil(title_font.getlength(line)) + 12 for line in lines), default=0)
    mode = "RGB" if grey.ndim == 3 else "L"
    image = Image.new(mode, (max(grey.shape[1], title_w), grey.shape[0] + title_px), 0)
    image.paste(Image.fromarray(grey), (0, title_px))
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(lines):
        draw.text((6, 4 + 16 * n), line, fill="white", font=title_font)
    for unit in range(h):
        c, r = divmod(unit, per_column)
        x = (c * block_w + block_w - text_w + 1) * scale
        y = title_px + (buf + r * row_px) * scale + sz * scale // 2
        text = f"{unit + 1:>3} cos {alignment[unit]:+.2f}"
        if baseline is not None:
            text += f" ({baseline[unit]:+.2f})"
        if contrast_ratio is not None and np.isfinite(contrast_ratio[unit]):
            text += f" ×{contrast_ratio[unit]:.1f}"
        if dead is not None and dead[unit]:
            text += " dead"
        draw.text((x, y), text, fill="white", font=font, anchor="lm")
    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG")
    return np.asarray(image)


def plot_confusion_matrix(matrix, labels: Sequence, path: str | os.PathLike, title: str) -> Path:
    """Draw a confusion matrix (row: true, column: predicted) as a PNG; returns ``path``."""
    matrix = np.asarray(matrix)
    k = len(labels)
    if matrix.shape != (k, k):
        raise ValueError(f"confusion matrix must be square, {k} × {k}, got shape {matrix.shape}")
    size = 1.6 + 0.55 * k
    fig, ax = new_figure((size + 1.2, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="count")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(k):
        for j in range(k):
            color = "white" if matrix[i, j] > threshold else "black"
            ax.text(j, i, f"{matrix[i, j]:g}", ha="center", va="center", fontsize=8, color=color)
    ticks = np.arange(k)
    ax.set_xticks(ticks, [str(label) for label in labels])
    ax.set_yticks(ticks, [str(label) for label in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    save_figure(fig, path)
    return Path(path)
