"""Entity-level scores for PII detection: per-type precision, recall, F1 and a type confusion table.

A predicted entity is a true positive when a gold entity has the same type and, in ``strict`` mode,
exactly the same offsets (what seqeval-style NER scores count), or in ``overlap`` mode any shared
character (what a redaction policy cares about: the PII was caught). The headline F1 is micro-
averaged over ``REQUIRED_TYPES``; other types (LOCATION) are reported but not counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from vsr.pii.entities import REQUIRED_TYPES
from vsr.pii.words import LabelledSpan

MISSED = "(missed)"
SPURIOUS = "(none)"


@dataclass(frozen=True, slots=True)
class Span:
    """A gold entity: its canonical type and character offsets into the text."""

    label: str
    start: int
    end: int


@dataclass(frozen=True)
class TypeScore:
    label: str
    true_positives: int
    predicted: int
    gold: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


@dataclass
class PiiReport:
    mode: str
    per_type: dict[str, TypeScore]
    overall: TypeScore
    # (gold type or SPURIOUS, predicted type or MISSED) -> count, over overlapping spans
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    texts: int = 0

    def format(self) -> str:
        lines = [
            f"PII entities ({self.mode} match), {self.texts} texts",
            f"{'type':<16}{'precision':>10}{'recall':>10}{'f1':>8}{'gold':>7}{'pred':>7}",
        ]
        for score in [*self.per_type.values(), self.overall]:
            lines.append(
                f"{score.label:<16}{score.precision:>10.3f}{score.recall:>10.3f}{score.f1:>8.3f}"
                f"{score.gold:>7}{score.predicted:>7}"
            )
        return "\n".join(lines)

    def format_confusion(self) -> str:
        golds = sorted({gold for gold, _ in self.confusion})
        predictions = sorted({predicted for _, predicted in self.confusion})
        width = max(len(label) for label in [*golds, *predictions, "gold \\ predicted"]) + 1
        lines = [
            "gold \\ predicted".ljust(width) + "".join(p[:width].rjust(width) for p in predictions)
        ]
        for gold in golds:
            counts = "".join(str(self.confusion[(gold, p)]).rjust(width) for p in predictions)
            lines.append(gold.ljust(width) + counts)
        return "\n".join(lines)


def _matches(gold: LabelledSpan, predicted: LabelledSpan, mode: str) -> bool:
    if mode == "strict":
        return (gold.start, gold.end) == (predicted.start, predicted.end)
    return gold.start < predicted.end and predicted.start < gold.end


def score_entities(
    gold_per_text: Sequence[Sequence[LabelledSpan]],
    predicted_per_text: Sequence[Sequence[LabelledSpan]],
    *,
    mode: str = "strict",
    counted_types: Iterable[str] = REQUIRED_TYPES,
) -> PiiReport:
    """Scores over all texts; each gold entity is matched by at most one prediction."""
    if mode not in ("strict", "overlap"):
        raise ValueError(f"mode must be 'strict' or 'overlap', got {mode!r}")
    if len(gold_per_text) != len(predicted_per_text):
        raise ValueError(f"{len(gold_per_text)} gold texts but {len(predicted_per_text)} predicted")
    counted = set(counted_types)
    true_positives: Counter[str] = Counter()
    gold_counts: Counter[str] = Counter()
    predicted_counts: Counter[str] = Counter()
    confusion: Counter[tuple[str, str]] = Counter()
    for gold_spans, predicted_spans in zip(gold_per_text, predicted_per_text, strict=True):
        gold_counts.update(span.label for span in gold_spans)
        predicted_counts.update(span.label for span in predicted_spans)
        unmatched_gold = list(gold_spans)
        for predicted in predicted_spans:
            same_type = [
                g
                for g in unmatched_gold
                if g.label == predicted.label and _matches(g, predicted, mode)
            ]
            if same_type:
                unmatched_gold.remove(same_type[0])
                true_positives[predicted.label] += 1
                confusion[(predicted.label, predicted.label)] += 1
                continue
            overlapping = [g for g in unmatched_gold if _matches(g, predicted, "overlap")]
            if overlapping:
                unmatched_gold.remove(overlapping[0])
                confusion[(overlapping[0].label, predicted.label)] += 1
            else:
                confusion[(SPURIOUS, predicted.label)] += 1
        for gold in unmatched_gold:
            confusion[(gold.label, MISSED)] += 1
    labels = sorted(set(gold_counts) | set(predicted_counts))
    per_type = {
        label: TypeScore(label, true_positives[label], predicted_counts[label], gold_counts[label])
        for label in labels
    }
    overall = TypeScore(
        "ALL (required)",
        sum(true_positives[label] for label in counted),
        sum(predicted_counts[label] for label in counted),
        sum(gold_counts[label] for label in counted),
    )
    return PiiReport(mode, per_type, overall, confusion, texts=len(gold_per_text))
