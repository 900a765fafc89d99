"""More real subject-labelled questions for the domain task: exam pools, FAQs, quizzes, glossaries.

Read straight out of the package archives (nothing is installed)::

    apt-get download fccexam=1.0.7-1.1 python3.11-doc debian-faq=11.1 bsdgames dict-gcide
    pip download --no-deps chatterbot-corpus==1.3.3
    python -m vsr.training.domain_packages --fccexam fccexam_1.0.7-1.1_all.deb \\
        --python-doc python3.11-doc_3.11.2-6+deb12u9_all.deb --debian-faq debian-faq_11.1_all.deb \\
        --bsdgames bsdgames_2.17-29+b1_amd64.deb --gcide dict-gcide_0.48.5+nmu2_all.deb \\
        --chatterbot chatterbot_corpus-1.3.3-py2.py3-none-any.whl

writes ``data/domain/packages.jsonl`` (training) and ``data/heldout/domain_packages.jsonl``
(evaluation only). The sources, each mapped to the 14 categories by a reviewed table of its
reader (``domain_package_readers``, ``domain_gcide``; this module dedupes, splits and writes):

- **fccexam** (Debian; FCC commercial radio operator question pools, US government works; the
  program GPL-3): Element 3 (General Radiotelephone: electronics, circuits, receivers,
  transmitters, antennas), 6 (radiotelegraph: electronics), 8 (ship radar) and 9 (GMDSS
  maintainer), all ``engineering``. Elements 1, 5, 7 (operating rules and procedures) do not map
  cleanly and are left out; so are licensing questions and questions that need a drawing. The
  *amateur* pools (Debian ``hamexam``) are not read: its Extra pool is an outside-evaluation set.
- **Python FAQ** (Debian ``python3.11-doc``, PSF licence): the FAQ questions, ``computer science``.
- **Debian FAQ** (``debian-faq``, SPI, free licence): the FAQ questions, ``computer science``.
- **chatterbot-corpus** (PyPI, BSD-3): the opening user turns of its English ``coding``,
  ``computers``, ``history`` and ``trivia`` conversations.
- **bsdgames quiz** (Debian ``bsdgames``, BSD): its fact tables (chemical elements, US
  presidents, English sovereigns, Uniform Commercial Code sections, capitals, number sequences)
  asked with our question frames.
- **GCIDE** (Debian ``dict-gcide``, GPL-2+; Webster's 1913 with additions): senses carrying a
  subject label (``(Chem.)``, ``(Med.)``, ``(Mach.)``, ``(Law)``, ...) asked with the WordNet
  question frames of ``domain_wordnet``; the glosses are GCIDE's.

Held out whole, chosen before anything was scored: **chatterbot-corpus** and **Debian FAQ**, the
two sources whose every row is a question a person wrote as a user (no frame of ours) and which
carry no weak category the training needs (they are computer science, general knowledge and
history). Texts already in ``data/domain/*.jsonl`` are dropped, and so is anything in
``data/domain/heldout_*.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from vsr.tasks.domain import LABELS
from vsr.training.dataset import Example, write_examples, write_records
from vsr.training.domain_gcide import gcide_examples
from vsr.training.domain_package_readers import (
    bsdgames_examples,
    chatterbot_examples,
    debian_faq_examples,
    fccexam_examples,
    python_faq_examples,
)

HELDOUT_SOURCES = frozenset({"pkg:chatterbot-corpus", "pkg:debian-faq"})


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def existing_texts(directory: Path, skip: Path) -> set[str]:
    """Normalised texts of every JSONL in ``directory`` but ``skip`` (our own earlier output)."""
    keys: set[str] = set()
    for path in sorted(directory.glob("*.jsonl")):
        if path.resolve() == skip.resolve():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                keys.add(_key(json.loads(line)["text"]))
    return keys


def split(
    examples: Iterable[Example], known: set[str]
) -> tuple[list[Example], list[Example], Counter[str]]:
    """Dedupe (against ``known`` and each other) and split off the held-out sources."""
    train: list[Example] = []
    heldout: list[Example] = []
    dropped: Counter[str] = Counter()
    seen = set(known)
    for example in examples:
        if example.label not in LABELS:
            raise ValueError(f"{example.source}: label {example.label!r} is not a domain label")
        key = _key(example.text)
        if not key or key in seen:
            dropped[example.source] += 1
            continue
        seen.add(key)
        (heldout if example.source in HELDOUT_SOURCES else train).append(example)
    return train, heldout, dropped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fccexam", type=Path, required=True, help="fccexam_1.0.7-1.1_all.deb")
    parser.add_argument("--python-doc", type=Path, required=True, help="python3.11-doc_*.deb")
    parser.add_argument("--debian-faq", type=Path, required=True, help="debian-faq_11.1_all.deb")
    parser.add_argument("--bsdgames", type=Path, required=True, help="bsdgames_2.17-*.deb")
    parser.add_argument("--gcide", type=Path, required=True, help="dict-gcide_0.48.5*.deb")
    parser.add_argument(
        "--chatterbot", type=Path, required=True, help="chatterbot_corpus-1.3.3*.whl"
    )
    parser.add_argument("--domain-dir", type=Path, default=Path("data/domain"))
    parser.add_argument("--out", type=Path, default=Path("data/domain/packages.jsonl"))
    parser.add_argument("--heldout", type=Path, default=Path("data/heldout/domain_packages.jsonl"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("fccexam", "python_doc", "debian_faq", "bsdgames", "gcide", "chatterbot"):
        if not getattr(args, name).is_file():
            parser.error(f"--{name.replace('_', '-')}: {getattr(args, name)} is not a file")
    rng = random.Random(args.seed)
    examples = fccexam_examples(args.fccexam, rng)
    examples += python_faq_examples(args.python_doc)
    examples += debian_faq_examples(args.debian_faq)
    examples += chatterbot_examples(args.chatterbot)
    examples += bsdgames_examples(args.bsdgames, rng)
    examples += gcide_examples(args.gcide, rng)
    # Our own earlier output is not "known": regenerating must give the same file.
    known = existing_texts(args.domain_dir, skip=args.out)
    train, heldout, dropped = split(examples, known)
    count = write_examples(args.out, train)
    records = ({"label": e.label, "source": e.source, "text": e.text} for e in heldout)
    write_records(args.heldout, records)
    print(f"wrote {count} examples to {args.out}, {len(heldout)} held out to {args.heldout}")
    table = Counter((e.source, e.label) for e in [*train, *heldout])
    for (source, label), n in sorted(table.items()):
        print(f"  {source:24} {label:18} {n}")
    print(f"dropped as duplicates: {dict(sorted(dropped.items()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
