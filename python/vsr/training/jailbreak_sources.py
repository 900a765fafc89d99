"""Real benign requests, real carrier documents and prompt injections for the jailbreak task.

``python -m vsr.training.jailbreak_sources --bigbench bigbench-1.0.0.tar.gz --evals evals-*.whl``
writes ``data/jailbreak/real.jsonl.gz`` with three labels:

- ``benign`` (real, not written here): the system and user turns of OpenAI evals task sets
  (PyPI ``evals`` 3.0.1, MIT; reserved directories never opened), BIG-bench's Natural
  Instructions tasks (definition + passage, often long), intent-recognition utterances, GRE
  passages and topical chats (PyPI ``bigbench`` 1.0.0, Apache-2.0). Long texts are cut into the
  same windows the served signal scores (``jailbreak_text.window_texts``), so length alone
  carries no label.
- ``prompt_injection``: instruction overrides and prompt-leaking requests written here
  (``jailbreak_injections``), and *indirect* injections: an instruction hidden inside a real
  document (a BIG-bench passage or an evals task text, wrapped as a README, an issue, an email, an
  HTML page, a config file or code) that the user asks the model to summarise, translate or review.
- ``jailbreak``: attacks after a long benign preamble (a real document, then a role-play frame from
  ``data/jailbreak/examples.jsonl``), so an attack late in a long prompt is learnt in the window
  that holds it.

The payloads and frames are written by this project (Apache-2.0); the documents are real. Every
example's ``group`` is held out whole: a document source block, an evals directory, a payload.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path

from vsr.training.benchmark_archives import (
    RESERVED_EVALS,
    bigbench_task,
    evals_directories,
    evals_records,
)
from vsr.training.dataset import Example, read_examples
from vsr.training.jailbreak_injections import document_fragments, injections, late_attacks
from vsr.training.jailbreak_text import BENIGN, WINDOW_CHARS, is_english, window_texts

# evals directories whose prompts are not English or not text a user would send.
EVALS_SKIP_WORDS = ("chinese", "japanese", "korean", "russian", "belarusian", "ukrain", "hebrew",
                    "hindi", "urdu", "polish", "icelandic", "-exams-qa", "lexicon", "ascii",
                    "svg", "raven", "mazes", "pointer-value", "formal_logic", "identifying_var",
                    "diabetes", "tetris", "bitwise", "naughty_strings", "reverse-shell",
                    "make_me_say", "human-safety", "steganography", "base64", "self_prompting")  # fmt: skip  # noqa: E501


def evals_benign(wheel: Path, rng: random.Random, per_directory: int = 12) -> list[Example]:
    """System and user turns of the English evals task sets (real instructions, many with roles)."""
    examples = []
    for directory in evals_directories(wheel):
        if directory in RESERVED_EVALS or any(w in directory.lower() for w in EVALS_SKIP_WORDS):
            continue
        texts = []
        for index, record in enumerate(evals_records(wheel, directory)):
            if index >= 400:
                break
            messages = record.get("input")
            if not isinstance(messages, list):
                continue
            turns = [str(m.get("content", "")) for m in messages if isinstance(m, dict)]
            joined = "\n\n".join(t for t in turns if t.strip())
            if joined and is_english(joined):
                texts.append(joined)
        texts = sorted(set(texts))
        for text in rng.sample(texts, min(per_directory, len(texts))):
            for window in window_texts(text)[:3]:
                examples.append(Example(window, BENIGN, f"evals:{directory}", "evals:tasks"))
    return examples


def bigbench_documents(
    sdist: Path, rng: random.Random
) -> tuple[list[Example], list[tuple[str, str]]]:
    """Benign examples and (group, document) carriers from BIG-bench."""
    benign: list[Example] = []
    documents: list[tuple[str, str]] = []
    with tarfile.open(sdist) as archive:
        names = [
            m.name.split("/")[4]
            for m in archive.getmembers()
            if "/natural_instructions/subtask" in m.name and m.name.endswith("task.json")
        ]
        for name in sorted(set(names)):
            data = bigbench_task(archive, f"natural_instructions/{name}")
            prefix = data.get("task_prefix", "").strip()
            items = [e["input"].strip() for e in data["examples"] if e["input"].strip()]
            for item in rng.sample(items, min(6, len(items))):
                text = f"{prefix}\n\n{item}" if rng.random() < 0.5 else item
                for window in window_texts(text)[:4]:
                    benign.append(
                        Example(
                            window, BENIGN, f"bigbench:ni:{name}", "bigbench:natural_instructions"
                        )
                    )
            for item in rng.sample(items, min(8, len(items))):
                if len(item) > 300:
                    documents.append((f"bigbench:ni:{name}", item))
        data = bigbench_task(archive, "intent_recognition")
        for index, item in enumerate(data["examples"][:500]):
            text = item["input"].removeprefix("Utterance: ").strip()
            benign.append(
                Example(
                    text, BENIGN, f"bigbench:intent:{index // 25}", "bigbench:intent_recognition"
                )
            )
        data = bigbench_task(archive, "gre_reading_comprehension")
        for index, item in enumerate(data["examples"]):
            for window in window_texts(item["input"])[:2]:
                benign.append(
                    Example(
                        window,
                        BENIGN,
                        f"bigbench:gre:{index // 8}",
                        "bigbench:gre_reading_comprehension",
                    )
                )
        data = bigbench_task(archive, "topical_chat")
        chats = [e["input"] for e in data["examples"]]
        for index, chat in enumerate(rng.sample(chats, 300)):
            for window in window_texts(chat)[:2]:
                benign.append(
                    Example(window, BENIGN, f"bigbench:chat:{index // 25}", "bigbench:topical_chat")
                )
            if index < 150:
                documents.append((f"bigbench:chat:{index // 25}", chat))
    return benign, documents


def package_readmes(
    site_packages: Path, rng: random.Random, only: frozenset[str] | None = None
) -> list[tuple[str, str]]:
    """The long descriptions (READMEs) of installed Python packages: real pasted documents.

    ``only``: the package names to use (``data/jailbreak/readme_packages.txt``), so the data does
    not change when the environment gains packages.
    """
    import email

    documents = []
    for path in sorted(site_packages.glob("*.dist-info/METADATA")):
        if only is not None and path.parent.name.split("-")[0] not in only:
            continue
        message = email.message_from_string(path.read_text(encoding="utf-8", errors="replace"))
        body = str(message.get_payload() or "")
        if len(body) < 600 or not is_english(body):
            continue
        name = path.parent.name.split("-")[0]
        for window in window_texts(body)[:6]:
            documents.append((f"readme:{name}", window))
    return documents


def wordnet_sentences(directory: Path, rng: random.Random, count: int = 3000) -> list[Example]:
    """WordNet's usage examples ("he read page 12 of the manual"): short, real, ordinary text.

    Without them a short fragment that is not a question reads as odd, and odd reads as attack.
    """
    sentences = []
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (directory / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            _, _, gloss = line.partition(" | ")
            sentences += [m for m in re.findall(r'"([^"]{12,200})"', gloss) if is_english(m)]
    picked = rng.sample(sorted(set(sentences)), min(count, len(sentences)))
    return [
        Example(text, BENIGN, f"wordnet:sentences:{index // 50}", "wordnet:usage_examples")
        for index, text in enumerate(picked)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bigbench", type=Path, required=True)
    parser.add_argument("--evals", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--readmes", type=Path, help="a site-packages folder whose packages' READMEs to use"
    )
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    benign = evals_benign(args.evals, rng)
    more, documents = bigbench_documents(args.bigbench, rng)
    benign += more
    if args.readmes is not None:
        listed = args.data_dir / "jailbreak" / "readme_packages.txt"
        only = None
        if listed.is_file():
            lines = listed.read_text(encoding="utf-8").splitlines()
            only = frozenset(n.strip() for n in lines if n.strip() and not n.startswith("#"))
        readmes = package_readmes(args.readmes, rng, only)
        documents += readmes
        benign += [Example(text, BENIGN, group, "pypi:readmes") for group, text in readmes]
    existing = read_examples(args.data_dir / "jailbreak" / "examples.jsonl")
    roleplay = [
        e
        for e in existing
        if e.source in ("pyrit:templates", "vsr:written_roleplay_jailbreaks")
        and len(e.text) < WINDOW_CHARS - 200
    ]
    attacks = injections(documents, rng) + late_attacks(documents, roleplay, rng)
    benign += wordnet_sentences(args.wordnet, rng) + document_fragments(documents, rng)
    unique: dict[str, Example] = {}
    for example in benign + attacks:
        if len(example.text) >= 8:
            unique.setdefault(example.text, example)
    out = args.data_dir / "jailbreak" / "real.jsonl.gz"
    # Written line by line through a text wrapper, not with dataset.write_records: gzip's bytes
    # depend on how the text reaches the compressor, and the committed file was written this way.
    with (
        gzip.GzipFile(out, "wb", mtime=0) as raw,
        io.TextIOWrapper(raw, encoding="utf-8") as handle,
    ):
        for example in unique.values():
            handle.write(json.dumps(example.to_record(), ensure_ascii=False, sort_keys=True) + "\n")
    counts: dict[str, int] = {}
    for example in unique.values():
        counts[example.label] = counts.get(example.label, 0) + 1
    print(f"wrote {len(unique)} examples to {out}: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
