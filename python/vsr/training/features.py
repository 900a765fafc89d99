"""Encoder features for training, computed by vsr's own native core.

The features are exactly what a bundle head receives at serving time: the same encoder, pooling,
normalisation and maximum length (``FeatureSpec``), run through ``vsr.models.Embedder``. Training
on anything else (another tokenizer, another pooling) would be train/serve skew.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class FeatureSpec:
    """How the serving bundle pools the encoder's output for a sequence head."""

    encoder: str = "all-MiniLM-L6-v2"
    pooling: str = "mean"
    normalize: bool = True
    max_length: int = 256


class FeatureExtractor(Protocol):
    """Texts -> float32 matrix (len(texts), dimension)."""

    spec: FeatureSpec

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class EncoderFeatures:
    """Features from the native core, in batches, with a progress bar on long inputs."""

    def __init__(self, spec: FeatureSpec, device: str = "cpu", batch_size: int = 64) -> None:
        from vsr.models import Embedder

        self.spec = spec
        self.batch_size = batch_size
        self._embedder = Embedder.load(
            spec.encoder,
            device,
            pooling=spec.pooling,
            normalize=spec.normalize,
            max_length=spec.max_length,
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return encode_by_length(
            texts, self._embedder.embed, self.batch_size, self._embedder.dimension
        )


def encode_by_length(
    texts: Sequence[str],
    run: Callable[[list[str]], np.ndarray],
    batch_size: int,
    dimension: int | None = None,
    desc: str = "encoding",
) -> np.ndarray:
    """``run`` over batches of ``texts`` sorted by length (each batch's padding stays small),
    the rows back in input order, float32 (len(texts), dimension); ``dimension`` None: the
    width of ``run``'s first answer."""
    from tqdm import tqdm

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    output = None if dimension is None else np.zeros((len(texts), dimension), dtype=np.float32)
    with tqdm(total=len(texts), desc=desc, unit="text", disable=len(texts) < 512) as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            vectors = run([texts[i] for i in batch])
            if output is None:
                output = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            output[batch] = vectors
            bar.update(len(batch))
    return output if output is not None else np.zeros((0, 0), dtype=np.float32)  # no texts


class CachedFeatures:
    """Wraps an extractor with an on-disk, per-text cache (one file per ``FeatureSpec``).

    Tasks share texts (the jailbreak task reuses the domain questions as benign examples), so the
    cache is keyed by each text's hash: only texts never seen with this spec are encoded.
    """

    def __init__(self, inner: FeatureExtractor, cache_dir: Path | None) -> None:
        self.spec = inner.spec
        self._inner = inner
        self._cache_dir = cache_dir

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._cache_dir is None:
            return self._inner.encode(texts)
        spec_key = hashlib.sha256(repr(self.spec).encode()).hexdigest()[:16]
        path = self._cache_dir / f"features-{spec_key}.npz"
        known: dict[str, np.ndarray] = {}
        if path.is_file():
            with np.load(path) as stored:
                known = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
        keys = [_text_key(text) for text in texts]
        missing = sorted(
            {key: text for key, text in zip(keys, texts, strict=True) if key not in known}.items()
        )
        log.info(
            "features_cache",
            path=str(path),
            cached=len(texts) - len(missing),
            encoding=len(missing),
        )
        if missing:
            vectors = self._inner.encode([text for _, text in missing])
            known.update(zip([key for key, _ in missing], vectors, strict=True))
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            ordered = sorted(known)
            temporary = path.with_suffix(".tmp.npz")
            np.savez(
                temporary, keys=np.array(ordered), vectors=np.stack([known[k] for k in ordered])
            )
            temporary.replace(path)
        return np.stack([known[key] for key in keys]).astype(np.float32)


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
