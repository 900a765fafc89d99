"""``vsr.table_io``: JSONL, CSV and Parquet rows, read in batches and written back."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vsr.table_io import TableError, TableWriter, count_rows, iter_rows, table_format

ROWS = [
    {"id": 1, "text": "What is 2+2?", "entities": [{"label": "X", "start": 0, "end": 1}]},
    {"id": 2, "text": 'a "quoted", comma\\nline', "entities": []},
    {"id": 3, "text": "ünïcode ✓", "entities": []},
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.jsonl", "jsonl"), ("a.CSV", "csv"), ("a.parquet", "parquet"), ("a.pq", "parquet")],
)
def test_format_from_the_name(name: str, expected: str) -> None:
    assert table_format(name) == expected
    assert table_format("-") == table_format("prompts.txt") == "jsonl"
    assert table_format("a.csv", "parquet") == "parquet"
    with pytest.raises(TableError, match="unknown format 'xlsx'"):
        table_format("a.csv", "xlsx")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"rows.{fmt}"
    with TableWriter(path, fmt) as writer:  # type: ignore[arg-type]
        writer.write(ROWS[:2])
        writer.write(ROWS[2:])
    assert writer.rows == 3 and count_rows(path, fmt) == 3  # type: ignore[arg-type]
    read = [row for _, row in iter_rows(path, fmt, batch_size=2)]  # type: ignore[arg-type]
    if fmt == "jsonl":
        assert read == ROWS
        return
    # Flat formats: nested values are JSON text (and CSV cells are text).
    assert [row["text"] for row in read] == [row["text"] for row in ROWS]
    assert [json.loads(row["entities"]) for row in read] == [row["entities"] for row in ROWS]
    assert [int(row["id"]) for row in read] == [1, 2, 3]


def test_parquet_is_read_batch_by_batch_and_counted_from_its_footer(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    pq.write_table(
        pa.table({"text": [f"prompt {i}" for i in range(5000)]}), path, row_group_size=500
    )
    rows = iter_rows(path, "parquet", batch_size=100)
    first = next(rows)
    assert first == ("row 1", {"text": "prompt 0"})
    assert count_rows(path, "parquet") == 5000
    assert sum(1 for _ in rows) == 4999


def test_parquet_columns_empty_at_first_are_text(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    with TableWriter(path, "parquet") as writer:
        writer.write([{"decision": None, "score": 0.5}])
        writer.write([{"decision": "math", "score": 0.9}])
    table = pq.read_table(path)
    assert table.column("decision").to_pylist() == [None, "math"]
    assert pa.types.is_string(table.schema.field("decision").type)


def test_errors_name_the_file_and_row(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "a"}\n[1, 2]\n')
    with pytest.raises(TableError, match=r"in\.jsonl: line 2: expected a JSON object, got list"):
        list(iter_rows(source, "jsonl"))
    with TableWriter(tmp_path / "o.csv", "csv") as writer:
        writer.write([{"a": 1}])
        with pytest.raises(TableError, match="row 2 has columns"):
            writer.write([{"b": 2}])
    with pytest.raises(TableError, match="cannot read"):
        list(iter_rows(tmp_path / "missing.jsonl", "jsonl"))
