"""The ``sparseae`` command line (also ``python -m sparseae``): every subcommand, one parser.
Exit status 0 on success, 1 for a failure the user can act on (one line), 2 for argparse's."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sparseae import __version__
from sparseae.data import SOURCES
from sparseae.errors import UsageError  # raised by every command; defined apart for rulelog

#: Config file read by default (relative to the working folder) when it exists.
DEFAULT_CONFIG = Path("config/config.yaml")


# Every flag is checked before any side effect (a download, an MLflow run); checks that need
# no other flag are argparse ``type=`` functions (argparse names the flag).


def _bounded(parse, what: str, allowed: str, ok) -> Callable[[str], float]:
    """An argparse ``type=`` for a number: ``parse(text)`` finite and ``ok(value)``."""

    def number(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value != value or abs(value) == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text} is not allowed; allowed: {allowed}")
        return value

    return number


#: ``--timeout``: seconds, finite, at most a day; ``--retries``: extra attempts per mirror.
positive_seconds = _bounded(
    float, "a number", "seconds, 0 < value <= 86400", lambda v: 0 < v <= 86400
)
retry_count = _bounded(int, "an integer", "an integer 0..20", lambda value: 0 <= value <= 20)


def mirror_argument(text: str) -> str:
    """``--mirror``: an http(s):// or file:// URL, or a folder."""
    from sparseae.config.environment import mirror_problem

    problem = mirror_problem("mirror", text)
    if problem:
        raise argparse.ArgumentTypeError(problem.split(": ", 1)[1])
    return text


def experiment_name(text: str) -> str:
    """An MLflow experiment name: not empty, no surrounding blanks or control characters."""
    if not text.strip() or text != text.strip() or any(ord(c) < 32 for c in text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed; allowed: a non-empty name without surrounding blanks or "
            f"control characters, e.g. natural or alice/natural"
        )
    return text


def folder_or_run_id(text: str) -> str:
    """A sweep member: a result folder that exists, or an MLflow run id (32 hex digits)."""
    if not Path(text).is_dir() and not _RUN_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a result folder (none exists there) nor an MLflow run id (32 "
            f"hex digits); allowed: results/<experiment> folders or run ids"
        )
    return text


_FOLDER, _INPUT = "the path of a folder, e.g. ", "the path of an existing file"


def _refuse(flag: str, value: str, problem: str, allowed: str, fix: str) -> None:
    raise UsageError(f"{flag} {value!r}{problem}; allowed: {allowed}; fix: {fix}")


def check_path(flag: str, value: str | None, allowed: str, *, folder=False, exists=False) -> None:
    """A path flag, if given: not blank, not the other kind (a folder for a file or the
    reverse), no parent a file, existing if ``exists``."""
    if value is None:
        return
    if not value.strip():
        _refuse(flag, value, " is empty", allowed, f"give {allowed}")
    path = Path(value)
    if folder and path.exists() and not path.is_dir():
        _refuse(flag, value, " is a file, not a folder", allowed, "give a folder")
    if not folder and path.is_dir():
        _refuse(flag, value, " is a folder, not a file", allowed, "name a file inside it")
    # The first parent that exists but is no folder (nothing exists below a missing one).
    blocking = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        fix = "choose a path whose folders are folders"
        _refuse(flag, value, f": {blocking} is a file, not a folder", allowed, fix)
    if exists and not path.exists():
        problem = f" does not exist (working folder {Path.cwd()})"
        allowed = "an existing folder" if folder else allowed
        _refuse(flag, value, problem, allowed, "check the path")


_RUN_ID = re.compile(r"[0-9a-f]{32}")


def check_not_blank(flag: str, value: str | None, example: str) -> None:
    """A text flag that must not be empty or blank when given."""
    if value is not None and not value.strip():
        allowed = f"a non-blank text, e.g. {example}"
        _refuse(flag, value, " is empty", allowed, f"give one or leave {flag} out")


def _arg(*names: str, **options) -> tuple[tuple[str, ...], dict]:
    """One ``add_argument`` call as data; its help is ``HELP[first name]``."""
    return names, {"help": HELP.get(names[0]), **options}


