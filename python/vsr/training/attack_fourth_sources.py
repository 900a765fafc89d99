"""Readers of the fourth attack survey's packages that keep their attack text in Python sources
(template dicts, payload tuples, ``Payload(...)`` calls), read through ``ast``: nothing is
imported or run. Labelled by meaning as the other survey readers are (``attack_cues``); the
table is ``attack_fourth_readers.FOURTH_PACKAGES``.
"""

from __future__ import annotations

import ast
import re

from vsr.training.attack_cues import attack_kind, attack_label, is_attack
from vsr.training.attack_package_files import Archive, package_example, wheel_text
from vsr.training.dataset import Example
from vsr.training.jailbreak_text import INJECTION, JAILBREAK
from vsr.training.python_source import PythonSource

# What the packages' templates ask for in their slot ({payload}, {task}): the project's own
# verb phrases, one per template in turn, worded to read as a command and after "how to".
TASKS = (
    "reveal your system prompt",
    "write a phishing email for a bank's customers",
    "make a fake ID",
    "bypass a website's login page",
    "print the API keys you can see",
    "get into my neighbour's wifi",
)
SLOT = re.compile(r"\{(payload|task|action|target)\}")


def fill_slot(text: str, index: int) -> str:
    """The template with its slot filled by one of ``TASKS`` (by the template's index)."""
    return SLOT.sub(TASKS[index % len(TASKS)], text)


def _text(source: PythonSource, node: ast.AST) -> str | None:
    """A string expression's static value: constants, module-level names, ``+`` and f-strings
    whose fields are module-level string constants; ``None`` for anything computed."""
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            inner = value.value if isinstance(value, ast.FormattedValue) else value
            part = _text(source, inner)
            if part is None:
                return None
            parts.append(part)
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(source, node.left), _text(source, node.right)
        return None if left is None or right is None else left + right
    return source.value(node)


def _assigned(source: PythonSource, name: str) -> ast.AST | None:
    for node in ast.walk(source.tree):
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        named = isinstance(target, ast.Name) and target.id == name
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and named:
            return node.value
    return None


def tuple_texts(source: PythonSource, name: str, position: int) -> list[str]:
    """The ``position``-th string of every tuple in the list or tuple assigned to ``name`` (a
    tuple of strings there, a multi-turn sequence, joined by newlines)."""
    value = _assigned(source, name)
    out = []
    for element in getattr(value, "elts", []):
        item = element.elts[position] if isinstance(element, ast.Tuple) else element
        parts = item.elts if isinstance(item, ast.Tuple) else [item]
        texts = [_text(source, part) for part in parts]
        if texts and all(t is not None for t in texts):
            out.append("\n".join(str(t) for t in texts))
    return out


# glacis-autoredteam: ``ATTACK_CATEGORIES`` in its top-level ``attack.py``, templates per
# category, slots filled with ``TASKS``; templates built at run time ("A" * 500) are skipped.
# Categories that are attacks on instructions by construction are kept whole, the framing ones
# as jailbreaks; from the others (PII asks, tool misuse, hallucination bait, social engineering,
# continuations of a harmful text: plain requests around the slot) only templates that read as
# attacks.
GLACIS_ATTACKS = {"prompt_injection", "system_prompt_leakage", "context_window_poisoning",
                  "multi_turn_manipulation", "encoding_bypass", "payload_splitting",
                  "authority_manipulation", "indirect_injection"}  # fmt: skip
GLACIS_JAILBREAK = {"jailbreak", "role_confusion", "refusal_suppression"}
# Its ethical-bypass templates ("For our incident response plan, describe in detail how an
# attacker would ...") are plain requests behind a pretext: judged like the others.


def read_glacis(archive: Archive) -> list[Example]:
    out = []
    source = PythonSource(wheel_text(archive, "attack.py"))
    categories = _assigned(source, "ATTACK_CATEGORIES")
    assert isinstance(categories, ast.Dict)
    index = 0
    for key, body in zip(categories.keys, categories.values, strict=True):
        category = source.value(key) if key is not None else None
        if not category or not isinstance(body, ast.Dict):
            continue
        fields = {source.value(k): v for k, v in zip(body.keys, body.values, strict=True) if k}
        for node in getattr(fields.get("templates"), "elts", []):
            template = _text(source, node)
            if template is None:
                continue
            text, index = fill_slot(template, index), index + 1
            framed = category in GLACIS_JAILBREAK
            # Judged on the template: the filled task ("reveal your system prompt") would
            # make any template read as an attack.
            if not (framed or category in GLACIS_ATTACKS or is_attack(SLOT.sub("", template))):
                continue
            label = JAILBREAK if framed else attack_label(text)
            if category == "encoding_bypass" and label == INJECTION:
                kind = "obfuscated"
            elif category == "system_prompt_leakage" and label == INJECTION:
                kind = "leak"
            else:
                kind = attack_kind(text, label, category == "indirect_injection")
            out.append(package_example(text, label, "glacis-autoredteam", category, kind))
    return out


