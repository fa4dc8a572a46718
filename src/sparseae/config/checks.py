"""Checks of the values a user gives to the workflow config, where they enter.

The JSON schema (``workflow/schemas/config.schema.yaml``) checks types and simple ranges;
:func:`sparseae.config.resolve_config` adds the cross-field rules of one experiment. This
module holds what neither can say, gathered in one place so every entry point applies the
same rules:

- :func:`coerce_numbers` reads numbers written in scientific notation without a decimal point
  (``1e-2``), which YAML 1.1 (PyYAML, Snakemake) loads as *text*, as the number the user meant,
  wherever the schema expects a number; a whole float (``1e4``, ``10000.0``) at an integer key
  becomes that integer. Quoted text elsewhere stays text.
- :func:`non_finite_problems`: ``.nan``, ``.inf`` and ``-.inf`` are refused at every key (the
  schema's ``minimum`` lets them through, and they would fail late, in the gradient check).
- :func:`experiment_problems`: ranges that depend on the training setup (a ``gtol`` or
  ``ftol`` that would stop L-BFGS at or soon after the start, a ``maxfun`` budget smaller than
  the iterations asked for, ``num_images`` larger than a source holds, a gradient check that
  would take hours) and the memory each kind of job needs, estimated before any job runs and
  compared with the job's ``resources.<kind>.mem_mb`` and this machine's memory.
- :func:`sources_problems`: names under ``sources:`` must be known sources (with a
  did-you-mean), mirrors must be ``http(s)://``, ``file://`` URLs or folders.
- :func:`environment_problems` and :func:`input_path_problems`: environment variables the
  project reads and files and folders the config names; these look outside the config, so the
  workflow calls them while it is read (dry runs too), not :func:`resolve_config`.

Every message names the dotted key (or the variable, or the file), the value, what is allowed
and how to fix it.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Text YAML 1.1 does not read as a number but JSON / YAML 1.2 do: ``1e-2``, ``5E3``, ``-2e+4``.
_SCIENTIFIC = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")

#: The largest useful ``optimizer.gtol``: the largest gradient entry of the cost at the seeded
#: start is about 0.05 (no sparsity or weight decay) to 2 (the exercise's settings); L-BFGS
#: stops as soon as every entry is below gtol, so a gtol near those sizes ends training at or
#: a few iterations after the random start.
GTOL_MAX = 1e-2

#: ``optimizer.ftol`` >= 1 stops as soon as the cost does not grow (scipy's factr test).
FTOL_MAX = 1e-2

#: Training chunks: each is one Snakemake job; more than this makes the job graph itself slow.
CHUNKS_MAX = 10_000

#: Upper bounds of the cost weights: beyond these the cost overflows or the data term vanishes.
WEIGHT_MAX = 1e6

#: Images each fixed source holds (``dataset.num_images`` may not exceed them); folders
#: (``image-folder``) are checked by the loader once their files are listed.
SOURCE_IMAGES = {
    ("mnist", "train"): 60_000,
    ("mnist", "test"): 10_000,
    ("ufldl-images", None): 10,
    ("olshausen-raw", None): 10,
    ("sample-photos", None): 8,
}

#: Side of the (square) images of fixed sources, for ``patches.size`` (folders: from headers).
SOURCE_IMAGE_SIDE = {"sample-photos": 128, "ufldl-images": 512, "olshausen-raw": 512}

_BYTES = 8  # float64


def _resolve(node: Mapping, root: Mapping) -> dict:
    from sparseae.config.schema_refs import resolve_refs

    return resolve_refs(node, root)


def _types(node: Mapping) -> set[str]:
    kind = node.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def _coerce_scalar(value: Any, node: Mapping) -> Any:
    types = _types(node)
    if not types & {"number", "integer"} or isinstance(value, bool):
        return value
    if isinstance(value, str) and "string" not in types and _SCIENTIFIC.match(value.strip()):
        value = float(value)
    if (
        "integer" in types
        and isinstance(value, float)
        and math.isfinite(value)
        and value.is_integer()
    ):
        return int(value)
    return value


def _coerce(value: Any, node: Mapping, root: Mapping) -> Any:
    node = _resolve(node, root)
    if isinstance(value, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        out = {}
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, Mapping) else None)
            out[key] = _coerce(item, sub, root) if sub is not None else item
        return out
    if isinstance(value, list):
        items = node.get("items")
        return [_coerce(v, items, root) for v in value] if isinstance(items, Mapping) else value
    return _coerce_scalar(value, node)


def _experiment_node(path: str, root: Mapping) -> Mapping | None:
    """Schema node of a dotted experiment setting (for sweep grid values)."""
    node: Any = _resolve(root["$defs"]["experiment"], root)
    for part in path.split("."):
        node = _resolve(node, root).get("properties", {}).get(part)
        if node is None:
            return None
    return _resolve(node, root)


def coerce_numbers(config: Mapping, root: Mapping) -> dict:
    """Return a copy of ``config`` with number-typed text and whole floats read as numbers.

    Parameters
    ----------
    config : mapping
        The config as YAML loaded it.
    root : mapping
        The config schema.
    """
    from sparseae.pipeline.sweep import _grid_key

    config = _coerce(dict(config), root, root)
    for sweep in (config.get("sweeps") or {}).values():
        if isinstance(sweep, dict) and isinstance(sweep.get("overrides"), dict):
            sweep["overrides"] = _coerce(sweep["overrides"], root["$defs"]["experiment"], root)
        grid = sweep.get("grid") if isinstance(sweep, dict) else None
        if not isinstance(grid, dict):
            continue
        for key, values in grid.items():
            node = _experiment_node(_grid_key(key)[0], root) if isinstance(key, str) else None
            if node is not None and isinstance(values, list):
                grid[key] = [_coerce(v, node, root) for v in values]
    return config


def _describe(node: Mapping | None) -> str:
    text = (node or {}).get("description")
    return f"{str(text).strip()}" if text else "a finite number"


def non_finite_problems(config: Any, root: Mapping) -> list[str]:
    """One message per ``.nan`` / ``.inf`` / ``-.inf`` anywhere in ``config`` (YAML or JSON)."""
    problems: list[str] = []

    def walk(value: Any, node: Mapping | None, path: list[str]) -> None:
        node = _resolve(node, root) if node is not None else None
        if isinstance(value, float) and not math.isfinite(value):
            shown = {"nan": ".nan", "inf": ".inf", "-inf": "-.inf"}[repr(value)]
            problems.append(
                f"config key '{'.'.join(path)}': {shown} is not a finite number; allowed: "
                f"{_describe(node)} (a finite number such as 0.01 or 1.0e-4)"
            )
        elif isinstance(value, dict):
            props = (node or {}).get("properties", {})
            extra = (node or {}).get("additionalProperties")
            for key, item in value.items():
                sub = props.get(key, extra if isinstance(extra, Mapping) else None)
                walk(item, sub, [*path, str(key)])
        elif isinstance(value, list):
            items = (node or {}).get("items")
            for index, item in enumerate(value):
                walk(item, items if isinstance(items, Mapping) else None, [*path, str(index)])

    walk(config, root, [])
    return problems


# --------------------------------------------------------------------------------------------
# one experiment: ranges that depend on other settings, memory


def _physical_mb() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def examples_count(experiment: Mapping) -> tuple[int, str]:
    """Training examples (columns of the patch matrix) and the key that sets them."""
    if experiment["patches"]["size"] is not None:
        return int(experiment["patches"]["count"]), "patches.count"
    dataset = experiment["dataset"]
    known = SOURCE_IMAGES.get((dataset["source"], dataset["split"]), 60_000)
    return int(dataset["num_images"] or known), "dataset.num_images"


def memory_estimates(experiment: Mapping, key: str = "") -> dict[str, tuple[float, str]]:
    """Estimated peak memory in MB per kind of job, with the settings that drive it.

    Lower bounds: only the arrays each job surely holds at once (float64), so a refusal is
    never a false alarm; the real peak is somewhat higher. ``key`` prefixes the setting names
    in the explanations (e.g. ``experiments.natural.``).
    """
    model, optimizer = experiment["model"], experiment["optimizer"]
    v, h = int(model["visible_size"]), int(model["hidden_size"])
    m, m_key = examples_count(experiment)
    maxcor = int(optimizer["maxcor"])
    theta = 2 * h * v + h + v
    mb = _BYTES / 2**20
    examples = f"{key}{m_key} = {m}"
    visible = f"{key}model.visible_size = {v}"
    hidden = f"{key}model.hidden_size = {h}"
    estimates = {
        # the patch matrix, its normalized copy and the saved array
        "data": (3 * m * v * mb, f"3 arrays of {examples} x {visible}, float64"),
        # data and a3 and delta3 (visible x m), a2 and delta2 (hidden x m), L-BFGS history
        "train": (
            (3 * m * v + 2 * m * h + (2 * maxcor + 4) * theta) * mb,
            f"{examples} examples x ({visible} + {hidden}) activations, and "
            f"2 x {key}optimizer.maxcor = {maxcor} + 4 parameter vectors of length "
            f"2 x {h} x {v} + {h} + {v} = {theta}",
        ),
    }
    if experiment.get("evaluation", {}).get("enabled"):
        estimates["evaluate"] = (
            (2 * m * v + 2 * m * h) * mb,
            f"{examples} examples x ({visible} + {hidden}) features",
        )
    return estimates


def experiment_problems(
    name: str, experiment: Mapping, *, physical_mb: int | None = None
) -> list[str]:
    """Ranges that depend on several settings, and memory, for one resolved experiment."""
    key = f"experiments.{name}"
    problems = []
    optimizer, training, model = (
        experiment["optimizer"],
        experiment["training"],
        experiment["model"],
    )
    planned = int(training["chunks"]) * int(training["iterations_per_chunk"])
    plan = (
        f"training.chunks {training['chunks']} x training.iterations_per_chunk "
        f"{training['iterations_per_chunk']}"
    )
    problems += optimizer_problems(key, optimizer, planned, plan)
    problems += chunk_problems(f"{key}.training", training["chunks"])
    for weight in ("lambda_", "beta"):
        if model[weight] > WEIGHT_MAX:
            problems.append(
                f"config key '{key}.model.{weight}' = {model[weight]:g} is too large (the cost "
                f"overflows or ignores the data); allowed: 0 <= {weight} <= {WEIGHT_MAX:g}"
            )
    gradcheck = experiment["gradcheck"]
    for setting, limit in (("epsilon", 1.0), ("bound", 1.0)):
        if gradcheck[setting] >= limit:
            problems.append(
                f"config key '{key}.gradcheck.{setting}' = {gradcheck[setting]:g} makes the "
                f"gradient check meaningless; allowed: 0 < {setting} < {limit:g}"
            )
    dataset = experiment["dataset"]
    problems += _unused_dataset_keys(key, dataset)
    split = dataset["split"] if dataset["source"] == "mnist" else None
    held = SOURCE_IMAGES.get((dataset["source"], split))
    if dataset["num_images"] is not None and held is not None and dataset["num_images"] > held:
        where = f" split {split!r}" if split else ""
        problems.append(
            f"config key '{key}.dataset.num_images' = {dataset['num_images']} is more than "
            f"source '{dataset['source']}'{where} holds ({held}); allowed: 1 <= num_images <= "
            f"{held}, or null for all of them"
        )
    side = SOURCE_IMAGE_SIDE.get(dataset["source"])
    size = experiment["patches"]["size"]
    if side is not None and size is not None and size > side and not dataset["path"]:
        problems.append(
            f"config key '{key}.patches.size' = {size} is larger than the images of source "
            f"'{dataset['source']}' ({side}x{side}); allowed: 1 <= patches.size <= {side}"
        )
    problems += memory_problems(name, experiment, physical_mb=physical_mb)
    return problems


def optimizer_problems(key: str, optimizer: Mapping, planned: int, plan: str) -> list[str]:
    """L-BFGS settings that would stop training at or soon after the start.

    ``key`` is the dotted key of the experiment; ``planned`` the most iterations one run of
    the optimizer is asked for, ``plan`` the settings that give it (for the message).
    """
    problems = []
    if optimizer["gtol"] >= GTOL_MAX:
        problems.append(
            f"config key '{key}.optimizer.gtol' = {optimizer['gtol']:g} is near the size of "
            f"the gradient itself (its largest entry at the random start is about 0.05 "
            f"without sparsity or weight decay, 2 with them), so L-BFGS would stop at or soon "
            f"after the start; allowed: 0 <= gtol < {GTOL_MAX:g} (default 1.0e-9)"
        )
    if optimizer["ftol"] >= FTOL_MAX:
        problems.append(
            f"config key '{key}.optimizer.ftol' = {optimizer['ftol']:g} would stop L-BFGS after "
            f"its first step; allowed: 0 <= ftol < {FTOL_MAX:g} (default 1.0e-12)"
        )
    if optimizer["maxfun"] < planned:
        problems.append(
            f"config key '{key}.optimizer.maxfun' = {optimizer['maxfun']} is smaller than the "
            f"{planned} iterations planned ({plan}; every iteration costs at least one "
            f"evaluation, so training would stop early); allowed: maxfun >= {planned}, e.g. "
            f"{max(1000, 2 * planned)}"
        )
    return problems


def chunk_problems(key: str, chunks: int) -> list[str]:
    """A number of chunks (one Snakemake job each) the workflow cannot schedule."""
    if chunks <= CHUNKS_MAX:
        return []
    return [
        f"config key '{key}.chunks' = {chunks} is more jobs than the workflow can schedule; "
        f"allowed: 1 <= chunks <= {CHUNKS_MAX} (raise {key}.iterations_per_chunk instead)"
    ]


def stacked_memory_problem(key: str, layer_sizes, examples: int, maxcor: int) -> str | None:
    """A stacked network too large for this machine: the largest layer's L-BFGS memory
    (``2 × maxcor`` vectors of its parameters) plus its activations on the training images."""
    physical = _physical_mb()
    needed = 0.0
    for visible, hidden in zip(layer_sizes[:-1], layer_sizes[1:], strict=False):
        parameters = 2 * visible * hidden + visible + hidden
        needed = max(needed, 8 * ((2 * maxcor + 8) * parameters + 3 * hidden * examples) / 1e6)
    if physical is None or needed <= physical:
        return None
    return (
        f"config key '{key}.layers.hidden_sizes' = {list(layer_sizes[1:])} with "
        f"'{key}.optimizer.maxcor' = {maxcor} needs at least {needed:,.0f} MB (the largest "
        f"layer's L-BFGS pairs and activations) but this machine has {physical:,} MB; allowed: "
        f"smaller layers or fewer correction pairs"
    )


def _unused_dataset_keys(key: str, dataset: Mapping) -> list[str]:
    """Settings the chosen source would silently ignore."""
    from sparseae.data import SOURCES

    source = SOURCES.get(dataset["source"])
    if source is None:
        return []
    problems = []
    if dataset["path"] and source.loader in ("mnist", "sample-photos"):
        problems.append(
            f"config key '{key}.dataset.path' = {dataset['path']!r} is set, but source "
            f"'{source.name}' does not read a path (it would be ignored); allowed: null, or "
            f"source image-folder for your own images"
        )
    if dataset["split"] != "train" and source.loader != "mnist":
        problems.append(
            f"config key '{key}.dataset.split' = {dataset['split']!r}, but source "
            f"'{source.name}' has no splits (it would be ignored); allowed: train (the "
            f"default) for image sources"
        )
    return problems


def experiments_problems(
    experiments: Mapping[str, Mapping], sweeps: Mapping, members_of: Mapping
) -> list[str]:
    """:func:`experiment_problems` of every experiment; a sweep member's problem that its base
    experiment has already is not repeated (the member inherited it)."""
    base_of = {
        member: (sweeps[sweep].get("base", "natural"))
        for sweep, members in members_of.items()
        for member in members
    }
    problems: list[str] = []
    for name, experiment in experiments.items():
        base = base_of.get(name)
        for problem in experiment_problems(name, experiment):
            if base is not None:
                inherited = problem.replace(f"experiments.{name}.", f"experiments.{base}.")
                inherited = inherited.replace(f"experiment '{name}'", f"experiment '{base}'")
                if inherited in problems:
                    continue
            problems.append(problem)
    return problems


def memory_problems(
    name: str, experiment: Mapping, *, physical_mb: int | None = None, job_limits: bool = False
) -> list[str]:
    """Refuse an experiment whose jobs would not fit this machine (or their ``mem_mb``).

    Parameters
    ----------
    name, experiment
        The experiment and its resolved config.
    physical_mb : int, optional
        Memory of the machine (default: read from the system).
    job_limits : bool
        Also compare with ``resources.<kind>.mem_mb`` (what a cluster job is killed at;
        local runs do not enforce it).
    """
    key = f"experiments.{name}"
    physical = _physical_mb() if physical_mb is None else physical_mb
    problems = []
    for kind, (needed, why) in memory_estimates(experiment, f"{key}.").items():
        limit = int(experiment["resources"][kind]["mem_mb"])
        if physical is not None and needed > physical:
            problems.append(
                f"experiment '{name}' needs at least {needed:,.0f} MB in its {kind} job "
                f"({why}) but this machine has {physical:,} MB; allowed: settings whose "
                f"estimate fits; fix: lower the settings named here"
            )
        elif job_limits and needed > limit:
            problems.append(
                f"experiment '{name}' needs at least {needed:,.0f} MB in its {kind} job "
                f"({why}) but config key '{key}.resources.{kind}.mem_mb' is {limit:,} (a "
                f"cluster job is killed beyond it); fix: raise it to at least "
                f"{math.ceil(needed)}, or lower the settings named here"
            )
    return problems


# --------------------------------------------------------------------------------------------
# sources, environment, paths


def did_you_mean(word: str, choices) -> str:
    """`` (did you mean 'x'?)`` when one of ``choices`` is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_MIRROR_SCHEMES = ("http", "https", "file")


