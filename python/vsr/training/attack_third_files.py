"""Readers of the third attack survey's packages that ship their attack text as data files
(probe and scenario YAML, an annotated text corpus), one per package, labelled by meaning as
``attack_file_readers`` does. The table of packages is ``attack_third_readers.THIRD_PACKAGES``.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import yaml

from vsr.training.attack_cues import attack_kind, attack_label, is_attack
from vsr.training.attack_package_files import (
    Archive,
    package_example,
    wheel_members,
    wheel_text,
)
from vsr.training.dataset import Example
from vsr.training.jailbreak_text import BENIGN, INJECTION, JAILBREAK

# agent-guardian: probes whose seeds are all attacks by construction (asi01: goal and
# instruction manipulation); elsewhere a seed is kept only when it reads as an attack on the
# model (``is_attack``: tool misuse, privilege claims, plain exfiltration asks are left out).
AG_JAILBREAK = {"persona-break-jailbreak", "role-swap-pretext", "dialect-roleplay",
                "stateless-roleplay-bait"}  # fmt: skip
# Probes whose seeds match a cue by a word ("verbatim", "bypass", "jailbroken") but are plain
# misuse, output-encoding, hallucination or protocol-replay tests, not attacks on instructions.
AG_NOT_ATTACKS = {"citation-fabrication", "output-reflection-xss", "reflected-script-injection",
                  "output-context-payloads", "self-replicate-via-api", "sandbagging-detect",
                  "jit-credential-bypass", "blast-radius-probe", "planner-executor-auto-run",
                  "mcp-capability-override", "runtime-tool-substitution",
                  "a2a-signed-message-replay", "trust-message-replay"}  # fmt: skip
AG_INDIRECT = re.compile(r"ipi|indirect|echoleak|observation|rag-corpus|tool-desc|prompt-drift")


def read_agent_guardian(archive: Archive) -> list[Example]:
    out = []
    for name in wheel_members(archive, r"agent_guardian/probes/asi\d+/[\w-]+\.yaml"):
        path = PurePosixPath(name)
        probe, family = path.stem, path.parent.name
        for seed in yaml.safe_load(wheel_text(archive, name)).get("seeds", []) or []:
            if not isinstance(seed, str) or probe in AG_NOT_ATTACKS:
                continue
            if not (family == "asi01" or is_attack(seed)):
                continue
            label = JAILBREAK if probe in AG_JAILBREAK else attack_label(seed)
            kind = attack_kind(seed, label, bool(AG_INDIRECT.search(probe)))
            out.append(package_example(seed, label, "agent-guardian", f"{family}/{probe}", kind))
    return out


# aion-redteam: where the scenario's payload arrives; all but the user's own message are data
# the agent reads (indirect), and their payloads are attacks by construction.
AION_INDIRECT = {"tool_output", "rag_document", "memory", "inter_agent_message"}


def read_aion(archive: Archive) -> list[Example]:
    """Each scenario as the agent sees it: the user's request, then the injected payload (a
    multi-turn scenario's turns joined); user-message payloads only when they read as attacks."""
    out = []
    for name in wheel_members(archive, r"aion_redteam/scenarios/\w+/\w+\.yaml"):
        scenario = yaml.safe_load(wheel_text(archive, name))
        attack = scenario["attack"]
        point = str(attack.get("injection_point", "user_message"))
        payload = "\n".join(
            [str(attack.get("payload", "")).strip()]
            + [str(t.get("content", "")).strip() for t in attack.get("turns", []) or []]
        ).strip()
        if point not in AION_INDIRECT and point != "system_prompt" and not is_attack(payload):
            continue
        text = f"{str(scenario['setup'].get('agent_input', '')).strip()}\n\n{payload}"
        label = attack_label(payload)
        kind = attack_kind(payload, label, point in AION_INDIRECT)
        group = f"{PurePosixPath(name).parent.name}/{point}"
        out.append(package_example(text, label, "aion-redteam", group, kind))
    return out


# agent-security-scanner-mcp: its benchmark corpus of prompts, each block annotated VULN (an
# attack, with the rule it should fire) or SAFE (a benign prompt near that rule).
ASMCP_CORPUS = "package/benchmarks/corpus/prompt_injection.txt"
ASMCP_ANNOTATION = re.compile(r"#\s*(VULN|SAFE|FP-PRONE)\s*:\s*(\S+)")


def read_asmcp(archive: Archive) -> list[Example]:
    out = []
    blocks: list[tuple[str, str, list[str]]] = []
    for line in wheel_text(archive, ASMCP_CORPUS).splitlines():
        match = ASMCP_ANNOTATION.match(line)
        if match:
            blocks.append((match[1], match[2].rpartition(".")[2], []))
        elif line.startswith("#"):
            if blocks and blocks[-1][2]:
                blocks.append(("", "", []))  # a comment closes the block
        elif blocks and blocks[-1][0]:
            blocks[-1][2].append(line)
    for tag, rule, lines in blocks:
        text = "\n".join(lines).strip()
        if not tag or not text:
            continue
        group = f"prompt_injection:{rule}"
        if tag != "VULN":
            out.append(package_example(text, BENIGN, "agent-security-scanner-mcp", group, "benign"))
            continue
        # Labelled by the package's own rule: its jailbreak and framing rules are jailbreaks.
        framed = rule.startswith("jailbreak") or rule == "fictional-framing"
        label = JAILBREAK if framed else INJECTION
        if rule.startswith("base64"):
            kind = "obfuscated"
        elif rule == "system-prompt-extraction":
            kind = "leak"
        else:
            kind = attack_kind(text, label, rule == "delimiter-injection")
        out.append(package_example(text, label, "agent-security-scanner-mcp", group, kind))
    return out


# raginject: its attack patterns, each a realistic document (release notes, tickets, FAQs,
# configs, policies) carrying a payload, and the user's question about it. A pattern is kept as
# the user would send it (the question, then the document): an indirect injection; the same
# document with the payload cut out is kept as a benign near-miss. Its multilingual patterns
# (not English) and retriever-poisoning term salads (no instruction to a model) are left out.
RAGINJECT_SKIP = {"multilingual", "retriever_poisoning"}


def read_raginject(archive: Archive) -> list[Example]:
    out = []
    for name in wheel_members(archive, r"raginject/attacks/patterns/\w+\.yaml"):
        for pattern in yaml.safe_load(wheel_text(archive, name)) or []:
            category = str(pattern.get("category", ""))
            document = str(pattern.get("injected_content", "")).strip()
            payload = str(pattern.get("payload", "")).strip()
            question = str(pattern.get("question", "")).strip()
            if category in RAGINJECT_SKIP or not (document and payload and question):
                continue
            label = attack_label(payload)
            kind = "obfuscated" if category == "obfuscation" else attack_kind(payload, label, True)
            group = f"patterns:{category}"
            text = f"{question}\n\n{document}"
            out.append(package_example(text, label, "raginject", group, kind))
            clean = document.replace(payload, "").strip()
            if payload in document and len(clean.splitlines()) >= 2:
                clean = re.sub(r"\n{3,}", "\n\n", clean)
                out.append(
                    package_example(f"{question}\n\n{clean}", BENIGN, "raginject", group, "benign")
                )
    return out
