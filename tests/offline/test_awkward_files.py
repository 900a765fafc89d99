"""``vsr classify`` / ``vsr eval`` / ``vsr route --input`` on the files people actually have.

Byte order marks (Excel's CSV, Notepad's JSONL), bytes that are not UTF-8, JSON's lone surrogate
escapes, CSV rows with more cells than the header, Parquet columns JSON cannot spell, an output
that is the input, an output directory that does not exist: each is read, or refused with a
message naming the file and an exit status, never a traceback or a silently emptied file.
"""

from __future__ import annotations

import datetime
import decimal
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.unit.test_classify_cli import FakeDomainTask, main
from tests.unit.test_cli_route import POLICY

from vsr.table_io import TableError, count_rows, iter_rows
from vsr.tasks import Task, domain

BOM = b"\xef\xbb\xbf"


@pytest.fixture(autouse=True)
def fake_task(monkeypatch: pytest.MonkeyPatch) -> None:
    task: Task = FakeDomainTask(domain.TASK.name, domain.TASK.summary, domain.LABELS)
    monkeypatch.setattr("vsr.commands.classify.get_task", lambda name: task)
    monkeypatch.setattr("vsr.commands.eval.get_task", lambda name: task)


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def _classify(source: Path, out: Path, *extra: str) -> int:
    return main(["classify", "--task", "domain", str(source), "--output", str(out), *extra])


def test_a_byte_order_mark_is_not_part_of_the_first_row(tmp_path: Path) -> None:
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_bytes(BOM + b'{"text": "a cell"}\r\n{"text": "a contract"}\r\n')
    csv_file = tmp_path / "in.csv"
    csv_file.write_bytes(BOM + b"text,id\r\na cell,1\r\na contract,2\r\n")
    for source in (jsonl, csv_file):
        fmt = "csv" if source.suffix == ".csv" else "jsonl"
        assert [row["text"] for _, row in iter_rows(source, fmt)] == ["a cell", "a contract"]  # type: ignore[arg-type]
        out = tmp_path / f"out-{fmt}.jsonl"
        assert _classify(source, out) == 0
        labels = [json.loads(line)["label"] for line in out.read_text().splitlines()]
        assert labels == ["biology", "law"]
    gold = tmp_path / "gold.jsonl"
    gold.write_bytes(BOM + b'{"text": "a cell", "label": "biology"}\n')
    assert main(["eval", "--task", "domain", str(gold)]) == 0


