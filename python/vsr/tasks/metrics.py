"""Classification metrics and their text rendering (accuracy, per-class P/R/F1, confusion matrix).

Pure numpy: ``vsr eval`` is a serving-side command and needs nothing from the ``train`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClassMetrics:
    label: str
    precision: float
    recall: float
    f1: float
    support: int  # gold examples of this label


@dataclass(frozen=True)
class ClassificationReport:
    labels: tuple[str, ...]  # row/column order of ``confusion``
    confusion: np.ndarray  # confusion[gold, predicted] counts
    per_class: tuple[ClassMetrics, ...]

    @property
    def total(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        total = self.total
        return float(np.trace(self.confusion)) / total if total else 0.0

    @property
    def macro_f1(self) -> float:
        supported = [m.f1 for m in self.per_class if m.support > 0]
        return float(np.mean(supported)) if supported else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": self.total,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "per_class": {
                m.label: {
                    "precision": round(m.precision, 4),
                    "recall": round(m.recall, 4),
                    "f1": round(m.f1, 4),
                    "support": m.support,
                }
                for m in self.per_class
            },
            "labels": list(self.labels),
            "confusion": self.confusion.tolist(),
        }

    def render(self) -> str:
        """A plain-text report: summary line, per-class table, confusion matrix."""
        lines = [
            f"examples: {self.total}   accuracy: {self.accuracy:.4f}   "
            f"macro F1: {self.macro_f1:.4f}",
            "",
        ]
        width = max([len("label"), *(len(label) for label in self.labels)])
        lines.append(f"{'label':<{width}}  precision  recall     f1  support")
        for m in self.per_class:
            lines.append(
                f"{m.label:<{width}}  {m.precision:9.4f}  {m.recall:6.4f}  "
                f"{m.f1:5.4f}  {m.support:7d}"
            )
        lines += ["", "confusion matrix (rows: gold, columns: predicted)"]
        cell = max(5, *(len(str(v)) for v in self.confusion.flat)) if self.confusion.size else 5
        short = [label[:cell] for label in self.labels]
        lines.append(" " * width + "  " + " ".join(f"{s:>{cell}}" for s in short))
        for label, row in zip(self.labels, self.confusion, strict=True):
            lines.append(f"{label:<{width}}  " + " ".join(f"{int(v):>{cell}d}" for v in row))
        return "\n".join(lines)


def classification_report(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str] | None = None
) -> ClassificationReport:
    """Compare gold and predicted labels; ``labels`` fixes the order (unseen ones are appended)."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    order = list(labels or [])
    for label in [*gold, *predicted]:
        if label not in order:
            order.append(label)
    index = {label: i for i, label in enumerate(order)}
    confusion = np.zeros((len(order), len(order)), dtype=np.int64)
    for g, p in zip(gold, predicted, strict=True):
        confusion[index[g], index[p]] += 1
    per_class = []
    for i, label in enumerate(order):
        true_positive = int(confusion[i, i])
        predicted_count = int(confusion[:, i].sum())
        support = int(confusion[i, :].sum())
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(ClassMetrics(label, precision, recall, f1, support))
    return ClassificationReport(tuple(order), confusion, tuple(per_class))
