"""The ``sparseae`` console script.

Subcommands are registered with :func:`subcommand`: a function that takes the parsed
arguments and returns an exit status, plus a function that adds its arguments to the parser.
Another module adds one with::

    @subcommand("train", help="...", arguments=_train_arguments)
    def _train(args): ...

and imports itself in :func:`_load_commands`. Errors the user can act on (bad data, failed
downloads, bad config) print one message and exit with status 1, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import __version__

#: Config file read by default (relative to the working folder) when it exists.
DEFAULT_CONFIG = Path("config/config.yaml")


@dataclass(frozen=True)
class _Command:
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


_COMMANDS: dict[str, _Command] = {}


def subcommand(name: str, *, help: str, arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``run(args) -> int`` as ``sparseae <name>``; ``arguments`` fills its parser."""

    def register(run: Callable[[argparse.Namespace], int]):
        if name in _COMMANDS:
            raise ValueError(f"subcommand {name!r} registered twice")
        _COMMANDS[name] = _Command(help, arguments, run)
        return run

    return register


class UsageError(Exception):
    """A problem with the command line or config the user must fix (exit status 1)."""


def read_config(path: str | Path | None) -> dict:
    """Read a YAML config (``config/config.yaml`` by default, if present) with safe_load."""
    if path is None:
        if not DEFAULT_CONFIG.is_file():
            return {}
        path = DEFAULT_CONFIG
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"config file {path} is not valid YAML: {exc}") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise UsageError(f"config file {path} must hold a mapping, not {type(config).__name__}")
    return config


# --------------------------------------------------------------------------- fetch


def _fetch_arguments(parser: argparse.ArgumentParser) -> None:
    from .checks import mirror_argument, positive_seconds, retry_count
    from .datasets import SOURCES

    parser.add_argument("source", choices=sorted(SOURCES), help="data source to fetch")
    parser.add_argument(
        "--dest",
        metavar="DIR",
        help="destination folder (default resources/SOURCE; for image-folder: the folder)",
    )
    parser.add_argument(
        "--mirror",
        metavar="URL",
        action="append",
        type=mirror_argument,
        help="base URL (or local folder) to try, in order; repeat for several. Overrides "
        "the config's sources.SOURCE.mirrors and the built-in defaults",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"YAML config with sources.SOURCE.mirrors (default {DEFAULT_CONFIG} if present)",
    )
    parser.add_argument("--split", help="only the files of this split (mnist: train, test)")
    parser.add_argument(
        "--file", metavar="NAME", action="append", help="only this file (repeatable)"
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=30.0,
        help="seconds per connect/read, 0 < T <= 86400 (default 30)",
    )
    parser.add_argument(
        "--retries",
        type=retry_count,
        default=2,
        help="extra attempts per mirror, 0..20 (default 2)",
    )


@subcommand(
    "fetch",
    help="download and verify a data source (same code as the pipeline's fetch rule)",
    arguments=_fetch_arguments,
)
def _fetch(args: argparse.Namespace) -> int:
    from .datasets import fetch_source

    if args.split is not None and args.file:
        raise UsageError("give --split or --file, not both")
    if args.dest is not None and Path(args.dest).exists() and not Path(args.dest).is_dir():
        raise UsageError(f"--dest {args.dest} is a file, not a folder; give a folder")
    paths = fetch_source(
        args.source,
        args.dest,
        read_config(args.config),
        mirrors=args.mirror,
        split=args.split,
        files=args.file,
        timeout=args.timeout,
        retries=args.retries,
    )
    for path in paths:
        print(path)
    return 0


# --------------------------------------------------------------------------- entry point


def _load_commands() -> None:
    """Register the subcommands that live in other modules (imported lazily: fast --help)."""
    from . import check_config  # noqa: F401 - registers check-config
    from .tracking.cli import register_sparseae_commands

    register_sparseae_commands()


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per registered subcommand."""
    _load_commands()
    parser = argparse.ArgumentParser(
        prog="sparseae",
        description="Sparse autoencoders as in the UFLDL / CS294A exercises.",
    )
    parser.add_argument("--version", action="version", version=f"sparseae {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in sorted(_COMMANDS.items()):
        sub = commands.add_parser(name, help=command.help, description=command.help)
        command.arguments(sub)
        sub.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sparseae``; returns the exit status (0 success, 1 error, 2 usage)."""
    from .datasets import DatasetError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args._run(args)
    except (DatasetError, UsageError) as exc:
        print(f"sparseae {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