def mirror_problem(where: str, mirror: str) -> str | None:
    """A message if ``mirror`` is neither an http(s)/file URL nor a plain folder path."""
    text = str(mirror).strip()
    if not text:
        return f"{where}: an empty mirror; allowed: an http(s):// or file:// URL, or a folder"
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if "://" in text and scheme not in _MIRROR_SCHEMES:
        return (
            f"{where}: {text!r} has the scheme {scheme!r}{did_you_mean(scheme, _MIRROR_SCHEMES)}; "
            f"allowed: an http://, https:// or file:// URL, or a folder"
        )
    if scheme in ("http", "https"):
        from urllib.parse import urlparse

        parsed = urlparse(text)
        try:
            parsed.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError:
            return f"{where}: {text!r} has an invalid port; allowed: 1..65535, or none"
        if not parsed.hostname or any(c.isspace() for c in text):
            return f"{where}: {text!r} names no valid host; allowed: e.g. https://my.mirror/mnist/"
    if not scheme:
        return home_path_problem(where, text)
    return None


def home_path_problem(where: str, path: str) -> str | None:
    """A message if ``path`` starts with ``~``: no shell expands it here."""
    if str(path).startswith("~"):
        return (
            f"{where}: {str(path)!r} starts with '~', which is not expanded here (no shell reads "
            f"the config); allowed: an absolute path or one relative to the working folder, "
            f"e.g. {os.path.expanduser(str(path))!r}"
        )
    return None


