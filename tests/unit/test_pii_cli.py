"""`vsr classify` and `vsr eval` with --task pii, on a fake token head (no native core)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.core.conftest import write_bundle

from vsr.cli import build_parser
from vsr.pii.detector import PiiDetector
from vsr.tasks import TaskError, pii


@dataclass(frozen=True)
class Span:
    label: str
    start: int
    end: int
    score: float = 0.9


def name_finder(texts: list[str]) -> Sequence[Sequence[Span]]:
    """Tags 'Ann' as a given name wherever it occurs."""
    return [
        [Span("B-GIVEN_NAME", t.find("Ann"), t.find("Ann") + 3)] if "Ann" in t else []
        for t in texts
    ]


@pytest.fixture(autouse=True)
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        pii.PiiTask,
        "load_predictor",
        lambda self, model, device: pii.PiiPredictor(PiiDetector(name_finder)),
    )


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


def test_classify_writes_label_score_and_entities_in_order(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "Ann paid with 4111 1111 1111 1111"}\n{"text": "hello"}\n')
    output = tmp_path / "out.jsonl"
    assert run(["classify", "--task", "pii", str(source), "--output", str(output)]) == 0
    first, second = (json.loads(line) for line in output.read_text().splitlines())
    assert first["label"] == "pii" and first["score"] > 0.9
    assert [(e["label"], e["text"]) for e in first["entities"]] == [
        ("PERSON", "Ann"),
        ("CREDIT_CARD", "4111 1111 1111 1111"),
    ]
    assert second == {**second, "label": "none", "score": 0.0, "entities": []}


def test_eval_prints_entity_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold = tmp_path / "gold.jsonl"
    rows = [
        {"text": "Ann is here", "entities": [{"label": "PERSON", "start": 0, "end": 3}]},
        {
            "text": "mail bob@example.com",
            "entities": [
                {"label": "EMAIL_ADDRESS", "start": 5, "end": 20},
                {"label": "PERSON", "start": 5, "end": 8},
            ],
        },
    ]
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary_file = tmp_path / "summary.json"
    assert run(["eval", "--task", "pii", str(gold), "--json", str(summary_file)]) == 0
    printed = capsys.readouterr().out
    assert "strict match" in printed and "overlap match" in printed and "(missed)" in printed
    summary = json.loads(summary_file.read_text())
    assert summary["strict"]["recall"] == pytest.approx(2 / 3)
    assert summary["strict"]["precision"] == 1.0


def test_eval_names_a_line_with_bad_entities(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gold = tmp_path / "gold.jsonl"
    bad = {"text": "Ann", "entities": [{"label": "PERSON", "start": 0, "end": 9}]}
    gold.write_text('{"text": "Ann", "entities": []}\n' + json.dumps(bad) + "\n")
    assert run(["eval", "--task", "pii", str(gold)]) != 0
    assert "line 2: entities[0] span 0..9 is outside the text" in capsys.readouterr().err


MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def test_a_token_classifier_directory_is_a_pii_model() -> None:
    # README: --model DIR takes a *ForTokenClassification directory, not only a bundle.
    detector = pii.load_detector(str(MODELS / "bert-token"))
    found = detector.detect(["Mail alice@example.com today"])[0]
    assert [(e.label, e.text) for e in found if e.source == "pattern"] == [
        ("EMAIL_ADDRESS", "alice@example.com")
    ]


def test_a_bundle_without_a_token_head_is_a_task_error(tmp_path: Path) -> None:
    bundle_dir = write_bundle(
        tmp_path / "bundle", {"embedding": {"kind": "embedding", "pooling": "mean"}}
    )
    with pytest.raises(TaskError, match=r"no token head 'pii'; heads: \['embedding'\]"):
        pii.load_detector(str(bundle_dir))
