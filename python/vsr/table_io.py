"""Rows in and out of JSONL, CSV and Parquet files, streamed in batches (constant memory).

``vsr classify`` and ``vsr route --input`` read prompts and write results through this module, so
a file of millions of logged prompts never has to fit in memory: rows are read a batch at a time
(Parquet by record batch, JSONL and CSV line by line) and results are appended as they come.

The format follows the file name (``.csv``, ``.parquet``/``.pq``, anything else JSONL; ``-`` is
JSONL on stdin/stdout) unless named. Nested values (entity lists, request bodies, header
maps) are written as JSON text in CSV and Parquet, whose columns are flat.

Text files are UTF-8, with or without a byte order mark; a byte that is not UTF-8 is an error
naming the line, and JSON's lone surrogate escapes become U+FFFD (as in the router's bodies).
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from vsr.wire import replace_lone_surrogates

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
# Where csv.DictReader puts the cells of a row beyond the header's columns.
_SURPLUS = "\x00surplus"
# Prompts longer than csv's default cell limit (128 KiB) are ordinary in logs of documents.
_CSV_CELL_LIMIT = 2**31 - 1


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
        if explicit == "parquet" and str(path) == STDIO:  # its footer is read first
            raise TableError("Parquet needs a file, not stdin or stdout ('-')")
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
        return sum(1 for _, line in text_lines(path) if line.strip())
    return sum(1 for _ in iter_rows(path, fmt))


def check_distinct(source: Path | str, target: Path | str) -> None:
    """Refuse an output that is the input file: opening it for writing would empty the input."""
    if STDIO in (str(source), str(target)):
        return
    try:
        same = os.path.samefile(source, target)
    except OSError:  # one of them does not exist (yet): not the same file
        return
    if same:
        raise TableError(f"{target}: the output is the input file; write to another file")


def text_lines(path: Path | str) -> Iterator[tuple[int, str]]:
    """``(number, line)`` for each line of a UTF-8 file (``-``: stdin), numbered from 1.

    A byte order mark before the first line is dropped; a line that is not UTF-8 is a TableError
    naming it (read as bytes and decoded line by line, so the number is exact).
    """
    try:
        handle = sys.stdin.buffer if str(path) == STDIO else open(path, "rb")  # noqa: SIM115
    except OSError as error:
        raise TableError(f"{path}: cannot read ({error.strerror or error})") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise TableError(
                    f"{path}: line {number}: not UTF-8 text "
                    f"(byte 0x{raw[error.start]:02x} at column {error.start + 1})"
                ) from None
            yield number, line


def iter_rows(
    path: Path | str, fmt: Format, *, batch_size: int = 1024, skip_blank: bool = False
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for every row, in order; ``where`` is ``line N`` (JSONL) or ``row N``.

    JSONL lines must be JSON objects; a blank line is an error unless ``skip_blank``.
    """
    if fmt == "parquet":
        yield from _parquet_rows(path, batch_size)
        return
    if fmt == "csv":
        yield from _csv_rows(path)
        return
    for number, raw in text_lines(path):
        if not raw.strip():
            if skip_blank:
                continue
            raise TableError(f"{path}: line {number}: empty line (expected a JSON object)")
        yield f"line {number}", _json_object(raw, path, number)


def _csv_rows(path: Path | str) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        handle = (
            sys.stdin if str(path) == STDIO else open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115
        )
    except OSError as error:
        raise TableError(f"{path}: cannot read ({error.strerror or error})") from None
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_CELL_LIMIT))
    number = 0
    with handle:
        reader = csv.DictReader(handle, restkey=_SURPLUS)
        try:
            for number, row in enumerate(reader, start=1):
                surplus = row.pop(_SURPLUS, None)
                if surplus is not None:
                    columns = len(reader.fieldnames or ())
                    raise TableError(
                        f"{path}: row {number}: {columns + len(surplus)} cells, "
                        f"the header has {columns}"
                    )
                yield f"row {number}", row
        except UnicodeDecodeError:
            raise TableError(f"{path}: not UTF-8 text (after row {number})") from None
        except csv.Error as error:
            raise TableError(f"{path}: row {number + 1}: not valid CSV ({error})") from None


def json_row(raw: str) -> dict[str, Any]:
    """One JSONL line as a dict; ValueError says why not. Lone surrogates become U+FFFD."""
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    row: dict[str, Any] = _without_surrogates(value) if "\\u" in raw else value
    return row


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return replace_lone_surrogates(value)  # as the router does with bodies
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    return value


def _json_object(raw: str, path: Path | str, number: int) -> dict[str, Any]:
    try:
        return json_row(raw)
    except json.JSONDecodeError as error:
        raise TableError(f"{path}: line {number}: not valid JSON ({error})") from None
    except ValueError as error:
        raise TableError(f"{path}: line {number}: {error}") from None


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
        return _json_text(value)
    return value


def _json_text(value: Any) -> str:
    # Values JSON has no type for (Parquet's dates, timestamps, decimals, bytes) are written as
    # the text a CSV cell holds for them.
    return json.dumps(value, ensure_ascii=False, default=str)


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
        try:
            if fmt == "parquet":  # written once the first rows give the schema; fail now
                open(path, "wb").close()
            else:
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
            # The same columns in any order (JSON objects keep no order): cells go by name.
            if self.format != "jsonl" and row.keys() != set(self._columns):
                raise TableError(
                    f"{self.path}: row {self.rows + offset + 1} has columns {list(row)}, "
                    f"not the first row's {self._columns}"
                )
        if self.format == "jsonl":
            assert self._handle is not None
            for row in rows:
                self._handle.write(_json_text(row) + "\n")
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
        try:
            if self._schema is None:
                inferred = pa.Table.from_pylist(flat).schema
                fields = [
                    pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f
                    for f in inferred
                ]
                self._schema = pa.schema(fields)
            table = pa.Table.from_pylist(flat, schema=self._schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as error:
            # A column of ints and strings, or an int beyond 64 bits: JSON allows both.
            message = (
                f"{self.path}: the rows do not fit one Parquet schema ({error}); "
                "a row does not fit the first rows' types: JSONL or CSV output takes them"
            )
            raise TableError(message) from None
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, self._schema)
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
