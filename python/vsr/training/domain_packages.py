"""More real subject-labelled questions for the domain task: exam pools, FAQs, quizzes, glossaries.

Read straight out of the package archives (nothing is installed)::

    apt-get download fccexam=1.0.7-1.1 python3.11-doc debian-faq=11.1 bsdgames dict-gcide
    pip download --no-deps chatterbot-corpus==1.3.3
    python -m vsr.training.domain_packages --fccexam fccexam_1.0.7-1.1_all.deb \\
        --python-doc python3.11-doc_3.11.2-6+deb12u9_all.deb --debian-faq debian-faq_11.1_all.deb \\
        --bsdgames bsdgames_2.17-29+b1_amd64.deb --gcide dict-gcide_0.48.5+nmu2_all.deb \\
        --chatterbot chatterbot_corpus-1.3.3-py2.py3-none-any.whl

writes ``data/domain/packages.jsonl`` (training) and ``data/heldout/domain_packages.jsonl``
(evaluation only). The sources, each mapped to the 14 categories by a reviewed table below:

- **fccexam** (Debian; FCC commercial radio operator question pools, US government works; the
  program GPL-3): Element 3 (General Radiotelephone: electronics, circuits, receivers,
  transmitters, antennas), 6 (radiotelegraph: electronics), 8 (ship radar) and 9 (GMDSS
  maintainer), all ``engineering``. Elements 1, 5, 7 (operating rules and procedures) do not map
  cleanly and are left out; so are licensing questions and questions that need a drawing. The
  *amateur* pools (Debian ``hamexam``) are not read: its Extra pool is an outside-evaluation set.
- **Python FAQ** (Debian ``python3.11-doc``, PSF licence): the FAQ questions, ``computer science``.
- **Debian FAQ** (``debian-faq``, SPI, free licence): the FAQ questions, ``computer science``.
- **chatterbot-corpus** (PyPI, BSD-3): the opening user turns of its English ``coding``,
  ``computers``, ``history`` and ``trivia`` conversations.
- **bsdgames quiz** (Debian ``bsdgames``, BSD): its fact tables (chemical elements, US
  presidents, English sovereigns, Uniform Commercial Code sections, capitals, number sequences)
  asked with our question frames.
- **GCIDE** (Debian ``dict-gcide``, GPL-2+; Webster's 1913 with additions): senses carrying a
  subject label (``(Chem.)``, ``(Med.)``, ``(Mach.)``, ``(Law)``, ...) asked with the WordNet
  question frames of ``domain_sources``; the glosses are GCIDE's.

Held out whole, chosen before anything was scored: **chatterbot-corpus** and **Debian FAQ**, the
two sources whose every row is a question a person wrote as a user (no frame of ours) and which
carry no weak category the training needs (they are computer science, general knowledge and
history). Texts already in ``data/domain/*.jsonl`` are dropped, and so is anything in
``data/domain/heldout_*.jsonl``.
"""

from __future__ import annotations

import argparse
import gzip
import html
import io
import itertools
import json
import lzma
import random
import re
import tarfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import yaml

from vsr.tasks.domain import LABELS
from vsr.training.dataset import Example, write_examples
from vsr.training.domain_sources import GLOSS_QUESTIONS

BLOCK = 20
HELDOUT_SOURCES = frozenset({"pkg:chatterbot-corpus", "pkg:debian-faq"})


class PackageError(ValueError):
    """An archive that is not the expected package or lacks the expected files."""


# ---- reading archives -------------------------------------------------------------------------


