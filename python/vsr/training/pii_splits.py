"""Which templates, locales and identities fill each PII data split, and why they differ.

- ``train`` / ``eval``: the templates of ``data/pii/templates`` split 70/30 by hash. ``eval`` is
  the split the span rules of ``vsr.pii`` were first developed on.
- ``tune``: the ``eval`` templates again, filled from locales no other split uses, identity-style
  (one faker-made person per prompt): rules were developed on it in the second round.
- ``fresh`` / ``reserve``: halves of the ``train`` templates (never read while tuning), other
  locales, and presidio-evaluator identity rows (odd / even rows).
- ``final``: templates written separately (``data/pii/templates_final``) after the second round,
  other locales again, identity-style; no other split or tuning step uses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vsr.training.pii_data import Template

TRAIN_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "it_IT")
EVAL_LOCALES = ("en_US", "en_CA", "en_AU", "en_IN", "es_ES", "nl_NL")
HELD_OUT_LOCALES = ("en_US", "en_NZ", "en_IE", "sv_SE", "pt_PT", "da_DK", "pl_PL")
TUNE_LOCALES = (
    "en_US", "de_CH", "fr_CH", "cs_CZ", "hu_HU", "sk_SK", "fi_FI", "no_NO", "ro_RO", "hr_HR",
    "sl_SI", "pt_BR", "es_MX",
)  # fmt: skip
# en_GB is a train locale, but no measured split uses the train split.
FINAL_LOCALES = ("en_US", "en_GB", "fr_CA", "de_AT", "nl_BE", "es_CO")
SPLIT_LOCALES: dict[str, tuple[str, ...]] = {
    "train": TRAIN_LOCALES,
    "eval": EVAL_LOCALES,
    "tune": TUNE_LOCALES,
    "fresh": HELD_OUT_LOCALES,
    "reserve": HELD_OUT_LOCALES,
    "final": FINAL_LOCALES,
}
HELD_OUT_SPLITS = ("fresh", "reserve")
# Splits whose prompts take one faker-made identity row's values (no identity file rows).
IDENTITY_STYLE_SPLITS = ("tune", "final")


def split_templates(split: str, templates: Sequence[Template]) -> list[Template]:
    """The templates that fill ``split`` (``templates``: those of ``data/pii/templates``)."""
    from vsr.training.pii_data import FINAL_TEMPLATE_DIR, load_templates

    if split == "final":
        return load_templates(FINAL_TEMPLATE_DIR)
    if split in ("train", "eval", "tune"):
        return [t for t in templates if t.split == ("eval" if split == "tune" else split)]
    if split in HELD_OUT_SPLITS:
        return [t for t in templates if t.held_out_split == split]
    raise ValueError(f"split must be one of {sorted(SPLIT_LOCALES)}, got {split!r}")
