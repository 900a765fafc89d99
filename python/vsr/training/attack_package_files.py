"""What the attack package readers share: a wheel's (or an npm tarball's, ``TarArchive``) files
as text, JSONL or by name pattern, the example each row becomes (``package_example``, canary slots
filled) and ``fill_request``, which fills a template's request slot with one of the requests of
``jailbreak_packages``.
"""

from __future__ import annotations

import json
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Protocol

from vsr.training.dataset import Example
from vsr.training.jailbreak_packages import REQUESTS

CANARY = "ZX-CANARY-4417"  # fills the packages' {canary} slots (a token the attacker wants echoed)


def package_example(text: str, label: str, package: str, group: str, kind: str) -> Example:
    """A row of ``package`` as an example: group ``package:group``, source ``pkg:package:kind``."""
    text = text.replace("{canary}", CANARY).strip()
    return Example(text, label, f"{package}:{group}", f"pkg:{package}:{kind}")


def fill_request(text: str, index: int) -> str:
    """Fill a request slot ({TARGET}, [INSERT QUERY], [TASK], ...) with one of the requests."""
    request = REQUESTS[index % len(REQUESTS)]
    text = re.sub(r"\{TARGET\}|\[INSERT QUERY\]|\{\{\s*prompt\s*\}\}", request, text)
    return re.sub(r"\[(TASK|HARMFUL[ _A-Z]*|RESTRICTED[ _A-Z]*)\]", request.rstrip("?."), text)


class Archive(Protocol):
    """What the readers use of a ``zipfile.ZipFile``: its names and a member's bytes."""

    def namelist(self) -> list[str]: ...
    def read(self, name: str) -> bytes: ...


class TarArchive:
    """An npm tarball read like a wheel (``namelist``, ``read``), in memory; nothing extracted."""

    def __init__(self, path: Path) -> None:
        self.files: dict[str, bytes] = {}
        with tarfile.open(path, "r:gz") as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None:
                    self.files[member.name] = handle.read()

    def namelist(self) -> list[str]:
        return sorted(self.files)

    def read(self, name: str) -> bytes:
        return self.files[name]


def open_archive(path: Path) -> Archive:
    """A wheel (zip) or an npm tarball (``.tgz``)."""
    return TarArchive(path) if path.name.endswith(".tgz") else zipfile.ZipFile(path)


def wheel_text(archive: Archive, name: str) -> str:
    """A file of the wheel as UTF-8 text."""
    return archive.read(name).decode("utf-8")


def wheel_members(archive: Archive, pattern: str) -> list[str]:
    """The wheel's file names that match ``pattern`` whole, sorted."""
    return sorted(n for n in archive.namelist() if re.fullmatch(pattern, n))


def wheel_jsonl(archive: Archive, name: str) -> list[dict[str, Any]]:
    """The records of a JSONL file of the wheel (blank lines skipped)."""
    return [json.loads(line) for line in wheel_text(archive, name).splitlines() if line.strip()]
