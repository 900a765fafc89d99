"""Training and evaluating a sequence head (domain, jailbreak) on the shared encoder.

The pipeline: read the task's examples, split off whole groups (templates, topics, sources) for
calibration and test, encode with vsr's own core, fit the head, pick the decision threshold on the
calibration split (tasks with a safe label), measure on the test split and on external held-out
sets, then write the head, its ``bundle.json`` entry, a metrics file and the model card.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from vsr.ngrams import NgramModel, mix_probabilities
from vsr.training.bundle_manifest import merge_head
from vsr.training.dataset import Example, cap_per_label, split_by_group
from vsr.training.features import CachedFeatures, EncoderFeatures, FeatureExtractor, FeatureSpec
from vsr.training.heads import HeadFit, fit_linear_head, fit_mlp_head, save_safetensors
from vsr.training.metrics import classification_report, threshold_for_false_positive_rate
from vsr.training.model_card import CardText, render_card
from vsr.training.ngram_fit import NgramSpec, fit_ngram_model
from vsr.training.sequence_predictor import (
    SequencePredictor,
    decide,
    load_sequence_predictor,
    signal_windows,
)
from vsr.training.tasks import (
    EvaluationReport,
    LabelledRecord,
    Predictor,
    TaskError,
    TrainOptions,
    TrainResult,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SequenceTaskSpec:
    name: str
    summary: str
    labels: tuple[str, ...]
    safe_label: str | None = None  # set: decide by threshold on 1 - P(safe)
    max_false_positive_rate: float = 0.01  # on calibration data, for the shipped threshold
    min_threshold: float = 0.5  # never flag a text the head thinks is more likely safe
    test_fraction: float = 0.2
    calibration_fraction: float = 0.15
    head: str = "linear"  # linear | mlp
    regularization: float = 1.0
    features: FeatureSpec = field(default_factory=FeatureSpec)
    # Per-example training weight (None: every example counts once; classes are still balanced).
    example_weight: Callable[[Example], float] | None = None
    # Which safe calibration examples the false-positive rate is measured on (None: all of them),
    # so a bulk of easy safe examples cannot hide the hard ones.
    calibration_filter: Callable[[Example], bool] | None = None
    # An n-gram expert mixed into the head's probabilities (None: the head alone).
    ngrams: NgramSpec | None = None
    # Score windows of long texts and keep the riskiest, as the served signal does.
    windowed: bool = False


ExampleLoader = Callable[[Path], list[Example]]
ExternalLoader = Callable[[Path], dict[str, list[Example]]]


class SequenceHeadTask:
    """A ``Task`` for one sequence head; the task module supplies its data and card text."""

    def __init__(
        self,
        spec: SequenceTaskSpec,
        load_examples: ExampleLoader,
        card: CardText,
        load_external: ExternalLoader | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.summary = spec.summary
        self._load_examples = load_examples
        self._load_external = load_external
        self._card = card

    # ---- prediction -------------------------------------------------------------------------

    def load_predictor(
        self, model: str | None, device: str, threshold: float | None = None
    ) -> SequencePredictor:
        predictor = load_sequence_predictor(
            self.name, model, device, safe_label=self.spec.safe_label, threshold=threshold
        )
        if self.spec.windowed and predictor.safe_label is not None:
            predictor.with_windows(*signal_windows())
        return predictor

    def evaluate(
        self, predictor: Predictor, records: Sequence[LabelledRecord], batch_size: int
    ) -> EvaluationReport:
        from tqdm import tqdm

        # The model's own labels (a shipped head may have more classes than the spec it was
        # first written for, e.g. jailbreak's prompt_injection).
        labels = tuple(getattr(predictor, "labels", self.spec.labels))
        gold = []
        for record in records:
            label = record.fields.get("label")
            if label not in labels:
                raise TaskError(
                    f'line {record.line}: "label" must be one of {", ".join(labels)}, got {label!r}'
                )
            gold.append(str(label))
        predicted: list[str] = []
        with tqdm(total=len(records), unit="text", disable=len(records) < 256) as bar:
            for start in range(0, len(records), batch_size):
                batch = [record.text for record in records[start : start + batch_size]]
                predicted.extend(p.label for p in predictor.predict(batch))
                bar.update(len(batch))
        report = classification_report(gold, predicted, labels)
        summary: dict[str, Any] = {"task": self.name, **report.to_dict()}
        text = report.render()
        if self.spec.safe_label is not None:
            rates = safety_rates(gold, predicted, self.spec.safe_label)
            summary.update(rates)
            text += "\n\n" + render_safety_rates(rates)
        return EvaluationReport(text, summary)

    # ---- training ---------------------------------------------------------------------------

    def train(self, options: TrainOptions, features: FeatureExtractor | None = None) -> TrainResult:
        spec = self.spec
        data_dir = options.data_dir or Path("data")
        examples = cap_per_label(self._load_examples(data_dir), options.limit)
        if not examples:
            raise TaskError(f"no {self.name} examples found under {data_dir}")
        rest, test = split_by_group(examples, spec.test_fraction, salt=f"{self.name}-test")
        if spec.safe_label is not None:
            fraction = spec.calibration_fraction / (1.0 - spec.test_fraction)
            train, calibration = split_by_group(rest, fraction, salt=f"{self.name}-calibration")
        else:
            train, calibration = rest, []
        log.info(
            "training_split",
            task=self.name,
            train=len(train),
            calibration=len(calibration),
            test=len(test),
        )
        extractor = features or CachedFeatures(
            EncoderFeatures(spec.features, options.device), options.cache_dir
        )
        external = self._load_external(data_dir) if self._load_external else {}
        all_texts = [e.text for e in examples] + [e.text for s in external.values() for e in s]
        unique = sorted(set(all_texts))
        matrix = extractor.encode(unique)
        row = {text: index for index, text in enumerate(unique)}

        def features_of(subset: Sequence[Example]) -> np.ndarray:
            return matrix[[row[e.text] for e in subset]]

        weights = (
            None
            if spec.example_weight is None
            else np.array([spec.example_weight(e) for e in train], dtype=np.float64)
        )
        fit = self._fit(features_of(train), [e.label for e in train], options.seed, weights)
        expert = None
        if spec.ngrams is not None:
            expert = fit_ngram_model(
                [e.text for e in train],
                [e.label for e in train],
                spec.labels,
                spec.ngrams,
                sample_weight=weights,
                seed=options.seed,
            )

        def probabilities(subset: Sequence[Example]) -> np.ndarray:
            """What the served head returns: the head's softmax, mixed with the expert's."""
            head = fit.probabilities(features_of(subset))
            if expert is None or spec.ngrams is None:
                return head
            texts = [e.text for e in subset]
            return mix_probabilities(head, expert.log_probabilities(texts), spec.ngrams.mix)

        threshold = 0.5
        if spec.safe_label is not None:
            safe_column = spec.labels.index(spec.safe_label)
            keep = spec.calibration_filter or (lambda _: True)
            safe_calibration = [e for e in calibration if e.label == spec.safe_label and keep(e)]
            attack_scores = 1.0 - probabilities(safe_calibration)[:, safe_column]
            threshold = max(
                spec.min_threshold,
                threshold_for_false_positive_rate(attack_scores, spec.max_false_positive_rate),
            )
        metrics: dict[str, Any] = {
            "task": self.name,
            "seed": options.seed,
            "threshold": round(threshold, 6) if spec.safe_label else None,
            "examples": {"train": len(train), "calibration": len(calibration), "test": len(test)},
            "train_label_counts": _label_counts(train),
            "test": self._score(probabilities, test, threshold),
            "external": {
                name: self._score(probabilities, subset, threshold)
                for name, subset in external.items()
            },
        }
        files = self._write(options.out_dir, fit, expert, threshold, metrics, examples)
        return TrainResult(options.out_dir, files, metrics)

    def _fit(
        self, features: np.ndarray, labels: list[str], seed: int, weights: np.ndarray | None
    ) -> HeadFit:
        if self.spec.head == "mlp":
            return fit_mlp_head(
                features, labels, self.spec.labels, sample_weight=weights, seed=seed
            )
        return fit_linear_head(
            features,
            labels,
            self.spec.labels,
            regularization=self.spec.regularization,
            sample_weight=weights,
            seed=seed,
        )

    def _score(
        self,
        probabilities: Callable[[Sequence[Example]], np.ndarray],
        subset: Sequence[Example],
        threshold: float,
    ) -> dict[str, Any]:
        if not subset:
            return {"examples": 0}
        predictions = decide(
            probabilities(subset), self.spec.labels, self.spec.safe_label, threshold
        )
        gold = [e.label for e in subset]
        predicted = [p.label for p in predictions]
        result = classification_report(gold, predicted, self.spec.labels).to_dict()
        if self.spec.safe_label is not None:
            result.update(safety_rates(gold, predicted, self.spec.safe_label))
        return result

    def _write(
        self,
        out_dir: Path,
        fit: HeadFit,
        expert: NgramModel | None,
        threshold: float,
        metrics: Mapping[str, Any],
        examples: Sequence[Example],
    ) -> tuple[Path, ...]:
        spec = self.spec
        weights = out_dir / f"{self.name}.safetensors"
        save_safetensors(
            weights, fit.tensors, {"task": self.name, "labels": json.dumps(fit.labels)}
        )
        entry: dict[str, Any] = {
            "kind": "sequence",
            "pooling": spec.features.pooling,
            "normalize": spec.features.normalize,
            "weights": weights.name,
            "labels": list(fit.labels),
        }
        if fit.description.startswith("MLP"):
            entry["hidden_activation"] = "relu"
        if spec.safe_label is not None:
            entry["threshold"] = round(threshold, 6)
        written = [weights]
        if expert is not None and spec.ngrams is not None:
            expert_path = out_dir / f"{self.name}.ngrams.json"
            expert.save(expert_path)
            entry["ngrams"] = {"weights": expert_path.name, "mix": spec.ngrams.mix}
            written.append(expert_path)
        manifest = merge_head(out_dir, self.name, entry, spec.features)
        metrics_path = out_dir / f"{self.name}.metrics.json"
        metrics_path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", "utf-8")
        card_path = out_dir / f"MODEL_CARD_{self.name}.md"
        sources = sorted({e.source for e in examples})
        card_path.write_text(
            render_card(self._card, spec, fit.description, metrics, sources), "utf-8"
        )
        return (*written, manifest, metrics_path, card_path)


def _label_counts(examples: Sequence[Example]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for example in examples:
        counts[example.label] = counts.get(example.label, 0) + 1
    return dict(sorted(counts.items()))


def safety_rates(gold: Sequence[str], predicted: Sequence[str], safe_label: str) -> dict[str, Any]:
    """Attack recall (any unsafe label flagged as any unsafe label) and false-positive rate."""
    attacks = [p for g, p in zip(gold, predicted, strict=True) if g != safe_label]
    safe = [p for g, p in zip(gold, predicted, strict=True) if g == safe_label]
    recall = sum(p != safe_label for p in attacks) / len(attacks) if attacks else None
    false_positive = sum(p != safe_label for p in safe) / len(safe) if safe else None
    return {
        "attack_recall": None if recall is None else round(recall, 4),
        "false_positive_rate": None if false_positive is None else round(false_positive, 4),
        "attacks": len(attacks),
        "safe": len(safe),
    }


def render_safety_rates(rates: Mapping[str, Any]) -> str:
    def percent(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f}%"

    return (
        f"attack recall: {percent(rates['attack_recall'])} of {rates['attacks']}   "
        f"false positives: {percent(rates['false_positive_rate'])} of {rates['safe']}"
    )
