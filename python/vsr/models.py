"""BERT-family encoders for Python: embeddings, sequence and token classification.

Every class here wraps one ``vsr._core.Encoder``: a model loaded by the native core (candle)
that encodes a batch of texts once and runs one or more *heads* on the same hidden states. The
native core returns numbers (probabilities, vectors, token offsets); this module turns them into
what a caller wants (labels, entities) and decides nothing else.

- ``Embedder``: pooled sentence vectors (mean or CLS, optionally L2-normalised); defaults come
  from the directory's sentence-transformers files, so all-MiniLM-L6-v2 gives its usual
  normalised vectors.
- ``SequenceClassifier``: a Hugging Face ``*ForSequenceClassification`` directory -> probabilities.
- ``TokenClassifier``: a ``*ForTokenClassification`` directory -> entities (BIO tags aggregated).
- ``EncoderBundle``: one encoder with several heads (``bundle.json``); one call, one encoder pass.
  A sequence head may carry an n-gram expert (``vsr.ngrams``) whose probabilities are
  mixed into the head's here, after the pass.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from vsr import _core
from vsr.model_files import (
    BUNDLE_FILE,
    BranchSpec,
    HeadSpec,
    classifier_head_spec,
    embedding_head_spec,
    read_bundle,
    read_labels,
    resolve_model_dir,
)
from vsr.ngrams import NgramModel, mix_probabilities
from vsr.wire import replace_lone_surrogates

# The head name the single-purpose classes use inside their encoder.
_HEAD = "head"


@dataclass(frozen=True, slots=True)
class Entity:
    """A span found by a token classifier; ``start``/``end`` index the Python string."""

    label: str
    start: int
    end: int
    score: float
    text: str


def _check_texts(texts: object) -> list[str]:
    """Accept a sequence of str and nothing else: a bare str would be split into characters."""
    if isinstance(texts, str | bytes):
        raise TypeError("texts must be a sequence of str, not a single string; wrap it in a list")
    if not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a sequence of str, got {type(texts).__name__}")
    checked = []
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] must be str, got {type(text).__name__}")
        # A lone surrogate (json.loads('"\\ud800"') makes one) has no UTF-8 form: the
        # tokenizer reads U+FFFD instead, one character for one, so offsets still hold.
        checked.append(text if text.isascii() else replace_lone_surrogates(text))
    return checked


def _split_label(tag: str) -> tuple[str, str]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''); a tag without a BIO prefix is 'I' of itself."""
    if tag == "O":
        return "O", ""
    prefix, sep, entity_type = tag.partition("-")
    if sep and prefix in ("B", "I", "E", "S"):
        return prefix, entity_type
    return "I", tag


def aggregate_entities(
    text: str, probabilities: np.ndarray, offsets: np.ndarray, labels: Sequence[str]
) -> list[Entity]:
    """Merge per-token BIO predictions into entity spans.

    A span starts at a B- tag (or an I- tag whose type differs from the open span, as Hugging Face's
    "simple" aggregation does) and grows over following I- tags of the same type. Sub-word pieces of
    one word are merged because their offsets touch. The score is the mean of the tokens' top
    probabilities.
    """
    entities: list[Entity] = []
    best = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, dtype=np.int64)
    open_type = ""
    start = end = 0
    scores: list[float] = []

    def close() -> None:
        if open_type and scores:
            entities.append(Entity(open_type, start, end, float(np.mean(scores)), text[start:end]))

    for token_index, label_index in enumerate(best):
        token_start, token_end = (int(v) for v in offsets[token_index])
        if token_end <= token_start:  # a token with no characters (special or empty) breaks nothing
            continue
        prefix, entity_type = _split_label(labels[int(label_index)])
        score = float(probabilities[token_index, label_index])
        continues = prefix in ("I", "E") and entity_type == open_type
        if prefix == "O":
            close()
            open_type, scores = "", []
        elif continues:
            end = token_end
            scores.append(score)
        else:
            close()
            open_type, start, end, scores = entity_type, token_start, token_end, [score]
    close()
    return entities


