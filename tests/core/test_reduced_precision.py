"""The CPU path's reduced-precision products: int8 (`dtype="int8"`) and bf16 (`dtype="bfloat16"`).

bf16 rounds weights and activations to 8 significant bits in the layer products only (sums and
everything between products stay float32), so it stays much closer to float32 than int8, whose
per-channel and per-row scales cost the small values most (benches/int8_emulate.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.core.conftest import DEVICE, MODELS

from vsr.models import Embedder

TEXTS = [
    "short",
    "a much longer sentence that pads the short one " * 4,
    "What is the derivative of x^3 + 2x with respect to x?",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.skipif(DEVICE != "cpu", reason="the reduced-precision CPU layer path")
def test_bf16_products_stay_closer_to_float32_than_int8() -> None:
    reference = Embedder.load(MODELS / "bert-embedder").embed(TEXTS)
    bf16 = Embedder.load(MODELS / "bert-embedder", dtype="bfloat16")
    int8 = Embedder.load(MODELS / "bert-embedder", dtype="int8")
    assert (bf16.dtype, int8.dtype) == ("bfloat16", "int8")
    bf16_error = 1 - cosines(reference, bf16.embed(TEXTS))
    int8_error = 1 - cosines(reference, int8.embed(TEXTS))
    assert bf16_error.max() < 1e-3, bf16_error
    assert bf16_error.mean() < int8_error.mean(), (bf16_error, int8_error)