def sources_problems(config: Mapping) -> list[str]:
    """Names under ``sources:`` must be sources; their mirrors must be URLs or folders."""
    from sparseae.data import SOURCES

    problems = []
    for name, entry in (config.get("sources") or {}).items():
        if name not in SOURCES:
            problems.append(
                f"config key 'sources.{name}': no source is named {name!r}"
                f"{did_you_mean(name, SOURCES)}; allowed: one of {', '.join(sorted(SOURCES))} "
                f"(a misspelt name would silently leave your mirrors unused)"
            )
            continue
        if SOURCES[name].kind == "local" and (entry or {}).get("mirrors"):
            problems.append(
                f"config key 'sources.{name}.mirrors': source {name!r} is local and downloads "
                f"nothing; allowed: no mirrors for it (remove the entry)"
            )
        for index, mirror in enumerate((entry or {}).get("mirrors") or []):
            problem = mirror_problem(f"config key 'sources.{name}.mirrors.{index}'", mirror)
            if problem:
                problems.append(problem)
    return problems


def _number_env(name: str, value: str, *, integer: bool, minimum: float) -> str | None:
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or number < minimum:
        kind = "an integer" if integer else "a number"
        return (
            f"environment variable {name}={value!r} is not allowed; allowed: {kind} >= "
            f"{minimum:g}; fix: `export {name}=...` with such a value, or `unset {name}`"
        )
    return None


