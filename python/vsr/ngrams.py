"""Character n-gram experts: a lexical classifier that sits beside a bundle's sequence head.

A frozen, mean-pooled sentence embedding hears what a prompt is *about*; it is deaf to the
vocabulary that marks most jailbreaks ("developer mode", "no restrictions", "stay in character",
"DAN"). A linear model over TF-IDF weighted character n-grams hears exactly that, costs about a
millisecond of CPU per prompt and needs no second encoder pass. A bundle head with an ``ngrams``
entry mixes the two as a product of experts::

    log P(label) = mix * log P_head(label) + (1 - mix) * log P_ngrams(label) + const

Features (the same function at training and serving time, so there is no skew): the first
``max_chars`` characters, lower-cased, split on whitespace; each word padded with one space either
side and cut into every n-gram of the configured sizes (a word shorter than the smallest size
counts once, whole). Term frequency is ``1 + log(count)``, times the n-gram's IDF, L2-normalised
over the n-grams the model knows; the logits are ``weight @ features + bias``.

The file is JSON (``FORMAT``): labels, sizes, max_chars, vocabulary, idf, weight (labels x
vocabulary), bias.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsr.errors import ModelLoadError

FORMAT = "vsr-char-ngrams/1"


def char_ngrams(text: str, sizes: tuple[int, int], max_chars: int) -> list[str]:
    """The n-grams of ``text`` (see the module docstring), in order, repeats kept."""
    smallest, largest = sizes
    grams: list[str] = []
    for word in text[:max_chars].lower().split():
        padded = f" {word} "
        length = len(padded)
        for size in range(smallest, largest + 1):
            if length <= size:
                grams.append(padded)
                break
            grams.extend([padded[start : start + size] for start in range(length - size + 1)])
    return grams


@dataclass(frozen=True, eq=False)
class NgramModel:
    """A fitted n-gram classifier: ``logits(texts)`` and ``probabilities(texts)``."""

    labels: tuple[str, ...]
    sizes: tuple[int, int]
    max_chars: int
    vocabulary: tuple[str, ...]
    idf: np.ndarray  # (vocabulary,)
    weight: np.ndarray  # (labels, vocabulary)
    bias: np.ndarray  # (labels,)
    index: dict[str, int] = field(init=False, repr=False)  # n-gram -> column

    def __post_init__(self) -> None:
        count = len(self.vocabulary)
        if self.idf.shape != (count,) or self.weight.shape != (len(self.labels), count):
            raise ValueError(
                f"n-gram model shapes disagree: {count} n-grams, idf {self.idf.shape}, "
                f"weight {self.weight.shape} for {len(self.labels)} labels"
            )
        if self.bias.shape != (len(self.labels),):
            raise ValueError(f"bias has shape {self.bias.shape}, expected ({len(self.labels)},)")
        object.__setattr__(self, "index", {gram: i for i, gram in enumerate(self.vocabulary)})

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(columns, values): the text's normalised TF-IDF vector, sparse."""
        index = self.index
        counts = Counter(
            index[gram] for gram in char_ngrams(text, self.sizes, self.max_chars) if gram in index
        )
        columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        values = np.fromiter(
            (1.0 + math.log(c) for c in counts.values()), dtype=np.float64, count=len(counts)
        )
        values *= self.idf[columns]
        norm = float(np.sqrt(values @ values))
        if norm > 0.0:
            values /= norm
        return columns, values

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        result = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        for row, text in enumerate(texts):
            columns, values = self.features(text)
            result[row] = self.weight[:, columns] @ values + self.bias
        return result

    def log_probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return _log_softmax(self.logits(texts))

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        result: np.ndarray = np.exp(self.log_probabilities(texts))
        return result

    # ---- files --------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "labels": list(self.labels),
            "sizes": list(self.sizes),
            "max_chars": self.max_chars,
            "vocabulary": list(self.vocabulary),
            "idf": _rounded(self.idf),
            "weight": [_rounded(row) for row in self.weight],
            "bias": _rounded(self.bias),
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> NgramModel:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelLoadError(f"{path}: file not found (an n-gram model)") from None
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"{path}: not a readable JSON file ({error})") from None
        return cls.from_json(document, str(path))

    @classmethod
    def from_json(cls, document: Mapping[str, Any], where: str) -> NgramModel:
        if not isinstance(document, Mapping) or document.get("format") != FORMAT:
            raise ModelLoadError(f'{where}: expected an object with "format": "{FORMAT}"')
        try:
            smallest, largest = (int(size) for size in document["sizes"])
            if not 1 <= smallest <= largest:
                raise ValueError(f"sizes must be 1 <= min <= max, got {document['sizes']}")
            return cls(
                labels=tuple(str(label) for label in document["labels"]),
                sizes=(smallest, largest),
                max_chars=int(document["max_chars"]),
                vocabulary=tuple(str(gram) for gram in document["vocabulary"]),
                idf=np.asarray(document["idf"], dtype=np.float64),
                weight=np.asarray(document["weight"], dtype=np.float64),
                bias=np.asarray(document["bias"], dtype=np.float64),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModelLoadError(f"{where}: malformed n-gram model ({error!r})") from None


def _rounded(values: np.ndarray) -> list[float]:
    # Seven significant digits (float32's precision) keep the file small and reproducible.
    return [float(f"{value:.7g}") for value in np.asarray(values, dtype=np.float64)]


def mix_probabilities(
    head_probabilities: np.ndarray, ngram_log_probabilities: np.ndarray, mix: float
) -> np.ndarray:
    """Product of experts: softmax(mix * log P_head + (1 - mix) * log P_ngrams), float32."""
    head_log = np.log(np.clip(head_probabilities.astype(np.float64), 1e-12, 1.0))
    combined = mix * head_log + (1.0 - mix) * ngram_log_probabilities
    result: np.ndarray = np.exp(_log_softmax(combined)).astype(np.float32)
    return result


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    result: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return result
