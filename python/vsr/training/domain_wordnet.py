"""Subject questions around WordNet 3.0 terms, people and events, for the domain task.

WordNet (Debian ``wordnet-base``, Princeton WordNet licence) is read from its data files: synsets
whose *topic domain* is a subject (``law``, ``chemistry``, ``psychiatry``, ...) are asked as the
questions people type ("What is a tort in law?", "Which term means: <gloss>?"), and people/events
that are *instances* of a subject's practitioners or of battles, wars and treaties ("Who was Niels
Bohr?"). The glosses and names are WordNet's; only the question frames are ours (the gloss frames
are also used for GCIDE's senses by ``domain_gcide``). Used by ``domain_sources``.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from vsr.training.dataset import Example

WORDNET_DIR = Path("/usr/share/wordnet")

# WordNet topic domains (by the domain synset's first word) -> category.
TOPIC_CATEGORY = {
    "law": "law", "criminal law": "law", "contract": "law", "jurisprudence": "law",
    "chemistry": "chemistry", "physical chemistry": "chemistry", "biochemistry": "chemistry",
    "organic chemistry": "chemistry", "inorganic chemistry": "chemistry",
    "computer science": "computer science", "computer": "computer science",
    "computing": "computer science", "programming": "computer science",
    "biology": "biology", "botany": "biology", "genetics": "biology", "zoology": "biology",
    "ecology": "biology", "bacteria": "biology", "cytology": "biology", "embryology": "biology",
    "microbiology": "biology", "molecular biology": "biology", "taxonomy": "biology",
    "physics": "physics", "astronomy": "physics", "optics": "physics", "cosmology": "physics",
    "nuclear physics": "physics", "electricity": "physics", "mechanics": "physics",
    "thermodynamics": "physics", "acoustics": "physics", "atomic physics": "physics",
    "mathematics": "math", "statistics": "math", "geometry": "math", "arithmetic": "math",
    "algebra": "math", "trigonometry": "math", "calculus": "math", "topology": "math",
    "medicine": "health", "anatomy": "health", "physiology": "health", "pathology": "health",
    "surgery": "health", "dentistry": "health", "obstetrics": "health", "immunology": "health",
    "pharmacology": "health", "drug": "health", "ophthalmology": "health", "oncology": "health",
    "psychology": "psychology", "psychoanalysis": "psychology", "psychiatry": "psychology",
    "psychophysics": "psychology", "psychotherapy": "psychology",
    "philosophy": "philosophy", "logic": "philosophy", "theology": "philosophy",
    "ethics": "philosophy", "metaphysics": "philosophy", "epistemology": "philosophy",
    "economics": "economics", "finance": "economics", "tax": "business",
    "commerce": "business", "commercial enterprise": "business", "accounting": "business",
    "corporation": "business", "stock exchange": "business", "auction": "business",
    "marketing": "business", "management": "business", "bookkeeping": "business",
    "electronics": "engineering", "architecture": "engineering", "aeronautics": "engineering",
    "telecommunication": "engineering", "mining": "engineering", "masonry": "engineering",
    "engineering": "engineering", "electrical engineering": "engineering",
    "civil engineering": "engineering", "mechanical engineering": "engineering",
    "antiquity": "history", "Middle Ages": "history", "history": "history",
    "military": "history",
    "music": "other", "sport": "other", "cooking": "other", "Greek mythology": "other",
    "baseball": "other", "golf": "other", "art": "other", "football": "other",
    "photography": "other", "card game": "other", "chess": "other", "poetry": "other",
    "basketball": "other", "literature": "other", "tennis": "other", "boxing": "other",
    "dancing": "other", "television": "other", "fine arts": "other", "Norse mythology": "other",
    "Roman mythology": "other", "golf game": "other", "soccer": "other", "cricket": "other",
    "ice hockey": "other", "handicraft": "other", "riding": "other", "drama": "other",
    "religion": "other", "Christianity": "other", "Judaism": "other", "Islam": "other",
    "Hinduism": "other", "Buddhism": "other", "linguistics": "other", "grammar": "other",
    "geography": "other", "meteorology": "other", "politics": "other", "government": "other",
}  # fmt: skip

# Occupations whose WordNet *instances* (named people) belong to a subject.
OCCUPATION_CATEGORY = {
    "physicist": "physics", "astronomer": "physics", "nuclear physicist": "physics",
    "chemist": "chemistry", "biochemist": "chemistry",
    "biologist": "biology", "geneticist": "biology", "naturalist": "biology",
    "botanist": "biology", "zoologist": "biology", "bacteriologist": "biology",
    "mathematician": "math", "statistician": "math", "geometer": "math",
    "economist": "economics",
    "philosopher": "philosophy", "theologian": "philosophy", "logician": "philosophy",
    "psychologist": "psychology", "psychiatrist": "psychology", "psychoanalyst": "psychology",
    "physician": "health", "surgeon": "health", "pathologist": "health", "nurse": "health",
    "jurist": "law", "lawyer": "law", "judge": "law", "chief justice": "law",
    "engineer": "engineering", "inventor": "engineering", "architect": "engineering",
    "computer scientist": "computer science", "programmer": "computer science",
    "industrialist": "business", "businessman": "business", "financier": "business",
    "statesman": "history", "general": "history", "emperor": "history", "king": "history",
    "queen": "history", "President of the United States": "history", "pharaoh": "history",
    "conqueror": "history", "explorer": "history", "revolutionary": "history",
    "composer": "other", "painter": "other", "poet": "other", "writer": "other",
    "actor": "other", "singer": "other", "ballplayer": "other",
}  # fmt: skip

# Events that are history questions.
EVENT_CATEGORY = {
    "battle": "history", "war": "history", "siege": "history", "pact": "history",
    "treaty": "history", "revolution": "history", "rebellion": "history", "massacre": "history",
    "dynasty": "history", "civil war": "history", "uprising": "history",
}  # fmt: skip

TERM_QUESTIONS = (
    "What is {a} {term}?",
    "What does {term} mean in {field}?",
    "Can you explain what {term} is?",
    "Define {term}.",
    "In {field}, what is meant by {term}?",
    "what's {term}",
    "Explain the concept of {term} in {field} with an example.",
    "How would you describe {term} to a student of {field}?",
)
GLOSS_QUESTIONS = (
    "Which term in {field} means: {gloss}?",
    "What is the word for {gloss}?",
    "Name the {field} term: {gloss}.",
    "Quiz question ({field}): what do we call {gloss}?",
)
PERSON_QUESTIONS = (
    "Who was {name}?",
    "What is {name} known for?",
    "Tell me about {name}, the {occupation}.",
    "Which {occupation} {gloss}?",
    "Summarize the main contributions of {name}.",
)
EVENT_QUESTIONS = (
    "What happened in the {name}?",
    "Why was the {name} important?",
    "Describe the causes and consequences of the {name}.",
    "When did the {name} take place and who was involved?",
)


def _parse_wordnet(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    synsets: dict[tuple[str, str], dict[str, Any]] = {}
    for pos, code in (("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r")):
        for line in (directory / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            count = int(fields[3], 16)
            words = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
            index = 4 + 2 * count
            pointers = []
            for _ in range(int(fields[index])):
                symbol, offset, ptr_pos = fields[index + 1 : index + 4]
                pointers.append((symbol, offset, "a" if ptr_pos == "s" else ptr_pos))
                index += 4
            synsets[(fields[0], code)] = {"words": words, "pointers": pointers, "gloss": gloss}
    return synsets


def _clean_word(word: str) -> str:
    return re.sub(r"\(\w+\)$", "", word).strip()


def _gloss(gloss: object) -> str:
    """The definition part of a WordNet gloss (examples after ';' in quotes dropped)."""
    text = str(gloss).split('; "')[0].strip().rstrip(";").strip()
    return text


def _domain_category(
    synsets: dict[tuple[str, str], dict[str, Any]], key: tuple[str, str], depth: int = 3
) -> str | None:
    """A topic domain's category, or that of its nearest hypernym within ``depth`` steps."""
    for _ in range(depth + 1):
        node = synsets[key]
        for word in node["words"]:
            category = TOPIC_CATEGORY.get(_clean_word(word))
            if category:
                return category
        parents = [(o, p) for s, o, p in node["pointers"] if s == "@"]
        if not parents:
            return None
        key = parents[0]
    return None


