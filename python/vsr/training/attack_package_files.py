"""What the attack package readers share: a wheel's files as text, JSONL or by name pattern,
the example each row becomes (``package_example``, canary slots filled) and ``fill_request``,
which fills a template's request slot with one of the requests of ``jailbreak_packages``.
"""

from __future__ import annotations

import json
import re
import zipfile
from typing import Any

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


def wheel_text(archive: zipfile.ZipFile, name: str) -> str:
    """A file of the wheel as UTF-8 text."""
    return archive.read(name).decode("utf-8")


def wheel_members(archive: zipfile.ZipFile, pattern: str) -> list[str]:
    """The wheel's file names that match ``pattern`` whole, sorted."""
    return sorted(n for n in archive.namelist() if re.fullmatch(pattern, n))


def wheel_jsonl(archive: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    """The records of a JSONL file of the wheel (blank lines skipped)."""
    return [json.loads(line) for line in wheel_text(archive, name).splitlines() if line.strip()]
