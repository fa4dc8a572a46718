"""How an experiment's runs page opens: MLflow's shared view (experiment tag
``mlflow.sharedViewState.<key>``, loaded by ``?viewStateShareKey=<key>`` in the address ``make
ui`` prints), in the UI's own state fields: key figures as the first columns, charts ready."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from sparseae.tracking.results import ResultFolder
from sparseae.tracking.store import RUNS_VIEW_TAG

#: Short names of common swept settings in a member's run name (``β3 ρ0.05``).
SYMBOLS = {"beta": "β", "rho": "ρ", "lambda_": "λ", "hidden_size": "h", "seed": "s"}
#: Longest run name the runs table's name column shows whole.
NAME_LENGTH = 16
_SECTIONS = [
    {"uuid": "sparseae-model", "name": "Model metrics", "display": True, "isReordered": True},
    {"uuid": "sparseae-system", "name": "System metrics", "display": True, "isReordered": False},
]


def _card(kind: str, uuid: str, **fields) -> dict:
    card = {"uuid": f"sparseae-{uuid}", "type": kind, "metricSectionId": "sparseae-model"}
    return {**card, "deleted": False, "isGenerated": False, "runsCountToCompare": 100, **fields}


#: A line card's settings, as the UI writes them (per step, no smoothing, global x axis).
_LINE = {"xAxisKey": "step", "xAxisScaleType": "linear", "lineSmoothness": 0, "range": {}}
_LINE.update(useGlobalXaxisKey=True, useGlobalLineSmoothing=True, selectedXAxisMetricKey="")


def _line(metric: str, scale: str = "linear") -> dict:
    return _card(
        "LINE", metric, metricKey=metric, selectedMetricKeys=[metric], scaleType=scale, **_LINE
    )


def _view(columns: Iterable[str], charts: list[dict], **facets) -> dict:
    return {
        "selectedColumns": list(columns),
        "columnOrder": list(columns),
        "compareRunCharts": charts,
        "compareRunSections": _SECTIONS,
        "isAccordionReordered": True,
        "hideEmptyCharts": True,
        **facets,
    }


def run_view(folder: ResultFolder) -> dict:
    """One experiment's view: final cost (and accuracies) first, cost charts and filters."""
    columns = ["metrics.`cost`"]
    if folder.evaluation:
        columns += ["metrics.`accuracy_features`", "metrics.`accuracy_raw`"]
    columns += ["metrics.`iterations`", "attributes.`Models`"]
    step = max((step for step, _ in folder.chunk_ends.values()), default=0)
    charts = [
        _card("IMAGE", "filters", imageKeys=["filters"], step=step),
        _line("cost", "log"),
    ]
    return _view(columns, charts)


def sweep_view(swept: list[str], step: int) -> dict:
    """A sweep's view: members listed flat by final cost (sorting un-nests them), the swept
    values as columns, parallel coordinates of them against the cost, the filter grids."""
    params = [f"params.`{key}`" for key in swept]
    charts = [
        _card("PARALLEL", "parallel", selectedParams=swept, selectedMetrics=["cost"]),
        _card("IMAGE", "filters", imageKeys=["filters"], step=step),
        _line("cost", "log"),
    ]
    columns = ["metrics.`cost`", *params, "metrics.`iterations`", "attributes.`Models`"]
    return _view(
        columns, charts, orderByKey="metrics.`cost`", orderByAsc=True, runsHiddenMode="SHOW_ALL"
    )


def member_name(experiment: Mapping, swept: Iterable[str]) -> str:
    """A sweep member's run name from its swept values only (``β3 ρ0.05``), at most
    :data:`NAME_LENGTH` characters."""
    from sparseae.config.sweeps import format_value

    tokens = []
    for path in swept:
        node = experiment
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        leaf = path.rsplit(".", 1)[-1]
        tokens.append(f"{SYMBOLS.get(leaf, leaf.replace('_', ''))}{format_value(node)}")
    return " ".join(tokens)[:NAME_LENGTH]


def set_view(session, experiment_id: str, state: Mapping) -> None:
    """Store ``state`` as the experiment's shared view unless it already holds it."""
    value = json.dumps(state, separators=(",", ":"), ensure_ascii=False)
    if session.get_experiment(experiment_id).tags.get(RUNS_VIEW_TAG) != value:
        session.set_experiment_tag(experiment_id, RUNS_VIEW_TAG, value)
