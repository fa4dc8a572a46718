"""Command line for the tracking steps: ``python -m sparseae.tracking init|log|sweep|uri``.

Exit status 0 on success, 2 with a one-paragraph message (no traceback) when the store is
unreachable, a location is unwritable, or a result file or run contradicts the contract.
"""

from __future__ import annotations

import argparse
import json
import sys

from .settings import resolve_tracking_uri


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also usable by ``sparseae log`` in the main CLI)."""
    parser = argparse.ArgumentParser(
        prog="python -m sparseae.tracking",
        description="Fill MLflow from sparseae result folders (idempotent: reruns add only "
        "what is missing).",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="store URI (default: $MLFLOW_TRACKING_URI, else sqlite:///$PWD/mlflow.db)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="create the store and experiments before jobs start")
    init.add_argument("experiments", nargs="+", metavar="EXPERIMENT")
    init.add_argument(
        "--artifact-location",
        default=None,
        help="artifact root (default: mlartifacts/ beside a local database)",
    )

    log = sub.add_parser("log", help="log one result folder into one run")
    log.add_argument("results_dir", metavar="RESULTS_DIR")
    log.add_argument("--experiment", required=True, help="MLflow experiment name")
    log.add_argument("--run-key", default=None, help="override the derived run identity")
    log.add_argument("--log-dir", default=None, help="rule logs (default: logs/EXPERIMENT)")
    log.add_argument("--parent-run-id", default=None)
    log.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")

    sweep = sub.add_parser("sweep", help="log a sweep's parent run and tag its members")
    sweep.add_argument("name", metavar="SWEEP")
    sweep.add_argument("members", nargs="+", metavar="RESULTS_DIR_OR_RUN_ID")
    sweep.add_argument("--experiment", default=None, help="experiment of the parent run")
    sweep.add_argument("--summary", default=None, help="summary table to attach")
    sweep.add_argument("--output", default=None, help="write the parent run id here (JSON)")

    sub.add_parser("uri", help="print the tracking URI that would be used")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    from . import store
    from .results import ResultsError

    try:
        uri = resolve_tracking_uri(args.tracking_uri)
        if args.command == "uri":
            print(uri)
        elif args.command == "init":
            ids = store.init_store(uri, args.experiments, args.artifact_location)
            print(json.dumps({"tracking_uri": uri, "experiments": ids}, indent=2))
        elif args.command == "log":
            from .logger import log_results

            tags = dict(_split_tag(t) for t in args.tag)
            run_id = log_results(
                args.results_dir,
                experiment_name=args.experiment,
                tracking_uri=uri,
                run_key=args.run_key,
                log_dir=args.log_dir,
                tags=tags,
                parent_run_id=args.parent_run_id,
            )
            print(
                f"logged {args.results_dir} to run {run_id} in {uri} "
                f"(details: {args.results_dir}/mlflow.json)"
            )
        elif args.command == "sweep":
            from .logger import log_sweep

            run_id = log_sweep(
                args.name,
                args.members,
                tracking_uri=uri,
                experiment_name=args.experiment,
                summary_path=args.summary,
                output=args.output,
            )
            print(f"logged sweep {args.name} to run {run_id} in {uri}")
    except (store.TrackingError, ResultsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _split_tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--tag {text!r}: expected KEY=VALUE")
    return key, value
