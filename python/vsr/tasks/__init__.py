"""Offline classification tasks: what ``vsr classify``, ``vsr eval`` and the Ray integration run.

A task (domain, jailbreak, pii) is one object that loads a predictor for the shipped (or a user's)
model and scores a labelled file. This is serving code: it needs only the package's own
dependencies. Fitting heads, generating data and writing model cards live in ``vsr.training``
(``pip install 'vsr[train]'``), which imports from here and is never imported by it.

The registry maps a task name to ``"module:attribute"`` and is resolved lazily: listing tasks or
running one task never imports the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

# task name -> "module:attribute" of an object implementing ``Task``.
TASKS: dict[str, str] = {
    "domain": "vsr.tasks.domain:TASK",
    "jailbreak": "vsr.tasks.jailbreak:TASK",
    "pii": "vsr.tasks.pii:TASK",
}


class TaskError(ValueError):
    """A task that is unknown, cannot be loaded, or was handed input it cannot use."""


@dataclass(frozen=True, slots=True)
class SpanPrediction:
    """An entity found in a text (token tasks); ``start``/``end`` index the Python string."""

    label: str
    start: int
    end: int
    score: float
    text: str

    def to_record(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 6),
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class Prediction:
    """One text's result: the decided label and its score; ``entities`` for token tasks only."""

    label: str
    score: float
    entities: tuple[SpanPrediction, ...] | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"label": self.label, "score": round(self.score, 6)}
        if self.entities is not None:
            record["entities"] = [entity.to_record() for entity in self.entities]
        return record


@runtime_checkable
class Predictor(Protocol):
    """A loaded model for one task. ``predict`` returns one Prediction per text, in order."""

    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...


@dataclass(frozen=True, slots=True)
class LabelledRecord:
    """One line of a labelled JSONL file; ``line`` is 1-based, for error messages."""

    line: int
    text: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class EvaluationReport:
    """What ``vsr eval`` prints (``text``) and what ``--json`` writes (``summary``)."""

    text: str
    summary: Mapping[str, Any]


class Task(Protocol):
    """What each task module exposes as ``TASK``."""

    name: str
    summary: str  # one line, shown by ``vsr classify --help``

    def load_predictor(self, model: str | None, device: str) -> Predictor:
        """The shipped default model when ``model`` is None, else a bundle/model dir or name."""
        ...

    def evaluate(
        self,
        predictor: Predictor,
        records: Sequence[LabelledRecord],
        batch_size: int,
        by: str | None = None,
    ) -> EvaluationReport:
        """Score ``records`` (each with the task's gold fields) and render the metrics; ``by``: a
        field of the records to break the figures down by (e.g. ``source``), where supported."""
        ...


def task_names() -> list[str]:
    return list(TASKS)


def get_task(name: str) -> Task:
    """Import and return the task registered as ``name``; TaskError names the known tasks."""
    target = TASKS.get(name)
    if target is None:
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise TaskError(f"task {name!r} is registered but {module_name} is missing") from None
        raise
    task: Task = getattr(module, attribute)
    return task
