"""Embedding signals: cosine similarity between the text and a set of candidate phrases."""

from __future__ import annotations

import numpy as np

from vsr.config.signals import EmbeddingSignal
from vsr.inference import InferencePool
from vsr.signals.base import HeadNeed, Signal, SignalInputs, register
from vsr.signals.result import SignalResult


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    # Normalise here as well: a head configured without normalisation would otherwise turn the
    # dot product into an unbounded score that no threshold in [-1, 1] can judge.
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    unit: np.ndarray = matrix / np.maximum(norms, 1e-12)
    return unit


@register("embedding")
class EmbeddingSimilaritySignal(Signal[EmbeddingSignal]):
    def head_needs(self) -> tuple[HeadNeed, ...]:
        return (HeadNeed(self.config.model, self.config.head, "embedding"),)

    def prepare(self, pool: InferencePool) -> None:
        super().prepare(pool)
        key = self.encoder_key(pool, self.config.model)
        vectors = pool.run_sync(key, list(self.config.candidates), [self.config.head])
        self._candidates = _unit_rows(np.asarray(vectors[self.config.head], dtype=np.float32))

    def evaluate(self, text: str, inputs: SignalInputs) -> SignalResult:
        vector = _unit_rows(np.asarray(inputs.head(self.config.model, self.config.head)))
        similarities = self._candidates @ vector.reshape(-1)
        best = int(similarities.argmax())
        threshold = self.config.threshold
        aggregation = self.config.aggregation
        if aggregation == "mean":
            score = float(similarities.mean())
            matched = score >= threshold
        elif aggregation == "any":
            matched = bool((similarities >= threshold).any())
            score = float((similarities >= threshold).mean())
        else:
            score = float(similarities[best])
            matched = score >= threshold
        return SignalResult(
            self.family,
            self.name,
            matched=matched,
            score=score,
            label=self.config.candidates[best],
        )
