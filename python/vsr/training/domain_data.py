"""Domain training examples, generated from written vocabularies (data/domain/vocabulary_*.yaml).

Every MMLU-Pro category has topics, concrete exam-style stems, answer phrases and numeric scenarios
written by the project. They are combined with category-independent templates in many styles
(short questions, exam stems with 4 or 10 options, instructions, casual chat, long prompts with a
preamble) so the head learns a category from its *content* words: the templates are shared by all
categories and carry no label information.

Besides exam stems, each category has ``tasks``: short, direct requests as people type them into a
chat ("Prove that ...", "Simplify ...", "Balance ...", "Explain ...", code snippets, quantities
with units). Each task, with its variants (casual, with a preamble, with a shared suffix), is one
group.

A category may appear in several vocabulary files: their lists are concatenated in file order, so
adding a file only appends (earlier examples keep their text; tasks use their own random stream).

Each example's ``group`` is its topic or stem, so the validation split holds out whole topics.
Generation is seeded: the same vocabulary and seed give the same file.

Run ``python -m vsr.training.domain_data --out data/domain/examples.jsonl`` to regenerate.
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from vsr.training.dataset import Example, write_examples

SOURCE = "vsr:domain_vocabulary"
LETTERS = "ABCDEFGHIJ"

# {topic} / {other}: topics of the same category; shared by every category, so they carry no label.
TOPIC_TEMPLATES: tuple[str, ...] = (
    "What is {topic}?",
    "Can you explain {topic} in simple terms?",
    "Explain {topic} to a first-year student, with one worked example.",
    "Why is {topic} important?",
    "How does {topic} relate to {other}?",
    "Compare {topic} and {other}. What are the key differences?",
    "Summarize the key ideas behind {topic} in five bullet points.",
    "Write a short study guide on {topic} for an upcoming exam.",
    "Give me three practice questions about {topic}, with answers.",
    "What are common misconceptions about {topic}?",
    "I keep getting confused by {topic}. Could you walk me through it step by step?",
    "explain {topic} pls, my exam is tomorrow",
    "Which of the following statements about {topic} is correct?",
    "Which of the following best describes {topic}?",
    "Describe a real-world example that illustrates {topic}.",
    "What are the main assumptions behind {topic}, and when do they fail?",
    "Create a lesson plan outline for teaching {topic}.",
    "In two paragraphs, discuss how {topic} developed over time.",
    "I'm writing an essay that connects {topic} with {other}. Suggest a structure and a thesis.",
    "Quiz me on {topic}. Ask one question at a time.",
    "What would be a good exam question testing understanding of {topic}?",
    "tl;dr of {topic}?",
    "How would you test whether someone really understands {topic}?",
    "Define {topic} and give an example.",
)

# Long prompts: a preamble from the user's situation, then the actual request.
PREAMBLES: tuple[str, ...] = (
    "I'm a teaching assistant preparing review material for a class, and students keep asking "
    "about the same things. ",
    "Background: I am studying for a professional certification and I have about two weeks left. "
    "I learn best from concrete examples and short explanations. ",
    "I run a small study group. Last week we covered {other}, and this week we move on. ",
    "Context for you: I read a textbook chapter on {other} yesterday but the next section lost me. "
    "Please be precise and avoid jargon where you can. ",
    "You are a patient tutor. Answer carefully and check your reasoning before giving a final "
    "answer. ",
)

# Ways a short request is wrapped; shared by every category, so they carry no label.
TASK_PREFIXES: tuple[str, ...] = (
    "Quick one: ",
    "Can you help me with this? ",
    "Homework help: ",
    "Please answer: ",
    "",
)
TASK_SUFFIXES: tuple[str, ...] = (
    " Keep it brief.",
    " Show your steps.",
    " Explain your answer.",
    " Be concise, please.",
    "",
)

FIELDS = ("topics", "questions", "answers", "scenarios", "tasks")

EXAM_HEADERS: tuple[str, ...] = (
    "",
    "",
    "Answer the following multiple choice question. ",
    "The following is a multiple choice question. Think step by step and then finish with "
    "'the answer is (X)'.\n\n",
    "Question: ",
    "Choose the best answer.\n",
)


def load_vocabulary(data_dir: Path) -> dict[str, dict[str, list[str]]]:
    """Merge ``vocabulary_*.yaml`` under ``data_dir/domain``; category -> field -> phrases."""
    vocabulary: dict[str, dict[str, list[str]]] = {}
    files = sorted((data_dir / "domain").glob("vocabulary_*.yaml"))
    if not files:
        raise FileNotFoundError(f"no vocabulary_*.yaml under {data_dir / 'domain'}")
    for path in files:
        loaded: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        for category, fields in loaded.items():
            unknown = set(fields) - set(FIELDS)
            if unknown:
                raise ValueError(f"{path}: {category!r} has unknown fields {sorted(unknown)}")
            merged = vocabulary.setdefault(str(category), {key: [] for key in FIELDS})
            for key in FIELDS:
                merged[key].extend(str(item) for item in fields.get(key) or [])
    return vocabulary


def _options(rng: random.Random, answers: Sequence[str], count: int) -> str:
    chosen = rng.sample(list(answers), min(count, len(answers)))
    style = rng.randrange(3)
    if style == 0:
        return "\n".join(f"{LETTERS[i]}. {option}" for i, option in enumerate(chosen))
    if style == 1:
        return " ".join(f"({LETTERS[i]}) {option}" for i, option in enumerate(chosen))
    return "Options: " + "; ".join(f"{LETTERS[i]}) {option}" for i, option in enumerate(chosen))


def _fill_numbers(rng: random.Random, template: str) -> str:
    text = re.sub(
        r"\{int\}",
        lambda _: str(
            rng.choice(
                [
                    2,
                    3,
                    4,
                    5,
                    6,
                    8,
                    10,
                    12,
                    15,
                    20,
                    25,
                    30,
                    40,
                    45,
                    50,
                    60,
                    75,
                    80,
                    100,
                    120,
                    150,
                    200,
                    250,
                    300,
                    500,
                    1200,
                ]
            )
        ),
        template,
    )
    return re.sub(
        r"\{dec\}",
        lambda _: f"{rng.choice([0.1, 0.2, 0.25, 0.5, 0.8, 1.5, 2.5, 3.2, 4.5, 6])}",
        text,
    )


def _casual(rng: random.Random, text: str) -> str:
    """Lower-case and drop the final punctuation sometimes: chat prompts are rarely tidy."""
    if rng.random() < 0.15:
        text = text.lower().rstrip("?.!")
    return text


def _category_examples(
    rng: random.Random, category: str, fields: dict[str, list[str]]
) -> Iterator[Example]:
    topics, answers = fields["topics"], fields["answers"]
    for topic in topics:
        group = f"topic:{category}:{topic}"
        others = [t for t in topics if t != topic]
        for template in rng.sample(TOPIC_TEMPLATES, 7):
            text = template.format(topic=topic, other=rng.choice(others))
            if "following" in template:
                text += "\n" + _options(rng, answers, rng.choice([4, 4, 10]))
            if rng.random() < 0.2:
                preamble = rng.choice(PREAMBLES).format(other=rng.choice(others))
                text = preamble + text
            yield Example(_casual(rng, text), category, group, SOURCE)
    for index, question in enumerate(fields["questions"]):
        group = f"question:{category}:{index}"
        yield Example(question, category, group, SOURCE)
        for count in (4, 10, rng.choice([4, 5])):
            text = rng.choice(EXAM_HEADERS) + question + "\n" + _options(rng, answers, count)
            if rng.random() < 0.3:
                text += "\nAnswer:"
            yield Example(text, category, group, SOURCE)
        yield Example(_casual(rng, "Quick question: " + question), category, group, SOURCE)
        yield Example(question + " Explain your reasoning briefly.", category, group, SOURCE)
    for index, scenario in enumerate(fields["scenarios"]):
        group = f"scenario:{category}:{index}"
        for _ in range(12):
            text = _fill_numbers(rng, scenario)
            if rng.random() < 0.5:
                text += "\n" + _options(rng, answers, rng.choice([4, 10]))
            yield Example(text, category, group, SOURCE)


def _task_examples(
    rng: random.Random, category: str, fields: dict[str, list[str]]
) -> Iterator[Example]:
    """Short direct requests: the request as written, plus three wrapped variants."""
    topics = fields["topics"]
    for index, task in enumerate(fields["tasks"]):
        group = f"task:{category}:{index}"
        yield Example(task, category, group, SOURCE)
        yield Example(task.lower().rstrip("?.!"), category, group, SOURCE)
        prefix, suffix = rng.choice(TASK_PREFIXES[:-1]), rng.choice(TASK_SUFFIXES)
        yield Example(prefix + task + suffix, category, group, SOURCE)
        preamble = rng.choice(PREAMBLES).format(other=rng.choice(topics))
        yield Example(preamble + task, category, group, SOURCE)


def generate(vocabulary: dict[str, dict[str, list[str]]], seed: int = 0) -> list[Example]:
    """All categories' examples, deterministic for a given vocabulary and seed."""
    examples: list[Example] = []
    for category in sorted(vocabulary):
        rng = random.Random(f"{seed}:{category}")
        examples.extend(_category_examples(rng, category, vocabulary[category]))
        task_rng = random.Random(f"{seed}:{category}:tasks")
        examples.extend(_task_examples(task_rng, category, vocabulary[category]))
    return examples


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, default=Path("data/domain/examples.jsonl"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    count = write_examples(args.out, generate(load_vocabulary(args.data_dir), args.seed))
    print(f"wrote {count} examples to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
