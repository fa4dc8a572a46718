"""Sweep summaries: one table row per member (each trained as its own experiment), its figures.

The swept settings come from each member's own ``config.json`` (what it really ran with); the
TSV keeps full precision, so values read back equal the members' files.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sparseae.config.sweeps import format_value
from sparseae.errors import SweepError
from sparseae.io import atomic_write, read_json

#: Result columns after the parameter columns: (column, file, key in that file).
RESULT_COLUMNS = (
    ("final_cost", "summary.json", "final_cost"),
    ("reconstruction", "summary.json", "reconstruction"),
    ("weight_decay", "summary.json", "weight_decay"),
    ("sparsity", "summary.json", "sparsity"),
    ("rho_target", "summary.json", "rho"),
    ("rhohat_mean", "summary.json", "rhohat_mean"),
    ("rhohat_min", "summary.json", "rhohat_min"),
    ("rhohat_max", "summary.json", "rhohat_max"),
    ("gradcheck_difference", "gradcheck.json", "autoencoder"),
    ("iterations", "summary.json", "iterations"),
    ("fun_evals", "summary.json", "fun_evals"),
    ("train_seconds", "summary.json", "train_seconds"),
    # What the units respond to (sparseae.analysis.diagnostics): reconstruction quality,
    # alignment of weights and top examples against random examples, contrast, dead units.
    ("fraction_variance_explained", "diagnostics.json", "fraction_variance_explained"),
    ("alignment_top_k", "diagnostics.json", "alignment_top_k"),
    ("alignment_random", "diagnostics.json", "alignment_random"),
    ("activation_norm_corr", "diagnostics.json", "activation_norm_corr"),
    ("topk_norm_ratio", "diagnostics.json", "topk_norm_ratio"),
    ("dead_units", "diagnostics.json", "dead_units"),
)

#: Files each member folder must hold.
MEMBER_FILES = ("config.json", "summary.json", "gradcheck.json", "diagnostics.json")


def _read_member(folder: Path, name: str) -> dict[str, Any]:
    files = {}
    for filename in MEMBER_FILES:
        path = folder / filename
        if not path.is_file():
            raise SweepError(
                f"sweep member '{name}': {path} does not exist (run the member's experiment "
                f"first, e.g. snakemake {path})"
            )
        files[filename] = read_json(path)
    recorded = files["config.json"].get("name")
    if recorded != name:
        raise SweepError(
            f"sweep member '{name}': {folder / 'config.json'} was written for experiment "
            f"{recorded!r}, not {name!r}"
        )
    return files


def _lookup(config: Mapping, path: str, where: Path) -> Any:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise SweepError(f"{where} has no setting '{path}' (key 'experiment.{path}')")
        node = node[part]
    return node


def sweep_table(members: Mapping[str, str | os.PathLike], parameters: Mapping[str, str]):
    """One row per sweep member: ``experiment``, the swept settings, :data:`RESULT_COLUMNS`.

    ``members``: ``{name: folder}``; ``parameters``: ``{column: dotted setting}``. Raises
    ``SweepError`` naming the member file or setting at fault."""
    if not members:
        raise SweepError("a sweep table needs at least one member")
    reserved = {"experiment", *(column for column, _, _ in RESULT_COLUMNS)}
    clashes = sorted(set(parameters) & reserved)
    if clashes:
        raise SweepError(
            f"sweep parameter column(s) {clashes} clash with result columns; rename them"
        )
    rows = []
    for name, folder in members.items():
        folder = Path(folder)
        files = _read_member(folder, name)
        row: dict[str, Any] = {"experiment": name}
        for column, path in parameters.items():
            value = _lookup(files["config.json"].get("experiment"), path, folder / "config.json")
            # A whole section swept (e.g. patches.whitening): one JSON cell, not a Python repr.
            row[column] = (
                json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
            )
        for column, filename, key in RESULT_COLUMNS:
            if key not in files[filename]:
                raise SweepError(f"sweep member '{name}': {folder / filename} has no key '{key}'")
            row[column] = files[filename][key]
        rows.append(row)
    columns = ["experiment", *parameters, *(column for column, _, _ in RESULT_COLUMNS)]
    return pd.DataFrame(rows, columns=columns)


def member_labels(table: pd.DataFrame) -> list[str]:
    """Short row labels: the swept values (``beta=3, rho=0.01``), else the member name."""
    results = {"experiment", *(column for column, _, _ in RESULT_COLUMNS)}
    params = [c for c in table.columns if c not in results]
    if not params:
        return [str(name) for name in table["experiment"]]
    # astype(object): Python scalars, not numpy ones, for format_value
    rows = table[params].astype(object).to_dict("records")
    return [", ".join(f"{p}={format_value(row[p])}" for p in params) for row in rows]


def plot_sweep(table: pd.DataFrame, path: str | os.PathLike, *, title: str) -> None:
    """PNG of a :func:`sweep_table`: final cost and its terms, rhohat against rho, unit
    diagnostics, one row per member."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from sparseae.analysis.visualize import new_figure, save_figure

    n = len(table)
    labels = member_labels(table)
    y = np.arange(n)[::-1]  # first member at the top
    fig, (cost_ax, rho_ax, unit_ax) = new_figure((17.0, 2.0 + 0.42 * n), 1, 3, sharey=True)

    left = np.zeros(n)
    for column, colour, label in (
        ("reconstruction", "tab:blue", "reconstruction"),
        ("weight_decay", "tab:orange", "weight decay"),
        ("sparsity", "tab:green", "sparsity penalty"),
    ):
        values = table[column].to_numpy(dtype=float)
        cost_ax.barh(y, values, left=left, color=colour, label=label, height=0.7)
        left += values
    for yi, total in zip(y, table["final_cost"].to_numpy(dtype=float), strict=True):
        cost_ax.annotate(
            f"{total:.4g}", (total, yi), xytext=(3, 0), textcoords="offset points", va="center"
        )
    cost_ax.set_xlim(0, 1.18 * max(float(left.max()), 1e-300))
    cost_ax.set_yticks(y, labels)
    cost_ax.set_xlabel("final cost J = reconstruction + weight decay + sparsity")
    cost_ax.set_title("final cost and its three terms")

    mean = table["rhohat_mean"].to_numpy(dtype=float)
    low = table["rhohat_min"].to_numpy(dtype=float)
    high = table["rhohat_max"].to_numpy(dtype=float)
    rho_ax.hlines(y, low, high, color="0.55", linewidth=2, label="min - max over hidden units")
    rho_ax.plot(mean, y, "o", color="tab:blue", label="mean activation rhohat")
    target = table["rho_target"].to_numpy(dtype=float)
    rho_ax.plot(target, y, "x", color="tab:red", markersize=9, label="target rho")
    if np.all(low > 0) and np.all(high > 0):
        rho_ax.set_xscale("log")  # targets and activations span decades
        rho_ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        rho_ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        rho_ax.xaxis.set_minor_formatter(NullFormatter())
    rho_ax.margins(x=0.12)
    rho_ax.set_xlabel("average activation of a hidden unit over the training data")
    rho_ax.set_title("mean activation rhohat against the target rho")

    # What the units respond to (diagnostics.json): in [-1, 1], FVE possibly below.
    lowest = -1.0
    for column, marker, colour, label in (
        ("alignment_top_k", "o", "tab:purple", "alignment: cos(weights, top-k examples)"),
        ("alignment_random", "x", "0.45", "alignment of random examples"),
        ("activation_norm_corr", "^", "tab:orange", "corr(activation, contrast)"),
        ("fraction_variance_explained", "s", "tab:green", "fraction of variance explained"),
    ):
        values = table[column].to_numpy(dtype=float)
        unit_ax.plot(values, y, marker, color=colour, label=label, linestyle="none", markersize=7)
        if np.isfinite(values).any():
            lowest = min(lowest, float(np.nanmin(values)))
    unit_ax.axvline(0, color="0.7", linewidth=0.8)
    unit_ax.set_xlim(lowest - 0.05, 1.05)
    unit_ax.set_xlabel("mean over hidden units (FVE: of the model)")
    unit_ax.set_title("what the units respond to")
    unit_ax.grid(axis="x", alpha=0.3)

    # One legend of every panel's entries under the panels: inside it would hide bars or markers.
    fig.legend(loc="outside lower center", ncols=5, fontsize="small", frameon=False)
    rho_ax.grid(axis="x", alpha=0.3)

    fig.suptitle(title)
    save_figure(fig, path)


