"""Rows in and out of JSONL, CSV and Parquet files, streamed in batches (constant memory).

``vsr classify`` and ``vsr route --input`` read prompts and write results through this module, so
a file of millions of logged prompts never has to fit in memory: rows are read a batch at a time
(Parquet by record batch, JSONL and CSV line by line) and results are appended as they come.

The format follows the file name (``.csv``, ``.parquet``/``.pq``, anything else JSONL; ``-`` is
JSONL on stdin/stdout) unless named. Nested values (entity lists, request bodies, header
maps) are written as JSON text in CSV and Parquet, whose columns are flat.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "parquet")
_SUFFIXES: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
STDIO = "-"


class TableError(ValueError):
    """A file that cannot be read or written as a table; the message names the file and row."""


def _pyarrow() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``; Parquet support is the optional extra ``vsr[parquet]``."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise TableError("Parquet files need pyarrow: pip install 'vsr[parquet]'") from None
    return pyarrow, pyarrow.parquet


def table_format(path: Path | str, explicit: str | None = None) -> Format:
    """The format named, else the one the file name says; ``-`` and other names are JSONL."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise TableError(f"unknown format {explicit!r}; known: {', '.join(FORMATS)}")
        return explicit
    if str(path) == STDIO:
        return "jsonl"
    return _SUFFIXES.get(Path(path).suffix.lower(), "jsonl")


def count_rows(path: Path | str, fmt: Format) -> int | None:
    """Rows in the file without loading it (Parquet: from its footer); None for stdin."""
    if str(path) == STDIO:
        return None
    if fmt == "parquet":
        _, pq = _pyarrow()
        return int(pq.ParquetFile(path).metadata.num_rows)
    if fmt == "jsonl":  # non-blank lines, unparsed (a bad line is the reader's to report)
        with open(path, encoding="utf-8") as handle:
            return sum(1 for line in handle if line.strip())
    return sum(1 for _ in iter_rows(path, fmt))


def iter_rows(
    path: Path | str, fmt: Format, *, batch_size: int = 1024, skip_blank: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for every row, in order; ``where`` is ``line N`` (JSONL) or ``row N``.

    JSONL lines must be JSON objects; a blank line is an error unless ``skip_blank``.
    """
    if fmt == "parquet":
        yield from _parquet_rows(path, batch_size)
        return
    try:
        handle = sys.stdin if str(path) == STDIO else open(path, encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as error:
        raise TableError(f"{path}: cannot read ({error.strerror or error})") from None
    with handle:
        if fmt == "csv":
            for number, row in enumerate(csv.DictReader(handle), start=1):
                yield f"row {number}", dict(row)
            return
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                if skip_blank:
                    continue
                raise TableError(f"{path}: line {number}: empty line (expected a JSON object)")
            yield f"line {number}", _json_object(raw, path, number)


def _json_object(raw: str, path: Path | str, number: int) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise TableError(f"{path}: line {number}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        kind = type(value).__name__
        raise TableError(f"{path}: line {number}: expected a JSON object, got {kind}")
    return value


def _parquet_rows(path: Path | str, batch_size: int) -> Iterator[tuple[str, dict[str, Any]]]:
    _, pq = _pyarrow()
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as error:
        raise TableError(f"{path}: cannot read as Parquet ({error})") from None
    number = 0
    for batch in parquet.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            number += 1
            yield f"row {number}", row


def text_of(row: Mapping[str, Any], column: str, where: str, path: Path | str) -> str:
    """The row's text column, which must be a string."""
    value = row.get(column)
    if not isinstance(value, str):
        raise TableError(f'{path}: {where}: "{column}" must be a string')
    return value


def _flat(value: Any) -> Any:
    """Columns of CSV and Parquet hold scalars: nested values become JSON text."""
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False)
    return value


class TableWriter:
    """Appends rows to a JSONL, CSV or Parquet file (``-``: JSONL on stdout).

    The CSV header and the Parquet schema come from the first rows written; later rows must
    have the same columns. Parquet columns that are empty in the first batch are typed as text.
    """

    def __init__(self, path: Path | str, fmt: Format) -> None:
        self.path = path
        self.format = fmt
        self.rows = 0
        self._columns: list[str] | None = None
        self._handle: IO[str] | None = None
        self._csv: Any = None
        self._parquet: Any = None
        self._schema: Any = None
        if fmt != "parquet":
            try:
                self._handle = (
                    sys.stdout
                    if str(path) == STDIO
                    else open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
                )
            except OSError as error:
                raise TableError(f"{path}: cannot write ({error.strerror or error})") from None

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if self._columns is None:
            self._columns = list(rows[0])
        for offset, row in enumerate(rows):
            if list(row) != self._columns and self.format != "jsonl":
                raise TableError(
                    f"{self.path}: row {self.rows + offset + 1} has columns {list(row)}, "
                    f"not the first row's {self._columns}"
                )
        if self.format == "jsonl":
            assert self._handle is not None
            for row in rows:
                self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif self.format == "csv":
            self._write_csv(rows)
        else:
            self._write_parquet(rows)
        self.rows += len(rows)

    def _write_csv(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if self._csv is None:
            self._csv = csv.DictWriter(self._handle, fieldnames=self._columns)  # type: ignore[arg-type]
            self._csv.writeheader()
        self._csv.writerows({key: _flat(value) for key, value in row.items()} for row in rows)

    def _write_parquet(self, rows: Sequence[Mapping[str, Any]]) -> None:
        pa, pq = _pyarrow()
        flat = [{key: _flat(value) for key, value in row.items()} for row in rows]
        if self._schema is None:
            inferred = pa.Table.from_pylist(flat).schema
            fields = [
                pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in inferred
            ]
            self._schema = pa.schema(fields)
            self._parquet = pq.ParquetWriter(self.path, self._schema)
        try:
            table = pa.Table.from_pylist(flat, schema=self._schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            message = f"{self.path}: a row does not fit the first rows' types ({error})"
            raise TableError(message) from None
        self._parquet.write_table(table)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        elif self.format == "parquet" and self._schema is None:
            # No rows: still leave a valid (empty) Parquet file behind.
            pa, pq = _pyarrow()
            pq.write_table(pa.table({}), self.path)
        if self._handle is not None and self._handle is not sys.stdout:
            self._handle.close()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
