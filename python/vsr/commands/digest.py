"""``vsr digest FILE``: the SHA-256 a jailbreak signal's ``trusted_system_prompts`` lists."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "digest",
        help="print the digest of a system prompt, for trusted_system_prompts",
        description="Print the SHA-256 of a system prompt's text as vsr reads the message (UTF-8), "
        "for a jailbreak signal's trusted_system_prompts. The digest covers the file's text "
        "exactly, final newline included: a request's system message matches only if it is the "
        "same text, character for character.",
    )
    parser.add_argument("file", type=Path, help="the system prompt, as UTF-8 text ('-': stdin)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vsr.errors import ConfigError
    from vsr.signals.jailbreak import prompt_digest

    try:
        raw = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
        text = raw.decode("utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read {args.file}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{args.file} is not UTF-8 text: {error}") from error
    print(prompt_digest(text))
    if text.endswith("\n"):
        print(
            f"note: {args.file} ends with a newline, which the digest includes; a system message "
            "without it will not match",
            file=sys.stderr,
        )
    return 0
