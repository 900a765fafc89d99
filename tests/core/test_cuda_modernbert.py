"""ModernBERT's CUDA path (rust/src/model/cuda_ops/modernbert.rs: masked softmax with the sliding
window applied in the kernel, fused gated GELU) against the generic candle ops it replaced
(`VSR_MODERNBERT_GENERIC=1`), on the test device (VSR_TEST_DEVICE; skipped off a GPU, where only
the generic path exists).

The switch is read once per process, so each path runs in a fresh subprocess, with CUDA graphs
off (every call runs eagerly at its own padded length, aligned or not); the fused path also runs
in this process with graphs on (the lengths CUDA graphs pad to). The fixture's window is 8 tokens
(config.json `local_attention`: keys more than 4 away are blocked), so calls padded to 49, 56 and
124 tokens block keys in the local layers, and a call of at most 5 tokens takes the "window
reaches every key" case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.core.conftest import DEVICE, MODELS, TOLERANCE

from vsr.models import Embedder

pytestmark = pytest.mark.skipif(
    not DEVICE.startswith("cuda"), reason="the fused ModernBERT path runs on CUDA only"
)

MODEL = MODELS / "modernbert-seq"
# bfloat16 against bfloat16 on another kernel sequence: test_device.HIDDEN_RELATIVE_BOUND.
BF16_RELATIVE_BOUND = 4e-2
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _letters(words: int, offset: int = 0) -> str:
    return " ".join(LETTERS[(offset + j) % 26] for j in range(words))


def _calls() -> list[list[str]]:
    """Calls of padded texts (in the fixture's tokenizer): short ones only (at most 5 tokens),
    then longest 49 and 56 tokens (a row of scores not and then a multiple of 16 bytes), then
    one of 124 tokens (the fixture has 128 positions) beside short ones."""
    short = [_letters(1 + i % 2, i) for i in range(6)]
    calls = [short]
    for longest in (35, 40):
        calls.append([_letters(longest)] + [_letters(1 + (i * 5) % longest, i) for i in range(23)])
    calls.append([_letters(90, 3), *short])
    return calls


def _embed(dtype: str, env: dict[str, str], out: Path) -> np.ndarray:
    """Every call's vectors, from a fresh process with `env` added."""
    script = (
        "import json, sys, numpy as np\n"
        "from vsr.models import Embedder\n"
        "path, device, dtype, calls, out = sys.argv[1:]\n"
        "embedder = Embedder.load(\n"
        "    path, device=device, dtype=dtype, pooling='mean', normalize=False\n"
        ")\n"
        "np.save(out, np.concatenate([embedder.embed(t) for t in json.loads(calls)]))\n"
    )
    arguments = [str(MODEL), DEVICE, dtype, json.dumps(_calls()), str(out)]
    subprocess.run(
        [sys.executable, "-c", script, *arguments],
        env={**os.environ, **env},
        check=True,
        timeout=300,
    )
    return np.load(out)


def _assert_close(got: np.ndarray, expected: np.ndarray, dtype: str, what: str) -> None:
    assert np.isfinite(got).all(), f"{what}: NaN or inf"
    if dtype == "float32":
        np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=TOLERANCE, err_msg=what)
    else:
        relative = np.linalg.norm(got - expected, axis=1) / np.linalg.norm(expected, axis=1)
        assert relative.max() <= BF16_RELATIVE_BOUND, f"{what} {dtype}: {relative.max()}"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fused_modernbert_matches_generic_ops(dtype: str, tmp_path: Path) -> None:
    eager = {"VSR_CUDA_GRAPHS": "0"}
    generic = _embed(dtype, {**eager, "VSR_MODERNBERT_GENERIC": "1"}, tmp_path / "generic.npy")
    fused = _embed(dtype, {**eager, "VSR_MODERNBERT_GENERIC": "0"}, tmp_path / "fused.npy")
    _assert_close(fused, generic, dtype, "fused vs generic, eager")
    embedder = Embedder.load(MODEL, device=DEVICE, dtype=dtype, pooling="mean", normalize=False)
    graphed = np.concatenate([embedder.embed(texts) for texts in _calls()])
    _assert_close(graphed, generic, dtype, "fused with CUDA graphs vs generic")
