"""The trainers behind ``vsr train {domain,jailbreak,pii}``: one per served task.

A trainer fits (or, for pii, builds and measures) a task's model and writes weights, its entry in
``bundle.json``, a metrics file and the model card. What the task *does* once trained (loading a
predictor, scoring a labelled file) is serving code in ``vsr.tasks``; this registry is tooling and
is resolved lazily, so ``vsr train --help`` imports no trainer (nor scikit-learn).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vsr.tasks import TaskError

# task name -> "module:attribute" of an object implementing ``Trainer``.
TRAINERS: dict[str, str] = {
    "domain": "vsr.training.domain:TRAINER",
    "jailbreak": "vsr.training.jailbreak:TRAINER",
    "pii": "vsr.training.pii:TRAINER",
}


@dataclass(frozen=True)
class TrainOptions:
    """What ``vsr train TASK`` passes to ``Trainer.train``.

    ``data_dir`` defaults to the repository's ``data/``; ``limit`` caps examples per class (for a
    quick run or a reproducibility test); ``cache_dir`` holds encoder features between runs.
    """

    out_dir: Path
    seed: int = 0
    data_dir: Path | None = None
    device: str = "cpu"
    limit: int | None = None
    cache_dir: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    """Files written by ``Trainer.train`` and the validation metrics it measured."""

    out_dir: Path
    files: tuple[Path, ...]
    metrics: Mapping[str, Any]


class Trainer(Protocol):
    """What each training module exposes as ``TRAINER``."""

    name: str
    summary: str

    def train(self, options: TrainOptions) -> TrainResult:
        """Fit the head on the task's data and write weights, bundle entry and model card."""
        ...


def trainer_names() -> list[str]:
    return list(TRAINERS)


def get_trainer(name: str) -> Trainer:
    """Import and return the trainer registered as ``name``; TaskError names the known ones."""
    target = TRAINERS.get(name)
    if target is None:
        raise TaskError(f"unknown task {name!r}; trainable tasks: {', '.join(TRAINERS)}")
    module_name, _, attribute = target.partition(":")
    trainer: Trainer = getattr(importlib.import_module(module_name), attribute)
    return trainer