def read_sweep_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``summary.tsv`` written by :func:`summarize_sweep`."""
    # pandas' default float parser reads the shortest round-trip text back exactly.
    return pd.read_csv(path, sep="\t")


def format_html(table: pd.DataFrame, *, title: str, png: str | os.PathLike) -> str:
    """A self-contained HTML page: title, the table (6 significant digits), the PNG inline."""
    shown = table.to_html(
        index=False, float_format=lambda v: f"{v:.6g}", border=0, classes="sweep", escape=True
    )
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>\n<style>"
        "body{font-family:sans-serif;margin:1.5em}"
        "table.sweep{border-collapse:collapse;font-size:0.9em}"
        "table.sweep th,table.sweep td{padding:0.25em 0.6em;border-bottom:1px solid #ddd;"
        "text-align:right}"
        "img{max-width:100%}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        "<p>One row per sweep member: swept settings, final cost J and its terms, target "
        "&rho; and mean activations &rho;&#770;, gradient check, iterations, evaluations, "
        "wall time, and the unit diagnostics of each member's diagnostics.json.</p>\n"
        f"{shown}\n"
        f'<p><img alt="{html.escape(title)}" src="data:image/png;base64,{data}"></p>\n'
        # The members' filter grids (plot_sweep_filters writes them beside this page, later).
        '<p><img alt="filters of every member" src="filters.png"></p>\n</body></html>\n'
    )


def summarize_sweep(
    sweep: str, members: Sequence, parameters: Mapping, *, tsv, html_path, png, results="results"
) -> pd.DataFrame:
    """Rule ``summarize_sweep``: the table of ``results/<member>`` as TSV, PNG and HTML page."""
    table = sweep_table({name: Path(results) / name for name in members}, parameters)
    title = f"sweep {sweep}: {len(table)} members"
    with atomic_write(tsv) as handle:
        # floats in shortest round-trip form: read back equal
        table.to_csv(handle, sep="\t", index=False, lineterminator="\n")
    plot_sweep(table, png, title=title)
    with atomic_write(html_path) as handle:
        handle.write(format_html(table, title=title, png=png))
    logging.getLogger(__name__).info("sweep %s: %d members -> %s", sweep, len(table), tsv)
    return table


def plot_sweep_filters(sweep: str, tsv, filters: Sequence, path) -> None:
    """Rule ``plot_sweep_filters``: every member's ``filters.png`` on one contact sheet."""
    import math

    from PIL import Image

    from sparseae.analysis.visualize import new_figure, save_figure

    table = read_sweep_table(tsv)
    filters = list(filters)
    if len(filters) != len(table):
        raise SweepError(f"{len(filters)} filter images for a table of {len(table)} members")
    n = len(filters)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = new_figure((3.2 * cols, 3.4 * rows + 0.6), rows, cols, squeeze=False)
    axes = axes.ravel()
    labels = member_labels(table)
    for ax, image_path, label, name in zip(
        axes, filters, labels, table["experiment"], strict=False
    ):
        with Image.open(image_path) as image:
            pixels = np.asarray(image.convert("L"))
        # Nearest-neighbour: each filter pixel stays a sharp square.
        ax.imshow(pixels, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"{label}\n({name})", fontsize="small")
        ax.set_axis_off()
    for ax in axes[n:]:
        ax.set_axis_off()
    low, high = int(table["iterations"].min()), int(table["iterations"].max())
    iterations = f"{low}" if low == high else f"{low}-{high}"
    fig.suptitle(f"sweep {sweep}: learned filters of its {n} members after {iterations} iterations")
    save_figure(fig, path)
    logging.getLogger(__name__).info("sweep %s: contact sheet -> %s", sweep, path)