class _EncoderModel:
    """What the single-purpose classes share: a loaded native encoder and its directory."""

    def __init__(self, encoder: _core.Encoder, path: Path) -> None:
        self._encoder = encoder
        self.path = path

    @property
    def device(self) -> str:
        return self._encoder.device

    @property
    def dtype(self) -> str:
        return self._encoder.dtype

    @property
    def max_length(self) -> int:
        """Texts are truncated to this many tokens (special tokens included)."""
        return self._encoder.max_length

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts before truncation (special tokens included)."""
        return self._encoder.count_tokens(_check_texts(texts))

    def _run(self, texts: Sequence[str]) -> Any:
        return self._encoder.run(_check_texts(texts), [_HEAD])[_HEAD]


def _load_encoder(
    path: Path,
    heads: Mapping[str, HeadSpec],
    device: str,
    dtype: str | None,
    max_length: int | None,
    branches: Mapping[str, BranchSpec] | None = None,
) -> _core.Encoder:
    if max_length is not None and max_length < 0:  # the core takes an unsigned length
        raise ValueError(f"max_length must be positive, got {max_length}")
    return _core.Encoder.load(
        str(path),
        json.dumps({name: spec.to_native() for name, spec in heads.items()}),
        device,
        dtype,
        max_length,
        json.dumps({name: spec.to_native() for name, spec in branches.items()})
        if branches
        else None,
    )


def _check_label_counts(
    encoder: _core.Encoder, labels: Mapping[str, Sequence[str]], where: Mapping[str, str]
) -> None:
    """One name per output column of every classifier head, else ModelLoadError: a config or
    bundle.json edited by hand would otherwise name columns that do not exist, or leave some
    unnamed. The width is read from a pass over one empty text (the core does not report it)."""
    named = {head: names for head, names in labels.items() if names}
    if not named:
        return
    outputs = encoder.run([""], list(named))
    for head, names in named.items():
        output = outputs[head]
        probabilities = output[0][0] if isinstance(output, list) else output
        width = int(probabilities.shape[-1])
        if width != len(names):
            raise _core.ModelLoadError(
                f"{where[head]}: {len(names)} labels, but the head gives {width} outputs"
            )


class Embedder(_EncoderModel):
    """Sentence embeddings from a BERT-family encoder directory."""

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "cpu",
        *,
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        dtype: str | None = None,
    ) -> Embedder:
        """Load ``path`` (a model directory or a built-in name such as ``all-MiniLM-L6-v2``).

        ``pooling`` ("mean" or "cls"), ``normalize`` and ``max_length`` default to the directory's
        sentence-transformers files, else mean pooling, L2-normalised, the model's own maximum.
        """
        model_dir = resolve_model_dir(path)
        spec, default_max = embedding_head_spec(model_dir, pooling=pooling, normalize=normalize)
        length = max_length if max_length is not None else default_max
        return cls(_load_encoder(model_dir, {_HEAD: spec}, device, dtype, length), model_dir)

    @property
    def dimension(self) -> int:
        return self._encoder.hidden_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A float32 matrix (len(texts), dimension); one row per text, in order."""
        vectors: np.ndarray = self._run(texts)
        return vectors


class _Classifier(_EncoderModel):
    """A Hugging Face ``*For{Sequence,Token}Classification`` directory and its label names."""

    _KIND = ""  # "sequence" or "token": which head the directory must have

    def __init__(self, encoder: _core.Encoder, path: Path, labels: list[str]) -> None:
        super().__init__(encoder, path)
        self.labels = labels

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "cpu",
        *,
        max_length: int | None = None,
        dtype: str | None = None,
    ) -> Self:
        model_dir = resolve_model_dir(path)
        spec = classifier_head_spec(model_dir, cls._KIND)
        labels = read_labels(model_dir)
        encoder = _load_encoder(model_dir, {_HEAD: spec}, device, dtype, max_length)
        _check_label_counts(encoder, {_HEAD: labels}, {_HEAD: str(model_dir)})
        return cls(encoder, model_dir, labels)


class SequenceClassifier(_Classifier):
    """A Hugging Face ``*ForSequenceClassification`` directory (BERT or ModernBERT)."""

    _KIND = "sequence"

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, float32 (len(texts), len(labels)); columns follow ``labels``."""
        probabilities: np.ndarray = self._run(texts)
        return probabilities


class TokenClassifier(_Classifier):
    """A Hugging Face ``*ForTokenClassification`` directory with BIO labels."""

    _KIND = "token"

    def predict_tokens(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: (probabilities (tokens, labels), offsets (tokens, 2)); no special tokens."""
        outputs: list[tuple[np.ndarray, np.ndarray]] = self._run(texts)
        return outputs

    def predict(self, texts: Sequence[str]) -> list[list[Entity]]:
        """Per text, the entities found, in order of position."""
        checked = _check_texts(texts)
        return [
            aggregate_entities(text, probabilities, offsets, self.labels)
            for text, (probabilities, offsets) in zip(
                checked, self.predict_tokens(checked), strict=True
            )
        ]


@dataclass(frozen=True, slots=True)
class HeadInfo:
    """What a bundle head produces: ``kind`` is embedding, sequence or token."""

    name: str
    kind: str
    labels: tuple[str, ...]
    branch: str | None = None  # the bundle branch it reads; None: the encoder's last layer