#: MLflow variables the project sets defaults for (``tracking.settings.HTTP_RETRY_DEFAULTS``)
#: and what they must hold: (integer?, minimum).
HTTP_VARIABLES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": (True, 0),
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": (False, 0),
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": (False, 0),
    "MLFLOW_HTTP_REQUEST_TIMEOUT": (False, 1e-3),
}


def environment_problems(environ: Mapping[str, str] | None = None) -> list[str]:
    """Environment variables sparseae reads: tracking URI, MLflow HTTP limits, TLS, caches."""
    from sparseae.tracking.settings import TRACKING_URI_ENV, check_tracking_uri_text

    environ = os.environ if environ is None else environ
    problems = []
    uri = environ.get(TRACKING_URI_ENV)
    if uri is not None and uri.strip():
        problem = check_tracking_uri_text(uri)
        if problem:
            problems.append(f"environment variable {TRACKING_URI_ENV}: {problem}")
    for name, (integer, minimum) in HTTP_VARIABLES.items():
        if environ.get(name):
            problem = _number_env(name, environ[name], integer=integer, minimum=minimum)
            if problem:
                problems.append(problem)
    cert = environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    if cert and not Path(cert).is_file():
        problems.append(
            f"environment variable MLFLOW_TRACKING_SERVER_CERT_PATH={cert!r}: no such file; "
            f"allowed: the CA bundle (PEM file) of the tracking server, or unset it"
        )
    cache = environ.get("XDG_CACHE_HOME")
    if cache and Path(cache).exists() and not Path(cache).is_dir():
        problems.append(
            f"environment variable XDG_CACHE_HOME={cache!r} is a file, not a folder; allowed: "
            f"a folder (or unset it)"
        )
    return problems


