"""The PII task: token-level detection of personal data, reported as canonical entity types.

``vsr classify --task pii`` labels a text ``pii`` when the shipped detector (Rampart, converted at
setup by ``vsr.setup_tools.rampart``, plus pattern recognisers) finds an entity, with the entities;
``vsr eval --task pii`` scores gold spans strictly and by overlap. Building the bundle and its
model card from the frozen splits under ``data/pii/`` is ``vsr train pii`` (``vsr.training.pii``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vsr.pii.detector import PiiDetector
from vsr.pii.entities import REQUIRED_TYPES, ModelSpan, PiiEntity
from vsr.tasks import (
    EvaluationReport,
    LabelledRecord,
    Prediction,
    Predictor,
    SpanPrediction,
    TaskError,
)
from vsr.tasks.pii_eval import PiiReport, Span, score_entities

PII_LABEL = "pii"
CLEAN_LABEL = "none"


class PiiPredictor:
    """``vsr classify --task pii``: label ``pii`` when any entity is found, with the entities.

    ``score`` is the highest entity score (0.0 when none was found).
    """

    def __init__(self, detector: PiiDetector) -> None:
        self.detector = detector

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return [_prediction(entities) for entities in self.detector.detect(texts)]


def _prediction(entities: Sequence[PiiEntity]) -> Prediction:
    spans = tuple(SpanPrediction(e.label, e.start, e.end, e.score, e.text) for e in entities)
    if not spans:
        return Prediction(CLEAN_LABEL, 0.0, spans)
    return Prediction(PII_LABEL, max(span.score for span in spans), spans)


def _gold_spans(record: LabelledRecord) -> list[Span]:
    raw = record.fields.get("entities")
    if not isinstance(raw, list):
        raise TaskError(f'line {record.line}: "entities" must be a list of {{label, start, end}}')
    spans = []
    for index, entity in enumerate(raw):
        try:
            span = Span(str(entity["label"]), int(entity["start"]), int(entity["end"]))
        except (KeyError, TypeError, ValueError):
            raise TaskError(
                f"line {record.line}: entities[{index}] needs label, start and end"
            ) from None
        if not 0 <= span.start < span.end <= len(record.text):
            raise TaskError(
                f"line {record.line}: entities[{index}] span {span.start}..{span.end} is outside "
                f"the text ({len(record.text)} characters)"
            )
        spans.append(span)
    return spans


def _report_summary(report: PiiReport) -> dict[str, Any]:
    return {
        "precision": report.overall.precision,
        "recall": report.overall.recall,
        "f1": report.overall.f1,
        "per_type": {
            label: {
                "precision": s.precision,
                "recall": s.recall,
                "f1": s.f1,
                "gold": s.gold,
                "predicted": s.predicted,
            }
            for label, s in report.per_type.items()
        },
    }


def score_predictions(
    gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[PiiEntity | SpanPrediction]]
) -> tuple[str, dict[str, Any]]:
    """The text ``vsr eval`` prints and the summary it writes, strict and overlap matching."""
    strict = score_entities(gold, predicted, mode="strict")
    overlap = score_entities(gold, predicted, mode="overlap")
    text = "\n\n".join(
        [
            strict.format(),
            overlap.format(),
            "Type confusion (overlapping spans)",
            overlap.format_confusion(),
        ]
    )
    summary = {
        "task": "pii",
        "texts": len(gold),
        "counted_types": list(REQUIRED_TYPES),
        "strict": _report_summary(strict),
        "overlap": _report_summary(overlap),
    }
    return text, summary


def load_detector(model: str = "vsr-pii", device: str = "cpu", head: str = "pii") -> PiiDetector:
    """A bundle's token head as a ``PiiDetector`` (the shipped one: ``vsr-pii``, head ``pii``),
    or a Hugging Face ``*ForTokenClassification`` directory's."""
    from vsr.model_files import BUNDLE_FILE, resolve_model_dir
    from vsr.models import EncoderBundle, TokenClassifier

    model_dir = resolve_model_dir(model)
    if not (model_dir / BUNDLE_FILE).is_file():
        return PiiDetector(TokenClassifier.load(model_dir, device).predict)
    bundle = EncoderBundle.load(model_dir, device)
    if head not in bundle.heads or bundle.heads[head].kind != "token":
        raise TaskError(f"{bundle.path}: no token head {head!r}; heads: {sorted(bundle.heads)}")

    def run(texts: list[str]) -> Sequence[Sequence[ModelSpan]]:
        spans: Sequence[Sequence[ModelSpan]] = bundle.run(texts, [head])[head]  # type: ignore[assignment]
        return spans

    return PiiDetector(run)


class PiiTask:
    name = "pii"
    summary = "PII entities (Rampart token model + pattern recognisers), canonical types"

    def load_predictor(self, model: str | None, device: str) -> PiiPredictor:
        return PiiPredictor(load_detector(model or "vsr-pii", device))

    def evaluate(
        self,
        predictor: Predictor,
        records: Sequence[LabelledRecord],
        batch_size: int,
        by: str | None = None,
    ) -> EvaluationReport:
        from tqdm import tqdm

        if by is not None:
            raise TaskError("--by breaks down the sequence tasks (domain, jailbreak), not pii")

        gold = [_gold_spans(record) for record in records]
        predicted: list[tuple[SpanPrediction, ...]] = []
        with tqdm(total=len(records), unit="text", disable=len(records) < 256) as bar:
            for start in range(0, len(records), batch_size):
                batch = [record.text for record in records[start : start + batch_size]]
                predicted.extend(p.entities or () for p in predictor.predict(batch))
                bar.update(len(batch))
        text, summary = score_predictions(gold, predicted)
        return EvaluationReport(text, summary)


TASK = PiiTask()
