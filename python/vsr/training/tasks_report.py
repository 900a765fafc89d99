"""What ``vsr train tasks`` reports: the calibrated threshold, the chosen candidate, and the
per-group figures of the domain and jailbreak heads."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from vsr.training.dataset import Example
from vsr.training.tasks_model import TaskModel, probabilities
from vsr.training.tasks_recipe import BENIGN


def threshold_for_rate(scores: np.ndarray, rate: float) -> float:
    """The lowest threshold flagging at most ``rate`` of these benign scores."""
    ordered = np.sort(scores)[::-1]
    allowed = math.floor(rate * len(ordered))
    if allowed >= len(ordered):
        return 0.5
    return float(min(max(ordered[allowed] + 1e-6, 0.5), 0.999))


def choose(rows: list[dict[str, Any]]) -> str:
    """The shipped candidate: shared (one branch) only; best domain accuracy + attack recall at
    the calibrated threshold on test groups, minus benign false positives; ties to the cheaper."""
    shippable = [r for r in rows if r["shippable"]]
    best = max(
        shippable,
        key=lambda r: (
            r["domain_accuracy"] + r["attack_recall"] - 2 * r["benign_fpr"],
            -r["layers"],
        ),
    )
    return str(best["name"])


# ---- evaluation and export --------------------------------------------------------------------


def _family(source: str) -> str:
    """Sources grouped for the report: per BIG-bench task and per vsr file, else per package."""
    if source.startswith("vsr:domain"):
        return "generated (vsr vocabularies)"
    if source.startswith(("bigbench:", "vsr:", "docs:", "long:", "agentdojo:", "deepteam:")):
        return source
    return source.split(":")[0]


def domain_report(
    model: TaskModel, labels: tuple[str, ...], examples: Sequence[Example]
) -> dict[str, Any]:
    if not examples:
        return {"examples": 0}
    probs = probabilities(model, "domain", [e.text for e in examples])
    predicted = [labels[i] for i in probs.argmax(1)]
    correct = [p == e.label for p, e in zip(predicted, examples, strict=True)]
    by_label: dict[str, list[bool]] = {}
    by_source: dict[str, list[bool]] = {}
    for ok, e in zip(correct, examples, strict=True):
        by_label.setdefault(e.label, []).append(ok)
        by_source.setdefault(_family(e.source), []).append(ok)

    def rate(xs: list[bool]) -> float:
        return round(sum(xs) / len(xs), 4)

    return {
        "examples": len(examples),
        "accuracy": rate(correct),
        "by_label": {k: {"n": len(v), "accuracy": rate(v)} for k, v in sorted(by_label.items())},
        "by_source": {k: {"n": len(v), "accuracy": rate(v)} for k, v in sorted(by_source.items())},
    }


def jailbreak_report(
    scores: np.ndarray, examples: Sequence[Example], threshold: float
) -> dict[str, Any]:
    flagged = scores >= threshold
    by: dict[str, list[bool]] = {}
    for hit, e in zip(flagged, examples, strict=True):
        by.setdefault(f"{e.label} | {_family(e.source)}", []).append(bool(hit))
    benign = [bool(h) for h, e in zip(flagged, examples, strict=True) if e.label == BENIGN]
    attacks = [bool(h) for h, e in zip(flagged, examples, strict=True) if e.label != BENIGN]
    return {
        "examples": len(examples),
        "attack_recall": round(sum(attacks) / len(attacks), 4) if attacks else None,
        "attacks": len(attacks),
        "benign_fpr": round(sum(benign) / len(benign), 4) if benign else None,
        "benign": len(benign),
        "flagged_rate_by_group": {
            k: {"n": len(v), "flagged": round(sum(v) / len(v), 4)} for k, v in sorted(by.items())
        },
    }
