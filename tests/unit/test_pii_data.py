"""PII template data: spans match the filled values, splits are stable, generation is seeded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsr.training.pii_data import (
    SLOT_TYPES,
    Template,
    fill_template,
    generate,
    load_templates,
    read_labelled,
)


def test_every_template_loads_and_both_splits_cover_every_required_type() -> None:
    templates = load_templates()
    assert len(templates) > 250
    from vsr.pii.entities import REQUIRED_TYPES

    for split in ("train", "eval"):
        slots = " ".join(t.text for t in templates if t.split == split)
        covered = {SLOT_TYPES[name] for name in SLOT_TYPES if "{{" + name + "}}" in slots}
        missing = {t for t in REQUIRED_TYPES if t not in covered and t != "STREET_ADDRESS"}
        assert not missing, f"{split} split lacks {missing}"


def test_filled_spans_point_at_their_values() -> None:
    values = {
        "first_name": "Ann",
        "last_name": "Lee",
        "building_number": "12",
        "street_name": "Elm St",
        "city": "Leeds",
        "email": "a@b.io",
        "order_number": "77",
    }
    template = Template(
        "{{first_name}} {{last_name}} of {{building_number}} {{street_name}}, "
        "{{city}} ({{email}}) order {{order_number}}; visiting {{city}}",
        "test",
    )
    example = fill_template(template, {k: (lambda v=v: v) for k, v in values.items()})
    assert [(s.label, example.text[s.start : s.end]) for s in example.entities] == [
        ("PERSON", "Ann Lee"),
        ("STREET_ADDRESS", "12 Elm St, Leeds"),
        ("EMAIL_ADDRESS", "a@b.io"),
        ("LOCATION", "Leeds"),
    ]


def test_generation_is_reproducible_and_uses_only_its_split() -> None:
    first = generate("eval", 40, seed=3)
    again = generate("eval", 40, seed=3)
    assert [e.to_json() for e in first] == [e.to_json() for e in again]
    eval_ids = {t.template_id for t in load_templates() if t.split == "eval"}
    assert {e.template_id for e in first} <= eval_ids
    for example in first:
        for span in example.entities:
            assert (
                example.text[span.start : span.end].strip() == example.text[span.start : span.end]
            )
    with pytest.raises(ValueError, match="split"):
        generate("test", 1, seed=0)


def test_read_labelled_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "gold.jsonl"
    good = {"text": "hi Ann", "entities": [{"label": "PERSON", "start": 3, "end": 6}]}
    path.write_text(json.dumps(good) + "\n" + '{"text": "x", "entities": [{"label": 1}]}\n')
    rows = read_labelled(path)
    assert next(rows)[0] == 1
    with pytest.raises(ValueError, match=":2:"):
        next(rows)


def test_the_committed_eval_set_is_what_the_generator_makes() -> None:
    committed = Path(__file__).resolve().parents[2] / "data" / "pii" / "eval.jsonl"
    if not committed.is_file():
        pytest.skip("data/pii/eval.jsonl not generated yet (vsr train pii writes it)")
    lines = committed.read_text(encoding="utf-8").splitlines()
    regenerated = generate("eval", 50, seed=7)
    assert [json.loads(line) for line in lines[:50]] == [e.to_json() for e in regenerated]


def test_held_out_splits_share_no_template_or_identity_with_tuning() -> None:
    from vsr.training.pii_identities import load_identities

    templates = load_templates()
    groups = {
        split: {t.template_id for t in templates if (t.held_out_split or t.split) == split}
        for split in ("eval", "fresh", "reserve")
    }
    assert all(groups.values())
    assert not groups["eval"] & groups["fresh"] and not groups["eval"] & groups["reserve"]
    assert not groups["fresh"] & groups["reserve"]
    fresh_rows = {row["EmailAddress"] for row in load_identities("fresh")}
    reserve_rows = {row["EmailAddress"] for row in load_identities("reserve")}
    assert len(fresh_rows) > 1400 and not fresh_rows & reserve_rows
    tune = generate("tune", 30, seed=1)
    assert {e.template_id for e in tune} <= groups["eval"]
    final = {e.template_id for e in generate("final", 60, seed=1)}
    assert len(final) == 50 and not final & set().union(*groups.values())


@pytest.mark.parametrize(
    ("split", "seed", "count"),
    [("fresh", 20251121, 1500), ("reserve", 20251122, 1500), ("final", 20251123, 1000)],
)
def test_the_committed_held_out_sets_are_what_the_generator_makes(
    split: str, seed: int, count: int
) -> None:
    committed = Path(__file__).resolve().parents[2] / "data" / "pii" / f"{split}.jsonl"
    lines = committed.read_text(encoding="utf-8").splitlines()
    assert len(lines) == count
    regenerated = generate(split, 40, seed=seed)
    assert [json.loads(line) for line in lines[:40]] == [e.to_json() for e in regenerated]
