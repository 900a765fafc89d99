"""``vsr classify`` and ``vsr route --input`` on CSV and Parquet, with a fake task (no model)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.unit.test_classify_cli import FakeDomainTask, main
from tests.unit.test_cli_route import POLICY

from vsr.tasks import Task, domain

TEXTS = ["what is a cell membrane", "is this contract valid", "hello"] * 100


@pytest.fixture(autouse=True)
def fake_task(monkeypatch: pytest.MonkeyPatch) -> None:
    task: Task = FakeDomainTask(domain.TASK.name, domain.TASK.summary, domain.LABELS)
    monkeypatch.setattr("vsr.commands.classify.get_task", lambda name: task)


def test_classify_parquet_to_parquet_streams_with_progress_and_throughput(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "prompts.parquet"
    table = pa.table({"id": list(range(len(TEXTS))), "prompt": TEXTS})
    pq.write_table(table, source, row_group_size=64)
    out = tmp_path / "labelled.parquet"
    argv = ["classify", "--task", "domain", str(source), "--output", str(out)]
    assert main([*argv, "--text-column", "prompt", "--batch-size", "7"]) == 0
    labelled = pq.read_table(out).to_pylist()
    assert [row["id"] for row in labelled] == list(range(len(TEXTS)))
    assert [row["label"] for row in labelled[:3]] == ["biology", "law", "other"]
    assert labelled[0]["score"] == pytest.approx(0.87) and labelled[0]["prompt"] == TEXTS[0]
    err = capsys.readouterr().err
    assert "300/300" in err  # the progress bar knew its total
    assert "vsr classify: 300 texts in" in err and "texts/s" in err and str(out) in err


def test_classify_csv_to_jsonl_and_a_missing_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "prompts.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows([[i, text] for i, text in enumerate(TEXTS[:3])])
    out = tmp_path / "out.jsonl"
    assert main(["classify", "--task", "domain", str(source), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[1] == {"id": "1", "text": TEXTS[1], "label": "law", "score": pytest.approx(0.87)}
    code = main(
        ["classify", "--task", "domain", str(source), "--output", str(tmp_path / "x.csv"),
         "--text-column", "body"]
    )  # fmt: skip
    assert code == 2 and 'row 1: "body" must be a string' in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()  # checked before anything is written


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def test_route_csv_prompts_to_parquet(
    policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "prompts.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "question", "model"])
        writer.writerows([[0, "What is 2+2?", ""], [1, "Hello there", ""], [2, "7*6", "general"]])
    out = tmp_path / "routed.parquet"
    argv = ["route", "--config", str(policy), "--input", str(source), "--output", str(out)]
    assert main([*argv, "--text-column", "question", "--batch-size", "2"]) == 0
    rows = pq.read_table(out).to_pylist()
    assert [row["id"] for row in rows] == ["0", "1", "2"]  # CSV cells are text; order kept
    assert [row["model"] for row in rows] == ["mathematician", "general", "general"]
    assert [row["decision"] for row in rows] == ["math", None, "math"]
    assert rows[2]["auto"] is False  # the row's own model column was an explicit choice
    assert json.loads(rows[0]["headers"])["x-selected-model"] == "mathematician"
    assert "vsr route: 3 requests in" in capsys.readouterr().err


def test_route_batch_equals_single_requests(
    policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = [
        {"model": "auto", "messages": [{"role": "user", "content": f"{i} + {i}"}]} for i in range(5)
    ]
    source = tmp_path / "bodies.jsonl"
    source.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    out = tmp_path / "routed.jsonl"
    assert (
        main(["route", "--config", str(policy), "--input", str(source), "--output", str(out)]) == 0
    )
    batch = [json.loads(line) for line in out.read_text().splitlines()]
    single = tmp_path / "one.json"
    capsys.readouterr()
    for body, routed in zip(bodies, batch, strict=True):
        single.write_text(json.dumps(body))
        assert main(["route", "--config", str(policy), "--request", str(single)]) == 0
        alone = json.loads(capsys.readouterr().out)
        assert {**routed, "elapsed_ms": 0} == {**alone, "elapsed_ms": 0}
        assert routed["model"] == "mathematician" and routed["body"]["model"] == "mathematician"
