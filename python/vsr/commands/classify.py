"""``vsr classify --task {domain,jailbreak,pii} INPUT.jsonl --output OUT.jsonl``.

Reads lines ``{"text": ...}`` (other fields, such as an id, are copied to the output) and writes
one line per input, in order, with ``label`` and ``score`` (and ``entities`` for pii). The whole
input is checked before the model loads, so a bad line fails fast with its line number.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vsr.training.tasks import LabelledRecord, TaskError, get_task, task_names

# Inputs with at least this many lines get a progress bar.
PROGRESS_MIN_LINES = 256


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="classify the texts of a JSONL file with a task's model",
        description='Classify {"text": ...} lines with the shipped default model of a task (or '
        "--model), writing one JSON line per input with label and score.",
    )
    parser.add_argument("--task", required=True, choices=task_names())
    parser.add_argument("input", type=Path, help='JSONL, one {"text": ...} object per line')
    parser.add_argument("--output", required=True, type=Path, help="JSONL to write ('-': stdout)")
    add_model_arguments(parser)
    parser.set_defaults(handler=run)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``classify`` and ``eval``."""
    parser.add_argument(
        "--model", help="a bundle or model directory, or a built-in name (default: vsr-default)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N (default cpu)")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per model call")
    parser.add_argument(
        "--threshold",
        type=float,
        help="jailbreak: flag when 1 - P(benign) >= this (default: the bundle's shipped value)",
    )


def read_input(path: Path) -> list[LabelledRecord]:
    """Every line must be a JSON object with a string "text"; errors name the line number."""
    from vsr.training.dataset import parse_line

    try:
        handle = sys.stdin if str(path) == "-" else path.open(encoding="utf-8")
    except OSError as error:
        raise TaskError(f"{path}: cannot read ({error.strerror or error})") from None
    with handle:
        records = []
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                raise TaskError(f'{path}: line {number}: empty line (expected {{"text": ...}})')
            records.append(parse_line(raw, number, path))
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
    try:
        return _classify(args)
    except TaskError as error:
        print(f"vsr classify: {error}", file=sys.stderr)
        return 2


def _classify(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    records = read_input(args.input)
    predictor = load_predictor(args)
    output = sys.stdout if str(args.output) == "-" else args.output.open("w", encoding="utf-8")
    with (
        output,
        tqdm(total=len(records), unit="text", disable=len(records) < PROGRESS_MIN_LINES) as bar,
    ):
        for start in range(0, len(records), args.batch_size):
            batch = records[start : start + args.batch_size]
            predictions = predictor.predict([record.text for record in batch])
            for record, prediction in zip(batch, predictions, strict=True):
                line = {**record.fields, **prediction.to_record()}
                output.write(json.dumps(line, ensure_ascii=False) + "\n")
            bar.update(len(batch))
    if output is not sys.stdout:
        print(f"wrote {len(records)} lines to {args.output}", file=sys.stderr)
    return 0
