"""Training a sequence head (domain, jailbreak) on frozen features of the shared encoder.

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
from vsr.tasks import TaskError
from vsr.tasks.metrics import classification_report
from vsr.tasks.sequence import SequenceTask, decide, safety_rates
from vsr.training.bundle_manifest import merge_head
from vsr.training.dataset import Example, cap_per_label, split_by_group
from vsr.training.features import CachedFeatures, EncoderFeatures, FeatureExtractor, FeatureSpec
from vsr.training.heads import HeadFit, fit_linear_head, fit_mlp_head, save_safetensors
from vsr.training.metrics import threshold_for_false_positive_rate
from vsr.training.model_card import CardText, render_card
from vsr.training.ngram_fit import NgramSpec, fit_ngram_model
from vsr.training.tasks import TrainOptions, TrainResult

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SequenceTaskSpec:
    """How a served task's head (``vsr.tasks.sequence.SequenceTask``) is trained."""

    task: SequenceTask  # name, labels and safe label: what is served
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

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def summary(self) -> str:
        return self.task.summary

    @property
    def labels(self) -> tuple[str, ...]:
        return self.task.labels

    @property
    def safe_label(self) -> str | None:
        return self.task.safe_label  # set: decide by threshold on 1 - P(safe)


ExampleLoader = Callable[[Path], list[Example]]
ExternalLoader = Callable[[Path], dict[str, list[Example]]]


class SequenceHeadTrainer:
    """A ``Trainer`` for one sequence head; the training module supplies its data and card text."""

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
