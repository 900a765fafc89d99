"""``vsr eval --task {domain,jailbreak,pii} LABELLED.jsonl``: accuracy, per-class P/R/F1, confusion.

Sequence tasks read lines ``{"text": ..., "label": ...}``; the pii task reads gold entity spans
(see its module). ``--json FILE`` also writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vsr.commands.classify import add_model_arguments, load_predictor, read_input
from vsr.tasks import TaskError, get_task, task_names


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score a task's model on a labelled JSONL file",
        description="Print accuracy, per-class precision/recall/F1 and the confusion matrix of a "
        "task's model (default: the shipped one) on labelled examples.",
    )
    parser.add_argument("--task", required=True, choices=task_names())
    parser.add_argument("labelled", type=Path, help="JSONL with text and the gold label")
    parser.add_argument("--json", type=Path, help="also write the metrics to this file")
    parser.add_argument(
        "--by",
        metavar="FIELD",
        help="also break the figures down by this field of the records (e.g. source): "
        "domain and jailbreak",
    )
    add_model_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        if args.json is not None:  # find out now, not after scoring every record
            _check_writable(args.json, args.labelled)
        records = read_input(args.labelled)
        if not records:  # figures of nothing would read as 0% accuracy
            raise TaskError(f"{args.labelled}: no labelled records")
        task = get_task(args.task)
        predictor = load_predictor(args)
        report = task.evaluate(predictor, records, args.batch_size, by=args.by)
    except TaskError as error:
        print(f"vsr eval: {error}", file=sys.stderr)
        return 2
    print(report.text)
    if args.json is not None:
        args.json.write_text(json.dumps(report.summary, indent=2) + "\n", encoding="utf-8")
    return 0


def _check_writable(path: Path, labelled: Path) -> None:
    from vsr.table_io import TableError, check_distinct

    try:
        check_distinct(labelled, path)
    except TableError as error:
        raise TaskError(str(error)) from None
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as error:
        raise TaskError(f"{path}: cannot write ({error.strerror or error})") from None
