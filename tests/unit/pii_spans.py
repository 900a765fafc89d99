"""Hand-written token-model output for the PII rule tests (entities and span rules)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    label: str
    start: int
    end: int
    score: float = 0.95


def spans_of(text: str, *pieces: tuple[str, str] | tuple[str, str, float]) -> list[Span]:
    """Spans for (label, substring[, score]) tuples, found left to right."""
    out, position = [], 0
    for label, value, *score in pieces:
        start = text.index(value, position)
        out.append(Span(label, start, start + len(value), *score))
        position = start + len(value)
    return out


def labelled(text: str, entities: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(e.label, e.text) for e in entities]
