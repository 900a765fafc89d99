"""Reading JSONL files of texts (and gold fields) for ``vsr classify``, ``vsr eval`` and training.

Each line is a JSON object with a string ``text``; other fields (an id, a gold ``label``, gold
``entities``) travel along in ``LabelledRecord.fields``. Errors name the file and line.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vsr.tasks import LabelledRecord, TaskError


def iter_jsonl(path: Path) -> Iterator[LabelledRecord]:
    """Yield one record per non-blank line; a bad line raises TaskError naming its number.

    Each line must be a JSON object with a string ``text``.
    """
    try:
        # ``.jsonl.gz``: the larger training files are committed compressed.
        handle = (
            gzip.open(path, "rt", encoding="utf-8")  # noqa: SIM115 (closed by the with below)
            if path.suffix == ".gz"
            else path.open(encoding="utf-8")
        )
    except OSError as error:
        raise TaskError(f"{path}: cannot read ({error.strerror or error})") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            yield parse_line(raw, number, path)


def read_jsonl(path: Path) -> list[LabelledRecord]:
    return list(iter_jsonl(path))


def parse_line(raw: str, number: int, path: Path | str) -> LabelledRecord:
    try:
        value: Any = json.loads(raw)
    except ValueError as error:
        raise TaskError(f"{path}: line {number}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise TaskError(
            f"{path}: line {number}: expected a JSON object, got {type(value).__name__}"
        )
    text = value.get("text")
    if not isinstance(text, str):
        raise TaskError(f'{path}: line {number}: "text" must be a string')
    return LabelledRecord(number, text, value)
