"""The fused attention kernel for short sequences (rust/kernels/attention_ops.cu, fused_attention)
against transformers and against vsr's unfused path, on the test device (VSR_TEST_DEVICE).

The committed tiny fixtures have heads of 8 features, which the fused kernel does not take (it is
built for heads of 32 and 64: MiniLM, BERT-base), so these tests write random BERT encoders of
those head sizes with transformers. On a GPU with VSR_FUSED_ATTENTION_MAX_BATCH=8 (the default is 1:
single texts; scripts/gpu_bench.sh and gpu_check.sh run this file with 8), a call of at
most 8 texts of at most 128 tokens takes the fused kernel, and a call of more texts, or a longer
text, the unfused one (cuBLAS products, separate softmax). The unfused one has two forms: batched
products straight on the fused QKV rows when the padded length is a multiple of 8 tokens (4 in
float32; rust/src/model/cuda_ops/attention_gemm.rs), head permutes around candle's products
otherwise. Off a GPU all take the same path and the comparisons still hold.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.core.conftest import DEVICE, MODELS, TOLERANCE

from vsr.models import Embedder

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

# bfloat16 fused (float32 probabilities) against bfloat16 unfused (probabilities rounded to
# bfloat16 before the second product): relative error of the pooled vectors, as
# test_device.HIDDEN_RELATIVE_BOUND states for bfloat16 against float32.
BF16_RELATIVE_BOUND = 4e-2


def _texts(count: int, words_per_text: int, offset: int = 0) -> list[str]:
    vocabulary = [
        "the",
        "law",
        "of",
        "large",
        "numbers",
        "says",
        "math",
        "court",
        "ruling",
        "proof",
        "judge",
        "theorem",
    ]
    return [
        " ".join(
            vocabulary[(i * 7 + j * 3 + offset) % len(vocabulary)]
            for j in range(1 + (i * 5) % words_per_text)
        )
        for i in range(count)
    ]


@pytest.fixture(scope="module", params=[(128, 4), (256, 4)], ids=["head32", "head64"])
def encoder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    hidden, heads = request.param
    target = tmp_path_factory.mktemp(f"bert_h{hidden}")
    torch.manual_seed(hidden)
    config = transformers.BertConfig(
        vocab_size=500,  # the fixture tokenizer's
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        max_position_embeddings=512,
        hidden_act="gelu",
    )
    model = transformers.BertModel(config, add_pooling_layer=False).eval()
    model.save_pretrained(target, safe_serialization=True)
    shutil.copy(MODELS / "bert-seq" / "tokenizer.json", target / "tokenizer.json")
    return target


def _transformers_mean(path: Path, texts: list[str]) -> np.ndarray:
    """Masked mean of transformers' last hidden states in float32 on the CPU, padded with id 0."""
    tokenizer = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_padding()  # the fixture's tokenizer.json pads to 128 itself
    tokenizer.no_truncation()
    encodings = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in encodings)
    ids = torch.zeros((len(texts), width), dtype=torch.long)
    mask = torch.zeros((len(texts), width), dtype=torch.long)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = torch.tensor(encoding.ids)
        mask[row, : len(encoding.ids)] = 1
    model = transformers.BertModel.from_pretrained(path).eval()
    with torch.no_grad():
        states = model(input_ids=ids, attention_mask=mask).last_hidden_state
    weights = mask.unsqueeze(-1).float()
    return ((states * weights).sum(1) / weights.sum(1)).numpy()


def test_fused_attention_matches_transformers_in_float32(encoder: Path) -> None:
    """Up to 8 padded texts of up to 128 tokens: the fused kernel, fp32 within the parity bound."""
    embedder = Embedder.load(
        encoder, device=DEVICE, dtype="float32", pooling="mean", normalize=False
    )
    for count in (1, 3, 8):
        texts = _texts(count, 40, offset=count)
        expected = _transformers_mean(encoder, texts)
        np.testing.assert_allclose(embedder.embed(texts), expected, atol=TOLERANCE, rtol=TOLERANCE)


