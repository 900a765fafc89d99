"""What the survey readers' tests share: a small synthetic wheel of given files, and the (text,
label, kind) rows of the examples a reader returns."""

from __future__ import annotations

import zipfile
from pathlib import Path

from vsr.training.dataset import Example


def wheel(tmp_path: Path, files: dict[str, str]) -> zipfile.ZipFile:
    """A wheel holding ``files`` (name -> text), opened for reading."""
    path = tmp_path / "p.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return zipfile.ZipFile(path)


def rows(examples: list[Example]) -> list[tuple[str, str, str]]:
    """(text, label, kind) of each example."""
    return [(e.text, e.label, e.source.split(":")[2]) for e in examples]
