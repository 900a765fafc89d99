"""The committed package domain files (``vsr.training.domain_packages``) and its pure helpers."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("yaml")

from vsr.tasks.domain import LABELS
from vsr.training.dataset import Example, read_examples
from vsr.training.debian_archives import PackageError, deb_files
from vsr.training.domain_package_readers import _quiz_field
from vsr.training.domain_packages import HELDOUT_SOURCES, _key, split

DATA = Path(__file__).resolve().parents[2] / "data"
TRAINING = DATA / "domain" / "packages.jsonl"
HELDOUT = DATA / "heldout" / "domain_packages.jsonl"
SOURCES = {
    "pkg:fccexam", "pkg:python-doc", "pkg:debian-faq", "pkg:chatterbot-corpus",
    "pkg:bsdgames-quiz", "pkg:gcide",
}  # fmt: skip


@pytest.fixture(scope="module")
def training() -> list[Example]:
    return read_examples(TRAINING)


@pytest.fixture(scope="module")
def heldout() -> list[dict[str, str]]:
    lines = HELDOUT.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_training_records_are_valid(training: list[Example]) -> None:
    assert len(training) > 5000
    for example in training:
        assert example.label in LABELS, example
        assert example.source in SOURCES, example
        assert example.text.strip() and example.group.startswith(example.source), example
    # Every category gets rows; groups stay small enough to split on.
    assert set(LABELS) <= {e.label for e in training}
    assert max(Counter(e.group for e in training).values()) <= 60


def test_heldout_records_are_valid(heldout: list[dict[str, str]]) -> None:
    assert len(heldout) > 300
    for record in heldout:
        assert set(record) == {"text", "label", "source"}, record
        assert record["label"] in LABELS and record["text"].strip(), record
    assert {r["source"] for r in heldout} == HELDOUT_SOURCES


def test_no_heldout_source_in_training(training: list[Example]) -> None:
    assert not {e.source for e in training} & HELDOUT_SOURCES


def test_no_duplicates_within_or_across_files(
    training: list[Example], heldout: list[dict[str, str]]
) -> None:
    train_keys = [_key(e.text) for e in training]
    heldout_keys = [_key(r["text"]) for r in heldout]
    assert len(set(train_keys)) == len(train_keys)
    assert len(set(heldout_keys)) == len(heldout_keys)
    assert not set(train_keys) & set(heldout_keys)
    # Nor with the other domain data, training or held out.
    others: set[str] = set()
    for path in sorted((DATA / "domain").glob("*.jsonl")):
        if path != TRAINING:
            others |= {_key(json.loads(x)["text"]) for x in path.read_text().splitlines() if x}
    assert not others & (set(train_keys) | set(heldout_keys))


def test_split_drops_known_and_repeated_texts_and_holds_sources_out() -> None:
    rows = [
        Example("What is an ohm?", "engineering", "g", "pkg:fccexam"),
        Example("what is an OHM", "engineering", "g", "pkg:fccexam"),
        Example("How do I copy a file?", "computer science", "g", "pkg:debian-faq"),
        Example("Known question?", "law", "g", "pkg:gcide"),
    ]
    train, heldout, dropped = split(rows, {_key("known question")})
    assert [e.text for e in train] == ["What is an ohm?"]
    assert [e.source for e in heldout] == ["pkg:debian-faq"]
    assert dropped == Counter({"pkg:fccexam": 1, "pkg:gcide": 1})
    with pytest.raises(ValueError, match="not a domain label"):
        split([Example("x?", "astrology", "g", "pkg:gcide")], set())


def test_quiz_field_takes_the_first_alternative_and_keeps_optional_parts() -> None:
    assert _quiz_field("{G{eorge} }Washington") == "George Washington"
    assert _quiz_field("{A{aron} }Burr|{G{eorge} }Clinton") == "Aaron Burr"


def _deb(tmp_path: Path, files: dict[str, bytes]) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    payload = buffer.getvalue()
    header = f"{'data.tar.gz':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(payload):<10}`\n"
    path = tmp_path / "x.deb"
    path.write_bytes(b"!<arch>\n" + header.encode() + payload + b"\n" * (len(payload) % 2))
    return path


def test_deb_files_reads_members_and_rejects_bad_archives(tmp_path: Path) -> None:
    deb = _deb(tmp_path, {"./usr/share/a.txt": b"one", "./usr/share/b.bin": b"two"})
    assert list(deb_files(deb, r"\.txt$")) == [("./usr/share/a.txt", b"one")]
    with pytest.raises(PackageError, match="no file matches"):
        list(deb_files(deb, r"\.json$"))
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"PK\x03\x04 not a deb")
    with pytest.raises(PackageError, match="not a Debian package"):
        list(deb_files(bad, "."))
