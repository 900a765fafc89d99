"""``vsr route``: route requests offline with a config and print what vsr would do.

One request: ``vsr route --config FILE --request REQ.json`` prints one JSON object (decision,
category, model, reasoning, blocked, headers, body...). A batch: ``--input IN --output OUT``
writes one such row per input row, in order, for JSONL, CSV or Parquet files (``vsr.table_io``).
A row with ``messages`` is a whole request body; any other row is a prompt in ``--text-column``
(asking for its ``model`` column, else ``--model``), and its columns are kept in the output.
Rows are streamed and routed ``--batch-size`` at a time, concurrently, so the inference pool
batches them as it batches live traffic; a progress bar and the throughput go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vsr.commands.classify import add_table_arguments

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
    source.add_argument(
        "--input", type=Path, help="requests or prompts: JSONL (one body per line), CSV, Parquet"
    )
    parser.add_argument("--output", type=Path, help="with --input: where to write (default stdout)")
    add_table_arguments(parser)
    parser.add_argument(
        "--model", default="auto", help="the model prompt rows ask for (default auto)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="rows routed concurrently (default 64)"
    )
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
        return _route_batch(router, args)


def _read_request(path: Path) -> Any:
    from vsr.errors import ConfigError

    try:
        raw = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
        return json.loads(raw.decode("utf-8-sig"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the request ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        why = f"{error.reason} at byte {error.start}"
        raise ConfigError(f"{path}: not UTF-8 text ({why})") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON: {error}") from None


def _summary(result: Any, with_signals: bool) -> dict[str, Any]:
    # One rendering for the CLI and POST /api/v1/route, so the two cannot drift apart.
    from vsr.api.route_view import route_summary

    return route_summary(result, with_signals)


def _route_batch(router: Any, args: argparse.Namespace) -> int:
    import asyncio

    from vsr.table_io import STDIO, TableError

    if args.batch_size < 1:
        print(f"vsr route: --batch-size must be at least 1, got {args.batch_size}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_route_rows(router, args, args.output or Path(STDIO)))
    except TableError as error:
        print(f"vsr route: {error}", file=sys.stderr)
        return 2


async def _route_rows(router: Any, args: argparse.Namespace, output: Path) -> int:
    """Route every row, ``--batch-size`` at a time on one event loop (so the pool batches them)."""
    import asyncio
    import time

    from tqdm import tqdm

    from vsr.table_io import TableWriter, check_distinct, count_rows, table_format

    source_format = table_format(args.input, args.input_format)
    target_format = table_format(output, args.output_format)
    check_distinct(args.input, output)
    total = count_rows(args.input, source_format)
    failures = 0
    started = time.perf_counter()
    with (
        TableWriter(output, target_format) as writer,
        tqdm(
            total=total,
            unit="req",
            file=sys.stderr,
            disable=total is None or total < PROGRESS_MIN_LINES or args.output is None,
        ) as bar,
    ):
        rows = _input_rows(args.input, source_format)
        while chunk := [row for _, row in zip(range(args.batch_size), rows, strict=False)]:
            outcomes = await asyncio.gather(*(_route_one(router, args, row) for row in chunk))
            records = []
            for where, record, error in outcomes:
                if error is None:
                    records.append(record)
                    continue
                # One bad row must not lose a long batch: note it and carry on.
                failures += 1
                if target_format == "jsonl":
                    records.append({where.split()[0]: int(where.split()[1]), "error": error})
                else:
                    print(f"vsr route: {args.input}: {where}: {error}", file=sys.stderr)
            writer.write(records)
            bar.update(len(chunk))
    seconds = time.perf_counter() - started
    count = writer.rows + (0 if target_format == "jsonl" else failures)
    rate = count / seconds if seconds > 0 else 0.0
    print(f"vsr route: {count} requests in {seconds:.2f} s ({rate:,.1f} req/s)", file=sys.stderr)
    if failures:
        print(f"vsr route: {failures} of {count} requests failed", file=sys.stderr)
    return 1 if failures else 0


Row = tuple[str, dict[str, Any] | None, str | None]  # (where, row, why it could not be read)


def _input_rows(path: Path, fmt: str) -> Any:
    """``(where, row, None)``, or ``(where, None, error)`` for a JSONL line that is no object."""
    from vsr.table_io import iter_rows, json_row, text_lines

    if fmt != "jsonl":
        for where, row in iter_rows(path, fmt):  # type: ignore[arg-type]
            yield where, row, None
        return
    for number, line in text_lines(path):
        if not line.strip():
            continue
        try:
            value = json_row(line)
        except json.JSONDecodeError as error:
            yield f"line {number}", None, f"not valid JSON: {error}"
            continue
        except ValueError as error:
            yield f"line {number}", None, str(error)
            continue
        yield f"line {number}", value, None


async def _route_one(
    router: Any, args: argparse.Namespace, item: Row
) -> tuple[str, dict[str, Any], str | None]:
    from vsr.errors import VsrError

    where, row, problem = item
    if row is None:
        return where, {}, problem
    if "messages" in row:
        body, kept = row, {}
    else:
        text = row.get(args.text_column)
        if not isinstance(text, str):
            return where, {}, f'"{args.text_column}" must be a string (or give "messages")'
        model = row.get("model") or args.model
        body = {"model": model, "messages": [{"role": "user", "content": text}]}
        kept = row
    try:
        result = await router.aroute(body)
    except VsrError as error:
        return where, {}, str(error)
    return where, {**kept, **_summary(result, args.signals)}, None
