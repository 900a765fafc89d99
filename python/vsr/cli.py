"""The ``vsr`` command line: parsing and dispatch only.

Each subcommand lives in ``vsr/commands/<name>.py`` with ``register(subparsers)`` adding its parser
(and setting ``handler``); the logic stays in the library, so the CLI and the Python API agree.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# One module per subcommand; add a name here and a module in vsr/commands/.
COMMANDS: tuple[str, ...] = (
    "serve",
    "sim",
    "dev",
    "route",
    "validate_config",
    "train",
    "classify",
    "eval",
    "digest",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vsr", description="vsr: a semantic router for LLM traffic"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"vsr.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # A command may hand options it does not define to the tool it runs (``vsr train tasks`` to
    # the trainer's own parser, which checks them); every other command refuses them as usual.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passes_extra", lambda _: False)(args):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    from vsr.errors import VsrError
    from vsr.observability.logging import configure_logging

    # Warnings and errors on stderr; commands with a --log-level flag configure their own.
    configure_logging("console", "warning")

    try:
        return int(args.handler(args) or 0)
    except VsrError as error:
        print(f"vsr {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
