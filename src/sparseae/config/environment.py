"""What the workflow checks outside the config itself while it is read (dry runs too): mirrors,
environment variables, the tracking store, input files and cluster memory limits."""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from pathlib import Path

from sparseae.config.rules import memory_problems, num_images_problem, patch_fits_problem

_MIRROR_SCHEMES = ("http", "https", "file")


def did_you_mean(word: str, choices) -> str:
    """`` (did you mean 'x'?)`` when one of ``choices`` is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def home_path_problem(where: str, path: str) -> str | None:
    """A message if ``path`` starts with ``~``: no shell expands it here."""
    if str(path).startswith("~"):
        return (
            f"{where}: {str(path)!r} starts with '~', which is not expanded here (no shell reads "
            f"the config); allowed: an absolute path or one relative to the working folder, "
            f"e.g. {os.path.expanduser(str(path))!r}"
        )
    return None


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
    return home_path_problem(where, text) if not scheme else None


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
        mirrors = (entry or {}).get("mirrors") or []
        if SOURCES[name].kind == "local" and mirrors:
            problems.append(
                f"config key 'sources.{name}.mirrors': source {name!r} is local and downloads "
                f"nothing; allowed: no mirrors for it (remove the entry)"
            )
        for index, mirror in enumerate(mirrors):
            problems.append(mirror_problem(f"config key 'sources.{name}.mirrors.{index}'", mirror))
    return [problem for problem in problems if problem]


def environment_problems(environ: Mapping[str, str] | None = None) -> list[str]:
    """Environment variables sparseae reads: MLflow HTTP limits, TLS bundle, cache folder."""
    from sparseae.tracking.settings import HTTP_RETRY_DEFAULTS

    environ = os.environ if environ is None else environ
    problems = []
    for name in (n for n in HTTP_RETRY_DEFAULTS if environ.get(n)):
        # A count of retries (an integer), or seconds (a timeout above 0).
        integer, minimum = name.endswith("RETRIES"), 1e-3 if name.endswith("TIMEOUT") else 0
        try:
            number = int(environ[name]) if integer else float(environ[name])
        except ValueError:
            number = None
        if number is None or not math.isfinite(number) or number < minimum:
            problems.append(
                f"environment variable {name}={environ[name]!r} is not allowed; allowed: "
                f"{'an integer' if integer else 'a number'} >= {minimum:g}; fix: `export "
                f"{name}=...` with such a value, or `unset {name}`"
            )
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


def tracking_problems(
    config_uri: str | None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """The tracking URI (``MLFLOW_TRACKING_URI`` wins over ``tracking.uri``) and its file."""
    from sparseae.tracking import settings

    environ = os.environ if environ is None else environ
    env = settings.TRACKING_URI_ENV
    from_env = (environ.get(env) or "").strip()
    where = f"environment variable {env}" if from_env else "config key 'tracking.uri'"
    try:
        uri = settings.resolve_tracking_uri(config_uri, environ=environ)
    except ValueError as error:  # a blank variable names itself
        return [str(error) if settings.blank_environment_problem(environ) else f"{where}: {error}"]
    problem = settings.check_sqlite_file(uri)
    text = from_env or (config_uri or "").strip()
    return [f"{where if text else 'default tracking store'}: {problem}"] if problem else []


def dataset_path_problem(name: str, path: str, error: Exception) -> str:
    """The one message for a ``dataset.path`` that cannot be read."""
    return f"config key 'experiments.{name}.dataset.path' = {path!r}: {error}"


def input_path_problems(experiments: Mapping[str, Mapping]) -> list[str]:
    """Files and folders the experiments read that exist before any job (``dataset.path``,
    ``cnn.images.{train,test}.path``); an image folder from its files' headers: readable, one
    size, enough images, patches that fit."""
    from sparseae.data import SOURCES
    from sparseae.data.images import check_image_header, different_sizes, list_image_folder
    from sparseae.errors import DatasetError

    problems = []
    for name, experiment in experiments.items():
        cnn_images = (experiment.get("cnn") or {}).get("images", {})
        for part in ("train", "test"):
            mat = cnn_images.get(part, {}).get("path")
            key = f"config key 'experiments.{name}.cnn.images.{part}.path'"
            if mat and not Path(mat).is_file():
                problems.append(
                    home_path_problem(key, mat)
                    or f"{key} = {mat!r}: no such file; allowed: a .mat file with {part}Images "
                    f"and {part}Labels (UFLDL's stl{part.title()}Subset.mat), or null"
                )
        path = experiment["dataset"].get("path")
        source = SOURCES.get(experiment["dataset"]["source"])
        if not path or source is None:
            continue
        key = f"experiments.{name}.dataset.path"
        problem = home_path_problem(f"config key '{key}'", path)
        if problem:
            problems.append(problem)
        elif source.loader == "image-folder":
            try:
                files = list_image_folder(path)
                sizes = {file: check_image_header(file) for file in files}
            except DatasetError as error:
                problems.append(dataset_path_problem(name, path, error))
                continue
            if len(set(sizes.values())) > 1:
                problems.append(f"config key '{key}' = {path!r}: {different_sizes(path, sizes)}")
                continue
            wanted, size = experiment["dataset"]["num_images"], experiment["patches"]["size"]
            where = f"experiments.{name}"
            problems.append(num_images_problem(where, wanted, len(files), f"image folder {path}"))
            rows, cols = next(iter(sizes.values()))
            problems.append(patch_fits_problem(where, size, "image-folder", rows, cols))
        elif source.loader in ("mat", "stl10") and not Path(path).is_file():
            problems.append(
                f"config key '{key}' = {path!r}: no such file; allowed: the .mat file of "
                f"source '{source.name}' (or null for the downloaded one)"
            )
    return [problem for problem in problems if problem]


def workflow_input_problems(
    config: Mapping, environ: Mapping[str, str] | None = None, *, local: bool = True
) -> list[str]:
    """Environment variables, tracking store and input files of the experiments in ``run``;
    ``local``: jobs run here, so each experiment's device must be here too (the workflow
    checks that once it knows its executor)."""
    problems = environment_problems(environ) + tracking_problems(config["tracking"]["uri"], environ)
    problems += device_problems(config) if local else []
    return problems + input_path_problems({n: config["experiments"][n] for n in config["run"]})


def device_problems(config: Mapping) -> list[str]:
    """Each experiment in ``run`` with a ``training.device`` other than cpu must find its
    array library (and a GPU for cuda) here, and train with optimizer.method lbfgs."""
    from sparseae.environment import device_missing

    problems = []
    for name in config["run"]:
        experiment = config["experiments"][name]
        device = experiment["training"]["device"]
        where = f"config key 'experiments.{name}.training.device' = {device!r}"
        missing = device_missing(device)
        if missing:
            problems.append(
                f"{where}: {missing}; allowed: cpu, or {device} where its library (and GPU) is "
                f"present: install it, run on a GPU node, or set training.device: cpu"
            )
        elif device != "cpu" and experiment["optimizer"]["method"] != "lbfgs":
            problems.append(
                f"{where} needs optimizer.method 'lbfgs' (the optimizer that runs on the "
                f"device), got {experiment['optimizer']['method']!r}; set optimizer.method: lbfgs"
            )
    return problems


def cluster_memory_problems(config: Mapping) -> list[str]:
    """Under a cluster executor: each job's memory estimate must fit its ``mem_mb``."""
    jobs = [memory_problems(n, config["experiments"][n], job_limits=True) for n in config["run"]]
    return [problem for problems in jobs for problem in problems if "mem_mb" in problem]
