"""Edge cases of the model API: empty input, truncation, wrong types, broken model directories."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from tests.core.conftest import DEVICE, MODELS, ON_DEVICE, write_bundle

from vsr import _core
from vsr.errors import DeviceError, ModelLoadError, VsrError
from vsr.models import Embedder, EncoderBundle, SequenceClassifier, TokenClassifier


@pytest.fixture(scope="module")
def classifier() -> SequenceClassifier:
    return SequenceClassifier.load(MODELS / "bert-seq", **ON_DEVICE)


def copy_model(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(MODELS / name, target)
    return target


def test_empty_list_gives_empty_outputs(classifier: SequenceClassifier) -> None:
    assert classifier.predict([]).shape == (0, 3)
    assert Embedder.load(MODELS / "bert-seq").embed([]).shape == (0, 32)
    assert TokenClassifier.load(MODELS / "bert-token").predict([]) == []


def test_empty_string_is_a_valid_text(classifier: SequenceClassifier) -> None:
    probabilities = classifier.predict([""])
    assert probabilities.shape == (1, 3)
    assert np.isclose(probabilities.sum(), 1.0, atol=1e-5)


def test_text_beyond_max_length_is_truncated_not_an_error(classifier: SequenceClassifier) -> None:
    long_text = "the quick brown fox jumps over the lazy dog " * 2000
    assert classifier.count_tokens([long_text])[0] > classifier.max_length
    truncated = classifier.predict([long_text])
    # Truncation keeps the first max_length tokens: any longer tail gives the same answer.
    np.testing.assert_allclose(truncated, classifier.predict([long_text * 3]), atol=1e-6)
    # Without whitespace the prefix shortcut cannot cut at a word boundary; still truncated.
    assert classifier.predict(["x" * 50_000]).shape == (1, 3)


@pytest.mark.parametrize("bad", ["a single string", [1, 2], ["ok", None], b"bytes", 42])
def test_non_str_input_is_a_type_error(classifier: SequenceClassifier, bad: object) -> None:
    with pytest.raises(TypeError):
        classifier.predict(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors", "tokenizer.json"])
def test_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    model_dir = copy_model(tmp_path, "bert-seq")
    (model_dir / missing).unlink()
    with pytest.raises(ModelLoadError, match=missing.replace(".", r"\.")):
        SequenceClassifier.load(model_dir)


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="model directory not found"):
        Embedder.load(tmp_path / "nowhere")


def test_corrupt_weights_are_named(tmp_path: Path) -> None:
    model_dir = copy_model(tmp_path, "bert-seq")
    (model_dir / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelLoadError, match=r"model\.safetensors"):
        SequenceClassifier.load(model_dir)


def test_shape_mismatch_names_tensor_and_expectation(tmp_path: Path) -> None:
    model_dir = copy_model(tmp_path, "bert-seq")
    config = json.loads((model_dir / "config.json").read_text())
    config["intermediate_size"] = 128
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"intermediate\.dense\.weight.*expected \[128, 32\]"):
        SequenceClassifier.load(model_dir)


def test_unsupported_architecture_is_explained(tmp_path: Path) -> None:
    model_dir = copy_model(tmp_path, "bert-seq")
    config = json.loads((model_dir / "config.json").read_text())
    config["model_type"] = "gpt2"
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="gpt2"):
        Embedder.load(model_dir)


def test_wrong_head_kind_is_explained() -> None:
    with pytest.raises(ModelLoadError, match="not a supported token classifier"):
        TokenClassifier.load(MODELS / "bert-seq")


def test_errors_form_one_hierarchy() -> None:
    assert issubclass(ModelLoadError, VsrError) and issubclass(DeviceError, VsrError)
    assert ModelLoadError is _core.ModelLoadError


def test_cuda_without_support_is_a_clear_error() -> None:
    if _core.cuda_available():
        pytest.skip("this build has CUDA")
    with pytest.raises(DeviceError, match="no CUDA support"):
        Embedder.load(MODELS / "bert-seq", device="cuda:0")


def test_bad_dtype_and_max_length_are_value_errors() -> None:
    with pytest.raises(ValueError, match="dtype"):
        Embedder.load(MODELS / "bert-seq", dtype="int4")
    with pytest.raises(ValueError, match="max_length"):
        Embedder.load(MODELS / "bert-seq", max_length=100_000)


def test_half_precision_on_cpu_has_no_nan_and_stays_close(classifier: SequenceClassifier) -> None:
    texts = ["short", "a much longer sentence that pads the short one " * 4]
    reference = classifier.predict(texts)
    for dtype in ("float16", "bfloat16"):
        half = SequenceClassifier.load(MODELS / "bert-seq", device=DEVICE, dtype=dtype)
        probabilities = half.predict(texts)
        assert np.isfinite(probabilities).all()
        # Random tiny weights with large gains are harsher than trained models; bf16 keeps
        # 8 bits of mantissa.
        np.testing.assert_allclose(probabilities, reference, atol=0.05)


def test_usable_from_several_threads_at_once(classifier: SequenceClassifier) -> None:
    texts = [f"question number {i} about law and math" for i in range(16)]
    expected = classifier.predict(texts)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                results.append(classifier.predict(texts))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 20
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-6)


def test_bundle_runs_every_head_in_one_pass(tmp_path: Path) -> None:
    """A bundle over the token model: its own classifier plus an embedding head."""
    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    labels = TokenClassifier.load(MODELS / "bert-token").labels
    (bundle_dir / "bundle.json").write_text(
        json.dumps(
            {
                "format": "vsr-bundle/1",
                "encoder": str(MODELS / "bert-token"),
                "heads": {
                    "embedding": {"kind": "embedding", "pooling": "mean", "normalize": True},
                    "entities": {"kind": "token", "labels": labels},
                },
            }
        )
    )
    bundle = EncoderBundle.load(bundle_dir, **ON_DEVICE)
    texts = ["Alice went to Paris", "東京で会いましょう"]
    outputs = bundle.run(texts)
    embeddings = outputs["embedding"]
    assert isinstance(embeddings, np.ndarray)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    single = TokenClassifier.load(MODELS / "bert-token", **ON_DEVICE).predict(texts)
    assert outputs["entities"] == single
    assert set(bundle.run(texts, heads=["embedding"])) == {"embedding"}
    with pytest.raises(KeyError, match="nope"):
        bundle.run(texts, heads=["nope"])


def test_lone_surrogates_read_as_the_replacement_character(classifier: SequenceClassifier) -> None:
    # json.loads('"\\ud800"') makes such a str; UTF-8 has no spelling for it. One character
    # for one, so token offsets still index the caller's string.
    np.testing.assert_allclose(
        classifier.predict(["a law \ud800 question", "\udc80"]),
        classifier.predict(["a law \ufffd question", "\ufffd"]),
        atol=1e-6,
    )
    tagger = TokenClassifier.load(MODELS / "bert-token")
    text = "Mail \ud83d alice in Paris"
    entities = tagger.predict([text])[0]
    assert entities == tagger.predict([text.replace("\ud83d", "\ufffd")])[0]
    assert Embedder.load(MODELS / "bert-seq").embed(["\udfff"]).shape == (1, 32)


def test_negative_max_length_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="max_length"):
        Embedder.load(MODELS / "bert-seq", max_length=-1)


def test_bundle_heads_given_as_one_string_are_a_type_error(tmp_path: Path) -> None:
    heads = {"embedding": {"kind": "embedding", "pooling": "mean"}}
    bundle = EncoderBundle.load(write_bundle(tmp_path / "bundle", heads))
    with pytest.raises(TypeError, match="a list of head names"):
        bundle.run(["a"], "embedding")  # type: ignore[arg-type]


def test_labels_that_do_not_match_the_head_outputs_are_a_load_error(tmp_path: Path) -> None:
    # bert-seq's classifier has 3 outputs; five names would label columns that do not exist.
    model_dir = copy_model(tmp_path, "bert-seq")
    config = json.loads((model_dir / "config.json").read_text())
    config["id2label"] = {str(i): f"L{i}" for i in range(5)}
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"5 labels, but the head gives 3 outputs"):
        SequenceClassifier.load(model_dir)
    token_dir = copy_model(tmp_path, "bert-token")
    config = json.loads((token_dir / "config.json").read_text())
    config["id2label"] = {"0": "O", "1": "B-PER"}
    (token_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"2 labels, but the head gives \d+ outputs"):
        TokenClassifier.load(token_dir)
    head = {"kind": "sequence", "pooling": "cls", "transform": "bert_pooler", "labels": ["a", "b"]}
    bundle_dir = write_bundle(tmp_path / "bundle", {"d": head})
    with pytest.raises(ModelLoadError, match=r"head 'd': 2 labels, but the head gives 3 outputs"):
        EncoderBundle.load(bundle_dir)


def test_a_jailbreak_threshold_for_a_model_without_a_benign_label_is_refused() -> None:
    # Without a safe label the task falls back to argmax, where a threshold means nothing.
    from vsr.tasks import TaskError, jailbreak

    labels = jailbreak.TASK.load_predictor(str(MODELS / "bert-seq"), DEVICE).labels
    assert "benign" not in labels
    with pytest.raises(TaskError, match="no 'benign' label"):
        jailbreak.TASK.load_predictor(str(MODELS / "bert-seq"), DEVICE, threshold=0.2)
