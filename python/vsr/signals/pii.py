"""PII signals: personal information in the text, as canonical types (``vsr.pii.entities``).

The token classifier's spans are mapped to canonical types (``PERSON``, ``EMAIL_ADDRESS``,
``US_SSN``...) and, unless ``use_patterns`` is off, joined with validated pattern matches (credit
cards, SSNs, IBANs) that a token model guesses less reliably. Configs name the canonical types.

The token model sees 512 tokens at a time, so the signal asks the engine to read a long prompt in
overlapping windows (``vsr.pii.detector.plan_windows``, at most ``MAX_WINDOWS`` of them, batched
into one encoder call) and shifts every window's spans back onto the whole text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from vsr.config.signals import PiiSignal
from vsr.pii.detector import WINDOW_CHARS, plan_windows, spans_over_windows
from vsr.pii.entities import detect_pii
from vsr.signals.base import HeadNeed, Signal, SignalInputs, describe_error, register
from vsr.signals.result import SignalResult


def normalise_entity_type(label: str) -> str:
    """``b-email_address`` and ``EMAIL_ADDRESS`` name the same type."""
    prefix, separator, rest = label.partition("-")
    if separator and prefix.upper() in ("B", "I", "E", "S"):
        label = rest
    return label.upper()


@register("pii")
class PiiDetectorSignal(Signal[PiiSignal]):
    per_message = True
    # "4111 1111" and " 1111 1111" in two parts are one card number to a template that
    # concatenates parts; newline-joined, no pattern sees it.
    reads_joined_parts = True

    def __init__(self, config: PiiSignal, path: str) -> None:
        super().__init__(config, path)
        self._wanted = {normalise_entity_type(t) for t in config.entity_types}

    def head_needs(self) -> tuple[HeadNeed, ...]:
        return (HeadNeed(self.config.model, self.config.head, "token"),)

    def text_windows(self, model: str, text: str) -> Sequence[tuple[int, int]] | None:
        if model != self.config.model:
            return None
        return plan_windows(text, max_windows=max(self.config.max_windows, 2))

    def window_chars(self, model: str) -> int | None:
        return WINDOW_CHARS if model == self.config.model else None

    def evaluate(self, text: str, inputs: SignalInputs) -> SignalResult:
        spans = spans_over_windows(inputs.head_windows(self.config.model, self.config.head))
        return self._judge(text, spans)

    def failed(self, text: str, error: BaseException) -> SignalResult:
        """Without the model, the validated patterns still judge the text: what they find blocks
        as usual; the error is kept so the plugin's ``on_error`` decides about the rest."""
        judged = self._judge(text, []) if self.config.use_patterns else super().failed(text, error)
        return replace(judged, error=describe_error(error))

    def _judge(self, text: str, spans: Sequence[Any]) -> SignalResult:
        found = detect_pii(
            text, spans, min_score=self.config.threshold, use_patterns=self.config.use_patterns
        )
        scores: dict[str, float] = {}
        for entity in found:
            entity_type = normalise_entity_type(entity.label)
            if self._wanted and entity_type not in self._wanted:
                continue
            scores[entity_type] = max(scores.get(entity_type, 0.0), float(entity.score))
        return SignalResult(
            self.family,
            self.name,
            matched=bool(scores),
            score=max(scores.values(), default=0.0),
            entity_types=tuple(sorted(scores)),
        )
