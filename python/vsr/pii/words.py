"""The token model's sub-word spans -> whole-word spans, one label per word.

Rampart labels word pieces, and its spans follow them: "4867614" comes back as five spans
("48", "6", "7", "6", "14"), sometimes of two labels (three ZIP_CODE pieces and a DRIVERS_LICENSE
piece), and "+1-907-358-3009x855" as "+1-907-358-". A reader labels words, so every span is
widened to the alphanumeric runs it touches, and spans that then overlap become one span whose
label is the one that covered most characters (weighted by score), as token-classification
pipelines aggregate sub-words. Costs one pass over the spans (a few microseconds a prompt).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol


class LabelledSpan(Protocol):
    """A typed character span: gold annotations and predictions alike."""

    @property
    def label(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


class ScoredSpan(LabelledSpan, Protocol):
    """A span with the model's confidence (``vsr.models.Entity`` has these fields)."""

    @property
    def score(self) -> float: ...


@dataclass(frozen=True, slots=True)
class WordSpan:
    label: str
    start: int
    end: int
    score: float


_JOINERS = "-./"


def _widen(text: str, start: int, end: int) -> tuple[int, int]:
    # ... and one that starts on one started mid-word: "-8664-1578" of "S437-8664-1578".
    while (
        start > 0
        and text[start - 1].isalnum()
        and (text[start].isalnum() or text[start] in _JOINERS)
    ):
        start -= 1
    # A span that stops on a joiner stopped mid-word: "+1-907-358-" of "+1-907-358-3009".
    while (
        end < len(text)
        and text[end].isalnum()
        and (text[end - 1].isalnum() or text[end - 1] in _JOINERS)
    ):
        end += 1
    return start, end


def _vote(text: str, start: int, end: int, group: Sequence[ScoredSpan]) -> WordSpan:
    weights: dict[str, float] = {}
    for span in group:
        weights[span.label] = weights.get(span.label, 0.0) + span.score * (span.end - span.start)
    label = max(weights, key=lambda name: weights[name])
    # The score says how sure the model is that the word is PII at all: pieces split between
    # two ID labels at 0.49 and 0.52 are one ID the model is about as sure of as of each piece.
    covered = sum(span.end - span.start for span in group)
    score = sum(span.score * (span.end - span.start) for span in group) / covered
    return WordSpan(label, start, end, score)


def _split_lines(text: str, spans: Iterable[ScoredSpan]) -> Iterator[ScoredSpan]:
    """Spans cut at line breaks: the model runs one label on across them ("Nielsen\nGuerra
    Inc"); whether an entity continues on the next line is for the joining rules to decide."""
    for span in spans:
        if "\n" not in text[span.start : span.end]:
            yield span
            continue
        position = span.start
        for line in text[span.start : span.end].split("\n"):
            stripped = line.strip()
            if stripped:
                start = position + line.index(stripped)
                yield WordSpan(span.label, start, start + len(stripped), span.score)
            position += len(line) + 1


def whole_word_spans(text: str, spans: Iterable[ScoredSpan]) -> list[WordSpan]:
    """``spans`` widened to whole words; overlapping ones merged under their majority label."""
    words: list[WordSpan] = []
    group: list[ScoredSpan] = []
    group_start = group_end = -1
    for span in sorted(_split_lines(text, spans), key=lambda s: (s.start, s.end)):
        if span.end <= span.start:
            continue
        start, end = _widen(text, span.start, span.end)
        if group and start < group_end:
            group.append(span)
            group_end = max(group_end, end)
            continue
        if group:
            words.append(_vote(text, group_start, group_end, group))
        group, group_start, group_end = [span], start, end
    if group:
        words.append(_vote(text, group_start, group_end, group))
    return words