HELP = {
    "--dest": "destination folder (default resources/SOURCE; for image-folder: the folder)",
    "--mirror": "base URL (or local folder) to try, in order; repeat for several. Overrides "
    "the config's sources.SOURCE.mirrors and the built-in defaults",
    "--config": f"YAML config with sources.SOURCE.mirrors (default {DEFAULT_CONFIG} if present)",
    "--timeout": "seconds per connect/read, 0 < T <= 86400 (default 30)",
    "--retries": "extra attempts per mirror, 0..20 (default 2)",
    "--tracking-uri": "store URI (default: $MLFLOW_TRACKING_URI, else sqlite:///$PWD/mlflow.db)",
    "--artifact-location": "artifact root (default: mlartifacts/ beside a local database)",
    "--summary": "file to attach to the parent run (repeatable: table, HTML page, figure)",
    "files": "config files merged over config/config.yaml, in order (as --configfile)",
    "--base": f"the workflow's own config (default {DEFAULT_CONFIG})",
    "--base-url": "where the UI runs",
}


FETCH_ARGUMENTS = (
    _arg("source", choices=sorted(SOURCES), help="data source to fetch"),
    _arg("--dest", metavar="DIR"),
    _arg("--mirror", metavar="URL", action="append", type=mirror_argument),
    _arg("--config", metavar="FILE"),
    _arg("--split", help="only the files of this split (mnist: train, test)"),
    _arg("--file", metavar="NAME", action="append", help="only this file (repeatable)"),
    _arg("--timeout", type=positive_seconds, default=30.0),
    _arg("--retries", type=retry_count, default=2),
)


def _fetch(args: argparse.Namespace) -> int:
    """download and verify a data source (same code as the pipeline's fetch rule)"""
    from sparseae.config import read_config_files
    from sparseae.data import fetch_source

    if args.split is not None and args.file:
        raise UsageError("give --split or --file, not both")
    check_path("--dest", args.dest, f"{_FOLDER}resources/{args.source}", folder=True)
    check_path("--config", args.config, _INPUT, exists=True)
    source = SOURCES[args.source]
    if source.kind == "local" and args.mirror:
        raise UsageError(
            f"--mirror {args.mirror[0]!r}: source {args.source!r} is local and downloads "
            f"nothing (the config refuses sources.{args.source}.mirrors the same way); "
            f"allowed: no --mirror for it; fix: leave --mirror out"
        )
    if source.loader == "image-folder" and args.dest is None:
        raise UsageError(
            f"source {args.source!r} needs the folder of images: give --dest DIR, e.g. "
            f"--dest data/my-images"
        )
    given = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    config = read_config_files([given]) if given else {}
    options = dict(mirrors=args.mirror, split=args.split, files=args.file, retries=args.retries)
    paths = fetch_source(args.source, args.dest, config, timeout=args.timeout, **options)
    for path in paths:
        print(path)
    return 0


TRACKING_URI_ARGUMENTS = (_arg("--tracking-uri", default=None),)


def _tracking_uri(args: argparse.Namespace) -> str:
    from sparseae.tracking.settings import TRACKING_URI_ENV, resolve_tracking_uri

    where, environ = "--tracking-uri: ", {}  # the flag wins over the environment
    if args.tracking_uri is None:
        from_env = os.environ.get(TRACKING_URI_ENV, "").strip()
        where, environ = f"environment variable {TRACKING_URI_ENV}: " if from_env else "", None
    try:
        return resolve_tracking_uri(args.tracking_uri, environ=environ)
    except ValueError as exc:
        raise UsageError(f"{where}{exc}") from None


TRACKING_INIT_ARGUMENTS = (
    *TRACKING_URI_ARGUMENTS,
    _arg("experiments", nargs="+", metavar="EXPERIMENT", type=experiment_name),
    _arg("--artifact-location", default=None),
)


def _tracking_init(args: argparse.Namespace) -> int:
    """create the MLflow store and experiments before jobs start"""
    from sparseae.tracking.settings import artifact_client_problem
    from sparseae.tracking.store import init_store

    location = args.artifact_location
    check_not_blank("--artifact-location", location, "mlartifacts or s3://bucket/path")
    if location is not None and "://" not in location and not location.startswith("file:"):
        check_path("--artifact-location", location, f"{_FOLDER}mlartifacts", folder=True)
    problem = artifact_client_problem(location or "")
    if problem:
        raise UsageError(f"--artifact-location {problem}")
    uri = _tracking_uri(args)
    ids = init_store(uri, args.experiments, args.artifact_location)
    print(json.dumps({"tracking_uri": uri, "experiments": ids}, indent=2))
    return 0


