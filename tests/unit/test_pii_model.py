"""The shipped ``vsr-pii`` model through the native core: parity with onnxruntime, sanity set.

Needs the native core (``make build``) and the converted model (``make setup``); both are part of
``make test``. The fixture was computed with onnxruntime on the package's own 4-bit ONNX file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("vsr._core", reason="the native core is not built (make build)")

from vsr.model_files import rampart_dir
from vsr.pii.detector import PiiDetector
from vsr.tasks.pii import load_detector

TESTS = Path(__file__).resolve().parents[1]

if not (rampart_dir() / "model.safetensors").is_file():
    pytest.skip("the Rampart model is not converted (make setup)", allow_module_level=True)


@pytest.fixture(scope="module")
def detector() -> PiiDetector:
    return load_detector()


def test_bundle_entities_match_onnxruntime(detector: PiiDetector) -> None:
    fixture = json.loads((TESTS / "fixtures" / "pii_rampart_onnxruntime.json").read_text())
    cases = fixture["cases"]
    outputs = detector.token_head([case["text"] for case in cases])
    for case, spans in zip(cases, outputs, strict=True):
        got = [(s.label, s.start, s.end) for s in spans]
        expected = [(e["label"], e["start"], e["end"]) for e in case["entities"]]
        assert got == expected, case["text"]
        for span, entity in zip(spans, case["entities"], strict=True):
            assert span.score == pytest.approx(entity["score"], abs=2e-3)


def test_sanity_set_is_detected_exactly(detector: PiiDetector) -> None:
    rows = [json.loads(line) for line in (TESTS / "data" / "pii_sanity.jsonl").open()]
    found = detector.detect([row["text"] for row in rows])
    for row, entities in zip(rows, found, strict=True):
        expected = [(e["label"], e["start"], e["end"]) for e in row["entities"]]
        assert [(e.label, e.start, e.end) for e in entities] == expected, row["text"]


def test_long_prompts_are_read_past_the_token_window(detector: PiiDetector) -> None:
    filler = "This paragraph is about gardening and the weather in spring. " * 60
    text = filler + "Please email the report to maria.lopez@example.com today."
    (entities,) = detector.detect([text])
    assert ("EMAIL_ADDRESS", "maria.lopez@example.com") in [(e.label, e.text) for e in entities]
