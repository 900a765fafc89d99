"""``vsr validate-config FILE``: exit 0 when the config is valid, else 1 with every problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate-config",
        help="check a router config without loading models",
        description="Validate a router config YAML: schema, references between its parts, and "
        "allowed values. Models are not loaded (`vsr route` does that).",
    )
    parser.add_argument("file", type=Path, help="the config YAML")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vsr.config import load_config

    config = load_config(args.file)  # ConfigError -> the CLI prints it and exits 1
    print(
        f"{args.file}: valid ({len(config.models)} models, {len(config.signals)} signals, "
        f"{len(config.decisions)} decisions)",
        file=sys.stderr,
    )
    return 0