LOG_ARGUMENTS = (
    *TRACKING_URI_ARGUMENTS,
    _arg("results_dir", metavar="RESULTS_DIR"),
    _arg("--experiment", required=True, type=experiment_name, help="MLflow experiment name"),
    _arg("--run-key", default=None, help="override the derived run identity"),
    _arg("--log-dir", default=None, help="rule logs (default: logs/EXPERIMENT)"),
    _arg("--parent-run-id", default=None),
    _arg("--tag", action="append", default=[], metavar="KEY=VALUE"),
)


def check_parent_run(uri: str, run_id: str | None) -> None:
    """``--parent-run-id``: an MLflow run id (32 lowercase hex characters) of a run of that
    store (a local store not made yet holds none)."""
    from mlflow.exceptions import MlflowException

    from sparseae.tracking.settings import sqlite_path
    from sparseae.tracking.store import call, check_reachable, client

    if run_id is None:
        return
    if not _RUN_ID.fullmatch(run_id):
        allowed = "32 lowercase hex characters, e.g. 0123456789abcdef0123456789abcdef"
        fix = "copy the id from the MLflow UI or from mlflow.json"
        _refuse("--parent-run-id", run_id, " is not an MLflow run id", allowed, fix)
    check_reachable(uri)
    db = sqlite_path(uri)
    with contextlib.suppress(MlflowException):
        if db is None or db.exists():
            call(uri, client(uri).get_run, run_id)
            return
    fix = "copy the id from the parent's mlflow.json or the MLflow UI"
    _refuse("--parent-run-id", run_id, f" is no run in {uri}", "a run of that store", fix)


def _log(args: argparse.Namespace) -> int:
    """log a result folder to MLflow (idempotent: adds only what is missing)"""
    from sparseae.tracking.logger import log_results
    from sparseae.tracking.results import ResultsError

    check_path(
        "RESULTS_DIR", args.results_dir, f"{_FOLDER}results/natural", folder=True, exists=True
    )
    check_not_blank("--run-key", args.run_key, "natural-v2")
    check_path("--log-dir", args.log_dir, f"{_FOLDER}logs/natural", folder=True)
    tags = {}
    for text in args.tag:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag {text!r}: expected KEY=VALUE, e.g. --tag owner=alice")
        if key.startswith("sparseae.") or key == "mlflow.parentRunId":
            allowed = "your own keys (the project sets sparseae.* and mlflow.parentRunId itself)"
            _refuse("--tag", text, " sets a project-owned tag", allowed, "choose another key")
        tags[key] = value
    uri = _tracking_uri(args)
    check_parent_run(uri, args.parent_run_id)
    options = dict(run_key=args.run_key, log_dir=args.log_dir, parent_run_id=args.parent_run_id)
    options.update(experiment_name=args.experiment, tracking_uri=uri, tags=tags)
    try:
        run_id = log_results(args.results_dir, **options)
    except ResultsError as error:  # the library names its parameter; the user knows the flag
        text = str(error).replace("pass run_key explicitly", "pass --run-key KEY")
        raise UsageError(text) from None
    details = Path(args.results_dir, "mlflow.json")
    print(f"logged {args.results_dir} to run {run_id} in {uri} (details: {details})")
    return 0


LOG_SWEEP_ARGUMENTS = (
    *TRACKING_URI_ARGUMENTS,
    _arg("name", metavar="SWEEP"),
    _arg("members", nargs="+", metavar="RESULTS_DIR_OR_RUN_ID", type=folder_or_run_id),
    _arg("--experiment", default=None, type=experiment_name, help="experiment of the parent run"),
    _arg("--summary", action="append", default=[], metavar="FILE"),
    _arg("--output", default=None, help="write the parent run id here (JSON)"),
)


def _log_sweep(args: argparse.Namespace) -> int:
    """log a sweep's parent run and tag its member runs"""
    from sparseae.tracking.logger import log_sweep

    check_not_blank("SWEEP", args.name, "lambda-sweep")
    for summary in args.summary:
        check_path("--summary", summary, _INPUT, exists=True)
    check_path("--output", args.output, "the path of a file to write, e.g. results/out.json")
    uri = _tracking_uri(args)
    options = dict(experiment_name=args.experiment, artifacts=args.summary, output=args.output)
    run_id = log_sweep(args.name, args.members, tracking_uri=uri, **options)
    print(f"logged sweep {args.name} to run {run_id} in {uri}")
    return 0


