"""``SemanticCache``: a store behind bounded timeouts, metrics, and writes off the request path.

A store that is down, slow or wrong makes a miss (and a metric), never a failed request: every
store call is wrapped here with ``timeout_ms`` and a catch-all. Writes are scheduled as tasks the
response path does not wait for; at most ``MAX_PENDING_WRITES`` are in flight, beyond which new
ones are dropped (counted) rather than queued without bound.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import structlog

from vsr.cache.keys import ANONYMOUS_SCOPE, Skip, request_key, tenant_scope, uncacheable
from vsr.cache.store import CacheStore, Entry, Found, StoreStats
from vsr.config.cache import CacheConfig
from vsr.observability import metrics

log = structlog.get_logger(__name__)

T = TypeVar("T")
MAX_PENDING_WRITES = 256
WRITE_TIMEOUT_FACTOR = 20


@dataclass(frozen=True, slots=True)
class CacheTicket:
    """A request the cache may answer or learn from: its partition and question vector."""

    scope: str
    key: str
    vector: np.ndarray
    threshold: float
    ttl_seconds: int


class SemanticCache:
    def __init__(self, config: CacheConfig, store: CacheStore) -> None:
        self.config = config
        self.store = store
        self.backend = store.backend
        self._pending: set[asyncio.Task[None]] = set()

    def ticket(
        self,
        body: Mapping[str, Any],
        served_model: str,
        headers: Mapping[str, str],
        vector: Any,
        threshold: float | None,
        ttl_seconds: int | None,
    ) -> CacheTicket | Skip:
        """What the cache needs to know of a routed request, or why it must stay out."""
        skip = uncacheable(body, self.config)
        if skip is not None:
            return skip
        scope = tenant_scope(headers, self.config.tenant_headers)
        if scope == ANONYMOUS_SCOPE and self.config.require_tenant:
            return Skip("no_tenant")
        unit = np.asarray(vector, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(unit))
        if not norm or not np.isfinite(norm):
            return Skip("no_embedding")
        return CacheTicket(
            scope=scope,
            key=request_key(body, served_model),
            vector=unit / norm,
            threshold=self.config.similarity_threshold if threshold is None else threshold,
            ttl_seconds=self.config.ttl_seconds if ttl_seconds is None else ttl_seconds,
        )

    async def lookup(self, ticket: CacheTicket) -> Found | None:
        found = await self._call(
            "lookup", self.store.lookup(ticket.scope, ticket.key, ticket.vector, ticket.threshold)
        )
        if isinstance(found, Found):
            metrics.CACHE_HITS.labels(backend=self.backend).inc()
            return found
        reason = "no_match" if found is None else found
        metrics.CACHE_MISSES.labels(backend=self.backend, reason=reason).inc()
        return None

    def store_later(self, ticket: CacheTicket, answer: bytes, model: str) -> None:
        """Write in the background; the caller (the response path) never waits for it."""
        if len(self._pending) >= MAX_PENDING_WRITES:
            metrics.CACHE_OPERATIONS.labels(self.backend, "store", "dropped").inc()
            return
        expires_at = time.time() + ticket.ttl_seconds if ticket.ttl_seconds else 0.0
        entry = Entry(ticket.scope, ticket.key, ticket.vector, answer, model, expires_at)
        task = asyncio.get_running_loop().create_task(self._store(entry))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _store(self, entry: Entry) -> None:
        # Off the request path, a write may take longer than a lookup (a shared store's first
        # write creates its table or collection), but not without bound.
        timeout_s = min(self.config.timeout_ms * WRITE_TIMEOUT_FACTOR, 5000) / 1000
        await self._call("store", self.store.store(entry), timeout_s)
        await self.stats()

    async def drain(self) -> None:
        """Wait for the writes in flight (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def flush(self, scope: str | None = None, model: str | None = None) -> int:
        """Remove entries; unlike lookups, a failure here is the caller's error."""
        started = time.perf_counter()
        try:
            removed = await self.store.flush(scope, model)
        except Exception:
            metrics.CACHE_OPERATIONS.labels(self.backend, "flush", "error").inc()
            raise
        metrics.CACHE_OPERATIONS.labels(self.backend, "flush", "success").inc()
        metrics.CACHE_OPERATION_SECONDS.labels(self.backend, "flush").observe(
            time.perf_counter() - started
        )
        await self.stats()
        return removed

    async def stats(self) -> StoreStats | None:
        try:
            stats = await asyncio.wait_for(self.store.stats(), self.config.timeout_ms / 1000)
        except Exception:
            return None
        metrics.CACHE_ENTRIES.labels(backend=self.backend).set(stats.entries)
        return stats

    async def close(self) -> None:
        await self.drain()
        await self.store.close()

    async def _call(
        self, operation: str, call: Awaitable[T], timeout_s: float | None = None
    ) -> T | str:
        """The store's answer, or ``timeout`` / ``error`` (logged and counted)."""
        started = time.perf_counter()
        if timeout_s is None:
            timeout_s = self.config.timeout_ms / 1000
        try:
            result = await asyncio.wait_for(call, timeout_s)
        except TimeoutError:
            metrics.CACHE_OPERATIONS.labels(self.backend, operation, "timeout").inc()
            log.warning("cache_timeout", operation=operation, backend=self.backend)
            return "timeout"
        except asyncio.CancelledError:
            raise
        except Exception as error:
            metrics.CACHE_OPERATIONS.labels(self.backend, operation, "error").inc()
            log.warning(
                "cache_error", operation=operation, backend=self.backend, error=repr(error)[:300]
            )
            return "error"
        metrics.CACHE_OPERATIONS.labels(self.backend, operation, "success").inc()
        metrics.CACHE_OPERATION_SECONDS.labels(self.backend, operation).observe(
            time.perf_counter() - started
        )
        return result


def build_store(config: CacheConfig) -> CacheStore:
    """The configured backend (client libraries imported only when chosen)."""
    if config.backend == "memory":
        from vsr.cache.memory import MemoryStore

        return MemoryStore(config.max_entries, config.max_bytes)
    if config.backend == "milvus":
        from vsr.cache.milvus import MilvusStore

        milvus = config.milvus
        token = os.environ.get(milvus.token_env) if milvus.token_env else None
        return MilvusStore(milvus.uri, milvus.collection, token)
    from vsr.cache.pgvector import PgvectorStore

    pg = config.pgvector
    dsn = (os.environ.get(pg.dsn_env) if pg.dsn_env else None) or pg.dsn
    return PgvectorStore(dsn, pg.table, config.max_entries)
