"""Readers of the security packages that keep their attack text in Python sources (constants,
lists of seeds, calls such as ``Attack(template=...)``), read through ``ast`` with
``PythonSource``: nothing is imported or run (aegisrt also ships a JSONL of templates). One
reader per package, labelled by meaning; the table of packages is ``attack_readers.PACKAGES``.
"""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

from vsr.training.attack_cues import attack_label, is_attack
from vsr.training.attack_package_files import (
    fill_request,
    package_example,
    wheel_jsonl,
    wheel_text,
)
from vsr.training.dataset import Example
from vsr.training.jailbreak_text import INJECTION, JAILBREAK
from vsr.training.python_source import PythonSource

AEGISRT_SEEDS = {
    "probes/injection.py": "INJECTION_SEEDS",
    "probes/rag_manipulation.py": "RAG_MANIPULATION_SEEDS",
    "probes/exfiltration.py": "EXFILTRATION_SEEDS",
    "probes/tool_misuse.py": "TOOL_MISUSE_SEEDS",
    "probes/data_leakage.py": "DATA_LEAKAGE_SEEDS",
    "probes/refusal_bypass.py": "REFUSAL_BYPASS_SEEDS",
    "probes/redteam/system_integrity.py": "SYSTEM_INTEGRITY_SEEDS",
}
AEGISRT_JAILBREAK = {"persona_hijack", "fiction_framing", "hypothetical", "logic_inversion",
                     "emotional_manipulation", "code_framing"}  # fmt: skip


def read_aegisrt(archive: zipfile.ZipFile) -> list[Example]:
    """Its own templates and probe seeds; its DAN variants (JailbreakHub families), HarmBench-
    and AdvBench-style behaviours (plain requests) and multilingual seeds are left out."""
    out = []
    rows = wheel_jsonl(archive, "aegisrt/datasets/jailbreak_templates.jsonl")
    for index, row in enumerate(rows):
        category = row["category"]
        text = fill_request(row["prompt"], index)
        if category == "encoding":
            out.append(
                package_example(text, INJECTION, "aegisrt", "templates:encoding", "obfuscated")
            )
        elif category in AEGISRT_JAILBREAK:
            out.append(
                package_example(text, JAILBREAK, "aegisrt", f"templates:{category}", "jailbreak")
            )
        else:
            out.append(
                package_example(text, INJECTION, "aegisrt", f"templates:{category}", "direct")
            )
    for path, name in AEGISRT_SEEDS.items():
        for seed in PythonSource(wheel_text(archive, f"aegisrt/{path}")).string_list(name):
            wrapper = name == "REFUSAL_BYPASS_SEEDS"  # framings around a request: jailbreaks
            if not is_attack(seed):  # e.g. the harmless first turns of its crescendo seeds
                continue
            label = JAILBREAK if wrapper else attack_label(seed)
            kind = "jailbreak" if label == JAILBREAK else "direct"
            out.append(package_example(seed, label, "aegisrt", Path(path).stem, kind))
    return out


HERMES = {
    "IDENTITY_OVERRIDE": (JAILBREAK, "jailbreak"),
    "FRAMING_BYPASS": (JAILBREAK, "jailbreak"),
    "SOCIAL_ENGINEERING": (JAILBREAK, "jailbreak"),
    "META_REASONING": (JAILBREAK, "jailbreak"),
    "PROMPT_EXTRACTION": (INJECTION, "leak"),
    "INJECTION": (INJECTION, "direct"),
    "ENCODING_BYPASS": (JAILBREAK, "obfuscated"),
}  # MULTILINGUAL: not English


def read_hermes(archive: zipfile.ZipFile) -> list[Example]:
    out = []
    for index, call in enumerate(
        PythonSource(wheel_text(archive, "hermes_jailbench/attacks.py")).calls("Attack")
    ):
        category = str(call.get("category", "")).rpartition(".")[2]
        if category not in HERMES or not call.get("template"):
            continue
        label, kind = HERMES[category]
        out.append(
            package_example(
                fill_request(call["template"], index),
                label,
                "hermes-jailbench",
                category.lower(),
                kind,
            )
        )
    return out


NULLSEC = {
    "extraction": (INJECTION, "leak"),
    "override": (INJECTION, "direct"),
    "indirect": (INJECTION, "indirect"),
    "function_abuse": (INJECTION, "agent"),
    "jailbreak": (JAILBREAK, "jailbreak"),
}


def read_nullsec(archive: zipfile.ZipFile) -> list[Example]:
    out = []
    source = PythonSource(wheel_text(archive, "nullsec_promptinject/payloads.py"))
    for index, call in enumerate(source.calls("Payload")):
        text, category = call.get("_0"), call.get("_1")
        language = call.get("_2") or call.get("language") or "en"
        if not text or category not in NULLSEC or language != "en":
            continue
        label, kind = NULLSEC[category]
        if "base64" in text.lower():
            kind = "obfuscated"
        out.append(
            package_example(
                fill_request(text, index), label, "nullsec-promptinject", category, kind
            )
        )
    return out


def read_guardrailprobe(archive: zipfile.ZipFile) -> list[Example]:
    """LLM01 (prompt injection) probes, and the other OWASP categories' probes that wrap their
    request in an attack; its plain harmful or misuse requests are left out."""
    out = []
    for call in PythonSource(wheel_text(archive, "guardrailprobe/probes.py")).calls("AttackProbe"):
        text, category = call.get("payload"), str(call.get("category", ""))
        if not isinstance(text, str) or not (category == "_LLM01" or is_attack(text)):
            continue
        label = attack_label(text)
        kind = "jailbreak" if label == JAILBREAK else "direct"
        out.append(package_example(text, label, "guardrailprobe", category.strip("_"), kind))
    return out


def read_blastcontain(archive: zipfile.ZipFile) -> list[Example]:
    """Its built-in corpus: the user's ask, and the poisoned document or tool description."""
    out = []
    source = PythonSource(wheel_text(archive, "blastcontain_drill/corpus/builtin.py"))
    for call in source.calls("Attack"):
        prompt, category = call.get("prompt"), str(call.get("category", ""))
        if not isinstance(prompt, str):
            continue
        document = call.get("poisoned_document")
        if isinstance(document, str) and document in source.names.values():
            text, kind = f"{prompt}\n\n{document}", "indirect"
        elif isinstance(document, str) and document in source.names:
            text, kind = f"{prompt}\n\n{source.names[document]}", "indirect"
        else:
            text, kind = prompt, "direct"
        if category == "jailbreak":
            out.append(
                package_example(text, JAILBREAK, "blastcontain-drill", category, "jailbreak")
            )
        elif kind == "indirect" or is_attack(text):
            out.append(package_example(text, INJECTION, "blastcontain-drill", category, kind))
    return out


def read_honeypot(archive: zipfile.ZipFile) -> list[Example]:
    # Payloads it hides in web pages an agent browses.
    source = PythonSource(wheel_text(archive, "honeypot_ai/pages.py"))
    return [
        package_example(text, INJECTION, "honeypot-ai", "pages", "indirect")
        for text in source.string_list("PAYLOADS")
    ]


def read_canaryprobe(archive: zipfile.ZipFile) -> list[Example]:
    source = PythonSource(wheel_text(archive, "agent_canary/probes/injection.py"))
    texts = sorted({t for n in ast.walk(source.tree) if (t := source.value(n)) and len(t) > 60})
    return [
        package_example(t, attack_label(t), "canaryprobe", "injection", "direct")
        for t in texts
        if is_attack(t) and not t.startswith(("agent ", "target "))
    ]