class EncoderBundle(_EncoderModel):
    """One encoder with several heads: each text is encoded once and every head reads that pass.

    A bundle is a directory with ``bundle.json``::

        {"format": "vsr-bundle/1",
         "encoder": "all-MiniLM-L6-v2",          # a built-in name, or a path relative to the bundle
         "max_length": 256,
         "heads": {
           "embedding": {"kind": "embedding", "pooling": "mean", "normalize": true},
           "domain": {"kind": "sequence", "pooling": "mean", "normalize": true,
                      "weights": "domain.safetensors", "labels": ["biology", ...]},
           "pii": {"kind": "token", "weights": "pii.safetensors", "labels": ["O", "B-EMAIL", ...]}}}

    Head weight files hold ``layers.{i}.weight`` / ``layers.{i}.bias`` of a small MLP (or
    ``layers.weight``/``layers.bias`` for a linear head) applied to the pooled vector (sequence) or
    to every token (token), with ``hidden_activation`` (relu, gelu, tanh) between layers. A head
    without ``weights`` reads the encoder's own ``model.safetensors`` under ``prefix`` (default
    ``classifier``), optionally after a ``transform`` (``bert_pooler``, ``modernbert_head``).

    A BERT bundle may also have *branches*, a task's own fine-tuned copy of the top layers::

        "branches": {"tasks": {"from_layer": 4, "weights": "tasks.branch.safetensors"}},
        "heads": {"domain": {..., "branch": "tasks"}}

    The file holds ``encoder.layer.{4..}.*`` under the encoder's tensor names. Each pass runs the
    trunk once; a head with ``branch`` reads that branch's last layer, run from the trunk's state
    at ``from_layer``; heads without it read the encoder's last layer. Only the branches the
    requested heads read are run.
    """

    def __init__(
        self,
        encoder: _core.Encoder,
        path: Path,
        heads: dict[str, HeadInfo],
        ngram_experts: Mapping[str, tuple[NgramModel, float]] | None = None,
    ) -> None:
        super().__init__(encoder, path)
        self.heads = heads
        # head name -> (n-gram model, the head's mix weight)
        self.ngram_experts = dict(ngram_experts or {})

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "cpu",
        *,
        max_length: int | None = None,
        dtype: str | None = None,
    ) -> EncoderBundle:
        bundle_dir = resolve_model_dir(path)
        if not (bundle_dir / BUNDLE_FILE).is_file():
            raise _core.ModelLoadError(
                f"{bundle_dir / BUNDLE_FILE}: file not found (an encoder bundle)"
            )
        bundle = read_bundle(bundle_dir)
        specs = bundle.heads
        length = max_length if max_length is not None else bundle.max_length
        heads = {
            name: HeadInfo(name, spec.kind, tuple(spec.labels), spec.branch)
            for name, spec in specs.items()
        }
        experts = {
            name: (_load_ngram_expert(spec.ngrams, heads[name]), spec.ngram_mix)
            for name, spec in specs.items()
            if spec.ngrams is not None
        }
        encoder = _load_encoder(bundle.encoder_dir, specs, device, dtype, length, bundle.branches)
        classifiers = {n: spec.labels for n, spec in specs.items() if spec.kind != "embedding"}
        where = {name: f"{bundle_dir / BUNDLE_FILE}: head {name!r}" for name in classifiers}
        _check_label_counts(encoder, classifiers, where)
        return cls(encoder, bundle_dir, heads, experts)

    def run(
        self, texts: Sequence[str], heads: Sequence[str] | None = None
    ) -> dict[str, np.ndarray | list[list[Entity]]]:
        """Run the named heads (all by default) on one encoder pass.

        Returns per head: embeddings (n, d) float32, probabilities (n, labels) float32, or, for
        token heads, per text a list of entities.
        """
        checked = _check_texts(texts)
        if isinstance(heads, str):  # list("domain") would be five unknown heads
            raise TypeError("heads must be a list of head names, not a single string")
        names = list(self.heads) if heads is None else list(heads)
        for name in names:
            if name not in self.heads:
                raise KeyError(
                    f"no head {name!r} in bundle {self.path}; heads: {sorted(self.heads)}"
                )
        raw = self._encoder.run(checked, names)
        results: dict[str, np.ndarray | list[list[Entity]]] = {}
        for name in names:
            output = raw[name]
            if isinstance(output, list):  # a token head: per text (probabilities, offsets)
                labels = self.heads[name].labels
                results[name] = [
                    aggregate_entities(text, probabilities, offsets, labels)
                    for text, (probabilities, offsets) in zip(checked, output, strict=True)
                ]
            elif name in self.ngram_experts:
                expert, mix = self.ngram_experts[name]
                results[name] = mix_probabilities(output, expert.log_probabilities(checked), mix)
            else:
                results[name] = output
        return results


def _load_ngram_expert(path: Path, head: HeadInfo) -> NgramModel:
    expert = NgramModel.load(path)
    if expert.labels != head.labels:
        raise _core.ModelLoadError(
            f"{path}: labels {list(expert.labels)} differ from head {head.name!r}'s "
            f"{list(head.labels)}"
        )
    return expert
