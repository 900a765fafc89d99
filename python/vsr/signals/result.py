"""What a signal produces: ``SignalResult`` (defined with its producer; routing reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SignalResult:
    """One evaluated signal.

    - ``type``/``name``: the signal as the config names it (``{type: domain, name: math}``).
    - ``matched``: whether the signal fired (what decision rules read).
    - ``score``: its strength in [0, 1]: a probability, a cosine similarity, 1.0/0.0 for keyword and
      context signals. The ``confidence`` strategy averages the scores of a decision's conditions.
    - ``label``: what the signal saw, when it has one: the top domain category, the jailbreak label,
      the matched keyword, the nearest candidate phrase.
    - ``entity_types``: PII signals only: the entity types found above the threshold, sorted.
    - ``error``: set when a model the signal reads failed for this request; the signal then did
      not match (or, for PII, judged with its patterns alone).
    """

    type: str
    name: str
    matched: bool
    score: float
    label: str | None = None
    entity_types: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "name": self.name,
            "matched": self.matched,
            "score": round(self.score, 6),
        }
        if self.label is not None:
            out["label"] = self.label
        if self.entity_types:
            out["entity_types"] = list(self.entity_types)
        if self.error is not None:
            out["error"] = self.error
        return out
