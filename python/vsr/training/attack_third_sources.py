"""Readers of the third attack survey's packages that keep their attack text in Python sources
(seed constants, ``Task(...)`` / ``PromptEntry(...)`` calls, payload lists), read through ``ast``
with ``PythonSource``: nothing is imported or run. One reader per package, labelled by meaning
as ``attack_source_readers`` does; the table is ``attack_third_readers.THIRD_PACKAGES``.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from vsr.training.attack_cues import attack_kind, attack_label, is_attack
from vsr.training.attack_package_files import (
    CANARY,
    Archive,
    package_example,
    wheel_members,
    wheel_text,
)
from vsr.training.dataset import Example
from vsr.training.jailbreak_text import INJECTION, JAILBREAK
from vsr.training.python_source import PythonSource

# reprobe-agents: hand-written payloads planted in a repository's files for a coding agent;
# its template slots filled with a path and a collector address of our own.
REPROBE_FILL = {
    "{{ canary_path }}": "~/.config/deploy/credentials.env",
    "{{ collector }}": "https://collector.build-tools.example",
}


def read_reprobe(archive: Archive) -> list[Example]:
    out = []
    source = PythonSource(wheel_text(archive, "reprobe/seeds/builtin.py"))
    for call in source.calls("Seed"):
        text = call.get("text")
        if not text:  # built at run time (its zero-width interleavings): not static text
            continue
        for slot, value in REPROBE_FILL.items():
            text = text.replace(slot, value)
        label = attack_label(text)
        family = str(call.get("family") or "seed")
        out.append(
            package_example(text, label, "reprobe-agents", family, attack_kind(text, label, True))
        )
    return out


# safelabs-eval: its 300-prompt ASI library (all "original" by its own provenance field, checked
# by its authors against garak and PyRIT). ASI01 (prompt injection) is an attack by construction;
# from ASI08 (behavioural drift) the persona / role-play / fiction entries (jailbreaks); from the
# other categories only system-prompt exfiltration and instructions planted in documents: the
# rest are plain misuse, agency, resource or hallucination asks, not this classifier's job.
SAFELABS_PERSONA = {"roleplay", "persona-shift", "gradual-jailbreak", "fictional-framing",
                    "persona-jailbreak", "persona-erosion", "persona-reassignment"}  # fmt: skip
SAFELABS_LEAK = {"system-prompt-exfil", "system-prompt-echo", "guideline-enumeration"}


def read_safelabs(archive: Archive) -> list[Example]:
    out = []
    source = PythonSource(wheel_text(archive, "safelabs/prompts/library.py"))
    for entry in source.literal_calls("PromptEntry"):
        text, tags = str(entry["prompt"]), set(entry.get("tags") or [])
        category = str(entry["category"]).rpartition(".")[2].split("_")[0]  # "ASI01"
        persona = bool(tags & SAFELABS_PERSONA)
        if category == "ASI01" or (category == "ASI08" and persona):
            label = JAILBREAK if persona else attack_label(text)
        elif tags & SAFELABS_LEAK or "indirect-instruction" in tags:
            label = INJECTION
        else:
            continue
        indirect = bool(tags & {"indirect", "indirect-instruction"})
        kind = "leak" if label == INJECTION and tags & SAFELABS_LEAK else None
        kind = kind or attack_kind(text, label, indirect)
        out.append(package_example(text, label, "safelabs-eval", category, kind))
    return out


# jailbreak-arena: the seed prompts of its 20 tasks. Tasks whose every seed attacks the model's
# instructions are kept whole; its harmful-content, copyright, competitor, PII, SQL, SSRF and
# agency tasks (plain requests), its soft "what guidelines do you follow" probes and the benign
# openers of its multi-turn task are left out; the rest only where a seed reads as an attack.
JA_WHOLE = {"Role Hijacking", "Persona Override", "Developer Mode", "Fictional Framing",
            "System Prompt Extraction", "Indirect Injection", "Context Overflow",
            "Conflicting Authority", "Hypothetical Bypass"}  # fmt: skip
JA_CHECKED = {"Emotional Manipulation", "Memory Poisoning"}
JA_JAILBREAK = {"Persona Override", "Developer Mode", "Fictional Framing", "Hypothetical Bypass"}


def read_jailbreak_arena(archive: Archive) -> list[Example]:
    out = []
    source = PythonSource(wheel_text(archive, "jailbreak_arena/tasks.py"))
    for task in source.literal_calls("Task"):
        name = str(task["name"])
        for seed in task.get("seed_prompts") or []:
            if not (name in JA_WHOLE or (name in JA_CHECKED and is_attack(seed))):
                continue
            label = JAILBREAK if name in JA_JAILBREAK else attack_label(seed)
            if name == "System Prompt Extraction" and label == INJECTION:
                kind = "leak"
            else:
                kind = attack_kind(seed, label, name == "Indirect Injection")
            group = name.lower().replace(" ", "_")
            out.append(package_example(seed, label, "jailbreak-arena", group, kind))
    return out


# redclaw: the PAYLOAD_TEMPLATES of its attack modules. Its prompt-injection and goal-hijacking
# payloads are attacks by construction; of its MCP and multi-agent payloads the injections
# planted in tool descriptions, tool responses and peer agents' messages (indirect); elsewhere
# (data exfiltration, tool abuse) only payloads that read as attacks (system-prompt extraction).
REDCLAW_WHOLE = {"prompt_injection", "goal_hijacking"}
REDCLAW_INDIRECT = ("Tool description injection", "Poisoned tool response", "Tool name spoofing",
                    "Schema manipulation", "Sub-agent poisoning", "Trust chain",
                    "Orchestrator manipulation", "Indirect injection")  # fmt: skip
REDCLAW_URL = "https://verify.agent-audit.example"


def read_redclaw(archive: Archive) -> list[Example]:
    out = []
    for name in wheel_members(archive, r"redclaw/attacks/\w+\.py"):
        module = PurePosixPath(name).stem
        source = PythonSource(wheel_text(archive, name))
        try:
            payloads = source.literal("PAYLOAD_TEMPLATES")
        except KeyError:
            continue  # multi-turn sequences only (built at run time)
        for payload in payloads:
            description = str(payload["description"])
            text = str(payload["content"]).replace("{CANARY_URL}", REDCLAW_URL)
            text = text.replace("{CANARY}", CANARY).replace("{{", "{").replace("}}", "}")
            indirect = description.startswith(REDCLAW_INDIRECT)
            if not (module in REDCLAW_WHOLE or indirect or is_attack(text)):
                continue
            label = attack_label(text)
            kind = attack_kind(text, label, indirect)
            out.append(package_example(text, label, "redclaw", module, kind))
    return out
