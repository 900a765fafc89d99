"""Long real benign documents users paste (man pages, changelogs, READMEs, configuration files).

Read from this machine: Debian's ``/usr/share/doc`` and ``/usr/share/man`` (each package's own
licence), the READMEs/changelogs of the Rust crates in cargo's registry and the Go modules in the
module cache, ``/etc`` and the YAML/TOML/INI/CFG files of ``.venv``'s packages. Used by
``vsr.training.jailbreak_packages`` (training windows, asks, hidden injections, and the held-out
whole documents of ``data/heldout/benign_long.jsonl``).
"""

from __future__ import annotations

import gzip
import hashlib
import random
import re
from collections.abc import Sequence
from pathlib import Path

from vsr.training.dataset import Example
from vsr.training.jailbreak_injections import (
    DIRECT_INJECTIONS,
    DOCUMENT_ASKS,
    HIDING,
    INJECTION_GOALS,
)
from vsr.training.jailbreak_text import (
    BENIGN,
    INJECTION,
    WINDOW_CHARS,
    is_english,
    random_excerpt,
    window_texts,
)


def heldout_bucket(group: str) -> bool:
    """About 10% of long-document groups are kept out of training for ``benign_long.jsonl``."""
    return hashlib.sha256(f"long:{group}".encode()).digest()[0] < 26


def _read(path: Path) -> str:
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8", errors="replace")
    except (OSError, EOFError, gzip.BadGzipFile):
        return ""


def strip_roff(text: str) -> str:
    """A man page's roff source as plain text, roughly as ``man`` would print it."""
    lines = []
    for line in text.splitlines():
        if line.startswith(('.\\"', "'\\\"")):
            continue
        if line.startswith("."):
            macro, _, rest = line.partition(" ")
            if macro in (".SH", ".SS"):
                lines.append("\n" + rest.strip('"').upper())
            elif macro in (".B", ".I", ".BR", ".IR", ".RB", ".BI", ".IB", ".RI"):
                if rest:
                    lines.append(rest.replace('"', ""))
            elif macro in (".PP", ".P", ".LP", ".sp", ".br", ".TP", ".IP"):
                lines.append("")
            continue
        lines.append(line)
    text = "\n".join(lines)
    text = re.sub(r"\\f[BIRP]|\\f\(..|\\s[-+]?\d|\\&|\\\(..|\\\*\(..", "", text)
    text = text.replace("\\-", "-").replace("\\e", "\\").replace("\\ ", " ")
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def long_documents(venv: Path | None, rng: random.Random) -> list[tuple[str, str, str]]:
    """(family, group, text) of real long documents found on this machine (sorted, then sampled)."""
    found: list[tuple[str, str, str]] = []
    doc = Path("/usr/share/doc")
    for path in sorted(doc.glob("*/changelog.Debian.gz"))[:400]:
        found.append(("debian:changelog", f"debian:{path.parent.name}", _read(path)[:8000]))
    for pattern in ("*/README*", "*/NEWS*", "*/CHANGES*", "*/FAQ*"):
        for path in sorted(doc.glob(pattern))[:300]:
            if path.is_file():
                found.append(("debian:docs", f"debian:{path.parent.name}", _read(path)[:8000]))
    # (The Google Cloud SDK's 16,000 generated gcloud pages would crowd out the rest.)
    man = [p for p in sorted(Path("/usr/share/man").glob("man[1578]/*.gz"))
           if not p.name.startswith(("gcloud", "bq", "gsutil"))]  # fmt: skip
    for path in rng.sample(man, min(900, len(man))):
        found.append(
            (
                "debian:man",
                f"man:{re.split(r'[._-]', path.name)[0]}",
                strip_roff(_read(path))[:8000],
            )
        )
    # READMEs, changelogs and contributing guides of the Rust crates vsr builds with (cargo's
    # registry after ``cargo fetch``) and of Go modules (markdown as it is pasted from GitHub).
    for root, family in (
        (Path.home() / ".cargo/registry/src", "readme:crates"),
        (Path.home() / "go/pkg/mod", "readme:go"),
    ):
        for path in sorted(root.glob("**/*.md"))[:3000]:
            if path.name.upper().startswith(("README", "CHANGELOG", "CONTRIBUTING", "CHANGES")):
                parts = path.relative_to(root).parts
                parts = parts[1:2] if family == "readme:crates" else parts[:-1]
                owner = next((p for p in parts if "@" in p), parts[0] if parts else "")
                name = re.sub(r"[-@]v?\d[\w.+-]*$", "", owner)
                found.append((family, f"{family}:{name}", _read(path)[:8000]))
    configs = sorted(Path("/etc").glob("**/*.conf"))
    if venv is not None:
        for ext in ("yaml", "yml", "toml", "ini", "cfg"):
            configs += sorted(venv.glob(f"lib/python3*/site-packages/**/*.{ext}"))
    for path in configs:
        text = _read(path) if path.is_file() and path.stat().st_size < 200_000 else ""
        parts = path.parts
        owner = parts[parts.index("site-packages") + 1] if "site-packages" in parts else path.stem
        found.append(("config", f"config:{owner}", text[:6000]))
    documents = []
    for family, group, text in found:
        text = text.strip()
        if len(text) >= 300 and is_english(text):
            documents.append((family, group, text))
    # At most 6 documents per group, so one big package does not dominate.
    by_group: dict[str, list[tuple[str, str, str]]] = {}
    for item in documents:
        by_group.setdefault(item[1], []).append(item)
    kept = []
    for items in by_group.values():
        kept += rng.sample(items, min(6, len(items)))
    return kept


