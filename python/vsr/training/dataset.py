"""Labelled examples as JSONL, and splits that hold out whole groups rather than random rows.

An example's ``group`` names what generated it (a template, a topic, a source file): a validation
split that holds out whole groups measures whether the head learned the label or memorised a
template, which a random split of rows from the same template cannot tell.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from vsr.tasks import TaskError
from vsr.tasks.records import read_jsonl

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str
    group: str  # the template/topic/source that produced it: the unit of a held-out split
    source: str  # provenance, e.g. "pyrit:adv_bench" or "vsr:domain_generator"

    def to_record(self) -> dict[str, str]:
        return asdict(self)


def write_examples(path: Path, examples: Iterable[Example]) -> int:
    """Write examples as JSONL (sorted keys, UTF-8, "\\n" endings) so files diff cleanly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for example in examples:
            handle.write(json.dumps(example.to_record(), ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    return count


def write_records(path: Path, records: Iterable[dict[str, str]], gz: bool = False) -> int:
    """Write records as JSONL (sorted keys, UTF-8, "\\n" endings), gzip-compressed with a fixed
    timestamp when ``gz``, so a rebuilt data file is the same bytes and diffs stay empty."""
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records]
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.GzipFile(path, "wb", mtime=0) as raw:
            raw.write("".join(lines).encode())
    else:
        path.write_text("".join(lines), encoding="utf-8")
    return len(lines)


def read_examples(path: Path) -> list[Example]:
    """Read a training JSONL file; every line needs text, label, group and source."""
    examples = []
    for record in read_jsonl(path):
        missing = [key for key in ("label", "group", "source") if key not in record.fields]
        if missing:
            raise TaskError(f"{path}:{record.line}: missing field(s) {', '.join(missing)}")
        fields = record.fields
        examples.append(
            Example(record.text, str(fields["label"]), str(fields["group"]), str(fields["source"]))
        )
    return examples


def group_in_validation(group: str, fraction: float, salt: str) -> bool:
    """Whether ``group`` is held out: a hash, so the split is stable whatever the order of rows."""
    digest = hashlib.sha256(f"{salt}\0{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_by_group(
    examples: Sequence[Example], fraction: float, salt: str
) -> tuple[list[Example], list[Example]]:
    """(train, validation), holding out whole groups; every label keeps examples in train."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    train: list[Example] = []
    validation: list[Example] = []
    for example in examples:
        held_out = group_in_validation(example.group, fraction, salt)
        (validation if held_out else train).append(example)
    missing = sorted({e.label for e in examples} - {e.label for e in train})
    if missing:
        raise TaskError(f"split left no training examples for label(s) {', '.join(missing)}")
    return train, validation


def cap_per_label(examples: Sequence[Example], limit: int | None) -> list[Example]:
    """Keep at most ``limit`` examples of each label, the first ones in file order."""
    if limit is None:
        return list(examples)
    counts: dict[str, int] = {}
    kept = []
    for example in examples:
        if counts.get(example.label, 0) < limit:
            counts[example.label] = counts.get(example.label, 0) + 1
            kept.append(example)
    return kept


def sample_in_order(items: Sequence[T], limit: int, rng: random.Random) -> list[T]:
    """At most ``limit`` of ``items``: all of them, or a seeded sample kept in their order (one
    ``rng.sample`` call, so builders that cap this way rebuild the same files)."""
    if len(items) <= limit:
        return list(items)
    keep = set(rng.sample(range(len(items)), limit))
    return [item for i, item in enumerate(items) if i in keep]
