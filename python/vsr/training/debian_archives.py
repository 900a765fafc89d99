"""Files read straight out of a Debian package (``.deb``), without installing it."""

from __future__ import annotations

import gzip
import io
import lzma
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path


class PackageError(ValueError):
    """An archive that is not the expected package or lacks the expected files."""


def deb_files(path: Path, pattern: str) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of the files of a .deb's data archive whose path matches ``pattern``."""
    data = path.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise PackageError(f"{path}: not a Debian package (no ar header)")
    offset, payload = 8, None
    while offset + 60 <= len(data):
        header = data[offset : offset + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        if name.startswith("data.tar"):
            payload = (name, data[offset + 60 : offset + 60 + size])
            break
        offset += 60 + size + (size % 2)
    if payload is None:
        raise PackageError(f"{path}: no data.tar member")
    name, raw = payload
    if name.endswith(".xz"):
        raw = lzma.decompress(raw)
    elif name.endswith(".gz"):
        raw = gzip.decompress(raw)
    elif name != "data.tar":
        raise PackageError(f"{path}: unsupported data member {name}")
    regex = re.compile(pattern)
    found = False
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if member.isfile() and regex.search(member.name):
                handle = archive.extractfile(member)
                assert handle is not None
                found = True
                yield member.name, handle.read()
    if not found:
        raise PackageError(f"{path}: no file matches {pattern!r}")
