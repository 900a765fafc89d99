"""Readers of the security packages that ship their attack text as data files (JSONL, YAML,
JSON, text lines) in the wheel, one per package, labelled by what each file or category means.
The table of packages is ``attack_readers.PACKAGES``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import yaml

from vsr.training.attack_cues import PERSONA, attack_label, is_attack
from vsr.training.attack_package_files import (
    package_example,
    wheel_jsonl,
    wheel_members,
    wheel_text,
)
from vsr.training.dataset import Example
from vsr.training.jailbreak_text import BENIGN, INJECTION, JAILBREAK


def read_bastioncorpus(archive: zipfile.ZipFile) -> list[Example]:
    out = []
    for row in wheel_jsonl(archive, "bastioncorpus/corpus/injections.jsonl"):
        if row.get("lang", "en") != "en":
            continue
        category = str(row["category"])
        if row["label"] == "benign":
            label, kind = BENIGN, "benign"
        elif category == "jailbreak_persona":
            label, kind = JAILBREAK, "jailbreak"
        elif category == "obfuscation":
            label, kind = INJECTION, "obfuscated"
        else:
            label = INJECTION
            kind = "indirect" if category == "indirect_injection" else "direct"
        out.append(package_example(row["text"], label, "bastioncorpus", category, kind))
    return out


def read_bastionprobe(archive: zipfile.ZipFile) -> list[Example]:
    # Payloads planted in a tool's output (the agent reads them as data).
    return [
        package_example(
            row["text"], INJECTION, "bastionprobe", str(row.get("tactic", "payload")), "indirect"
        )
        for row in wheel_jsonl(archive, "bastionprobe/payloads.jsonl")
    ]


def read_sentinelprobe(archive: zipfile.ZipFile) -> list[Example]:
    """Each case as a user would send it: the ask, then the documents or repository files."""
    out = []
    for name in wheel_members(archive, r"prompt_injection_harness/cases/\w+\.yaml"):
        stem = Path(name).stem
        for case in yaml.safe_load(wheel_text(archive, name)).get("cases", []):
            parts = [str(case.get("user_prompt", "")).strip()]
            for document in case.get("documents", []) or []:
                parts.append(f"{document.get('title', '')}\n{document.get('content', '')}".strip())
            for file in case.get("files", []) or []:
                parts.append(f"--- {file.get('path', '')} ---\n{file.get('content', '')}".strip())
            kind = "indirect" if len(parts) > 1 else "direct"
            out.append(
                package_example(
                    "\n\n".join(p for p in parts if p), INJECTION, "sentinelprobe", stem, kind
                )
            )
    return out


AGENTIC_REDTEAM = {
    "jailbreak": (JAILBREAK, "jailbreak"),
    "prompt_injection": (INJECTION, "direct"),
    "indirect_injection": (INJECTION, "indirect"),
    "mcp_security": (INJECTION, "indirect"),
    "centroid_probes": (INJECTION, "direct"),
    "clean_queries": (BENIGN, "benign"),
}  # pii_leakage, code_safety, schema_compliance, action_level: plain requests, not attacks


def read_agentic_redteam(archive: zipfile.ZipFile) -> list[Example]:
    out = []
    for stem, (label, kind) in AGENTIC_REDTEAM.items():
        for item in (
            yaml.safe_load(wheel_text(archive, f"agentic_redteam/payloads/{stem}.yaml")) or []
        ):
            query = (item.get("vars") or {}).get("query")
            if isinstance(query, str):
                if label == INJECTION and PERSONA.search(query):
                    label, kind = JAILBREAK, "jailbreak"
                out.append(package_example(query, label, "agentic-redteam", stem, kind))
                label, kind = AGENTIC_REDTEAM[stem]
    return out


# aicu's "legitimate task" extraction sets read exactly like ordinary requests ("Draft a welcome
# email explaining what you can help with"): left out, they would teach the model to flag those.
AICU_SKIP_SETS = ("legitimate_tasks",)
AICU_SKIP_FILES = ("intruder_payloads.txt", "intruder_03_indirect_disclosure.txt")


def read_aicu(archive: zipfile.ZipFile) -> list[Example]:
    out = []
    for stem in ("single_turn", "jailbreaks", "encoding_attacks"):
        data = yaml.safe_load(wheel_text(archive, f"aicu/payloads/{stem}.yaml"))
        for set_name, items in sorted((data.get("payload_sets") or {}).items()):
            if set_name in AICU_SKIP_SETS:
                continue
            for item in items:
                kind = "obfuscated" if stem == "encoding_attacks" else "leak"
                label = attack_label(item["content"])
                out.append(
                    package_example(
                        item["content"], label, "aicu-scanner", f"{stem}:{set_name}", kind
                    )
                )
    for item in yaml.safe_load(wheel_text(archive, "aicu/payloads/file_payloads.yaml"))[
        "file_payloads"
    ]:
        out.append(
            package_example(item["content"], INJECTION, "aicu-scanner", "file_payloads", "indirect")
        )
    for name in wheel_members(archive, r"aicu/payloads/intruder_\w+\.txt"):
        base = Path(name).name
        if base in AICU_SKIP_FILES:
            continue
        # Its "jailbreaks" file is system-prompt extraction too: labelled by meaning, per line.
        kind = "obfuscated" if "encoding" in base else "leak"
        for line in wheel_text(archive, name).splitlines():
            if line.strip():
                text = line.replace("\\n", "\n")
                label = attack_label(text)
                out.append(package_example(text, label, "aicu-scanner", Path(name).stem, kind))
    return out


def read_keelson(archive: zipfile.ZipFile) -> list[Example]:
    """The user turns of each probe, joined (multi-turn probes build the attack over turns)."""
    out = []
    for name in wheel_members(archive, r"keelson/probes/[\w-]+/[\w-]+\.yaml"):
        probe = yaml.safe_load(wheel_text(archive, name))
        turns = [
            str(t.get("content", "")).strip()
            for t in probe.get("turns", [])
            if t.get("role") == "user"
        ]
        text = "\n\n".join(t for t in turns if t)
        if not text or not is_attack(text):
            continue  # a bare request to the agent ("Read /etc/passwd"), not an attack wrapper
        label = attack_label(text)
        kind = "jailbreak" if label == JAILBREAK else "agent"
        out.append(package_example(text, label, "keelson-ai", name.split("/")[2], kind))
    return out


CORPUS_MINI = {
    "prompt_injection": (INJECTION, "direct"),
    "prompt_leak": (INJECTION, "leak"),
    "indirect_injection": (INJECTION, "indirect"),
    "role_hijack": (JAILBREAK, "jailbreak"),
    "policy_evasion": (JAILBREAK, "jailbreak"),
    "encoding_smuggle": (INJECTION, "obfuscated"),
}  # excessive_agency, tool_misuse: bare requests to call a tool


def read_corpus_mini(archive: zipfile.ZipFile) -> list[Example]:
    rows = json.loads(wheel_text(archive, "jailbreak_corpus_mini/corpus.json"))
    return [
        package_example(
            row["prompt"],
            *CORPUS_MINI[row["category"]][:1],
            "jailbreak-corpus-mini-py",
            row["category"],
            CORPUS_MINI[row["category"]][1],
        )
        for row in rows
        if row["category"] in CORPUS_MINI
    ]


def read_dual_llm_bench(archive: zipfile.ZipFile) -> list[Example]:
    rows = json.loads(wheel_text(archive, "dual_llm_bench/datasets/pycon_core.json"))
    return [
        package_example(
            f"{r['user_goal']}\n\n{r['untrusted_input']}",
            INJECTION,
            "dual-llm-bench",
            r["attack_type"],
            "indirect",
        )
        for r in rows
    ]
