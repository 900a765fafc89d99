"""Windowing long prompts for the token model, and shifting its spans back."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from vsr.pii.detector import PiiDetector, plan_windows


@dataclass(frozen=True)
class Span:
    label: str
    start: int
    end: int
    score: float = 0.9


def test_short_texts_are_one_window() -> None:
    assert plan_windows("short text") == [(0, 10)]
    assert plan_windows("") == [(0, 0)]


def test_windows_cover_the_text_overlap_and_cut_at_spaces() -> None:
    text = " ".join(f"word{i}" for i in range(400))
    windows = plan_windows(text, window=300, overlap=60)
    assert windows[0][0] == 0 and windows[-1][1] == len(text)
    for (_, end), (next_start, _) in itertools.pairwise(windows):
        assert next_start < end  # overlap
        assert text[next_start - 1] == " "  # starts on a word
    assert all(end - start <= 300 for start, end in windows)
    with pytest.raises(ValueError):
        plan_windows(text, window=100, overlap=100)


def test_spans_from_every_window_come_back_in_text_offsets_once() -> None:
    filler = "lorem ipsum dolor sit amet " * 80
    text = filler + "my name is Alice Jones " + filler

    def fake_head(pieces: list[str]) -> Sequence[Sequence[Span]]:
        result = []
        for piece in pieces:
            found = []
            position = piece.find("Alice")
            if position != -1:
                found = [
                    Span("B-GIVEN_NAME", position, position + 5),
                    Span("B-SURNAME", position + 6, position + 11),
                ]
            result.append(found)
        return result

    detector = PiiDetector(fake_head)
    (entities,) = detector.detect([text])
    assert [(e.label, e.text) for e in entities] == [("PERSON", "Alice Jones")]
    assert len(plan_windows(text)) > 1


def test_an_empty_batch_calls_nothing() -> None:
    def fail(pieces: list[str]) -> Sequence[Sequence[Span]]:
        raise AssertionError("called")

    assert PiiDetector(fail).detect([]) == []