def dataset_path_problem(name: str, path: str, error: Exception) -> str:
    """The one message for a ``dataset.path`` that cannot be read (checked while the workflow
    is read, and again when its files are hashed for ``sample_patches``)."""
    return f"config key 'experiments.{name}.dataset.path' = {path!r}: {error}"


def image_folder_problems(name: str, experiment: Mapping) -> list[str]:
    """An image folder, from the files' headers (nothing decoded): readable, one size,
    modes, frames and pixel counts allowed, enough images, patches that fit."""
    from sparseae.data.images import check_image_header, list_image_folder
    from sparseae.errors import DatasetError

    key = f"experiments.{name}"
    folder = experiment["dataset"]["path"]
    try:
        files = list_image_folder(folder)
        sizes = {path: check_image_header(path) for path in files}
    except DatasetError as error:
        return [dataset_path_problem(name, folder, error)]
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{p.name} {r}×{c}" for p, (r, c) in sizes.items())
        return [
            f"config key '{key}.dataset.path' = {folder!r}: images in {folder} have different "
            f"sizes ({listing}); crop or resize them to one size"
        ]
    problems = []
    num = experiment["dataset"]["num_images"]
    if num is not None and num > len(files):
        problems.append(
            f"config key '{key}.dataset.num_images' = {num} is more than the {len(files)} "
            f"images in {folder}; allowed: 1 <= num_images <= {len(files)}, or null for all"
        )
    rows, cols = next(iter(sizes.values()))
    size = experiment["patches"]["size"]
    if size is not None and size > min(rows, cols):
        problems.append(
            f"config key '{key}.patches.size' = {size} is larger than the images of source "
            f"'image-folder' ({rows}x{cols}); allowed: 1 <= patches.size <= {min(rows, cols)}"
        )
    return problems


