"""Model cards for trained heads, written by ``vsr train`` from the metrics it measured.

The prose (what the data is, how overfitting was guarded against, known limits) comes from the task
module; every number comes from the run that wrote the weights, so a card never goes stale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vsr.training.sequence_task import SequenceTaskSpec


@dataclass(frozen=True)
class CardText:
    title: str
    purpose: str
    data: str
    generalisation: str  # how the data and splits guard against fitting our own templates
    limits: tuple[str, ...]
    external_notes: Mapping[str, str]  # external evaluation set name -> what it is


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f}%"


def precision_recall_rows(
    per_label: Mapping[str, Mapping[str, Any]], first: str, count: str
) -> list[str]:
    """A markdown table, one row per label: precision, recall, F1 and the ``count`` field."""
    lines = [f"| {first} | precision | recall | F1 | {count} |", "|---|---|---|---|---|"]
    for label, values in per_label.items():
        lines.append(
            f"| {label} | {values['precision']:.3f} | {values['recall']:.3f} | "
            f"{values['f1']:.3f} | {values[count]} |"
        )
    return lines


def _per_class_table(result: Mapping[str, Any]) -> list[str]:
    return precision_recall_rows(result["per_class"], "label", "support")


def _summary(result: Mapping[str, Any]) -> str:
    if not result.get("examples"):
        return "no examples"
    text = f"{result['examples']} examples, accuracy {_percent(result['accuracy'])}"
    text += f", macro F1 {result['macro_f1']:.3f}"
    if "attack_recall" in result:
        text += (
            f", attack recall {_percent(result['attack_recall'])} ({result['attacks']} attacks), "
            f"false positives {_percent(result['false_positive_rate'])} ({result['safe']} benign)"
        )
    return text


def render_card(
    card: CardText,
    spec: SequenceTaskSpec,
    head_description: str,
    metrics: Mapping[str, Any],
    sources: Sequence[str],
) -> str:
    features = spec.features
    counts = metrics["examples"]
    lines = [
        f"# {card.title}",
        "",
        "Written by `vsr train "
        + spec.name
        + f"` (seed {metrics['seed']}); numbers below are from that run.",
        "",
        "## Purpose",
        card.purpose,
        "",
        "## Model",
        f"- Encoder: `{features.encoder}` (frozen), {features.pooling} pooling, "
        f"{'L2-normalised' if features.normalize else 'not normalised'}, "
        f"max {features.max_length} tokens; features computed by vsr's own core.",
        f"- Head: {head_description}; weights `{spec.name}.safetensors`.",
        f"- Labels: {', '.join(f'`{label}`' for label in spec.labels)}.",
    ]
    if spec.ngrams is not None:
        lines.append(
            f"- N-gram expert (`{spec.name}.ngrams.json`, run in Python beside the encoder pass): "
            f"{spec.ngrams.describe()}. Served probabilities are the product of experts "
            f"softmax({spec.ngrams.mix} * log P_head + {1 - spec.ngrams.mix:g} * log P_ngrams)."
        )
    if spec.safe_label is not None:
        lines.append(
            f"- Decision: flag when 1 - P(`{spec.safe_label}`) >= **{metrics['threshold']}** "
            f"(the shipped default, chosen on the calibration split for at most "
            f"{_percent(spec.max_false_positive_rate)} false positives there, never below "
            f"{spec.min_threshold})."
        )
    lines += [
        "",
        "## Data",
        card.data,
        "",
        f"Sources: {', '.join(f'`{s}`' for s in sources)}.",
        "",
        "Split by group (template, topic or source; never by random row): "
        f"train {counts['train']}, "
        f"calibration {counts['calibration']}, test {counts['test']} examples. Training labels: "
        + ", ".join(f"{k} {v}" for k, v in metrics["train_label_counts"].items())
        + ".",
        "",
        "## Guarding against overfitting to our own data",
        card.generalisation,
        "",
        "## Validation",
        f"Test split (groups never seen in training): {_summary(metrics['test'])}.",
        "",
        *_per_class_table(metrics["test"]),
        "",
    ]
    if metrics["external"]:
        lines += ["Held-out sets that were never used for training or threshold choice:", ""]
        for name, result in metrics["external"].items():
            note = card.external_notes.get(name, "")
            lines.append(f"- **{name}**: {_summary(result)}. {note}".rstrip())
        lines.append("")
    lines += ["## Known limits", *(f"- {limit}" for limit in card.limits), ""]
    return "\n".join(lines)
