"""One reader per package of subject questions for ``domain_packages``: the FCC commercial
operator exam pools (``fccexam``), the Python and Debian FAQs, chatterbot-corpus's opening user
turns and bsdgames' quiz(6) fact tables asked with our frames. GCIDE's subject-labelled senses
are read by ``domain_gcide``. Each reader gives its examples in blocks of ``BLOCK`` rows
(``in_blocks``), the unit a held-out split keeps whole.
"""

from __future__ import annotations

import html
import itertools
import random
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import yaml

from vsr.training.dataset import Example
from vsr.training.debian_archives import PackageError, deb_files

BLOCK = 20


def in_blocks(examples: list[Example], key: str) -> list[Example]:
    """Give consecutive examples of one (source, category) groups of ``BLOCK`` rows."""
    out: list[Example] = []
    counters: Counter[str] = Counter()
    for example in examples:
        unit = f"{key}:{example.label}"
        index = counters[unit]
        counters[unit] += 1
        group = f"{key}:{example.label}:{example.group}:{index // BLOCK}"
        out.append(Example(example.text, example.label, group, example.source))
    return out


def collapse_spaces(text: str) -> str:
    """Runs of white space as one space, none at the ends."""
    return re.sub(r"\s+", " ", text).strip()


# ---- fccexam: FCC commercial radio operator question pools -------------------------------------

FCC_QUESTION = re.compile(r"^(\d+)-(\d+)([A-Z])(\d+)\s+(.+)$")
FCC_OPTION = re.compile(r"^\s*([A-D])\.\s*(.+)$")
NEEDS_DRAWING = re.compile(r"\b(figure|drawing|fig\.|diagram)\b", re.IGNORECASE)
# Licensing and rule questions ("What examination credit ...?") are not engineering.
RULES = re.compile(r"licen[cs]e|\bFCC\b|Commission|examination|\bPart \d+", re.IGNORECASE)


def _fcc_text(question: str, options: list[str], rng: random.Random) -> str | None:
    if NEEDS_DRAWING.search(question) or RULES.search(question) or len(options) != 4:
        return None
    # Exam questions reach a router both bare and with their choices: keep both shapes.
    return question if rng.random() < 0.5 else question + "\n" + "\n".join(options)


def fccexam_examples(deb: Path, rng: random.Random) -> list[Example]:
    """Elements 3 and 8 from their pool files, 6 and 9 from their one-file-per-question dirs."""
    examples: list[Example] = []
    for name, raw in deb_files(deb, r"usr/share/fccexam/element[38]\.txt$"):
        element = name.rsplit("/", 1)[-1].removesuffix(".txt")
        lines = raw.decode("utf-8-sig").splitlines()
        index = 0
        while index < len(lines):
            match = FCC_QUESTION.match(lines[index].strip())
            index += 1
            if not match:
                continue
            options = []
            while index < len(lines) and (option := FCC_OPTION.match(lines[index])):
                options.append(f"{option.group(1)}. {collapse_spaces(option.group(2))}")
                index += 1
            text = _fcc_text(collapse_spaces(match.group(5)), options, rng)
            if text is not None:
                group = f"{element}:topic{int(match.group(2)) // 4}"
                examples.append(Example(text, "engineering", group, "pkg:fccexam"))
    for name, raw in deb_files(deb, r"usr/share/fccexam/E[69]/[0-9][0-9A-Z-]+$"):
        lines = [line for line in raw.decode("utf-8-sig", errors="replace").splitlines() if line]
        if len(lines) < 6:
            continue
        options = [
            f"{m.group(1)}. {collapse_spaces(m.group(2))}" for line in lines[2:6]
            if (m := FCC_OPTION.match(line))
        ]  # fmt: skip
        text = _fcc_text(collapse_spaces(lines[1]), options, rng)
        if text is not None:
            element = name.rsplit("/", 2)[-2]
            examples.append(Example(text, "engineering", element, "pkg:fccexam"))
    return in_blocks(examples, "pkg:fccexam")


# ---- FAQs -------------------------------------------------------------------------------------

RST_UNDERLINE = re.compile(r"^([-=~^\"'`#*+])\1{3,}$")


def python_faq_examples(deb: Path) -> list[Example]:
    examples: list[Example] = []
    for name, raw in deb_files(deb, r"/html/_sources/faq/[a-z]+\.rst\.txt$"):
        page = name.rsplit("/", 1)[-1].split(".")[0]
        lines = raw.decode("utf-8").splitlines()
        for title, underline in itertools.pairwise(lines):
            title = title.strip()
            if RST_UNDERLINE.match(underline.strip()) and title.endswith("?"):
                text = re.sub(r":\w+:`~?([^`<]+?)(?: <[^>]+>)?`", r"\1", title).replace("``", "")
                examples.append(Example(text, "computer science", page, "pkg:python-doc"))
    return in_blocks(examples, "pkg:python-doc")


HTML_HEADING = re.compile(r"<h[234][^>]*>(.*?)</h[234]>", re.DOTALL)


def debian_faq_examples(deb: Path) -> list[Example]:
    examples: list[Example] = []
    for name, raw in deb_files(deb, r"/FAQ/[a-z-]+\.en\.html$"):
        chapter = name.rsplit("/", 1)[-1].split(".")[0]
        for heading in HTML_HEADING.findall(raw.decode("utf-8")):
            text = collapse_spaces(html.unescape(re.sub(r"<[^>]+>", "", heading)))
            text = re.sub(r"^\d+(\.\d+)*\.\s*", "", text)
            if text.endswith("?"):
                examples.append(Example(text, "computer science", chapter, "pkg:debian-faq"))
    return in_blocks(examples, "pkg:debian-faq")