def wordnet_examples(directory: Path, rng: random.Random) -> list[Example]:
    synsets = _parse_wordnet(directory)
    examples: list[Example] = []
    for key, node in synsets.items():
        for symbol, offset, pos in node["pointers"]:
            if symbol != ";c":
                continue
            category = _domain_category(synsets, (offset, pos))
            if category is None:
                continue
            field_name = _clean_word(synsets[(offset, pos)]["words"][0])
            term = _clean_word(node["words"][0])
            gloss = _gloss(node["gloss"])
            if len(term) < 3 or not gloss:
                continue
            group = f"wordnet:domain:{field_name}"
            article = "an" if term[0].lower() in "aeiou" else "a"
            if key[1] != "n":
                article = ""
            frame = rng.choice(TERM_QUESTIONS)
            text = frame.format(a=article, term=term, field=field_name).replace("  ", " ")
            examples.append(Example(text, category, group, "wordnet:topic_domain"))
            if rng.random() < 0.5:
                frame = rng.choice(GLOSS_QUESTIONS)
                text = frame.format(field=field_name, gloss=gloss)
                examples.append(Example(text, category, group, "wordnet:topic_domain_gloss"))
            break
    by_word: dict[str, str] = {**OCCUPATION_CATEGORY, **EVENT_CATEGORY}
    for node in synsets.values():
        for symbol, offset, pos in node["pointers"]:
            if symbol != "@i":
                continue
            parent = _clean_word(synsets[(offset, pos)]["words"][0])
            category = by_word.get(parent)
            if category is None:
                continue
            name = _clean_word(node["words"][0])
            gloss = _gloss(node["gloss"])
            group = f"wordnet:instance:{parent}:{name[:1].lower()}"
            if parent in EVENT_CATEGORY:
                text = rng.choice(EVENT_QUESTIONS).format(name=name)
            else:
                frame = rng.choice(PERSON_QUESTIONS)
                # A gloss like "United States physicist who ..." reads as "Which physicist ...".
                rest = re.sub(rf"^.*?\b{re.escape(parent)}\b\s*", "", gloss)
                if "{gloss}" in frame and (rest == gloss or not rest):
                    frame = PERSON_QUESTIONS[0]
                text = frame.format(name=name, occupation=parent, gloss=rest)
            examples.append(Example(text, category, group, "wordnet:instance"))
            break
    return examples
