"""Half precision and load-time warm-up on the test device (VSR_TEST_DEVICE; "cpu" by default).

Half precision is compared with the float32 transformers references, as relative error of the
mean-pooled hidden states (||out - ref|| / ||ref||) and max abs error of probabilities. The bounds
leave about 2x headroom over what the CPU gives on these random tiny models (float16 ~1e-3 and
bfloat16 ~1e-2 relative; bfloat16 keeps 8 mantissa bits against float16's 11). NaN never passes.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
from tests.core.conftest import DEVICE, MODELS, reference

from vsr.models import Embedder, SequenceClassifier

HIDDEN_RELATIVE_BOUND = {"float16": 5e-3, "bfloat16": 4e-2}
PROBABILITY_BOUND = {"float16": 5e-3, "bfloat16": 4e-2}
# all-MiniLM-L6-v2 against sentence-transformers: cosine of normalised embeddings.
MINILM_COSINE_BOUND = {"float16": 0.9995, "bfloat16": 0.99}
HALF_DTYPES = ["float16", "bfloat16"]


@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("name", ["bert-seq", "modernbert-seq", "bert-token", "modernbert-token"])
def test_half_precision_hidden_states_stay_close(name: str, dtype: str) -> None:
    ref = reference(name)
    embedder = Embedder.load(
        MODELS / name, device=DEVICE, dtype=dtype, pooling="mean", normalize=False
    )
    assert embedder.dtype == dtype
    vectors = embedder.embed(ref["texts"])
    assert np.isfinite(vectors).all(), "NaN or inf in half precision (padding mask overflow?)"
    expected = np.array(ref["mean_pooled"])
    relative = np.linalg.norm(vectors - expected) / np.linalg.norm(expected)
    assert relative <= HIDDEN_RELATIVE_BOUND[dtype], f"{name} {dtype}: relative error {relative}"


@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("name", ["bert-seq", "modernbert-seq"])
def test_half_precision_probabilities_stay_close(name: str, dtype: str) -> None:
    ref = reference(name)
    probabilities = SequenceClassifier.load(MODELS / name, device=DEVICE, dtype=dtype).predict(
        ref["texts"]
    )
    assert np.isfinite(probabilities).all()
    error = np.abs(probabilities - np.array(ref["probabilities"])).max()
    assert error <= PROBABILITY_BOUND[dtype], f"{name} {dtype}: max abs error {error}"


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_precision_minilm_matches_sentence_transformers(dtype: str) -> None:
    ref = reference("minilm")
    vectors = Embedder.load("all-MiniLM-L6-v2", device=DEVICE, dtype=dtype).embed(ref["texts"])
    assert np.isfinite(vectors).all()
    cosine = (vectors * np.array(ref["embeddings"])).sum(axis=1)
    assert cosine.min() >= MINILM_COSINE_BOUND[dtype], f"{dtype}: cosine {cosine.min()}"


@pytest.mark.skipif(not DEVICE.startswith("cuda"), reason="kernel JIT happens on GPUs only")
def test_first_request_after_load_pays_no_kernel_jit() -> None:
    """Loading runs a warm-up pass, so the first request costs what later ones do.

    Run this first in a fresh process (scripts/gpu_check.sh does): candle loads each PTX module
    on first use, and a cold JIT costs tens to hundreds of milliseconds per module, far above
    the bound below. A padded batch of mixed lengths with every head is what requests look like.
    """
    ref = reference("modernbert-seq")
    for name in ("bert-seq", "modernbert-seq"):
        model = SequenceClassifier.load(MODELS / name, device=DEVICE)
        started = time.perf_counter()
        model.predict(ref["texts"])
        first = time.perf_counter() - started
        steady: list[float] = []
        for _ in range(5):
            started = time.perf_counter()
            model.predict(ref["texts"])
            steady.append(time.perf_counter() - started)
        typical = statistics.median(steady)
        assert first <= 5 * typical + 0.010, (
            f"{name}: first request {first * 1000:.1f} ms, then {typical * 1000:.2f} ms"
        )


def test_large_inputs_match_texts_run_alone() -> None:
    """Past 128 texts a GPU tokenizes slice by slice while the previous slice runs, and single
    texts replay CUDA graphs; on a CPU the same input is cut into length-sorted chunks. Whatever
    the path, each text's vector must be what it gets on its own."""
    ref = reference("bert-seq")
    words = " ".join(ref["texts"]).split()
    texts = [" ".join(words[i % 7 : i % 7 + 1 + (i * 13) % 40]) for i in range(150)]
    embedder = Embedder.load(
        MODELS / "bert-seq", device=DEVICE, dtype="float32", pooling="mean", normalize=False
    )
    together = embedder.embed(texts)
    alone = np.stack([embedder.embed([text])[0] for text in texts])
    assert together.shape == (150, embedder.dimension)
    np.testing.assert_allclose(together, alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("large_graphs", ["1", "0"])
@pytest.mark.parametrize("name", ["bert-seq", "modernbert-seq"])
def test_repeated_large_batches_match_texts_run_alone(
    name: str, large_graphs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a GPU a batch shape seen a few times is recorded as a CUDA graph and replayed
    (VSR_CUDA_GRAPHS_LARGE=1), or runs eagerly with its outputs read back asynchronously into
    page-locked memory (=0). 300 texts of two very different lengths are two slices (the second
    tokenized on a helper thread) and two chunks, the second queued before the first is read.
    Every call, recorded or replayed, must give each text the vector it gets alone. On a CPU both
    settings are the same path."""
    monkeypatch.setenv("VSR_CUDA_GRAPHS_LARGE", large_graphs)
    ref = reference(name)
    words = " ".join(ref["texts"]).split()
    short = [" ".join(words[i % 5 : i % 5 + 3]) for i in range(150)]
    long = [" ".join((words * 20)[i : i + 150]) for i in range(150)]
    texts = [text for pair in zip(short, long, strict=True) for text in pair]
    embedder = Embedder.load(
        MODELS / name, device=DEVICE, dtype="float32", pooling="mean", normalize=False
    )
    alone = np.stack([embedder.embed([text])[0] for text in texts])
    for _ in range(4):
        np.testing.assert_allclose(embedder.embed(texts), alone, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(embedder.embed(short[:40]), alone[0:80:2], atol=1e-4, rtol=1e-4)
