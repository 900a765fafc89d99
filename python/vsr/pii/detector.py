"""PII detection over whole prompts: windows for long texts, the token model, then patterns.

The token model reads at most ``max_length`` tokens, so a long prompt is cut into overlapping
character windows (at whitespace), every window is classified in one batch, and the spans are
shifted back and de-duplicated. ``vsr.pii.entities.detect_pii`` then maps the model's labels to
canonical types and adds the pattern recognisers' matches over the full text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from vsr.pii.entities import ModelSpan, PiiEntity, detect_pii

# About 300-400 word pieces of English: well inside Rampart's 512-token window, and the context
# size its authors found it detects best in.
WINDOW_CHARS = 1200
WINDOW_OVERLAP = 200
# Bounds the model's cost on huge prompts (a 4 MiB body would be ~3,500 windows): past this many
# windows the model reads the start and the end (where a question and its data usually are);
# the pattern recognisers still read every character. 16 windows are ~19k characters, ~5k tokens.
MAX_WINDOWS = 16

TokenHead = Callable[[list[str]], Sequence[Sequence[ModelSpan]]]


@dataclass(frozen=True, slots=True)
class ShiftedSpan:
    label: str
    start: int
    end: int
    score: float


def plan_windows(
    text: str,
    window: int = WINDOW_CHARS,
    overlap: int = WINDOW_OVERLAP,
    max_windows: int = MAX_WINDOWS,
) -> list[tuple[int, int]]:
    """Overlapping ``(start, end)`` character windows covering ``text``, cut at whitespace.

    More than ``max_windows`` windows: the first ``max_windows - 1`` and the last one.
    """
    if overlap >= window:
        raise ValueError(f"overlap ({overlap}) must be smaller than the window ({window})")
    if max_windows < 2:
        raise ValueError(f"max_windows must be at least 2, got {max_windows}")
    if len(text) <= window:
        return [(0, len(text))]
    windows = []
    start = 0
    while True:
        end = min(start + window, len(text))
        if end < len(text):
            cut = text.rfind(" ", start + window - overlap, end)
            end = cut if cut > start else end
        windows.append((start, end))
        if end >= len(text):
            break
        next_start = text.find(" ", max(end - overlap, start + 1), end)
        start = next_start + 1 if next_start != -1 else end
    if len(windows) > max_windows:
        return [*windows[: max_windows - 1], windows[-1]]
    return windows


def spans_over_windows(windows: Iterable[tuple[int, Sequence[ModelSpan]]]) -> list[ShiftedSpan]:
    """One text's spans from the spans of its windows (``(window start, spans)`` pairs)."""
    return _merge_window_spans(
        [
            ShiftedSpan(span.label, span.start + offset, span.end + offset, span.score)
            for offset, spans in windows
            for span in spans
        ]
    )


def _merge_window_spans(spans: list[ShiftedSpan]) -> list[ShiftedSpan]:
    """Union same-label spans that overlap (one entity seen by two windows)."""
    merged: list[ShiftedSpan] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        same = [
            i for i, kept in enumerate(merged) if kept.label == span.label and span.start < kept.end
        ]
        if same:
            kept = merged[same[-1]]
            merged[same[-1]] = ShiftedSpan(
                kept.label, kept.start, max(kept.end, span.end), max(kept.score, span.score)
            )
        else:
            merged.append(span)
    return merged


class PiiDetector:
    """Canonical PII entities per text, from a token head (``texts -> spans per text``)."""

    def __init__(
        self, token_head: TokenHead, *, min_score: float = 0.5, use_patterns: bool = True
    ) -> None:
        self.token_head = token_head
        self.min_score = min_score
        self.use_patterns = use_patterns

    def model_spans(self, texts: Sequence[str]) -> list[list[ShiftedSpan]]:
        """The token model's raw spans per text (model labels), long texts read in windows."""
        pieces: list[str] = []
        owners: list[tuple[int, int]] = []  # (text index, window start)
        for index, text in enumerate(texts):
            for start, end in plan_windows(text):
                pieces.append(text[start:end])
                owners.append((index, start))
        per_text: list[list[tuple[int, Sequence[ModelSpan]]]] = [[] for _ in texts]
        if pieces:
            for (index, offset), spans in zip(owners, self.token_head(pieces), strict=True):
                per_text[index].append((offset, spans))
        return [spans_over_windows(windows) for windows in per_text]

    def detect(self, texts: Sequence[str]) -> list[list[PiiEntity]]:
        return [
            detect_pii(text, spans, min_score=self.min_score, use_patterns=self.use_patterns)
            for text, spans in zip(texts, self.model_spans(texts), strict=True)
        ]
