"""Bundle branches: a task's own copy of the encoder's top layers over the shared trunk.

A 4-layer tiny BERT is built in a temp dir from the committed 2-layer fixture (its layers 2-3 are
drawn at random). Parity: a branch of copied layers gives exactly the trunk's outputs; a branch of
other weights gives what a plain model directory with those layers replaced gives (fp32, 1e-5).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.core.conftest import MODELS, ON_DEVICE

from vsr.errors import ModelLoadError
from vsr.model_files import read_bundle
from vsr.models import Embedder, EncoderBundle, SequenceClassifier
from vsr.training.heads import load_safetensors, save_safetensors

LAYERS = 4
LABELS = ["math", "law", "other"]
TEXTS = [
    "hello world",
    "a much longer text that pads the others in its batch, with several more words in it",
    "x",
    "",
]
TOLERANCE = 1e-5


def _layer_tensors(tensors: dict[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
    prefix = f"bert.encoder.layer.{index}."
    return {name[len("bert.") :]: t for name, t in tensors.items() if name.startswith(prefix)}


def _random_layer(template: dict[str, np.ndarray], index: int, seed: int) -> dict[str, np.ndarray]:
    """Layer ``index`` (names without ``bert.``) shaped like fixture layer 0, norms near 1."""
    rng = np.random.default_rng(seed)
    layer = {}
    for name, tensor in sorted(_layer_tensors(template, 0).items()):
        values = rng.uniform(-0.2, 0.2, tensor.shape).astype(np.float32)
        if name.endswith("LayerNorm.weight"):
            values += 1.0
        layer[name.replace("encoder.layer.0.", f"encoder.layer.{index}.")] = values
    return layer


def _write_model(target: Path, tensors: dict[str, np.ndarray]) -> Path:
    """A BertForSequenceClassification directory of LAYERS layers holding ``tensors``."""
    target.mkdir(parents=True)
    config = json.loads((MODELS / "bert-seq" / "config.json").read_text())
    config["num_hidden_layers"] = LAYERS
    (target / "config.json").write_text(json.dumps(config))
    shutil.copy(MODELS / "bert-seq" / "tokenizer.json", target / "tokenizer.json")
    save_safetensors(target / "model.safetensors", tensors)
    return target


def _with_layers(
    tensors: dict[str, np.ndarray], layers: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    return {**tensors, **{f"bert.{name}": values for name, values in layers.items()}}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    fixture = load_safetensors(MODELS / "bert-seq" / "model.safetensors")
    tensors = _with_layers(
        fixture, {**_random_layer(fixture, 2, 2), **_random_layer(fixture, 3, 3)}
    )
    return _write_model(tmp_path_factory.mktemp("base") / "model", tensors), tensors


def _branch_layers(tensors: dict[str, np.ndarray], from_layer: int) -> dict[str, np.ndarray]:
    return {
        name: values
        for index in range(from_layer, LAYERS)
        for name, values in _layer_tensors(tensors, index).items()
    }


def _heads(branch: str | None) -> dict[str, dict[str, object]]:
    suffix = "" if branch is None else f"_{branch}"
    extra = {} if branch is None else {"branch": branch}
    return {
        f"domain{suffix}": {
            "kind": "sequence",
            "pooling": "cls",
            "transform": "bert_pooler",
            "labels": LABELS,
            **extra,
        },
        f"embedding{suffix}": {"kind": "embedding", "pooling": "mean", "normalize": True, **extra},
    }


def _bundle(
    directory: Path,
    encoder: Path,
    branches: dict[str, tuple[int, dict[str, np.ndarray]]],
    heads: dict[str, dict[str, object]] | None = None,
) -> Path:
    directory.mkdir(parents=True)
    for name, (_, layers) in branches.items():
        save_safetensors(directory / f"{name}.branch.safetensors", layers)
    manifest = {
        "format": "vsr-bundle/1",
        "encoder": str(encoder),
        "branches": {
            name: {"from_layer": from_layer, "weights": f"{name}.branch.safetensors"}
            for name, (from_layer, _) in branches.items()
        },
        "heads": heads
        if heads is not None
        else {k: v for name in [None, *branches] for k, v in _heads(name).items()},
    }
    (directory / "bundle.json").write_text(json.dumps(manifest))
    return directory


@pytest.mark.parametrize("from_layer", range(LAYERS))
def test_a_branch_of_copied_layers_gives_exactly_the_trunk_outputs(
    tmp_path: Path, base: tuple[Path, dict[str, np.ndarray]], from_layer: int
) -> None:
    model, tensors = base
    branches = {"copy": (from_layer, _branch_layers(tensors, from_layer))}
    bundle = EncoderBundle.load(_bundle(tmp_path / "bundle", model, branches), **ON_DEVICE)
    assert bundle.heads["domain_copy"].branch == "copy"
    outputs = bundle.run(TEXTS)
    alone = bundle.run(TEXTS, ["domain_copy", "embedding_copy"])
    for head in ["domain", "embedding"]:
        np.testing.assert_array_equal(outputs[f"{head}_copy"], outputs[head])
        np.testing.assert_array_equal(alone[f"{head}_copy"], outputs[head])


@pytest.mark.parametrize(("first", "second"), [(0, 3), (1, 2), (2, 2)])
def test_a_branch_matches_a_plain_model_with_those_layers_replaced(
    tmp_path: Path, base: tuple[Path, dict[str, np.ndarray]], first: int, second: int
) -> None:
    model, tensors = base
    branches = {}
    references = {}
    for name, from_layer, seed in [("first", first, 10), ("second", second, 20)]:
        layers = {
            key: values
            for index in range(from_layer, LAYERS)
            for key, values in _random_layer(tensors, index, seed + index).items()
        }
        branches[name] = (from_layer, layers)
        references[name] = _write_model(tmp_path / name, _with_layers(tensors, layers))
    bundle = EncoderBundle.load(_bundle(tmp_path / "bundle", model, branches), **ON_DEVICE)
    outputs = bundle.run(TEXTS)
    trunk = SequenceClassifier.load(model, **ON_DEVICE).predict(TEXTS)
    np.testing.assert_array_equal(outputs["domain"], trunk)
    for name, reference in references.items():
        expected = SequenceClassifier.load(reference, **ON_DEVICE).predict(TEXTS)
        np.testing.assert_allclose(outputs[f"domain_{name}"], expected, atol=TOLERANCE, rtol=0)
        embedder = Embedder.load(reference, pooling="mean", normalize=True, **ON_DEVICE)
        np.testing.assert_allclose(
            outputs[f"embedding_{name}"], embedder.embed(TEXTS), atol=TOLERANCE, rtol=0
        )
        assert np.abs(outputs[f"embedding_{name}"] - outputs["embedding"]).max() > 1e-3


def test_branch_heads_keep_input_order_across_chunks(
    tmp_path: Path, base: tuple[Path, dict[str, np.ndarray]]
) -> None:
    model, tensors = base
    layers = {k: v for i in (1, 2, 3) for k, v in _random_layer(tensors, i, 40 + i).items()}
    bundle = EncoderBundle.load(
        _bundle(tmp_path / "bundle", model, {"tasks": (1, layers)}), **ON_DEVICE
    )
    texts = ["word " * (1 + (i * 37) % 90) + str(i) for i in range(150)]
    together = bundle.run(texts)
    for index, text in enumerate(texts):
        alone = bundle.run([text])
        for head, output in together.items():
            assert isinstance(output, np.ndarray)
            np.testing.assert_allclose(output[index], alone[head][0], atol=TOLERANCE, rtol=0)


def _manifest(directory: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((directory / "bundle.json").read_text())
    return data


def _rewrite(directory: Path, **changes: object) -> Path:
    manifest = _manifest(directory)
    manifest.update(changes)
    (directory / "bundle.json").write_text(json.dumps(manifest))
    return directory


def test_broken_branches_are_model_load_errors(
    tmp_path: Path, base: tuple[Path, dict[str, np.ndarray]]
) -> None:
    model, tensors = base
    good = _bundle(tmp_path / "good", model, {"tasks": (2, _branch_layers(tensors, 2))})
    EncoderBundle.load(good, **ON_DEVICE)
    branches = _manifest(good)["branches"]

    heads = _heads("nope")
    with pytest.raises(ModelLoadError, match=r"bundle\.json: heads\.domain_nope\.branch: 'nope'"):
        read_bundle(_rewrite(good, heads=heads))
    _rewrite(good, heads=_heads("tasks"))

    with pytest.raises(ModelLoadError, match=r"bundle\.json: branches\.tasks\.from_layer 4"):
        read_bundle(_rewrite(good, branches={"tasks": {"from_layer": 4, "weights": "x"}}))
    with pytest.raises(ModelLoadError, match=r"branches\.tasks\.from_layer must be a layer"):
        read_bundle(_rewrite(good, branches={"tasks": {"from_layer": -1, "weights": "x"}}))
    with pytest.raises(ModelLoadError, match=r"branches\.tasks must be"):
        read_bundle(_rewrite(good, branches={"tasks": {"from": 1, "weights": "x"}}))
    with pytest.raises(ModelLoadError, match=r'"branches" must be an object'):
        read_bundle(_rewrite(good, branches=["tasks"]))
    _rewrite(good, branches=branches)

    layers = _branch_layers(tensors, 2)
    del layers["encoder.layer.3.output.dense.bias"]
    save_safetensors(good / "tasks.branch.safetensors", layers)
    with pytest.raises(ModelLoadError, match=r"tasks\.branch\.safetensors.*3\.output\.dense\.bias"):
        EncoderBundle.load(good, **ON_DEVICE)

    layers = _branch_layers(tensors, 2)
    layers["encoder.layer.2.output.dense.weight"] = layers["encoder.layer.2.output.dense.weight"].T
    save_safetensors(good / "tasks.branch.safetensors", layers)
    with pytest.raises(ModelLoadError, match=r"layer\.2\.output\.dense\.weight.*shape \[64, 32\]"):
        EncoderBundle.load(good, **ON_DEVICE)

    save_safetensors(good / "tasks.branch.safetensors", _branch_layers(tensors, 1))
    with pytest.raises(ModelLoadError, match=r"unexpected tensor \"encoder\.layer\.1\."):
        EncoderBundle.load(good, **ON_DEVICE)

    modern = _rewrite(good, encoder=str(MODELS / "modernbert-seq"))
    with pytest.raises(ModelLoadError, match=r"branches\.tasks: .*BERT.*'modernbert'"):
        read_bundle(modern)
