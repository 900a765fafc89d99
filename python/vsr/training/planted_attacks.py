"""Real attack payloads planted in real pasted documents, with controls (issue 17, sixth round).

``python -m vsr.training.planted_attacks`` reads only committed training files and writes
``data/jailbreak/planted.jsonl.gz`` (training, ``--with-planted``); the same inputs give the same
bytes.

Why: the weakest unseen-source figures are indirect injections (an instruction hidden in a README,
an issue, a config file or a tool's output), and the outside measurement names exactly those. The
indirect injections trained so far plant the project's own 20 override frames
(``jailbreak_injections``) in real documents; the real payloads the package surveys collected
(direct overrides, prompt-leaking requests, indirect snippets, written by the authors of 40-odd
security packages) were trained only as they came, mostly alone. Here each of those payloads is
planted once in a real document, in one of ``HIDING``'s places, usually under one of
``DOCUMENT_ASKS``'s asks, so the model meets real attacker wording inside the kind of text it will
have to read.

What goes in:
- payloads: every ``prompt_injection`` row of the package surveys' training files
  (``attacks_more``, ``attacks_third``, ``attacks_fourth``) of ``MIN_PAYLOAD``-``MAX_PAYLOAD``
  characters; deepset's rows are left out (some are ordinary questions labelled as injections, which
  planted in a document would teach the wrong thing); AgentDojo's are already planted;
- carriers: the bare document windows of ``packages.jsonl.gz`` (man pages, Debian docs, changelogs,
  crate and Go READMEs, configs: ``docs:`` sources without an ask), less any sharing even one
  8-word shingle with a held-out long document (``jailbreak_packages`` holds out whole documents,
  but sibling Debian packages ship the same changelogs and docs: 563 of its 4,391 training
  windows share over 20% of their shingles with a held-out document): 1,902 of 2,678 remain;
- controls (benign), one per planted attack: another carrier with a piece of a third document in one
  of the neutral hiding places (a paragraph, an HTML comment, a P.S., a hidden span, a JSON field, a
  bot comment; not the forms that address an AI), so the hiding place itself is not what is learnt;
  and each of the surveys' benign near-misses ("ignore my previous email") planted the same way.

Groups: a planted attack keeps its payload's group, so the group split sends it to the same part
(train, calibration or test) as the payload itself; a control takes its carrier's group. Texts are
at most ``WINDOW_CHARS`` long, so the payload is always inside the first training window.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path

from vsr.training.dataset import Example, read_examples, write_records
from vsr.training.jailbreak_data import overlaps_heldout, text_shingles
from vsr.training.jailbreak_injections import DOCUMENT_ASKS, HIDING
from vsr.training.jailbreak_text import BENIGN, INJECTION, WINDOW_CHARS, random_excerpt
from vsr.training.tasks_recipe import read_heldout

PAYLOAD_FILES = ("attacks_more.jsonl.gz", "attacks_third.jsonl.gz", "attacks_fourth.jsonl.gz")
CARRIER_FILE = "packages.jsonl.gz"
HELDOUT_DOCUMENTS = "heldout/benign_long.jsonl"
OUT = "planted.jsonl.gz"
MIN_PAYLOAD, MAX_PAYLOAD = 20, 400
ASKED = 0.7  # share under a user's ask; the rest arrive bare, as a tool's output or RAG context
# HIDING's places that do not address an AI: the controls' only places.
NEUTRAL_HIDING = tuple(h for h in HIDING if not any(w in h for w in ("AI", "assistant", "system")))


def payloads_and_near_misses(data_dir: Path) -> tuple[list[Example], list[Example]]:
    """The surveys' package prompt injections to plant, and their benign near-misses."""
    payloads, near = [], []
    for name in PAYLOAD_FILES:
        for example in read_examples(data_dir / "jailbreak" / name):
            if example.label == INJECTION and MIN_PAYLOAD <= len(example.text) <= MAX_PAYLOAD:
                payloads.append(example)
            elif example.label == BENIGN and len(example.text) <= MAX_PAYLOAD:
                near.append(example)
    return payloads, near


def carriers(data_dir: Path) -> list[Example]:
    """Bare document windows (no ask around them) of the long-document training file, less those
    sharing text with a held-out long document."""
    held = text_shingles(e.text for e in read_heldout(data_dir / HELDOUT_DOCUMENTS))
    rows = read_examples(data_dir / "jailbreak" / CARRIER_FILE)
    return [
        e
        for e in rows
        if e.source.startswith("docs:")
        and "+" not in e.source
        and not overlaps_heldout(e.text, held, limit=0.0)
    ]


def plant(
    payload: str, carrier: str, places: Sequence[str], rng: random.Random, asked: bool
) -> str:
    """``payload`` hidden at a word boundary of an excerpt of ``carrier``, maybe under an ask."""
    ask = rng.choice(DOCUMENT_ASKS) if asked else "{doc}"
    room = WINDOW_CHARS - len(ask) - len(payload) - 60  # the hiding place's own characters
    body = random_excerpt(carrier, rng.randint(min(150, room), max(150, min(700, room))), rng)
    cut = body.find(" ", rng.randint(0, len(body)))
    cut = len(body) if cut == -1 else cut
    hidden = rng.choice(places).format(before=body[:cut], payload=payload, after=body[cut:])
    return ask.format(doc=hidden)[:WINDOW_CHARS]


def planted(data_dir: Path, rng: random.Random) -> list[Example]:
    payloads, near = payloads_and_near_misses(data_dir)
    documents = carriers(data_dir)
    examples = []
    for payload in payloads:
        carrier = rng.choice(documents)
        text = plant(payload.text, carrier.text, HIDING, rng, rng.random() < ASKED)
        examples.append(Example(text, INJECTION, payload.group, f"planted:{payload.source}"))
    controls = [(rng.choice(documents).text, "planted:control") for _ in payloads]
    controls += [(e.text, f"planted:control:{e.source}") for e in near]
    for note, source in controls:
        carrier = rng.choice(documents)
        if source == "planted:control":  # a piece of a third document, not an instruction
            note = random_excerpt(note, rng.randint(40, 300), rng)
        text = plant(note, carrier.text, NEUTRAL_HIDING, rng, rng.random() < ASKED)
        examples.append(Example(text, BENIGN, carrier.group, source))
    return examples


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = planted(args.data_dir, random.Random(args.seed))
    out = args.data_dir / "jailbreak" / OUT
    count = write_records(out, (e.to_record() for e in rows), gz=True)
    attacks = sum(e.label != BENIGN for e in rows)
    print(f"wrote {count} examples to {out}: {attacks} planted attacks, {count - attacks} controls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