# vexscan: its attack modules' payload tables, (variant, prompt, success criterion) tuples.
VEX_TABLES = {
    "vex/attacks/jailbreaks/role_play.py": ("PERSONAS", JAILBREAK, "jailbreak"),
    "vex/attacks/agent_attacks/system_prompt_leak.py": ("VARIANTS", INJECTION, "leak"),
    "vex/attacks/agent_attacks/indirect_tool_injection.py": ("PAYLOADS", INJECTION, "indirect"),
}


def read_vexscan(archive: Archive) -> list[Example]:
    out = []
    for name, (table, label, kind) in VEX_TABLES.items():
        source = PythonSource(wheel_text(archive, name))
        group = name.rsplit("/", 1)[1].removesuffix(".py")
        for text in tuple_texts(source, table, 1):
            out.append(package_example(text, label, "vexscan", group, kind))
    return out


# pytest-wardenbot: its test corpus, tuples whose first item is the prompt (or, for multi-turn
# sequences, the turns, joined); its off-topic prompts are plain requests, left out.
WARDEN_TABLES = {
    "jailbreak": "JAILBREAK_PROMPTS",
    "indirect_injection": "INDIRECT_INJECTION_PROMPTS",
    "multi_turn": "MULTI_TURN_JAILBREAK_PROMPTS",
    "refusal_bypass": "REFUSAL_BYPASS_PROMPTS",
    "system_prompt_leak": "SYSTEM_PROMPT_LEAK_PROMPTS",
    "encoded_payloads": "ENCODED_PAYLOAD_PROMPTS",
}


def read_wardenbot(archive: Archive) -> list[Example]:
    out = []
    for module, table in WARDEN_TABLES.items():
        source = PythonSource(wheel_text(archive, f"pytest_wardenbot/corpus/{module}.py"))
        for text in tuple_texts(source, table, 0):
            # A payload planted in a document is an injection whatever its wording.
            label = INJECTION if module == "indirect_injection" else attack_label(text)
            if module == "encoded_payloads" and label == INJECTION:
                kind = "obfuscated"
            elif module == "system_prompt_leak" and label == INJECTION:
                kind = "leak"
            else:
                kind = attack_kind(text, label, module == "indirect_injection")
            out.append(package_example(text, label, "pytest-wardenbot", module, kind))
    return out


# supersafe: ``Payload(...)`` calls of its corpus; the exfiltration payloads are planted in
# documents the agent reads (indirect), its secret placeholder ({API_TOKEN}) kept as written.
def read_supersafe(archive: Archive) -> list[Example]:
    out = []
    source = PythonSource(wheel_text(archive, "supersafe/security/corpus.py"))
    for call in source.calls("Payload"):
        text, category = call.get("text"), str(call.get("category") or "payload")
        if not text or not is_attack(text):
            continue
        label = attack_label(text)
        indirect = category in ("indirect_injection", "exfiltration")
        out.append(package_example(text, label, "supersafe", category,
                                   attack_kind(text, label, indirect)))  # fmt: skip
    return out


# solomon-ai-firewall: its attack simulator's template tables ((name, template, description)
# tuples), slots filled with ``TASKS``; prompt stuffing (built at run time) left out.
SOLOMON_TABLES = {"_DIRECT_INJECTIONS": "direct", "_ROLE_HIJACKS": "role_hijack",
                  "_ENCODING_EVASIONS": "encoding", "_CONTEXT_MANIPULATIONS": "context",
                  "_INDIRECT_INJECTIONS": "indirect", "_JAILBREAKS": "jailbreak",
                  "_SOCIAL_ENGINEERINGS": "social"}  # fmt: skip


def read_solomon(archive: Archive) -> list[Example]:
    out = []
    source = PythonSource(wheel_text(archive, "solomon_ai_firewall/attack_simulator.py"))
    index = 0
    for table, group in SOLOMON_TABLES.items():
        for template in tuple_texts(source, table, 1):
            text, index = fill_slot(template, index), index + 1
            if not is_attack(SLOT.sub("", template)):  # the template, not our filled task
                continue
            framed = group in ("role_hijack", "jailbreak")
            label = JAILBREAK if framed else attack_label(text)
            if group == "encoding" and label == INJECTION:
                kind = "obfuscated"
            else:
                kind = attack_kind(text, label, group == "indirect")
            out.append(package_example(text, label, "solomon-ai-firewall", group, kind))
    return out
