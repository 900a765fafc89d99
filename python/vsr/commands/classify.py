"""``vsr classify --task {domain,jailbreak,pii} INPUT --output OUT``.

Reads rows with a text column (``text`` unless ``--text-column``; other columns, such as an id,
are copied to the output) from JSONL, CSV or Parquet and writes one row per input, in order, with
``label`` and ``score`` (and ``entities`` for pii), as JSONL, CSV or Parquet (``vsr.table_io``).
Files are streamed a batch at a time, so memory stays constant however long the input; a first
streaming pass checks every row and counts them before the model loads, so a bad row fails fast
with its line or row number and the progress bar knows its total. Throughput goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vsr.tasks import LabelledRecord, TaskError, get_task, task_names

# Inputs with at least this many lines get a progress bar.
PROGRESS_MIN_LINES = 256


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="classify the texts of a JSONL, CSV or Parquet file with a task's model",
        description="Classify the text column of a JSONL, CSV or Parquet file with the shipped "
        "default model of a task (or --model), writing one row per input with label and score.",
    )
    parser.add_argument("--task", required=True, choices=task_names())
    parser.add_argument(
        "input", type=Path, help="JSONL, CSV or Parquet with a text column ('-': JSONL on stdin)"
    )
    parser.add_argument(
        "--output", required=True, type=Path, help="JSONL, CSV or Parquet to write ('-': stdout)"
    )
    add_table_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(handler=run)


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``classify`` and ``route --input``."""
    from vsr.table_io import FORMATS

    parser.add_argument(
        "--text-column", default="text", help="the column holding the text (default text)"
    )
    parser.add_argument(
        "--input-format", choices=FORMATS, help="default: from the input's file name"
    )
    parser.add_argument(
        "--output-format", choices=FORMATS, help="default: from the output's file name"
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``classify`` and ``eval``."""
    parser.add_argument(
        "--model", help="a bundle or model directory, or a built-in name (default: vsr-default)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N (default cpu)")
    parser.add_argument(
        "--batch-size", type=int, default=32, help="texts per model call (default 32)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        help="jailbreak: flag when 1 - P(benign) >= this (default: the bundle's shipped value)",
    )


def read_input(path: Path) -> list[LabelledRecord]:
    """Every line must be a JSON object with a string "text"; errors name the line number."""
    from vsr.table_io import TableError, text_lines
    from vsr.tasks.records import parse_line

    records = []
    try:
        for number, raw in text_lines(path):
            if not raw.strip():
                raise TaskError(f'{path}: line {number}: empty line (expected {{"text": ...}})')
            records.append(parse_line(raw, number, path))
    except TableError as error:  # cannot read, or not UTF-8
        raise TaskError(str(error)) from None
    return records


def load_predictor(args: argparse.Namespace) -> Any:
    if args.batch_size < 1:
        raise TaskError(f"--batch-size must be at least 1, got {args.batch_size}")
    task = get_task(args.task)
    if args.threshold is not None:
        if args.task != "jailbreak":
            raise TaskError("--threshold applies to --task jailbreak only")
        return task.load_predictor(args.model, args.device, threshold=args.threshold)  # type: ignore[call-arg]
    return task.load_predictor(args.model, args.device)


def run(args: argparse.Namespace) -> int:
    from vsr.table_io import TableError

    try:
        return _classify(args)
    except (TaskError, TableError) as error:
        print(f"vsr classify: {error}", file=sys.stderr)
        return 2


def _classify(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from vsr.table_io import (
        TableError,
        TableWriter,
        check_distinct,
        count_rows,
        iter_rows,
        table_format,
        text_of,
    )

    source_format = table_format(args.input, args.input_format)
    target_format = table_format(args.output, args.output_format)
    check_distinct(args.input, args.output)
    column = args.text_column
    total = None
    if str(args.input) != "-":
        # Check every row (and count them) before loading the model; constant memory.
        columns: set[str] | None = None
        for where, row in iter_rows(args.input, source_format):
            text_of(row, column, where, args.input)
            if target_format == "jsonl":
                continue
            columns = set(row) if columns is None else columns
            if row.keys() != columns:  # one CSV header / Parquet schema for every row
                raise TableError(
                    f"{args.input}: {where} has columns {sorted(row)}, not the first row's "
                    f"{sorted(columns)}; {target_format} output needs the same columns in "
                    "every row (JSONL does not)"
                )
        total = count_rows(args.input, source_format)
    predictor = load_predictor(args)
    started = time.perf_counter()
    with (
        TableWriter(args.output, target_format) as writer,
        tqdm(
            total=total,
            unit="text",
            file=sys.stderr,
            disable=total is not None and total < PROGRESS_MIN_LINES,
        ) as bar,
    ):
        batch: list[tuple[dict[str, Any], str]] = []
        rows = iter_rows(args.input, source_format, batch_size=args.batch_size)
        for where, row in rows:
            batch.append((row, text_of(row, column, where, args.input)))
            if len(batch) == args.batch_size:
                _write_predictions(predictor, batch, writer)
                bar.update(len(batch))
                batch = []
        if batch:
            _write_predictions(predictor, batch, writer)
            bar.update(len(batch))
    _report(writer.rows, time.perf_counter() - started, args.output)
    return 0


def _write_predictions(
    predictor: Any, batch: list[tuple[dict[str, Any], str]], writer: Any
) -> None:
    predictions = predictor.predict([text for _, text in batch])
    writer.write(
        [
            {**row, **prediction.to_record()}
            for (row, _), prediction in zip(batch, predictions, strict=True)
        ]
    )


def _report(count: int, seconds: float, output: Path) -> None:
    rate = count / seconds if seconds > 0 else 0.0
    where = "" if str(output) == "-" else f" -> {output}"
    print(
        f"vsr classify: {count} texts in {seconds:.2f} s ({rate:,.1f} texts/s){where}",
        file=sys.stderr,
    )
