"""The one interface every cache store implements, and the values that cross it.

A store keeps entries partitioned by ``(scope, key)``: the tenant scope and the exact-match key
(``cache.keys``). Within a partition it finds the entry whose vector is most similar to the
question's (cosine; vectors arrive unit length). Stores know nothing of requests, metrics or
timeouts: ``SemanticCache`` wraps them with those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class Entry:
    """``expires_at``: a ``time.time()`` after which the entry is never served (0: never)."""

    scope: str
    key: str
    vector: np.ndarray  # float32, unit length
    answer: bytes  # CachedAnswer.to_bytes()
    model: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Found:
    answer: bytes
    similarity: float


@dataclass(frozen=True, slots=True)
class StoreStats:
    """``bytes``: the store's estimate of what its entries hold (None where it cannot tell)."""

    backend: str
    entries: int
    bytes: int | None = None
    evictions: int = 0
    expirations: int = 0


class StoreUnavailable(Exception):
    """The store cannot be reached or answered with an error (a miss, never a failed request)."""


class CacheStore(Protocol):
    backend: str

    async def lookup(
        self, scope: str, key: str, vector: np.ndarray, threshold: float
    ) -> Found | None:
        """The most similar live entry of the partition at or above ``threshold``, or None."""
        ...

    async def store(self, entry: Entry) -> None: ...

    async def flush(self, scope: str | None = None, model: str | None = None) -> int:
        """Remove every entry (of ``scope`` and/or ``model`` when given); returns how many."""
        ...

    async def stats(self) -> StoreStats: ...

    async def close(self) -> None: ...