def input_path_problems(experiments: Mapping[str, Mapping]) -> list[str]:
    """Files and folders the experiments read that exist before any job (``dataset.path``)."""
    from sparseae.data import SOURCES

    problems = []
    for name, experiment in experiments.items():
        path = experiment["dataset"].get("path")
        source = SOURCES.get(experiment["dataset"]["source"])
        if not path or source is None:
            continue
        key = f"experiments.{name}.dataset.path"
        problem = home_path_problem(f"config key '{key}'", path)
        if problem:
            problems.append(problem)
        elif source.loader == "image-folder":
            problems += image_folder_problems(name, experiment)
        elif source.loader == "mat" and not Path(path).is_file():
            problems.append(
                f"config key '{key}' = {path!r}: no such file; allowed: the .mat file of "
                f"source '{source.name}' (or null for the downloaded one)"
            )
    return problems


def raise_problems(problems: list[str]) -> None:
    """Raise one :class:`~sparseae.config.ConfigError` listing ``problems`` (if any)."""
    from sparseae.errors import ConfigError

    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


def tracking_problems(
    config_uri: str | None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """The tracking URI (``MLFLOW_TRACKING_URI`` wins over ``tracking.uri``) and its file."""
    from sparseae.tracking.settings import (
        TRACKING_URI_ENV,
        blank_environment_problem,
        check_sqlite_file,
        check_tracking_uri_text,
        resolve_tracking_uri,
    )

    environ = os.environ if environ is None else environ
    blank = blank_environment_problem(environ)
    if blank:
        return [blank]
    from_env = (environ.get(TRACKING_URI_ENV) or "").strip()
    where = f"environment variable {TRACKING_URI_ENV}" if from_env else "config key 'tracking.uri'"
    text = from_env or (config_uri or "").strip()
    if text:
        problem = check_tracking_uri_text(text)
        if problem:
            return [f"{where}: {problem}"]
    uri = resolve_tracking_uri(config_uri)
    problem = check_sqlite_file(uri)
    return [f"{where if text else 'default tracking store'}: {problem}"] if problem else []


def workflow_input_problems(config: Mapping, environ: Mapping[str, str] | None = None) -> list[str]:
    """What the workflow checks beyond the config itself, while it is read (dry runs too).

    Parameters
    ----------
    config : mapping
        The resolved config (:func:`sparseae.config.resolve_config`).
    environ : mapping, optional
        Environment (default ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    problems = [p for p in environment_problems(environ) if "MLFLOW_TRACKING_URI" not in p]
    problems += tracking_problems(config["tracking"]["uri"], environ)
    problems += input_path_problems({name: config["experiments"][name] for name in config["run"]})
    return problems


def cluster_memory_problems(config: Mapping) -> list[str]:
    """Under a cluster executor: each job's memory estimate must fit its ``mem_mb`` (beyond
    it the job is killed). Called when the run starts (the executor is known then)."""
    problems = []
    for name in config["run"]:
        experiment = config["experiments"][name]
        problems += [p for p in memory_problems(name, experiment, job_limits=True) if "mem_mb" in p]
    return problems


# --------------------------------------------------------------------------------------------
# command-line flags (argparse ``type=`` functions: argparse names the flag in its message)


def _parsed(text: str, parse, what: str, allowed: str, ok):
    """``parse(text)``, refused with argparse's error when it fails or ``ok(value)`` is false."""
    import argparse

    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text} is not allowed; allowed: {allowed}")
    return value


