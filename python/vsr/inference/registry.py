"""Loaded encoders, memoised by resolved directory and device, behind one small interface.

Signals name a model (a directory or a built-in name) and a head. An encoder bundle has named
heads; a plain Hugging Face directory (a sequence or token classifier, or an embedding model) has
exactly one, and any head name a signal gives resolves to it. Loading the same directory twice on
one device returns the same object, so signals that share an encoder share its weights, and a
config reload that keeps a model keeps it loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

HeadKind = Literal["embedding", "sequence", "token"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class HeadDescription:
    """What a head produces: ``embedding`` vectors, ``sequence`` probabilities over ``labels``,
    or ``token`` entities with BIO ``labels``."""

    name: str
    kind: HeadKind
    labels: tuple[str, ...]


class EncoderModel(Protocol):
    """What the inference layer needs from a loaded encoder (``vsr.models`` classes, wrapped)."""

    @property
    def heads(self) -> Mapping[str, HeadDescription]: ...

    def run(self, texts: Sequence[str], heads: Sequence[str]) -> dict[str, Any]: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class EncoderKey:
    """Identifies one loaded encoder: its resolved directory, the device it runs on, and the
    dtype asked for it (None: the device's default, float32 on a CPU)."""

    path: str
    device: str
    dtype: str | None = None


Resolver = Callable[[str], Path]
# Called as loader(directory, device), or loader(directory, device, dtype) when a dtype is set.
Loader = Callable[..., EncoderModel]


def _default_resolver(name_or_path: str) -> Path:
    from vsr.model_files import resolve_model_dir

    return resolve_model_dir(name_or_path).resolve()


class ModelRegistry:
    """Loads each (directory, device) once; thread-safe, so warm-up may run off the event loop."""

    def __init__(
        self,
        device: str = "cpu",
        *,
        resolver: Resolver | None = None,
        loader: Loader | None = None,
        dtypes: Mapping[str, str] | None = None,
    ) -> None:
        self.device = device
        self.dtypes: dict[str, str] = dict(dtypes or {})
        self._resolve = resolver or _default_resolver
        self._load = loader or load_encoder_model
        self._models: dict[EncoderKey, EncoderModel] = {}
        self._lock = threading.Lock()

    def key(self, name_or_path: str) -> EncoderKey:
        """Resolve a model name now (raises ModelLoadError for a missing directory). Its dtype is
        the one ``dtypes`` gives for the name as written or for the resolved directory."""
        path = str(self._resolve(name_or_path))
        return EncoderKey(path, self.device, self.dtypes.get(name_or_path, self.dtypes.get(path)))

    def get(self, key: EncoderKey) -> EncoderModel:
        with self._lock:
            model = self._models.get(key)
            if model is None:
                log.info("model_loading", path=key.path, device=key.device, dtype=key.dtype)
                if key.dtype is None:
                    model = self._load(Path(key.path), key.device)
                else:
                    model = self._load(Path(key.path), key.device, key.dtype)
                self._models[key] = model
            return model

    def resolve_head(self, key: EncoderKey, head: str) -> HeadDescription:
        """The head a signal asked for; a single-head model answers to any name."""
        heads = self.get(key).heads
        if head in heads:
            return heads[head]
        if len(heads) == 1:
            return next(iter(heads.values()))
        raise KeyError(f"no head {head!r} in {key.path}; heads: {', '.join(sorted(heads))}")

    @property
    def loaded(self) -> tuple[EncoderKey, ...]:
        with self._lock:
            return tuple(self._models)


class _SingleHeadModel:
    """Adapts ``Embedder``/``SequenceClassifier``/``TokenClassifier`` to ``EncoderModel``."""

    def __init__(self, model: Any, head: HeadDescription, call: Callable[[list[str]], Any]) -> None:
        self._model = model
        self._head = head
        self._call = call

    @property
    def heads(self) -> Mapping[str, HeadDescription]:
        return {self._head.name: self._head}

    def run(self, texts: Sequence[str], heads: Sequence[str]) -> dict[str, Any]:
        output = self._call(list(texts))
        return {name: output for name in heads}

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        counts: list[int] = self._model.count_tokens(list(texts))
        return counts


class _BundleModel:
    def __init__(self, bundle: Any) -> None:
        self._bundle = bundle
        self._heads = {
            name: HeadDescription(name, info.kind, tuple(info.labels))
            for name, info in bundle.heads.items()
        }

    @property
    def heads(self) -> Mapping[str, HeadDescription]:
        return self._heads

    def run(self, texts: Sequence[str], heads: Sequence[str]) -> dict[str, Any]:
        outputs: dict[str, Any] = self._bundle.run(list(texts), list(heads))
        return outputs

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        counts: list[int] = self._bundle.count_tokens(list(texts))
        return counts


def load_encoder_model(model_dir: Path, device: str, dtype: str | None = None) -> EncoderModel:
    """Load a directory with the native core: a bundle, a classifier, or an embedding model."""
    from vsr import models
    from vsr.model_files import BUNDLE_FILE, read_config

    if (model_dir / BUNDLE_FILE).is_file():
        return _BundleModel(models.EncoderBundle.load(model_dir, device, dtype=dtype))
    architectures = [str(a) for a in read_config(model_dir).get("architectures") or []]
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        classifier = models.SequenceClassifier.load(model_dir, device, dtype=dtype)
        head = HeadDescription("sequence", "sequence", tuple(classifier.labels))
        return _SingleHeadModel(classifier, head, classifier.predict)
    if any(a.endswith("ForTokenClassification") for a in architectures):
        tagger = models.TokenClassifier.load(model_dir, device, dtype=dtype)
        head = HeadDescription("token", "token", tuple(tagger.labels))
        return _SingleHeadModel(tagger, head, tagger.predict)
    embedder = models.Embedder.load(model_dir, device, dtype=dtype)
    return _SingleHeadModel(embedder, HeadDescription("embedding", "embedding", ()), embedder.embed)
