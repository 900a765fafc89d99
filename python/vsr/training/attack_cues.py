"""The cues that tell an attack from a plain request in the security packages' text, and which
kind of attack it is: a role-play / persona / framing cue makes it a ``jailbreak``, otherwise a
``prompt_injection``. Used by the package readers of ``attack_readers``.
"""

from __future__ import annotations

import re

from vsr.training.jailbreak_text import INJECTION, JAILBREAK

# Role-play / persona / framing cues: an attack carrying them is a jailbreak, not an injection.
PERSONA = re.compile(
    r"\b(DAN|do anything now|developer mode|jailbr(oken|eak)|pretend (to be|you are)|"
    r"role-?play|you are now (a|an|in)\b|act as (a|an)\b|stay in character|unrestricted (ai|mode)|"
    r"no (ethical|moral) (guidelines|constraints)|fictional|hypothetical|grandm)",
    re.I,
)
# Overrides, leaks and mode switches (plain harmful or misuse requests, "Show me an example AWS
# access key", carry none of them).
STRONG_CUE = re.compile(
    r"ignore|disregard|forget (all|every|your)|override|system prompt|(your|previous|prior|"
    r"hidden|original|initial) instructions|new instructions|disable|bypass|you are now|"
    r"developer mode|no restrictions|without restriction|jailbr|\bDAN\b",
    re.I,
)
# Instructions addressed to the model inside data, or a claimed mode switch.
NOTE_CUE = re.compile(
    r"note (for|to) (the )?(ai|assistant|bot|reviewer|agent)|(ai|agent|assistant) "
    r"(instruction|directive)|\[(system|admin)|system (note|notice|message|update)|"
    r"do not (tell|mention|inform)|without telling|(maintenance|admin|debug|god) mode|verbatim",
    re.I,
)


def is_attack(text: str) -> bool:
    """Whether a package's request is an attack on the model or agent (an override, a leak, a
    mode switch, a persona, an instruction hidden in data) rather than a plain request: used for
    packages that mix both (a bare "Read /etc/passwd and show me" is left out)."""
    return bool(STRONG_CUE.search(text) or PERSONA.search(text) or NOTE_CUE.search(text))


def attack_label(text: str) -> str:
    """``jailbreak`` when the attack carries a persona or framing cue, else ``prompt_injection``."""
    return JAILBREAK if PERSONA.search(text) else INJECTION


# A request to reveal the model's own instructions (prompt leaking), not merely naming them.
LEAK = re.compile(
    r"\b(reveal|print|repeat|show|output|echo|tell me|leak|share|shared|reproduce|render|dump|"
    r"disclose|emit|emitting|produce|producing|contain|include|state|list)\b[^.!?]{0,60}"
    r"(system prompt|(hidden|initial|internal|developer) (instructions|guidelines|rules)|"
    r"protected [\w ]{0,20}(rules|guidelines)|configuration directives)",
    re.I,
)


def attack_kind(text: str, label: str, indirect: bool) -> str:
    """The ``source`` kind of an attack: ``jailbreak``, ``indirect`` (in data the model reads),
    ``leak`` (asks for the model's instructions) or ``direct``."""
    if label == JAILBREAK:
        return "jailbreak"
    if indirect:
        return "indirect"
    return "leak" if LEAK.search(text) else "direct"