def _number(text: str) -> float:
    import argparse

    value = _parsed(text, float, "a number", "a number", lambda value: True)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_seconds(text: str) -> float:
    """``--timeout``: a finite number of seconds > 0 (at most a day)."""
    allowed = "seconds, a number with 0 < value <= 86400 (e.g. 30)"
    return _parsed(text, _number, "a number", allowed, lambda value: 0 < value <= 86_400)


def retry_count(text: str) -> int:
    """``--retries``: an integer from 0 (one attempt per mirror) to 20."""
    allowed = "extra attempts per mirror, an integer 0..20"
    return _parsed(text, int, "an integer", allowed, lambda value: 0 <= value <= 20)


def mirror_argument(text: str) -> str:
    """``--mirror``: an http(s):// or file:// URL, or a folder."""
    import argparse

    problem = mirror_problem("mirror", text)
    if problem:
        raise argparse.ArgumentTypeError(problem.split(": ", 1)[1])
    return text


# --------------------------------------------------------------------------------------------
# checks once the data is read (rule scripts)


def check_loaded_images(name: str, experiment: Mapping, available: int, where: str) -> None:
    """``dataset.num_images`` must not exceed what the source holds (never silently fewer).

    Parameters
    ----------
    name : str
        Experiment name.
    experiment : mapping
        Its resolved config (``dataset`` section used).
    available : int
        Images (or digits) the source holds.
    where : str
        The source, for the message (e.g. ``"image folder /data/faces"``).
    """
    wanted = experiment["dataset"]["num_images"]
    if wanted is not None and wanted > available:
        raise_problems(
            [
                f"config key 'experiments.{name}.dataset.num_images' = {wanted} is more than "
                f"the {available} images of {where}; allowed: 1 <= num_images <= {available}, "
                f"or null for all of them"
            ]
        )