def test_fused_and_unfused_attention_agree(encoder: Path) -> None:
    """The same texts in calls of 1-8 (fused on a GPU) and in one call of 40 (unfused); a text
    past 128 tokens (unfused) in a small call beside short ones."""
    embedder = Embedder.load(
        encoder, device=DEVICE, dtype="float32", pooling="mean", normalize=False
    )
    texts = _texts(40, 30)
    together = embedder.embed(texts)
    small = np.concatenate([embedder.embed(texts[i : i + 5]) for i in range(0, 40, 5)])
    np.testing.assert_allclose(small, together, atol=TOLERANCE, rtol=TOLERANCE)
    long_text = " ".join(_texts(150, 1))
    mixed = embedder.embed([long_text, texts[0]])
    np.testing.assert_allclose(mixed[1], together[0], atol=TOLERANCE, rtol=TOLERANCE)
    assert np.isfinite(mixed).all()

    half = Embedder.load(encoder, device=DEVICE, dtype="bfloat16", pooling="mean", normalize=False)
    fused = np.concatenate([half.embed(texts[i : i + 4]) for i in range(0, 40, 4)])
    assert np.isfinite(fused).all()
    relative = np.linalg.norm(fused - together) / np.linalg.norm(together)
    assert relative <= BF16_RELATIVE_BOUND, (
        f"bfloat16 small calls vs float32: relative error {relative}"
    )


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("tokens", [16, 64, 128])
def test_half_precision_batches_match_transformers(encoder: Path, dtype: str, tokens: int) -> None:
    """Calls of 24 texts in 16-bit storage whose longest text is a multiple of 16 tokens (the
    shapes CUDA graphs pad to), the rest padding the bias masks: more texts than the fused
    kernel takes, so the unfused path (batched cuBLAS products on the fused rows, as the lengths
    are multiples of 8; masked softmax). Within the bfloat16 bound
    of fp32 transformers. (A tensor-core fused kernel for these shapes passed this test on an H200
    and was slower than cuBLAS: benches/README.md.)"""
    letters = "abcdefghijklmnopqrstuvwxyz"  # one word piece each in the fixture's vocabulary
    words = tokens - 2  # [CLS] and [SEP]
    texts = [" ".join(letters[j % 26] for j in range(words))]
    texts += [" ".join(letters[i : i + 1 + i % 7]) for i in range(23)]
    tokenizer = tokenizers.Tokenizer.from_file(str(encoder / "tokenizer.json"))
    tokenizer.no_padding()
    assert max(len(e.ids) for e in tokenizer.encode_batch(texts)) == tokens
    expected = _transformers_mean(encoder, texts)
    half = Embedder.load(encoder, device=DEVICE, dtype=dtype, pooling="mean", normalize=False)
    got = half.embed(texts)
    assert np.isfinite(got).all()
    relative = np.linalg.norm(got - expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert relative.max() <= BF16_RELATIVE_BOUND, f"{dtype} at {tokens} tokens: {relative.max()}"


def _letter_texts(count: int, longest_words: int) -> list[str]:
    """One text of `longest_words` single-piece words, then `count - 1` short ones."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    texts = [" ".join(letters[j % 26] for j in range(longest_words))]
    return texts + [" ".join(letters[i % 20 : i % 20 + 1 + i % 7]) for i in range(count - 1)]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_batched_products_and_permute_path_agree(encoder: Path, dtype: str) -> None:
    """The same 24 texts padded to 64 tokens (a multiple of 8: the batched products on the fused
    rows) and, beside a 67-token text, to 67 (the permute path): padding is masked, so each text's
    vector must not depend on the path (fp32 within the parity bound)."""
    embedder = Embedder.load(encoder, device=DEVICE, dtype=dtype, pooling="mean", normalize=False)
    texts = _letter_texts(24, 62)  # [CLS] + 62 + [SEP] = 64 tokens
    aligned = embedder.embed(texts)
    unaligned = embedder.embed([*texts, _letter_texts(1, 65)[0]])[:24]
    assert np.isfinite(aligned).all()
    if dtype == "float32":
        np.testing.assert_allclose(aligned, unaligned, atol=TOLERANCE, rtol=TOLERANCE)
    else:
        relative = np.linalg.norm(aligned - unaligned, axis=1) / np.linalg.norm(unaligned, axis=1)
        assert relative.max() <= BF16_RELATIVE_BOUND, f"{dtype}: {relative.max()}"
