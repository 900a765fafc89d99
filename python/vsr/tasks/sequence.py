"""Sequence tasks (domain, jailbreak): loading a head, deciding labels, scoring labelled files.

Works on a bundle directory (``bundle.json``: the head is read by name, its optional ``threshold``
with it) or on a Hugging Face ``*ForSequenceClassification`` directory. A task with a *safe* label
(jailbreak: ``benign``) flags a text when 1 - P(safe) reaches the threshold, so the threshold is
the attack probability at which we block, whatever the number of attack classes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vsr.tasks import EvaluationReport, LabelledRecord, Prediction, Predictor, TaskError
from vsr.tasks.metrics import classification_report

DEFAULT_MODEL = "vsr-default"


class SequencePredictor:
    """Probabilities from ``run`` (texts -> (n, labels)) and the decision rule on top."""

    def __init__(
        self,
        run: Callable[[list[str]], np.ndarray],
        labels: Sequence[str],
        *,
        safe_label: str | None = None,
        threshold: float = 0.5,
    ) -> None:
        if safe_label is not None and safe_label not in labels:
            raise TaskError(
                f"safe label {safe_label!r} is not among the head's labels {list(labels)}"
            )
        if not 0.0 <= threshold <= 1.0:
            raise TaskError(f"threshold must be within [0, 1], got {threshold}")
        self._run = run
        self.labels = tuple(labels)
        self.safe_label = safe_label
        self.threshold = threshold
        self.windows: tuple[int, int, int] | None = None

    def with_windows(self, chars: int, overlap: int, max_windows: int) -> SequencePredictor:
        """Score overlapping character windows of each text and keep the riskiest one.

        The served jailbreak signal does this (``vsr.signals.jailbreak``): a long prompt is one
        mean-pooled vector per window, so an attack after a long preamble is not diluted, and a
        long benign text is not judged by its length. Needs a safe label (the risk is 1 - P(safe)).
        """
        if self.safe_label is None:
            raise TaskError("windows need a safe label to rank windows by risk")
        self.windows = (chars, overlap, max_windows)
        return self

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        if self.windows is None or self.safe_label is None:
            return self._run(list(texts))
        from vsr.pii.detector import plan_windows

        chars, overlap, max_windows = self.windows
        pieces: list[str] = []
        owners: list[int] = []
        for index, text in enumerate(texts):
            for start, end in plan_windows(text, chars, overlap, max_windows):
                pieces.append(text[start:end])
                owners.append(index)
        rows = self._run(pieces)
        safe = self.labels.index(self.safe_label)
        result = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        risk = np.full(len(texts), -1.0)
        for row, owner in zip(rows, owners, strict=True):
            if 1.0 - float(row[safe]) > risk[owner]:
                risk[owner] = 1.0 - float(row[safe])
                result[owner] = row
        return result

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return decide(self.probabilities(texts), self.labels, self.safe_label, self.threshold)


def signal_windows() -> tuple[int, int, int]:
    """(characters, overlap, most windows) of the served jailbreak signal, so that ``vsr classify``
    and ``vsr eval`` judge a long text exactly as the router does."""
    from vsr.signals import jailbreak

    return jailbreak.WINDOW_CHARS, jailbreak.WINDOW_OVERLAP, jailbreak.MAX_WINDOWS


def decide(
    probabilities: np.ndarray, labels: Sequence[str], safe_label: str | None, threshold: float
) -> list[Prediction]:
    """Argmax, or for a task with a safe label: flag when 1 - P(safe) >= threshold.

    A flagged text takes the most probable unsafe label, scored by the total unsafe probability;
    an unflagged one takes the safe label, scored by P(safe).
    """
    if safe_label is None:
        best = probabilities.argmax(axis=1)
        return [
            Prediction(labels[int(index)], float(row[index]))
            for row, index in zip(probabilities, best, strict=True)
        ]
    safe_index = labels.index(safe_label)
    unsafe = [i for i in range(len(labels)) if i != safe_index]
    predictions = []
    for row in probabilities:
        attack = 1.0 - float(row[safe_index])
        if attack >= threshold:
            top = max(unsafe, key=lambda i: float(row[i]))
            predictions.append(Prediction(labels[top], attack))
        else:
            predictions.append(Prediction(safe_label, float(row[safe_index])))
    return predictions


def load_sequence_predictor(
    head: str,
    model: str | None,
    device: str,
    *,
    safe_label: str | None = None,
    threshold: float | None = None,
) -> SequencePredictor:
    """The ``head`` of a bundle (default: the shipped ``vsr-default``) or a classifier directory.

    ``threshold`` overrides the bundle head's ``threshold`` (itself defaulting to 0.5).
    """
    from vsr.model_files import resolve_model_dir
    from vsr.models import EncoderBundle, SequenceClassifier

    model_dir = resolve_model_dir(model or DEFAULT_MODEL)
    manifest_path = model_dir / "bundle.json"
    if manifest_path.is_file():
        bundle = EncoderBundle.load(model_dir, device)
        info = bundle.heads.get(head)
        if info is None or info.kind != "sequence":
            raise TaskError(f"{manifest_path}: no sequence head named {head!r}")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        shipped = manifest["heads"][head].get("threshold", 0.5)

        def run_head(texts: list[str]) -> np.ndarray:
            output = bundle.run(texts, [head])[head]
            assert isinstance(output, np.ndarray)  # a sequence head returns probabilities
            return output

        chosen = float(shipped) if threshold is None else threshold
        return SequencePredictor(run_head, info.labels, safe_label=safe_label, threshold=chosen)
    classifier = SequenceClassifier.load(model_dir, device)
    if threshold is not None and safe_label is not None and safe_label not in classifier.labels:
        # Without the safe label the decision is argmax, where a threshold would be ignored.
        raise TaskError(
            f"{model_dir}: a threshold needs the model to have a {safe_label!r} label, and it has "
            f"no {safe_label!r} label (labels: {', '.join(classifier.labels)})"
        )
    return SequencePredictor(
        classifier.predict,
        classifier.labels,
        safe_label=safe_label if safe_label in classifier.labels else None,
        threshold=0.5 if threshold is None else threshold,
    )


@dataclass(frozen=True)
class SequenceTask:
    """A ``Task`` for one sequence head of a bundle (or a ``*ForSequenceClassification`` dir).

    ``safe_label`` set: a text is flagged when 1 - P(safe) reaches the threshold; ``windowed``:
    long texts are scored in windows and the riskiest decides, as the served signal does.
    """

    name: str
    summary: str
    labels: tuple[str, ...]
    safe_label: str | None = None
    windowed: bool = False

    def load_predictor(
        self, model: str | None, device: str, threshold: float | None = None
    ) -> SequencePredictor:
        predictor = load_sequence_predictor(
            self.name, model, device, safe_label=self.safe_label, threshold=threshold
        )
        if self.windowed and predictor.safe_label is not None:
            predictor.with_windows(*signal_windows())
        return predictor

    def evaluate(
        self,
        predictor: Predictor,
        records: Sequence[LabelledRecord],
        batch_size: int,
        by: str | None = None,
    ) -> EvaluationReport:
        from tqdm import tqdm

        # The model's own labels (a shipped head may have more classes than the task was first
        # written for, e.g. jailbreak's prompt_injection).
        labels = tuple(getattr(predictor, "labels", self.labels))
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
        if self.safe_label is not None:
            rates = safety_rates(gold, predicted, self.safe_label)
            summary.update(rates)
            text += "\n\n" + render_safety_rates(rates)
        if by is not None:
            groups = [str(record.fields.get(by, "(none)")) for record in records]
            summary["by"] = {
                "field": by,
                "groups": breakdown(groups, gold, predicted, self.safe_label),
            }
            text += "\n\n" + render_breakdown(by, summary["by"]["groups"])
        return EvaluationReport(text, summary)


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


def breakdown(
    groups: Sequence[str], gold: Sequence[str], predicted: Sequence[str], safe_label: str | None
) -> dict[str, dict[str, Any]]:
    """Per value of the ``--by`` field: examples, accuracy, and for safety tasks the flagged
    share of its safe examples and the caught share of its attacks (from the same predictions,
    so a breakdown costs no second look at the set)."""
    rows: dict[str, dict[str, Any]] = {}
    for group in sorted(set(groups)):
        members = [i for i, g in enumerate(groups) if g == group]
        row: dict[str, Any] = {
            "examples": len(members),
            "accuracy": round(sum(gold[i] == predicted[i] for i in members) / len(members), 4),
        }
        if safe_label is not None:
            rates = safety_rates(
                [gold[i] for i in members], [predicted[i] for i in members], safe_label
            )
            row.update(rates)
        rows[group] = row
    return rows


def render_breakdown(field: str, rows: Mapping[str, Mapping[str, Any]]) -> str:
    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    width = max([len(field), *(len(group) for group in rows)])
    safety = any("attack_recall" in row for row in rows.values())
    header = f"{field:<{width}}  examples  accuracy"
    header += "  caught   flagged" if safety else ""
    lines = [f"by {field}:", header]
    for group, row in rows.items():
        line = f"{group:<{width}}  {row['examples']:8d}  {percent(row['accuracy']):>8}"
        if safety:
            line += (
                f"  {percent(row['attack_recall']):>6}  {percent(row['false_positive_rate']):>8}"
            )
        lines.append(line)
    return "\n".join(lines)