def check_examples_left(name: str, experiment: Mapping, count: int) -> None:
    """After the label filter (``dataset.digits``) at least one example must remain."""
    if count < 1:
        dataset = experiment["dataset"]
        raise_problems(
            [
                f"config key 'experiments.{name}.dataset.digits' = {dataset['digits']} keeps no "
                f"image of the first {dataset['num_images']} (dataset.num_images); allowed: "
                f"digits present in the data, or a larger num_images (null = all)"
            ]
        )


def check_trained(name: str, iterations: int) -> None:
    """A finished training run must have made at least one L-BFGS iteration."""
    if iterations < 1:
        raise_problems(
            [
                f"experiment '{name}' made no L-BFGS iteration: L-BFGS stopped at the random "
                f"start; lower config key 'experiments.{name}.optimizer.gtol' (default "
                f"1.0e-9) or 'optimizer.ftol' (default 1.0e-12), then rerun"
            ]
        )


def experiment_name(text: str) -> str:
    """An MLflow experiment name: not empty, no surrounding blanks or control characters."""
    import argparse

    if not text.strip() or text != text.strip() or any(ord(c) < 32 for c in text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed; allowed: a non-empty name without surrounding blanks or "
            f"control characters, e.g. natural or alice/natural"
        )
    return text


def folder_or_run_id(text: str) -> str:
    """A sweep member: a result folder that exists, or an MLflow run id (32 hex digits)."""
    import argparse

    if Path(text).is_dir() or re.fullmatch(r"[0-9a-f]{32}", text):
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither a result folder (none exists there) nor an MLflow run id (32 hex "
        f"digits); allowed: results/<experiment> folders or run ids"
    )


def yaml_file_problems(paths) -> list[str]:
    """Config files whose YAML means something other than what it shows.

    PyYAML (and so Snakemake) reads YAML 1.1, where a key given twice silently keeps the last
    value, ``010`` is the octal number 8 and ``1:30`` is 90 (base 60). Each is reported with
    the file, the line and the dotted key. Files that cannot be read are left to the loader,
    which reports them.
    """
    import yaml

    problems: list[str] = []
    for path in paths:
        try:
            root = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if root is not None:
            problems += _yaml_node_problems(root, path, [])
    return problems


_OCTAL = re.compile(r"^[-+]?0[0-7_]+$")


def _yaml_node_problems(node, path, keys: list) -> list[str]:
    import yaml

    problems = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            dotted = ".".join(str(k) for k in [*keys, key])
            if key in seen:
                problems.append(
                    f"config file {path}, line {line}: key '{dotted}' is given twice (first on "
                    f"line {seen[key]}); YAML silently keeps only the last; merge the two"
                )
            seen.setdefault(key, line)
            problems += _yaml_node_problems(value_node, path, [*keys, key])
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _yaml_node_problems(item, path, [*keys, index])
    elif isinstance(node, yaml.ScalarNode) and node.style is None:
        number = node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
        text = node.value
        if number and (_OCTAL.match(text) or ":" in text):
            meaning = yaml.safe_load(text)
            kind = "an octal number" if _OCTAL.match(text) else "a base-60 number"
            dotted = ".".join(str(k) for k in keys)
            problems.append(
                f"config file {path}, line {node.start_mark.line + 1}: key '{dotted}' = {text} "
                f"is read by YAML as {kind}, {meaning}; write {meaning} (or the number without "
                f"leading zeros), or quote it if text is meant"
            )
    return problems