def _tracking_uri_command(args: argparse.Namespace) -> int:
    """print the tracking URI the other commands would use"""
    print(_tracking_uri(args))
    return 0


CHECK_CONFIG_ARGUMENTS = (
    _arg("files", nargs="*", metavar="FILE"),
    _arg("--base", metavar="FILE", default=str(DEFAULT_CONFIG)),
)


def _check_config(args: argparse.Namespace) -> int:
    """check config files as the workflow will (make run CONFIG=FILE does this first)"""
    from sparseae.config import resolve_config
    from sparseae.config.environment import workflow_input_problems
    from sparseae.config.schema import raise_problems

    resolved = resolve_config(files=[args.base, *args.files])
    raise_problems(workflow_input_problems(resolved))
    names = [*resolved["run"], *resolved["run_stacked"]]
    print(f"config OK: runs {', '.join(names)}", file=sys.stdout)
    return 0


EVERY_EXPERIMENT = "experiments (default: every one the pipeline created in the store)"
UI_URL_ARGUMENTS = (
    *TRACKING_URI_ARGUMENTS,
    _arg("experiments", nargs="*", metavar="EXPERIMENT", help=EVERY_EXPERIMENT),
    _arg("--base-url", default="http://127.0.0.1:5000"),
)


def _ui_url(args: argparse.Namespace) -> int:
    """print the MLflow UI address of each experiment's runs (model-training view)"""
    from sparseae.config.environment import mirror_problem
    from sparseae.tracking.store import pipeline_experiments, ui_url

    # An http(s) URL with a host (the mirror check's host rule, http(s) only).
    scheme = args.base_url.strip().split("://", 1)[0].lower() if "://" in args.base_url else ""
    if scheme not in ("http", "https") or mirror_problem("--base-url", args.base_url):
        allowed = "http(s)://HOST[:PORT][/PATH], e.g. http://127.0.0.1:5000"
        problem, fix = " is not an http(s) URL with a host", "give such a URL"
        _refuse("--base-url", args.base_url, problem, allowed, fix)
    uri = _tracking_uri(args)
    names = args.experiments or pipeline_experiments(uri)
    if not names:
        print(f"no experiment in {uri} yet: run `snakemake` (or `make run`) first")
    for name in names:
        url = ui_url(uri, name, args.base_url)
        print(f"{name}: {url}" if url else f"{name}: not in {uri}")
    return 0


COMMANDS = (
    ("fetch", FETCH_ARGUMENTS, _fetch),
    ("check-config", CHECK_CONFIG_ARGUMENTS, _check_config),
    ("tracking-init", TRACKING_INIT_ARGUMENTS, _tracking_init),
    ("log", LOG_ARGUMENTS, _log),
    ("log-sweep", LOG_SWEEP_ARGUMENTS, _log_sweep),
    ("tracking-uri", TRACKING_URI_ARGUMENTS, _tracking_uri_command),
    ("ui-url", UI_URL_ARGUMENTS, _ui_url),
)
"""Every subcommand (name, arguments, function; its docstring is its help), in ``--help`` order."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command in :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="sparseae",
        description="Sparse autoencoders as in the UFLDL / CS294A exercises.",
    )
    parser.add_argument("--version", action="version", version=f"sparseae {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, arguments, run in COMMANDS:
        text = " ".join(run.__doc__.split())
        sub = commands.add_parser(name, help=text, description=text)
        for names, options in arguments:
            sub.add_argument(*names, **options)
        sub.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sparseae``; returns the exit status (0 success, 1 error, 2 usage)."""
    from sparseae.rulelog import failure_line, stdout_failure

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        status = args._run(args)
        sys.stdout.flush()  # a closed or full stdout fails here, not in Python's exit
        return status
    except Exception as exc:  # a known failure is one line (as in rulelog); a bug is raised
        line = failure_line(exc)
        if line is None and isinstance(exc, OSError):  # stdout itself, or raised again
            return stdout_failure(exc)
        if line is None:
            raise
        print(f"sparseae {args.command}: error: {line}", file=sys.stderr)
        return 1
