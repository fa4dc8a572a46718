"""What a finished run shows first (closing lines, the report's landing page), read from the
result files; and what a failed run lacks (every missing download at once)."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from sparseae.io import atomic_write, read_json, write_json

LOCAL_UI = "http://127.0.0.1:5000"  # where `make ui` serves a local (sqlite) store


def _read(path: Path) -> dict:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return {}


def key_numbers(folder: Path) -> dict:
    """Final cost and iterations, and the self-taught test accuracies (%) where there are some."""
    summary, evaluation = _read(folder / "summary.json"), _read(folder / "evaluation.json")
    numbers = {k: summary[k] for k in ("final_cost", "iterations") if k in summary}
    for kind in ("features", "raw"):
        if f"accuracy_{kind}" in evaluation:
            numbers[f"accuracy_{kind}"] = round(100 * evaluation[f"accuracy_{kind}"], 2)
    return numbers


def _described(folder: Path) -> str:
    numbers = key_numbers(folder)
    if "final_cost" not in numbers:
        return f"{folder}/summary.json not readable"
    text = f"final cost {numbers['final_cost']:.4f}, {numbers['iterations']} iterations"
    if "accuracy_features" in numbers:
        text += f"; test accuracy {numbers['accuracy_features']:.2f}% on features, "
        text += f"{numbers['accuracy_raw']:.2f}% on raw pixels"
    return text


def _mlflow_page(folder: Path, tracking_uri: str) -> str:
    record = _read(folder / "mlflow.json")
    if "run_id" not in record:
        return "not logged"
    local = not tracking_uri.startswith("http")
    base = LOCAL_UI if local else tracking_uri.rstrip("/")
    url = f"{base}/#/experiments/{record.get('experiment_id')}/runs/{record['run_id']}"
    return url + (" (after make ui)" if local else "")


def closing_summary(
    experiments: Sequence[str], sweeps: Sequence[str], tracking_uri: str, results="results"
) -> str:
    """One block naming each experiment and sweep of the run, its numbers, files and run page."""
    lines = ["", "sparseae: done."]
    for name in experiments:
        folder = Path(results, name)
        lines += [
            f"  {name}: {_described(folder)}",
            f"    figures: {folder}/filters.png, cost_curve.png, rhohat.png, units.png",
            f"    MLflow:  {_mlflow_page(folder, tracking_uri)}",
        ]
    for name in sweeps:
        folder = Path(results, "sweeps", name)
        lines.append(f"  sweep {name}: table and filters {folder}/summary.html")
        lines.append(f"    MLflow:  {_mlflow_page(folder, tracking_uri)}")
    return "\n".join(lines)


def write_report_page(experiments: Sequence[str], path, intro: str, results="results") -> None:
    """The landing page of ``snakemake --report``: ``path`` (``.rst``, the workflow description:
    ``intro``, then each experiment's key numbers and filter grid, inlined at 600 px with sharp
    pixels) and ``path`` as ``.json`` (the numbers as report metadata, which opens the page)."""
    text, metadata = [intro, ""], {}
    for name in experiments:
        folder = Path(results, name)
        png = folder / "filters.png"
        data = base64.encodebytes(png.read_bytes()).decode() if png.is_file() else ""
        text += [name, "-" * len(name), "", _described(folder), "", ".. raw:: html", ""]
        text.append(
            f"   <img alt='filter grid of {html.escape(name)}' style='width: 600px; max-width: "
            "none; image-rendering: pixelated' src='data:image/png;base64,"
        )  # browsers drop the line breaks inside a URL
        text += [f"   {line}" for line in data.splitlines()] + ["   '>", ""]
        numbers = key_numbers(folder).items()
        metadata.update({f"{name}: {k.replace('_', ' ')}": round(v, 4) for k, v in numbers})
    with atomic_write(Path(path).with_suffix(".rst")) as handle:
        handle.write("\n".join(text))
    write_json(Path(path).with_suffix(".json"), metadata)


def missing_downloads(datasets: Iterable[Mapping], resources="resources") -> list[str]:
    """One line per source of the ``dataset`` sections whose files are not all in
    ``resources``: every missing file at once, and the command that fetches them."""
    from sparseae.data import SOURCES

    lines = []
    for source, split in sorted({(d["source"], d["split"]) for d in datasets}):
        spec = SOURCES[source]
        needed = (
            spec.select(split=split if spec.splits else None) if spec.kind == "download" else ()
        )
        missing = [f.name for f in needed if not Path(resources, source, f.name).exists()]
        if missing:
            lines.append(
                f"{source}: missing {', '.join(missing)} in {resources}/{source}/; fetch them "
                f"all with `sparseae fetch {source} --mirror <folder or URL>` (a folder that "
                f"holds the files works offline), then rerun"
            )
    return lines
