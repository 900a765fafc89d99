"""The command line of ``vsr train tasks`` (``vsr.training.finetune``): training settings and the
optional groups of training files, each one flag (``--with-x`` / ``--no-with-x``).

``DATA_FLAGS`` is the one list of those groups: the parser offers them and the run's
``tasks.metrics.json`` records every one of them (``data_flags``), so a report says exactly which
data its model saw.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from vsr.training.tasks_recipe import (
    DOMAIN_SURVEY2_FILES,
    FIFTH_JAILBREAK_FILES,
    FOURTH_JAILBREAK_FILES,
    MORE_DOMAIN_FILES,
    MORE_JAILBREAK_FILES,
    MORE_SHAREGPT_FILES,
    PLANTED_FILES,
    REQUESTS_MORE_FILES,
    SYSTEM_PROMPT_FILES,
    THIRD_JAILBREAK_FILES,
)


class DataFlag(NamedTuple):
    flag: str
    files: Sequence[str]
    default: bool
    note: str

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


DATA_FLAGS = (
    DataFlag(
        "--with-packages",
        ("jailbreak/packages.jsonl.gz",),
        True,
        "default: yes, since model A; --no-with-packages: the data of the model before it",
    ),
    DataFlag(
        "--with-more-packages",
        MORE_JAILBREAK_FILES,
        True,
        "the second package survey; default: yes, since M2; --no-with-more-packages: A's data",
    ),
    DataFlag(
        "--more-domain",
        MORE_DOMAIN_FILES,
        False,
        "with --with-more-packages: the survey's subject questions, candidate M1, not shipped",
    ),
    DataFlag(
        "--with-system-prompts",
        SYSTEM_PROMPT_FILES,
        True,
        "real system prompts of agent and LLM-app packages; default: yes, the shipped M3",
    ),
    DataFlag(
        "--with-third-survey",
        THIRD_JAILBREAK_FILES,
        True,
        "the third package survey's attacks; default: yes, since Q6",
    ),
    DataFlag(
        "--with-more-sharegpt",
        MORE_SHAREGPT_FILES,
        True,
        "the rest of ShareGPT's real user turns; default: yes, since Q6",
    ),
    DataFlag(
        "--with-fourth-survey",
        FOURTH_JAILBREAK_FILES,
        True,
        "the fourth package survey's attacks; default: yes, since Q6",
    ),
    DataFlag(
        "--with-planted",
        PLANTED_FILES,
        False,
        "the surveys' real payloads planted in real documents, with controls; candidate P",
    ),
    DataFlag(
        "--with-requests-more",
        REQUESTS_MORE_FILES,
        False,
        "real user requests of other packages than ShareGPT; candidates PR and MR",
    ),
    DataFlag(
        "--with-fifth-survey",
        FIFTH_JAILBREAK_FILES,
        False,
        "the fifth package survey's attacks; tenth round's candidate",
    ),
    DataFlag(
        "--with-domain-survey2",
        DOMAIN_SURVEY2_FILES,
        False,
        "the second domain survey's subject questions (domain task only), candidate M8",
    ),
)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vsr train tasks")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument(
        "--encoder-dir", type=Path, required=True, help="MiniLM files (config, tokenizer, weights)"
    )
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--branch-lr", type=float, default=1e-4)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument(
        "--calibration-rate",
        type=float,
        default=0.02,
        help="threshold: flag at most this share of the calibration split's non-subject benign",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", action="store_true", help="train every candidate first")
    parser.add_argument(
        "--candidate", default="top 3 layers, shared", help="one or more, separated by semicolons"
    )
    parser.add_argument("--limit", type=int, help="examples per task (a quick check)")
    for data in DATA_FLAGS:
        listed = ", ".join(f"data/{f}" for f in data.files)
        parser.add_argument(
            data.flag,
            action=argparse.BooleanOptionalAction,
            default=data.default,
            help=f"also train on {listed} ({data.note})",
        )
    parser.add_argument(
        "--soup",
        type=Path,
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="no training: the mean of these runs' weights (one recipe, several seeds; "
        "vsr.training.tasks_soup), reported and exported as a trained model would be",
    )
    parser.add_argument("--window", type=int, default=1200)
    parser.add_argument("--overlap", type=int, default=200)
    parser.add_argument("--max-windows", type=int, default=16)
    return parser


def data_flags(args: argparse.Namespace) -> dict[str, Any]:
    """Every data flag as the run used it, for its report. ``more_domain`` counts only with
    ``--with-more-packages``, as the data loader reads it."""
    flags = {data.dest: getattr(args, data.dest) for data in DATA_FLAGS}
    flags["more_domain"] = args.with_more_packages and args.more_domain
    return flags
