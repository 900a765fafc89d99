"""Jailbreak training prompts composed from the engineers' written YAML files.

``data/jailbreak/written_benign.yaml`` describes everyday traffic by family (creative and coding
requests, harmless personas, system-prompt-style rules, rewrite/translate around a pasted passage,
emails, long context + ask, security and safety questions, direct requests that use attack words);
``data/jailbreak/written_attacks.yaml`` holds role-play jailbreak frames. Each family is expanded by
a seeded sampler into prompts whose *group* is the slot that defines them (a form, a language, a
role, an organisation, a passage, a frame), so a split that holds out groups holds out whole
subjects, not paraphrases of training rows.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from vsr.training.dataset import Example

ATTACK = "jailbreak"
BENIGN = "benign"
SOURCE_BENIGN = "vsr:written_benign_families"
SOURCE_ATTACK = "vsr:written_roleplay_jailbreaks"

# Prompts differ in how they open and close; a head should not key on either.
_OPENERS = ("", "", "", "Hi! ", "Hey, ", "Quick one: ", "Hello. ", "Please help. ")
_CLOSERS = ("", "", "", " Thanks!", " Thank you.", " Keep it brief.", " Cheers.")


def _fill(frame: str, values: Mapping[str, str]) -> str:
    """``str.format`` that leaves unknown braces alone (code snippets contain them)."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), frame)


def _decorate(text: str, rng: random.Random) -> str:
    return rng.choice(_OPENERS) + text + rng.choice(_CLOSERS)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def benign_family_examples(written: Mapping[str, Any], seed: int) -> list[Example]:
    """Every benign family of ``written_benign.yaml``, expanded with a seeded sampler."""
    rng = random.Random(f"{seed}:benign-families")
    examples: list[Example] = []

    def add(texts: Sequence[str], group: str) -> None:
        for text in sorted(set(texts)):
            examples.append(Example(text, BENIGN, group, SOURCE_BENIGN))

    creative = written["creative"]
    for form in creative["form"]:
        texts = []
        for _ in range(6):
            values = {
                "form": form,
                "subject": rng.choice(creative["subject"]),
                "tone": rng.choice(creative["tone"]),
                "audience": rng.choice(creative["audience"]),
            }
            texts.append(_decorate(_fill(rng.choice(creative["frames"]), values), rng))
        add(texts, f"creative:{form}")

    coding = written["coding"]
    for language in coding["language"]:
        texts = []
        for frame in rng.sample(coding["frames"], 6):
            values = {
                "language": language,
                "task": rng.choice(coding["task"]),
                "task_verb": rng.choice(coding["task_verb"]),
                "snippet": rng.choice(coding["snippet"]),
            }
            texts.append(_fill(frame, values))
        add(texts, f"coding:{language}")

    persona = written["persona"]
    for role, task, counterpart in persona["roles"]:
        task_sentence = task[:1].upper() + task[1:] + "."
        values = {"role": role, "task": task, "task_sentence": task_sentence}
        values["counterpart"] = counterpart
        texts = [_fill(frame, values) for frame in rng.sample(persona["frames"], 4)]
        add(texts, f"persona:{role}")

    system = written["system_prompts"]
    for org in system["org"]:
        texts = []
        for _ in range(4):
            opening = _fill(
                rng.choice(system["opening"]), {"org": org, "name": rng.choice(system["name"])}
            )
            parts = [
                opening,
                rng.choice(system["scope"]),
                rng.choice(system["style"]),
                *rng.sample(system["rule"], 2),
                rng.choice(system["fallback"]),
            ]
            texts.append(" ".join(part for part in parts if part))
        add(texts, f"system:{org}")

    transform = written["transform"]
    for index, passage in enumerate(transform["passage"]):
        texts = []
        for operation in rng.sample(transform["operation"], 6):
            values = {
                "operation": operation,
                "operation_lower": _lower_first(operation),
                "passage": passage,
            }
            texts.append(_fill(rng.choice(transform["frames"]), values))
        add(texts, f"transform:{index}")

    email = written["email"]
    for purpose in email["purpose"]:
        texts = [
            _decorate(
                _fill(rng.choice(email["frames"]), {"recipient": recipient, "purpose": purpose}),
                rng,
            )
            for recipient in rng.sample(email["recipient"], 5)
        ]
        add(texts, f"email:{purpose}")

    long = written["long"]
    for index, context in enumerate(long["context"]):
        texts = [f"{context}\n\n{ask}" for ask in rng.sample(long["ask"], 4)]
        add(texts, f"long:{index}")

    for family in ("security_questions", "direct_requests"):
        for index, text in enumerate(written[family]):
            variants = [text, *(_decorate(text, rng) for _ in range(2))]
            add(variants, f"{family}:{index}")
    return examples


def roleplay_attack_examples(
    frames: Sequence[str],
    behaviours: Sequence[str],
    payloads: Sequence[str],
    benign_tasks: Sequence[str],
    seed: int,
) -> list[Example]:
    """Each role-play frame filled with harmful behaviours, injection payloads and a harmless task.

    A jailbreak wrapper is an attack whatever it wraps, so one filler in six is harmless.
    """
    rng = random.Random(f"{seed}:roleplay-attacks")
    examples = []
    for index, frame in enumerate(frames):
        fillers = [
            *(_lower_first(b).rstrip(".") for b in rng.sample(list(behaviours), 3)),
            *rng.sample(list(payloads), 2),
            _lower_first(rng.choice(list(benign_tasks))).rstrip(".?"),
        ]
        for filler in fillers:
            text = _fill(frame, {"payload": filler})
            examples.append(Example(text, ATTACK, f"roleplay:{index}", SOURCE_ATTACK))
    return examples
