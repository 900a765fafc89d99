"""``vsr classify`` / ``vsr eval`` plumbing with a fake task (no native core needed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from vsr.cli import build_parser
from vsr.tasks import Task, domain
from vsr.tasks.sequence import SequencePredictor, SequenceTask

LABELS = domain.LABELS


def main(argv: list[str]) -> int:
    """The CLI's dispatch without ``vsr.cli.main``'s VsrError handling (which needs the core)."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


def _keyword_probabilities(texts: Sequence[str]) -> np.ndarray:
    """'cell' -> biology, 'contract' -> law, anything else -> other."""
    probabilities = np.full((len(texts), len(LABELS)), 0.01, dtype=np.float32)
    for row, text in enumerate(texts):
        label = "biology" if "cell" in text else "law" if "contract" in text else "other"
        probabilities[row, LABELS.index(label)] = 0.87
    return probabilities


class FakeDomainTask(SequenceTask):
    def load_predictor(
        self, model: str | None, device: str, threshold: float | None = None
    ) -> SequencePredictor:
        return SequencePredictor(lambda texts: _keyword_probabilities(texts), LABELS)


@pytest.fixture(autouse=True)
def fake_task(monkeypatch: pytest.MonkeyPatch) -> None:
    task: Task = FakeDomainTask(domain.TASK.name, domain.TASK.summary, LABELS)
    monkeypatch.setattr("vsr.commands.classify.get_task", lambda name: task)
    monkeypatch.setattr("vsr.commands.eval.get_task", lambda name: task)


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_classify_writes_one_line_per_input_in_order(tmp_path: Path) -> None:
    texts = ["what is a cell membrane", "is this contract valid", "hello"] * 5
    source = _write_lines(
        tmp_path / "in.jsonl", [json.dumps({"id": i, "text": t}) for i, t in enumerate(texts)]
    )
    out = tmp_path / "out.jsonl"
    code = main(
        ["classify", "--task", "domain", str(source), "--output", str(out), "--batch-size", "4"]
    )
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == list(range(15))
    assert [row["label"] for row in rows[:3]] == ["biology", "law", "other"]
    assert rows[0]["score"] == pytest.approx(0.87)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ('{"txt": "x"}', 'line 2: "text" must be a string'),
        ("", "line 2: empty line"),
    ],
)
def test_classify_names_the_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    source = _write_lines(tmp_path / "in.jsonl", ['{"text": "fine"}', line, '{"text": "ok"}'])
    code = main(["classify", "--task", "domain", str(source), "--output", str(tmp_path / "o")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing is written before the input is checked


def test_eval_prints_accuracy_per_class_and_confusion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [("a cell divides", "biology"), ("a contract", "law"), ("cells again", "law")]
    source = _write_lines(
        tmp_path / "gold.jsonl", [json.dumps({"text": t, "label": g}) for t, g in rows]
    )
    summary_path = tmp_path / "metrics.json"
    code = main(["eval", "--task", "domain", str(source), "--json", str(summary_path)])
    output = capsys.readouterr().out
    assert code == 0
    assert "accuracy: 0.6667" in output
    assert "confusion matrix" in output
    summary = json.loads(summary_path.read_text())
    assert summary["per_class"]["law"]["recall"] == 0.5
    assert summary["per_class"]["biology"]["precision"] == 0.5


def test_eval_rejects_an_unknown_gold_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write_lines(tmp_path / "gold.jsonl", ['{"text": "x", "label": "astrology"}'])
    assert main(["eval", "--task", "domain", str(source)]) == 2
    assert 'line 1: "label" must be one of' in capsys.readouterr().err


def test_eval_breaks_the_figures_down_by_a_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        ("a cell divides", "biology", "textbook"),
        ("a contract", "law", "textbook"),
        ("cells again", "law", "forum"),
        ("no source field", "law", None),
    ]
    lines = [
        json.dumps({"text": t, "label": g, **({"source": s} if s else {})}) for t, g, s in rows
    ]
    source = _write_lines(tmp_path / "gold.jsonl", lines)
    summary_path = tmp_path / "metrics.json"
    code = main(
        ["eval", "--task", "domain", str(source), "--by", "source", "--json", str(summary_path)]
    )
    output = capsys.readouterr().out
    assert code == 0 and "by source:" in output
    groups = json.loads(summary_path.read_text())["by"]["groups"]
    assert {k: (v["examples"], v["accuracy"]) for k, v in groups.items()} == {
        "(none)": (1, 0.0),
        "forum": (1, 0.0),
        "textbook": (2, 1.0),
    }


def test_breakdown_gives_caught_and_flagged_shares_per_group() -> None:
    from vsr.tasks.sequence import breakdown, render_breakdown

    groups = ["pkg:a", "pkg:a", "pkg:a", "pkg:b", "pkg:b"]
    gold = ["jailbreak", "benign", "benign", "prompt_injection", "benign"]
    predicted = ["prompt_injection", "jailbreak", "benign", "benign", "benign"]
    rows = breakdown(groups, gold, predicted, "benign")
    assert rows["pkg:a"]["attack_recall"] == 1.0 and rows["pkg:a"]["false_positive_rate"] == 0.5
    assert rows["pkg:b"]["attack_recall"] == 0.0 and rows["pkg:b"]["false_positive_rate"] == 0.0
    text = render_breakdown("source", rows)
    assert "caught" in text and "pkg:a" in text and "50.0%" in text


def test_eval_of_an_empty_file_is_an_error_not_zero_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write_lines(tmp_path / "gold.jsonl", [])
    assert main(["eval", "--task", "domain", str(source)]) == 2
    captured = capsys.readouterr()
    assert "gold.jsonl: no labelled records" in captured.err and "accuracy" not in captured.out
