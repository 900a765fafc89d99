"""Numerical parity of the native core with Hugging Face transformers (fp32, max abs <= 1e-4), on
the CPU or the device named by VSR_TEST_DEVICE.

Each reference was computed by transformers on the whole batch at once (padded), mixing the empty
string, non-ASCII text and a text far beyond the model's maximum length, which must be truncated.
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.core.conftest import MODELS, ON_DEVICE, TOLERANCE, reference

from vsr.models import Embedder, SequenceClassifier, TokenClassifier

SEQUENCE_MODELS = ["bert-seq", "bert-seq-vsr-mapping", "modernbert-seq", "modernbert-seq-cls"]
TOKEN_MODELS = ["bert-token", "modernbert-token"]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    result: np.ndarray = shifted / shifted.sum(axis=-1, keepdims=True)
    return result


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_sequence_classifier_matches_transformers(name: str) -> None:
    ref = reference(name)
    model = SequenceClassifier.load(MODELS / name, **ON_DEVICE)
    probabilities = model.predict(ref["texts"])
    assert probabilities.dtype == np.float32
    assert probabilities.shape == (len(ref["texts"]), len(model.labels))
    np.testing.assert_allclose(
        probabilities, np.array(ref["probabilities"]), rtol=0, atol=TOLERANCE
    )


@pytest.mark.parametrize("name", SEQUENCE_MODELS + TOKEN_MODELS)
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooled_hidden_states_match_transformers(name: str, pooling: str) -> None:
    ref = reference(name)
    embedder = Embedder.load(MODELS / name, pooling=pooling, normalize=False, **ON_DEVICE)
    expected = np.array(ref["mean_pooled" if pooling == "mean" else "cls"])
    np.testing.assert_allclose(embedder.embed(ref["texts"]), expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("name", TOKEN_MODELS)
def test_token_classifier_matches_transformers(name: str) -> None:
    ref = reference(name)
    model = TokenClassifier.load(MODELS / name, **ON_DEVICE)
    outputs = model.predict_tokens(ref["texts"])
    for text, token_ref, (probabilities, offsets) in zip(
        ref["texts"], ref["tokens"], outputs, strict=True
    ):
        keep = [not special for special in token_ref["special_tokens_mask"]]
        expected_offsets = np.array(token_ref["offsets"], dtype=np.int64)[keep]
        np.testing.assert_array_equal(offsets.reshape(-1, 2), expected_offsets.reshape(-1, 2), text)
        expected = softmax(np.array(token_ref["logits"]))[keep]
        np.testing.assert_allclose(
            probabilities.reshape(expected.shape), expected, rtol=0, atol=TOLERANCE
        )


def test_labels_come_from_id2label_or_vsr_mapping_files() -> None:
    assert SequenceClassifier.load(MODELS / "bert-seq").labels == ["math", "law", "other"]
    # vLLM Semantic Router keeps names in category_mapping.json and LABEL_n in config.json.
    mapped = SequenceClassifier.load(MODELS / "bert-seq-vsr-mapping")
    assert mapped.labels == ["biology", "law", "math"]
    assert TokenClassifier.load(MODELS / "bert-token").labels[:3] == ["O", "B-PER", "I-PER"]


def test_sentence_transformers_defaults_are_read_from_the_directory() -> None:
    ref = reference("bert-embedder")
    embedder = Embedder.load(MODELS / "bert-embedder", **ON_DEVICE)
    # modules.json asks for CLS pooling and no Normalize module; sentence_bert_config says 64.
    assert embedder.max_length == 64
    vectors = embedder.embed(ref["texts"])
    np.testing.assert_allclose(vectors, np.array(ref["cls"]), rtol=0, atol=TOLERANCE)
    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0)


def test_minilm_matches_sentence_transformers() -> None:
    ref = reference("minilm")
    embedder = Embedder.load("all-MiniLM-L6-v2", **ON_DEVICE)
    assert embedder.max_length == ref["max_seq_length"] == 256
    vectors = embedder.embed(ref["texts"])
    assert vectors.shape == (len(ref["texts"]), 384)
    np.testing.assert_allclose(vectors, np.array(ref["embeddings"]), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_batching_does_not_change_results() -> None:
    """A text alone and the same text inside a padded batch of longer texts agree."""
    ref = reference("modernbert-seq")
    model = SequenceClassifier.load(MODELS / "modernbert-seq", **ON_DEVICE)
    batch = model.predict(ref["texts"])
    alone = np.vstack([model.predict([text]) for text in ref["texts"]])
    np.testing.assert_allclose(batch, alone, rtol=0, atol=TOLERANCE)