# ---- chatterbot-corpus ------------------------------------------------------------------------

# English conversation files whose opening turns are questions on one subject. Left out:
# `science` (physics, chemistry and medicine mixed), `money` (economics and business mixed),
# `politics`, `literature`, `movies`, `sports`, `tech_support` (complaints, not questions),
# and the small-talk files (ai, emotion, greetings, humor, ...).
CHATTERBOT_FILES = {
    "coding": "computer science",
    "computers": "computer science",
    "history": "history",
    "trivia": "other",
}
QUESTION_START = re.compile(
    r"^(what|who|which|when|where|why|how|is|are|does|do|can|could|explain|tell me|define|name)\b",
    re.IGNORECASE,
)


def chatterbot_examples(wheel: Path) -> list[Example]:
    examples: list[Example] = []
    with zipfile.ZipFile(wheel) as archive:
        for stem, category in sorted(CHATTERBOT_FILES.items()):
            name = f"chatterbot_corpus/data/english/{stem}.yml"
            if name not in archive.namelist():
                raise PackageError(f"{wheel}: no {name}")
            data = yaml.safe_load(archive.read(name))
            for conversation in data.get("conversations") or []:
                first = conversation[0] if conversation else None
                if not isinstance(first, str):
                    continue
                text = collapse_spaces(first)
                if text.endswith("?") or QUESTION_START.match(text):
                    examples.append(Example(text, category, stem, "pkg:chatterbot-corpus"))
    return in_blocks(examples, "pkg:chatterbot-corpus")


# ---- bsdgames quiz: fact tables asked with our frames -----------------------------------------


def _quiz_field(field: str) -> str:
    """A quiz(6) answer pattern as plain text: first of `a|b`, optional `{...}` parts kept."""
    depth, cut = 0, len(field)
    for position, char in enumerate(field):
        depth += char == "{"
        depth -= char == "}"
        if char == "|" and depth == 0:
            cut = position
            break
    return collapse_spaces(field[:cut].replace("{", "").replace("}", "").replace("\\", ""))


def _quiz_rows(raw: bytes) -> Iterator[list[str]]:
    text = raw.decode("latin-1").replace("\\\n", "")
    for line in text.splitlines():
        if line.strip():
            yield [_quiz_field(part) for part in line.split(":")]


# quiz file -> (category, frames over its columns). Capitals and number sequences are general
# knowledge and maths; greek/latin vocabulary, poetry, Shakespeare, Star Trek, murders, Morse,
# flowers, babies/sexes/collectives (English words) and arithmetic drills are left out.
QUIZ_FRAMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "elements": (
        "chemistry",
        (
            "What is the chemical symbol for {3}?",
            "Which element has the symbol {0}?",
            "What is the atomic number of {3}?",
            "Which element has atomic number {1}?",
            "What is the atomic weight of {3}?",
        ),
    ),
    "pres": (
        "history",
        (
            "When was {0} President of the United States?",
            "Who was vice president under {0}?",
            "Who succeeded {0} as President of the United States?",
        ),
    ),
    "sov": (
        "history",
        (
            "In which century did {0} reign in England?",
            "Who succeeded {0} on the English throne?",
        ),
    ),
    "inca": ("history", ("Who succeeded the Inca ruler {0}?",)),
    "ucc": (
        "law",
        (
            "What does section {0} of the Uniform Commercial Code cover?",
            "Which section of the Uniform Commercial Code deals with {1}?",
        ),
    ),
    "africa": ("other", ("What is the capital of {0}?",)),
    "america": ("other", ("What is the capital of {0}?",)),
    "asia": ("other", ("What is the capital of {0}?",)),
    "europe": ("other", ("What is the capital of {0}?",)),
    "state": ("other", ("What is the capital of {0}?", "What is the state flower of {0}?")),
    "province": ("other", ("What is the capital of the Canadian province of {0}?",)),
    "seq-easy": ("math", ("What is the next number in the sequence {0}?",)),
    "seq-hard": ("math", ("What is the next number in the sequence {0}?",)),
}


def bsdgames_examples(deb: Path, rng: random.Random) -> list[Example]:
    examples: list[Example] = []
    files = dict(deb_files(deb, r"usr/share/games/bsdgames/quiz/[a-z-]+$"))
    for stem, (category, frames) in sorted(QUIZ_FRAMES.items()):
        name = next((n for n in files if n.endswith(f"/quiz/{stem}")), None)
        if name is None:
            raise PackageError(f"{deb}: no quiz/{stem}")
        for row in _quiz_rows(files[name]):
            usable = [f for f in frames if all(int(i) < len(row) and row[int(i)] for i in
                                               re.findall(r"\{(\d)\}", f))]  # fmt: skip
            if not usable:
                continue
            frame = rng.choice(usable)
            text = frame.format(*row)
            if re.search(r"[\[\]\\]", text):  # quiz(6) accent markup
                continue
            examples.append(Example(text, category, stem, "pkg:bsdgames-quiz"))
    return in_blocks(examples, "pkg:bsdgames-quiz")
