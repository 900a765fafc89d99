"""A stand-in feature extractor for training tests: hashed bag of words, L2-normalised.

It exercises the whole pipeline (splits, fitting, thresholds, files) in milliseconds and without
the native core; tests that need real MiniLM features live beside the shipped-model tests.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from vsr.training.features import FeatureSpec

DIMENSION = 128


class HashedWords:
    spec = FeatureSpec()

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        matrix = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                bucket = int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little")
                matrix[row, bucket % DIMENSION] += 1.0
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.maximum(norms, 1e-9)
