"""``sparseae check-config``: check config files as the workflow will, before running it.

Reads ``config/config.yaml`` (the workflow's ``configfile:``) and merges each FILE over it the
way Snakemake's ``--configfile`` does (nested mappings merged, other values replaced), then
applies every check the workflow applies while it is read: the schema and cross-field rules
(:func:`sparseae.config.resolve_config`), environment variables, the tracking store and the
input folders (:func:`sparseae.checks.workflow_input_problems`). ``make run CONFIG=FILE`` calls
it first, so a missing or broken FILE gets one message instead of Snakemake's traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli import DEFAULT_CONFIG, UsageError, read_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``check-config``: the files, and the workflow's own config."""
    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="config files merged over config/config.yaml, in order (as --configfile)",
    )
    parser.add_argument(
        "--base",
        metavar="FILE",
        default=str(DEFAULT_CONFIG),
        help=f"the workflow's own config (default {DEFAULT_CONFIG})",
    )


def load_merged(base: str | Path, files: list[str]) -> dict:
    """``base`` with each of ``files`` merged over it; a missing or broken file is refused."""
    from .sweep import _deep_merge

    for name in [base, *files]:
        path = Path(name)
        if not path.exists():
            raise UsageError(
                f"config file {path} does not exist (working folder {Path.cwd()}); give the "
                f"path of a YAML file, e.g. config/stl-t10k.yaml"
            )
        if not path.is_file():
            raise UsageError(f"config file {path} is a folder, not a file")
    merged = read_config(base)
    for name in files:
        merged = _deep_merge(merged, read_config(name))
    return merged


def check_config(args: argparse.Namespace) -> int:
    """Run ``sparseae check-config``: 0 and one line when every check passes."""
    from .checks import workflow_input_problems
    from .config import ConfigError, resolve_config

    config = load_merged(args.base, args.files)
    try:
        resolved = resolve_config(config)
        problems = workflow_input_problems(resolved)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    if problems:
        raise UsageError("invalid configuration:\n  - " + "\n  - ".join(problems))
    print(f"config OK: runs {', '.join(resolved['run'])}", file=sys.stdout)
    return 0