def deb_files(path: Path, pattern: str) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of the files of a .deb's data archive whose path matches ``pattern``."""
    data = path.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise PackageError(f"{path}: not a Debian package (no ar header)")
    offset, payload = 8, None
    while offset + 60 <= len(data):
        header = data[offset : offset + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        if name.startswith("data.tar"):
            payload = (name, data[offset + 60 : offset + 60 + size])
            break
        offset += 60 + size + (size % 2)
    if payload is None:
        raise PackageError(f"{path}: no data.tar member")
    name, raw = payload
    if name.endswith(".xz"):
        raw = lzma.decompress(raw)
    elif name.endswith(".gz"):
        raw = gzip.decompress(raw)
    elif name != "data.tar":
        raise PackageError(f"{path}: unsupported data member {name}")
    regex = re.compile(pattern)
    found = False
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if member.isfile() and regex.search(member.name):
                handle = archive.extractfile(member)
                assert handle is not None
                found = True
                yield member.name, handle.read()
    if not found:
        raise PackageError(f"{path}: no file matches {pattern!r}")


def _blocks(examples: list[Example], key: str) -> list[Example]:
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


def _space(text: str) -> str:
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
                options.append(f"{option.group(1)}. {_space(option.group(2))}")
                index += 1
            text = _fcc_text(_space(match.group(5)), options, rng)
            if text is not None:
                group = f"{element}:topic{int(match.group(2)) // 4}"
                examples.append(Example(text, "engineering", group, "pkg:fccexam"))
    for name, raw in deb_files(deb, r"usr/share/fccexam/E[69]/[0-9][0-9A-Z-]+$"):
        lines = [line for line in raw.decode("utf-8-sig", errors="replace").splitlines() if line]
        if len(lines) < 6:
            continue
        options = [
            f"{m.group(1)}. {_space(m.group(2))}" for line in lines[2:6]
            if (m := FCC_OPTION.match(line))
        ]  # fmt: skip
        text = _fcc_text(_space(lines[1]), options, rng)
        if text is not None:
            element = name.rsplit("/", 2)[-2]
            examples.append(Example(text, "engineering", element, "pkg:fccexam"))
    return _blocks(examples, "pkg:fccexam")


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
    return _blocks(examples, "pkg:python-doc")


HTML_HEADING = re.compile(r"<h[234][^>]*>(.*?)</h[234]>", re.DOTALL)


def debian_faq_examples(deb: Path) -> list[Example]:
    examples: list[Example] = []
    for name, raw in deb_files(deb, r"/FAQ/[a-z-]+\.en\.html$"):
        chapter = name.rsplit("/", 1)[-1].split(".")[0]
        for heading in HTML_HEADING.findall(raw.decode("utf-8")):
            text = _space(html.unescape(re.sub(r"<[^>]+>", "", heading)))
            text = re.sub(r"^\d+(\.\d+)*\.\s*", "", text)
            if text.endswith("?"):
                examples.append(Example(text, "computer science", chapter, "pkg:debian-faq"))
    return _blocks(examples, "pkg:debian-faq")


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
                text = _space(first)
                if text.endswith("?") or QUESTION_START.match(text):
                    examples.append(Example(text, category, stem, "pkg:chatterbot-corpus"))
    return _blocks(examples, "pkg:chatterbot-corpus")


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
    return _space(field[:cut].replace("{", "").replace("}", "").replace("\\", ""))


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
    return _blocks(examples, "pkg:bsdgames-quiz")


# ---- GCIDE: subject-labelled senses -----------------------------------------------------------

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


def _gcide_senses(dictionary: str, index: str) -> Iterator[tuple[str, str]]:
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
            gloss = _space(re.sub(r"[{}]", "", gloss))
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
    for label, gloss in _gcide_senses(
        gzip.decompress(dictionary).decode("utf-8", errors="replace"), index.decode("utf-8")
    ):
        category, field = GCIDE_FIELDS[label]
        # Only the gloss frames: the gloss carries the subject; a bare rare headword ("Define
        # Vomer.") says little, and WordNet's terms already give that shape.
        text = rng.choice(GLOSS_QUESTIONS).format(field=field, gloss=gloss[:1].lower() + gloss[1:])
        by_category.setdefault(category, []).append(Example(text, category, field, "pkg:gcide"))
    examples: list[Example] = []
    for category in sorted(by_category):
        rows = by_category[category]
        if len(rows) > GCIDE_CAP:
            rows = [rows[i] for i in sorted(rng.sample(range(len(rows)), GCIDE_CAP))]
        examples.extend(rows)
    # Blocks of alphabetically neighbouring senses of one field: neighbours share stems.
    return _blocks(examples, "pkg:gcide")


# ---- assembling -------------------------------------------------------------------------------


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def existing_texts(directory: Path, skip: Path) -> set[str]:
    """Normalised texts of every JSONL in ``directory`` but ``skip`` (our own earlier output)."""
    keys: set[str] = set()
    for path in sorted(directory.glob("*.jsonl")):
        if path.resolve() == skip.resolve():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                keys.add(_key(json.loads(line)["text"]))
    return keys


def split(
    examples: Iterable[Example], known: set[str]
) -> tuple[list[Example], list[Example], Counter[str]]:
    """Dedupe (against ``known`` and each other) and split off the held-out sources."""
    train: list[Example] = []
    heldout: list[Example] = []
    dropped: Counter[str] = Counter()
    seen = set(known)
    for example in examples:
        if example.label not in LABELS:
            raise ValueError(f"{example.source}: label {example.label!r} is not a domain label")
        key = _key(example.text)
        if not key or key in seen:
            dropped[example.source] += 1
            continue
        seen.add(key)
        (heldout if example.source in HELDOUT_SOURCES else train).append(example)
    return train, heldout, dropped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fccexam", type=Path, required=True, help="fccexam_1.0.7-1.1_all.deb")
    parser.add_argument("--python-doc", type=Path, required=True, help="python3.11-doc_*.deb")
    parser.add_argument("--debian-faq", type=Path, required=True, help="debian-faq_11.1_all.deb")
    parser.add_argument("--bsdgames", type=Path, required=True, help="bsdgames_2.17-*.deb")
    parser.add_argument("--gcide", type=Path, required=True, help="dict-gcide_0.48.5*.deb")
    parser.add_argument(
        "--chatterbot", type=Path, required=True, help="chatterbot_corpus-1.3.3*.whl"
    )
    parser.add_argument("--domain-dir", type=Path, default=Path("data/domain"))
    parser.add_argument("--out", type=Path, default=Path("data/domain/packages.jsonl"))
    parser.add_argument("--heldout", type=Path, default=Path("data/heldout/domain_packages.jsonl"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("fccexam", "python_doc", "debian_faq", "bsdgames", "gcide", "chatterbot"):
        if not getattr(args, name).is_file():
            parser.error(f"--{name.replace('_', '-')}: {getattr(args, name)} is not a file")
    rng = random.Random(args.seed)
    examples = fccexam_examples(args.fccexam, rng)
    examples += python_faq_examples(args.python_doc)
    examples += debian_faq_examples(args.debian_faq)
    examples += chatterbot_examples(args.chatterbot)
    examples += bsdgames_examples(args.bsdgames, rng)
    examples += gcide_examples(args.gcide, rng)
    # Our own earlier output is not "known": regenerating must give the same file.
    known = existing_texts(args.domain_dir, skip=args.out)
    train, heldout, dropped = split(examples, known)
    count = write_examples(args.out, train)
    args.heldout.parent.mkdir(parents=True, exist_ok=True)
    with args.heldout.open("w", encoding="utf-8", newline="\n") as handle:
        for example in heldout:
            record = {"label": example.label, "source": example.source, "text": example.text}
            handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"wrote {count} examples to {args.out}, {len(heldout)} held out to {args.heldout}")
    table = Counter((e.source, e.label) for e in [*train, *heldout])
    for (source, label), n in sorted(table.items()):
        print(f"  {source:24} {label:18} {n}")
    print(f"dropped as duplicates: {dict(sorted(dropped.items()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
