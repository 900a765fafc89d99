"""Subject-labelled senses of GCIDE (Debian ``dict-gcide``, GPL-2+; Webster's 1913 with
additions) asked as domain questions: the senses that open with a subject label (``(Chem.)``,
``(Med.)``, ``(Mach.)``, ``(Law)``, ...) mapped to a category by ``GCIDE_FIELDS``, each gloss asked
with the WordNet gloss frames (``domain_wordnet.GLOSS_QUESTIONS``). Read from the dictd files of
the package, for ``domain_packages``.
"""

from __future__ import annotations

import gzip
import random
import re
from collections.abc import Iterator
from pathlib import Path

from vsr.training.dataset import Example, sample_in_order
from vsr.training.debian_archives import deb_files
from vsr.training.domain_package_readers import collapse_spaces, in_blocks
from vsr.training.domain_wordnet import GLOSS_QUESTIONS

# GCIDE subject label -> (category, field name used in the question). Labels left out: Naut.,
# Mus., Arch., Mil., Gram., Eccl., Theol., Rhet., Geol., Her., Falconry, ... (no clean category).
GCIDE_FIELDS: dict[str, tuple[str, str]] = {
    "Zool.": ("biology", "zoology"), "Bot.": ("biology", "botany"), "Biol.": ("biology", "biology"),
    "Physiol.": ("biology", "physiology"), "Genetics": ("biology", "genetics"),
    "Biochem.": ("chemistry", "biochemistry"), "Chem.": ("chemistry", "chemistry"),
    "Physiol. Chem.": ("chemistry", "physiological chemistry"),
    "Med.": ("health", "medicine"), "Anat.": ("health", "anatomy"),
    "Surg.": ("health", "surgery"), "Pharm.": ("health", "pharmacy"),
    "Law": ("law", "law"), "Eng. Law": ("law", "English law"), "Civil Law": ("law", "civil law"),
    "Old Law": ("law", "old law"), "Internat. Law": ("law", "international law"),
    "Mach.": ("engineering", "machinery"), "Engin.": ("engineering", "engineering"),
    "Steam Engine": ("engineering", "steam engineering"), "Railroad": ("engineering", "railways"),
    "Mining": ("engineering", "mining"),
    "Physics": ("physics", "physics"), "Mech.": ("physics", "mechanics"),
    "Elec.": ("physics", "electricity"), "Electricity": ("physics", "electricity"),
    "Optics": ("physics", "optics"), "Acoustics": ("physics", "acoustics"),
    "Astron.": ("physics", "astronomy"),
    "Math.": ("math", "mathematics"), "Geom.": ("math", "geometry"), "Alg.": ("math", "algebra"),
    "Statistics": ("math", "statistics"),
    "Logic": ("philosophy", "logic"), "Metaph.": ("philosophy", "metaphysics"),
    "Philos.": ("philosophy", "philosophy"), "Psychol.": ("psychology", "psychology"),
    "Com.": ("business", "commerce"), "Finance": ("business", "finance"),
    "Banking": ("business", "banking"), "Polit. Econ.": ("economics", "political economy"),
    "Computers": ("computer science", "computing"),
}  # fmt: skip
GCIDE_LABEL = re.compile(
    r"\((" + "|".join(re.escape(k.rstrip(".")) for k in GCIDE_FIELDS) + r")\.?\)"
)
GCIDE_CAP = 900  # per category: zoology and botany alone have 16,000 senses
DICTD_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _dictd_number(text: str) -> int:
    value = 0
    for char in text:
        value = value * 64 + DICTD_B64.index(char)
    return value


def gcide_senses(dictionary: str, index: str) -> Iterator[tuple[str, str]]:
    """(label, definition) for every sense block that opens with a subject label."""
    data = dictionary.encode("utf-8")
    seen: set[tuple[int, int]] = set()
    for line in index.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or parts[0].startswith("00-database"):
            continue
        start, length = _dictd_number(parts[1]), _dictd_number(parts[2])
        if (start, length) in seen:
            continue
        seen.add((start, length))
        entry = data[start : start + length].decode("utf-8", errors="replace")
        for block in re.split(r"\n\s*\n", entry):
            match = GCIDE_LABEL.search(block)
            if not match or match.start() > 200:
                continue
            label = next(k for k in GCIDE_FIELDS if k.rstrip(".") == match.group(1))
            gloss = block[match.end() :].split("[1913 Webster]")[0].split("[PJC]")[0]
            gloss = collapse_spaces(re.sub(r"[{}]", "", gloss))
            # "{Black grouse} (Zool.), a European grouse ..." and "(a) To set free ...".
            gloss = re.sub(r"^(,\s*|\([a-z0-9]\)\s*)+", "", gloss)
            gloss = re.split(r"(?<=[a-z)])\. | ?--", gloss)[0].rstrip(".;:, ")
            if len(gloss) < 25 or gloss.lower().startswith(("see ", "same as", "pl.")):
                continue
            if re.search(r"[\[\]\\|<>]", gloss):  # accent markup
                continue
            yield label, gloss


def gcide_examples(deb: Path, rng: random.Random) -> list[Example]:
    files = dict(deb_files(deb, r"usr/share/dictd/gcide\.(dict\.dz|index)$"))
    dictionary = next(v for k, v in files.items() if k.endswith(".dict.dz"))
    index = next(v for k, v in files.items() if k.endswith(".index"))
    by_category: dict[str, list[Example]] = {}
    for label, gloss in gcide_senses(
        gzip.decompress(dictionary).decode("utf-8", errors="replace"), index.decode("utf-8")
    ):
        category, field = GCIDE_FIELDS[label]
        # Only the gloss frames: the gloss carries the subject; a bare rare headword ("Define
        # Vomer.") says little, and WordNet's terms already give that shape.
        text = rng.choice(GLOSS_QUESTIONS).format(field=field, gloss=gloss[:1].lower() + gloss[1:])
        by_category.setdefault(category, []).append(Example(text, category, field, "pkg:gcide"))
    examples: list[Example] = []
    for category in sorted(by_category):
        examples.extend(sample_in_order(by_category[category], GCIDE_CAP, rng))
    # Blocks of alphabetically neighbouring senses of one field: neighbours share stems.
    return in_blocks(examples, "pkg:gcide")
