"""N-gram experts: a lexical classifier that sits beside a bundle's sequence head.

A frozen, mean-pooled sentence embedding hears what a prompt is *about*; it is deaf to the
vocabulary that marks most jailbreaks ("developer mode", "no restrictions", "stay in character",
"DAN"). A linear model over TF-IDF weighted character and word n-grams hears exactly that, costs
about a millisecond of CPU per prompt and needs no second encoder pass. A bundle head with an
``ngrams`` entry mixes the two as a product of experts::

    log P(label) = mix * log P_head(label) + (1 - mix) * log P_ngrams(label) + const

Features (``Analyzer``: the same function at training and serving time, so there is no skew): the
first ``max_chars`` characters, lower-cased.

- Character n-grams: the text split on whitespace; each word padded with one space either side
  and cut into every n-gram of the configured sizes (a word shorter than the smallest size counts
  once, whole). They survive misspellings, leetspeak and run-together words.
- Word n-grams: the text cut into tokens (runs of word characters, and each other non-space
  character alone); every run of the configured numbers of tokens, written as a tab followed by the
  tokens joined by tabs. No character n-gram holds a tab, so the two kinds never collide. They hear
  phrases ("ignore previous", "no restrictions") that character n-grams only see in pieces.

Term frequency is ``1 + log(count)``, times the n-gram's IDF, L2-normalised over the n-grams the
model knows; the logits are ``weight @ features + bias``.

The file is JSON (``FORMAT``): labels, char_sizes, word_sizes (either may be null), max_chars,
vocabulary, idf, weight (labels x vocabulary), bias. Files of the first format (character n-grams
only, ``"sizes"``) still load.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsr.errors import ModelLoadError

FORMAT = "vsr-ngrams/2"
CHAR_ONLY_FORMAT = "vsr-char-ngrams/1"  # the first format: character n-grams, "sizes"

_TOKEN = re.compile(r"\w+|[^\w\s]")


def char_ngrams(text: str, sizes: tuple[int, int], max_chars: int) -> list[str]:
    """The character n-grams of ``text`` (see the module docstring), in order, repeats kept."""
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


def word_ngrams(text: str, sizes: tuple[int, int], max_chars: int) -> list[str]:
    """The word n-grams of ``text`` (see the module docstring), in order, repeats kept."""
    tokens = _TOKEN.findall(text[:max_chars].lower())
    grams: list[str] = []
    for size in range(sizes[0], sizes[1] + 1):
        grams.extend(
            "\t" + "\t".join(tokens[start : start + size])
            for start in range(len(tokens) - size + 1)
        )
    return grams


@dataclass(frozen=True)
class Analyzer:
    """What a text is cut into: character and/or word n-grams of its first ``max_chars``."""

    char_sizes: tuple[int, int] | None = (3, 5)
    word_sizes: tuple[int, int] | None = (1, 2)
    # About what a 256-token encoder covers, so both experts read the same part of a prompt.
    max_chars: int = 1500

    def __post_init__(self) -> None:
        for name, sizes in (("char_sizes", self.char_sizes), ("word_sizes", self.word_sizes)):
            if sizes is not None and not 1 <= sizes[0] <= sizes[1]:
                raise ValueError(f"{name} must be 1 <= min <= max, got {list(sizes)}")
        if self.char_sizes is None and self.word_sizes is None:
            raise ValueError("an analyzer needs character or word n-grams (or both)")
        if self.max_chars < 1:
            raise ValueError(f"max_chars must be positive, got {self.max_chars}")

    def __call__(self, text: str) -> list[str]:
        grams = (
            [] if self.char_sizes is None else char_ngrams(text, self.char_sizes, self.max_chars)
        )
        if self.word_sizes is not None:
            grams += word_ngrams(text, self.word_sizes, self.max_chars)
        return grams

    def describe(self) -> str:
        kinds = []
        if self.char_sizes is not None:
            kinds.append(
                f"character {self.char_sizes[0]}-{self.char_sizes[1]}-grams of each "
                "whitespace-separated word"
            )
        if self.word_sizes is not None:
            kinds.append(f"word {self.word_sizes[0]}-{self.word_sizes[1]}-grams")
        return f"{' and '.join(kinds)} in the first {self.max_chars} characters (lower-cased)"


@dataclass(frozen=True, eq=False)
class NgramModel:
    """A fitted n-gram classifier: ``logits(texts)`` and ``probabilities(texts)``."""

    labels: tuple[str, ...]
    analyzer: Analyzer
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
        counts = Counter(index[gram] for gram in self.analyzer(text) if gram in index)
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
            "char_sizes": _sizes_to_json(self.analyzer.char_sizes),
            "word_sizes": _sizes_to_json(self.analyzer.word_sizes),
            "max_chars": self.analyzer.max_chars,
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
        kind = document.get("format") if isinstance(document, Mapping) else None
        if kind not in (FORMAT, CHAR_ONLY_FORMAT):
            raise ModelLoadError(f'{where}: expected an object with "format": "{FORMAT}"')
        try:
            if kind == CHAR_ONLY_FORMAT:
                char_sizes, word_sizes = _sizes_from_json(document["sizes"]), None
            else:
                char_sizes = _sizes_from_json(document["char_sizes"])
                word_sizes = _sizes_from_json(document["word_sizes"])
            return cls(
                labels=tuple(str(label) for label in document["labels"]),
                analyzer=Analyzer(char_sizes, word_sizes, int(document["max_chars"])),
                vocabulary=tuple(str(gram) for gram in document["vocabulary"]),
                idf=np.asarray(document["idf"], dtype=np.float64),
                weight=np.asarray(document["weight"], dtype=np.float64),
                bias=np.asarray(document["bias"], dtype=np.float64),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModelLoadError(f"{where}: malformed n-gram model ({error!r})") from None


def _sizes_to_json(sizes: tuple[int, int] | None) -> list[int] | None:
    return None if sizes is None else list(sizes)


def _sizes_from_json(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"n-gram sizes must be [min, max], got {value!r}")
    return int(value[0]), int(value[1])


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
