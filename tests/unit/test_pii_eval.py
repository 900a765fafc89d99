"""Entity-level PII scores: strict vs overlap matching, counted types, confusion."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from vsr.tasks.pii_eval import MISSED, SPURIOUS, score_entities


@dataclass(frozen=True)
class S:
    label: str
    start: int
    end: int


def test_strict_needs_exact_offsets_overlap_does_not() -> None:
    gold = [[S("PERSON", 0, 10), S("EMAIL_ADDRESS", 20, 30)]]
    predicted = [[S("PERSON", 0, 4), S("EMAIL_ADDRESS", 20, 30), S("URL", 40, 45)]]
    strict = score_entities(gold, predicted, mode="strict")
    overlap = score_entities(gold, predicted, mode="overlap")
    assert strict.per_type["PERSON"].f1 == 0.0
    assert overlap.per_type["PERSON"].f1 == 1.0
    assert overlap.overall.true_positives == 2 and overlap.overall.predicted == 3
    assert overlap.overall.precision == pytest.approx(2 / 3)
    assert overlap.confusion[(SPURIOUS, "URL")] == 1


def test_wrong_type_and_misses_show_in_the_confusion() -> None:
    gold = [[S("BANK_ACCOUNT", 0, 12)], [S("PERSON", 0, 3)]]
    predicted = [[S("GOVERNMENT_ID", 0, 12)], []]
    report = score_entities(gold, predicted, mode="strict")
    assert report.confusion[("BANK_ACCOUNT", "GOVERNMENT_ID")] == 1
    assert report.confusion[("PERSON", MISSED)] == 1
    assert report.overall.true_positives == 0
    assert "GOVERNMENT_ID" in report.format_confusion()
    assert "ALL (required)" in report.format()


def test_uncounted_types_do_not_change_the_headline() -> None:
    gold = [[S("LOCATION", 0, 5)]]
    predicted = [[S("LOCATION", 0, 5), S("LOCATION", 6, 9)]]
    report = score_entities(gold, predicted)
    assert report.overall.gold == 0 and report.overall.predicted == 0
    assert report.per_type["LOCATION"].precision == 0.5


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mode"):
        score_entities([], [], mode="fuzzy")
    with pytest.raises(ValueError, match="gold texts"):
        score_entities([[]], [])
