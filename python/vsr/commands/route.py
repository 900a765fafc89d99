"""``vsr route``: route requests offline with a config and print what vsr would do.

One request: ``vsr route --config FILE --request REQ.json`` prints one JSON object (decision,
category, model, reasoning, blocked, headers, body...). A batch: ``--input requests.jsonl
--output out.jsonl`` writes one such object per input line, with a progress bar on long inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# Inputs longer than this get a progress bar (shorter ones finish before it would be read).
PROGRESS_MIN_LINES = 50


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "route",
        help="route chat-completions requests offline and print the result as JSON",
        description="Route requests with a config, as the server would, and print the decision, "
        "model, block, headers and the edited body.",
    )
    parser.add_argument("--config", required=True, type=Path, help="the router config YAML")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--request", type=Path, help="one request body (JSON; '-' for stdin)")
    source.add_argument("--input", type=Path, help="requests, one JSON object per line")
    parser.add_argument("--output", type=Path, help="with --input: where to write (default stdout)")
    parser.add_argument("--device", help="override the config's device (cpu, cuda:0)")
    parser.add_argument(
        "--signals", action="store_true", help="include every evaluated signal in the output"
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="logs go to stderr (default warning); debug traces every routed request",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vsr.observability.logging import configure_logging
    from vsr.router import Router

    # stdout carries the JSON results only.
    configure_logging("console", args.log_level)

    if args.output is not None and args.input is None:
        print("vsr route: --output needs --input", file=sys.stderr)
        return 2
    with Router.from_file(args.config, device=args.device) as router:
        if args.request is not None:
            body = _read_request(args.request)
            print(json.dumps(_summary(router.route(body), args.signals), ensure_ascii=False))
            return 0
        return _route_batch(router, args.input, args.output, args.signals)


def _read_request(path: Path) -> Any:
    from vsr.errors import ConfigError

    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the request ({error.strerror or error})") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON: {error}") from None


def _summary(result: Any, with_signals: bool) -> dict[str, Any]:
    # One rendering for the CLI and POST /api/v1/route, so the two cannot drift apart.
    from vsr.api.route_view import route_summary

    return route_summary(result, with_signals)


def _lines(handle: IO[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(handle, start=1):
        if line.strip():
            yield number, line


def _route_batch(router: Any, input_path: Path, output_path: Path | None, signals: bool) -> int:
    from tqdm import tqdm

    from vsr.errors import VsrError

    with input_path.open(encoding="utf-8") as handle:
        total = sum(1 for _ in _lines(handle))
    failures = 0
    out = output_path.open("w", encoding="utf-8") if output_path else sys.stdout
    try:
        with input_path.open(encoding="utf-8") as handle:
            progress = tqdm(
                _lines(handle),
                total=total,
                unit="req",
                disable=total < PROGRESS_MIN_LINES or output_path is None,
                file=sys.stderr,
            )
            for number, line in progress:
                try:
                    record = _summary(router.route(json.loads(line)), signals)
                except (json.JSONDecodeError, VsrError) as error:
                    # One bad line must not lose a long batch: record it and carry on.
                    failures += 1
                    record = {"line": number, "error": str(error)}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if output_path:
            out.close()
    if failures:
        print(f"vsr route: {failures} of {total} requests failed", file=sys.stderr)
    return 1 if failures else 0
