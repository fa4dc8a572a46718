"""Command line for the tracking steps.

Two ways in:

- ``python -m sparseae.tracking [--tracking-uri URI] {init,log,sweep,uri} ...``: exit status 0
  on success, 2 with a one-paragraph message (no traceback) when the store is unreachable, a
  location is unwritable, or a result file or run contradicts the contract;
- ``sparseae log|tracking-init|log-sweep ...`` once :func:`register_sparseae_commands` is
  called from ``sparseae.cli._load_commands`` (exit status 1 on the same errors, like the
  other ``sparseae`` subcommands).
"""

from __future__ import annotations

import argparse
import json
import sys

from sparseae.checks import experiment_name, folder_or_run_id

from .settings import resolve_tracking_uri


def _uri_argument(parser: argparse.ArgumentParser, top_level: bool = False) -> None:
    parser.add_argument(
        "--tracking-uri",
        # A sub-parser's default would overwrite a value given before the subcommand.
        default=None if top_level else argparse.SUPPRESS,
        help="store URI (default: $MLFLOW_TRACKING_URI, else sqlite:///$PWD/mlflow.db)",
    )


def add_init_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``init``: experiment names and the artifact root."""
    _uri_argument(parser)
    parser.add_argument("experiments", nargs="+", metavar="EXPERIMENT", type=experiment_name)
    parser.add_argument(
        "--artifact-location",
        default=None,
        help="artifact root (default: mlartifacts/ beside a local database)",
    )


def add_log_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``log``: one result folder and its MLflow experiment."""
    _uri_argument(parser)
    parser.add_argument("results_dir", metavar="RESULTS_DIR")
    parser.add_argument(
        "--experiment", required=True, type=experiment_name, help="MLflow experiment name"
    )
    parser.add_argument("--run-key", default=None, help="override the derived run identity")
    parser.add_argument("--log-dir", default=None, help="rule logs (default: logs/EXPERIMENT)")
    parser.add_argument("--parent-run-id", default=None)
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sweep``: its name, member result folders (or run ids), summary table."""
    _uri_argument(parser)
    parser.add_argument("name", metavar="SWEEP")
    parser.add_argument(
        "members", nargs="+", metavar="RESULTS_DIR_OR_RUN_ID", type=folder_or_run_id
    )
    parser.add_argument(
        "--experiment", default=None, type=experiment_name, help="experiment of the parent run"
    )
    parser.add_argument(
        "--summary",
        action="append",
        default=[],
        metavar="FILE",
        help="file to attach to the parent run (repeatable: table, HTML page, figure)",
    )
    parser.add_argument("--output", default=None, help="write the parent run id here (JSON)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m sparseae.tracking``."""
    parser = argparse.ArgumentParser(
        prog="python -m sparseae.tracking",
        description="Fill MLflow from sparseae result folders (idempotent: reruns add only "
        "what is missing).",
    )
    _uri_argument(parser, top_level=True)
    sub = parser.add_subparsers(dest="tracking_command", required=True)
    add_init_arguments(sub.add_parser("init", help="create the store and experiments first"))
    add_log_arguments(sub.add_parser("log", help="log one result folder into one run"))
    add_sweep_arguments(sub.add_parser("sweep", help="log a sweep's parent run, tag members"))
    sub.add_parser("uri", help="print the tracking URI that would be used")
    return parser


def execute(args: argparse.Namespace) -> None:
    """Run the parsed command; errors propagate (see :func:`main` for their handling)."""
    uri = resolve_tracking_uri(getattr(args, "tracking_uri", None))
    command = args.tracking_command
    if command == "uri":
        print(uri)
    elif command == "init":
        from .store import init_store

        ids = init_store(uri, args.experiments, args.artifact_location)
        print(json.dumps({"tracking_uri": uri, "experiments": ids}, indent=2))
    elif command == "log":
        from .logger import log_results

        run_id = log_results(
            args.results_dir,
            experiment_name=args.experiment,
            tracking_uri=uri,
            run_key=args.run_key,
            log_dir=args.log_dir,
            tags=dict(_split_tag(t) for t in args.tag),
            parent_run_id=args.parent_run_id,
        )
        print(
            f"logged {args.results_dir} to run {run_id} in {uri} "
            f"(details: {args.results_dir}/mlflow.json)"
        )
    elif command == "sweep":
        from .logger import log_sweep

        run_id = log_sweep(
            args.name,
            args.members,
            tracking_uri=uri,
            experiment_name=args.experiment,
            artifacts=args.summary,
            output=args.output,
        )
        print(f"logged sweep {args.name} to run {run_id} in {uri}")


def user_errors() -> tuple[type[Exception], ...]:
    """Exceptions that carry a message for the user (printed without a traceback)."""
    from .results import ResultsError
    from .store import TrackingError

    return (TrackingError, ResultsError, ValueError)


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m sparseae.tracking``; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        execute(args)
    except user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def register_sparseae_commands() -> None:
    """Register ``sparseae log``, ``sparseae tracking-init`` and ``sparseae log-sweep``."""
    from sparseae import cli

    registered = getattr(cli, "_COMMANDS", {})

    def runner(command: str):
        def run(args: argparse.Namespace) -> int:
            args.tracking_command = command
            try:
                execute(args)
            except user_errors() as exc:
                raise cli.UsageError(str(exc)) from exc
            return 0

        return run

    for name, command, text, arguments in (
        ("log", "log", "log a result folder to MLflow (adds only what is missing)",
         add_log_arguments),
        ("tracking-init", "init", "create the MLflow store and experiments before jobs start",
         add_init_arguments),
        ("log-sweep", "sweep", "log a sweep's parent run and tag its member runs",
         add_sweep_arguments),
    ):  # fmt: skip
        if name not in registered:  # _load_commands may run once per parser built
            cli.subcommand(name, help=text, arguments=arguments)(runner(command))


def _split_tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--tag {text!r}: expected KEY=VALUE")
    return key, value