def test_bytes_that_are_not_utf8_are_an_error_naming_the_file_and_line(
    tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(TableError, match=r"in\.jsonl: line 2: not UTF-8"):
        list(iter_rows(source, "jsonl"))
    with pytest.raises(TableError, match=r"in\.jsonl: line 2: not UTF-8"):
        count_rows(source, "jsonl")
    assert _classify(source, tmp_path / "o.jsonl") == 2
    assert "in.jsonl: line 2: not UTF-8" in capsys.readouterr().err
    assert main(["eval", "--task", "domain", str(source)]) == 2
    assert "in.jsonl: line 2: not UTF-8" in capsys.readouterr().err
    route = ["route", "--config", str(policy), "--input", str(source)]
    assert main([*route, "--output", str(tmp_path / "r.jsonl")]) == 2
    assert "in.jsonl: line 2: not UTF-8" in capsys.readouterr().err
    csv_file = tmp_path / "in.csv"
    csv_file.write_bytes(b"text\nfine\ncaf\xe9\n")
    assert _classify(csv_file, tmp_path / "o.jsonl") == 2
    assert "in.csv: not UTF-8" in capsys.readouterr().err


def test_a_missing_input_is_an_error_for_route(
    tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.jsonl"
    assert main(["route", "--config", str(policy), "--input", str(missing)]) == 2
    assert "missing.jsonl: cannot read (No such file or directory)" in capsys.readouterr().err


def test_the_output_may_not_be_the_input(
    tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    content = '{"text": "a cell"}\n{"text": "2 + 2"}\n'
    source.write_text(content)
    assert _classify(source, source) == 2
    assert "is the input" in capsys.readouterr().err
    same = tmp_path / "." / "in.jsonl"
    assert main(["route", "--config", str(policy), "--input", str(source), "--output", str(same)])
    assert "is the input" in capsys.readouterr().err
    assert source.read_text() == content  # untouched


def test_a_csv_row_with_more_cells_than_the_header_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("text,id\na cell,1\na contract,2,surplus\n")
    with pytest.raises(TableError, match=r"in\.csv: row 2: 3 cells, the header has 2"):
        list(iter_rows(source, "csv"))
    assert _classify(source, tmp_path / "o.jsonl") == 2
    assert "row 2: 3 cells, the header has 2" in capsys.readouterr().err


def test_parquet_values_json_cannot_spell_are_written_as_text(tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    table = pa.table(
        {
            "text": ["a cell"],
            "at": pa.array([datetime.datetime(2024, 5, 3, 12, 0)], pa.timestamp("s")),
            "day": [datetime.date(2024, 5, 3)],
            "price": pa.array([decimal.Decimal("1.50")], pa.decimal128(5, 2)),
            "raw": pa.array([b"\x00\xff"], pa.binary()),
            "tags": [[datetime.date(2024, 5, 3)]],
        }
    )
    pq.write_table(table, source)
    for suffix in ("jsonl", "csv", "parquet"):
        out = tmp_path / f"out.{suffix}"
        assert _classify(source, out) == 0, suffix
    row = json.loads((tmp_path / "out.jsonl").read_text())
    assert row["at"] == "2024-05-03 12:00:00" and row["day"] == "2024-05-03"
    assert row["price"] == "1.50" and row["tags"] == ["2024-05-03"] and row["label"] == "biology"


def test_lone_surrogate_escapes_are_replaced_and_the_row_kept(tmp_path: Path, policy: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"text": "a cell \\ud800", "id": "a"}\n{"text": "2 + 2 \\udc80", "id": "\\ud83d"}\n'
    )
    for suffix in ("jsonl", "csv", "parquet"):
        assert _classify(source, tmp_path / f"out.{suffix}") == 0, suffix
        route = ["route", "--config", str(policy), "--input", str(source)]
        assert main([*route, "--output", str(tmp_path / f"routed.{suffix}")]) == 0, suffix
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["text"] for row in rows] == ["a cell \ufffd", "2 + 2 \ufffd"]
    assert rows[1]["id"] == "\ufffd"
    routed = [json.loads(line) for line in (tmp_path / "routed.jsonl").read_text().splitlines()]
    assert [row["model"] for row in routed] == ["general", "mathematician"]


def test_an_output_directory_that_does_not_exist_is_an_error(
    tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "a cell"}\n')
    for suffix in ("jsonl", "csv", "parquet"):
        out = tmp_path / "nowhere" / f"out.{suffix}"
        assert _classify(source, out) == 2, suffix
        assert f"{out}: cannot write" in capsys.readouterr().err
        route = ["route", "--config", str(policy), "--input", str(source)]
        assert main([*route, "--output", str(out)]) == 2, suffix
        assert f"{out}: cannot write" in capsys.readouterr().err


def test_eval_json_that_cannot_be_written_is_an_error_before_scoring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"text": "a cell", "label": "biology"}\n')
    out = tmp_path / "nowhere" / "metrics.json"
    assert main(["eval", "--task", "domain", str(gold), "--json", str(out)]) == 2
    captured = capsys.readouterr()
    assert f"{out}: cannot write" in captured.err
    assert "accuracy" not in captured.out  # refused before the model ran


def test_a_csv_cell_longer_than_csv_default_limit_is_read(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    document = "a cell " * 40_000  # 280 KB: csv's default cell limit is 128 KiB
    source.write_text(f"text\n{document}\n")
    out = tmp_path / "out.jsonl"
    assert _classify(source, out) == 0
    assert json.loads(out.read_text())["text"] == document


def test_ray_batches_refuse_a_text_that_is_not_a_string(
    monkeypatch: pytest.MonkeyPatch, policy: Path
) -> None:
    # vsr classify refuses a null text; the Ray callables labelled the string "None" instead.
    import numpy as np

    from vsr.integrations.ray import Classifier, RouterBatch

    task = FakeDomainTask(domain.TASK.name, domain.TASK.summary, domain.LABELS)
    monkeypatch.setattr("vsr.tasks.get_task", lambda name: task)
    batch = {"id": np.array([1, 2, 3]), "text": np.array(["a cell", None, 5], dtype=object)}
    labelled = Classifier("domain")({"text": np.array(["a cell", "a contract"], dtype=object)})
    assert list(labelled["label"]) == ["biology", "law"]
    for call in (Classifier("domain"), RouterBatch(policy)):
        with pytest.raises(TypeError, match=r"row 2 of the batch: 'text' must be a string, got"):
            call(batch)


def test_jsonl_keys_in_another_order_still_make_one_csv_or_parquet_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "a cell", "id": 1}\n{"id": 2, "text": "a contract"}\n')
    for suffix in ("csv", "parquet"):
        out = tmp_path / f"out.{suffix}"
        assert _classify(source, out) == 0, suffix
        rows = [{"id": 1, "label": "biology"}, {"id": 2, "label": "law"}]
        if suffix == "parquet":
            read = pq.read_table(out).to_pylist()
            assert [{"id": r["id"], "label": r["label"]} for r in read] == rows
    # Different columns cannot share a CSV header: refused before the model runs, nothing written.
    source.write_text('{"text": "a cell", "id": 1}\n{"text": "a contract"}\n')
    out = tmp_path / "other.csv"
    assert _classify(source, out) == 2
    assert "line 2 has columns ['text'], not the first row's ['id', 'text']" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_parquet_through_stdin_or_stdout_is_refused_not_a_file_named_dash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "a cell"}\n')
    assert _classify(source, Path("-"), "--output-format", "parquet") == 2
    assert "Parquet needs a file" in capsys.readouterr().err
    assert not (tmp_path / "-").exists()
    assert _classify(Path("-"), tmp_path / "o.jsonl", "--input-format", "parquet") == 2
    assert "Parquet needs a file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "lines",
    [
        ['{"text": "a cell", "id": 1}', '{"text": "a contract", "id": "x"}'],  # one batch
        ['{"text": "a cell", "id": 123456789012345678901234567890}'],  # beyond int64
    ],
)
def test_parquet_columns_json_gives_mixed_or_huge_values_are_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    assert _classify(source, tmp_path / "out.parquet") == 2
    assert "out.parquet: the rows do not fit one Parquet schema" in capsys.readouterr().err


def test_eval_json_may_not_be_the_labelled_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gold = tmp_path / "gold.jsonl"
    content = '{"text": "a cell", "label": "biology"}\n'
    gold.write_text(content)
    assert main(["eval", "--task", "domain", str(gold), "--json", str(gold)]) == 2
    assert "is the input" in capsys.readouterr().err
    assert gold.read_text() == content
