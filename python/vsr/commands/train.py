"""``vsr train {domain,jailbreak,pii} --out DIR``: fit a task's head, seeded and reproducible.

Writes the head's weights, its entry in ``DIR/bundle.json``, a metrics file and the model card.
``--out python/vsr/default_models`` refreshes the shipped bundle. Needs scikit-learn (dev only).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vsr.training.tasks import TaskError, TrainOptions, get_task, task_names


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a default classifier head (domain, jailbreak, pii)",
        description="Fit a task's head on features from vsr's own encoder, holding out whole "
        "templates/topics for validation, and write weights, bundle entry and model card.",
    )
    parser.add_argument("task", choices=task_names())
    parser.add_argument("--out", required=True, type=Path, help="bundle directory to write into")
    parser.add_argument("--seed", type=int, default=0, help="same data + seed = same files")
    parser.add_argument("--data-dir", type=Path, help="training data (default: ./data)")
    parser.add_argument("--device", default="cpu", help="encoder device (default cpu)")
    parser.add_argument("--limit", type=int, help="at most this many examples per label")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".cache/vsr-features"),
        help="encoder features cache (default .cache/vsr-features; '' to disable)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    cache_dir = args.cache_dir if str(args.cache_dir) not in ("", ".") else None
    options = TrainOptions(
        out_dir=args.out,
        seed=args.seed,
        data_dir=args.data_dir,
        device=args.device,
        limit=args.limit,
        cache_dir=cache_dir,
    )
    try:
        result = get_task(args.task).train(options)
    except TaskError as error:
        print(f"vsr train: {error}", file=sys.stderr)
        return 2
    for path in result.files:
        print(f"wrote {path}")
    print(json.dumps(result.metrics, indent=2, sort_keys=True))
    return 0