CONFIG_ASKS = (
    "Check this configuration file for mistakes:\n\n{doc}",
    "What does this config do? Explain each section.\n\n{doc}",
    "{doc}\n\nWhy does this configuration not work on my server?",
    "Convert this config to JSON:\n\n{doc}",
)
DOC_ASKS = (
    *DOCUMENT_ASKS,
    "Can you explain this man page in simple terms?\n\n{doc}",
    "{doc}\n\nWhich of these changes affect me if I upgrade?",
    "Here's the changelog. Write release notes for our users.\n\n{doc}",
    "I pasted the docs below. How do I use the option that disables logging?\n\n{doc}",
)


def document_examples(
    documents: Sequence[tuple[str, str, str]], payloads: Sequence[str], rng: random.Random
) -> tuple[list[Example], list[Example]]:
    """Training windows (clean, asked about, with a hidden injection) and held-out whole texts."""
    train, heldout = [], []
    for family, group, text in documents:
        asks = CONFIG_ASKS if family == "config" else DOC_ASKS
        if heldout_bucket(group):
            if len(text) >= 2000:
                heldout.append(
                    Example(rng.choice(asks).format(doc=text), BENIGN, group, f"long:{family}")
                )
            continue
        windows = window_texts(text)
        for window in rng.sample(windows, min(2, len(windows))):
            train.append(Example(window, BENIGN, group, f"docs:{family}"))
        body = random_excerpt(text, rng.randint(300, 1000), rng)
        train.append(
            Example(
                rng.choice(asks).format(doc=body)[:WINDOW_CHARS],
                BENIGN,
                group,
                f"docs:{family}+ask",
            )
        )
        if rng.random() < 0.5:
            if rng.random() < 0.5:
                payload = rng.choice(payloads)
            else:
                goal = rng.choice(INJECTION_GOALS)
                payload = rng.choice(DIRECT_INJECTIONS).format(
                    goal=goal, Goal=goal[0].upper() + goal[1:]
                )
            body = random_excerpt(text, rng.randint(200, 900), rng)
            cut = body.find(" ", rng.randint(0, len(body)))
            cut = cut if cut != -1 else len(body)
            hidden = rng.choice(HIDING).format(before=body[:cut], payload=payload, after=body[cut:])
            train.append(
                Example(
                    rng.choice(asks).format(doc=hidden)[:WINDOW_CHARS],
                    INJECTION,
                    group,
                    f"docs:{family}+injection",
                )
            )
    return train, heldout
