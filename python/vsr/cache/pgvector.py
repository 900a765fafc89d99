"""PostgreSQL with pgvector: one table shared by every router pod (psycopg 3, async).

Entries live in one table keyed by ``(scope, key)`` with a btree index, so a lookup reads one
partition and orders it by cosine distance (``<=>``); an HNSW index on the vectors serves large
partitions. Expired rows are never returned and are deleted, with rows over ``max_entries``
(oldest first), every ``TRIM_EVERY`` writes. A connection that fails or is cancelled (a timeout)
is dropped and reopened on the next call, not sooner than ``RETRY_AFTER_S`` after a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async

from vsr.cache.store import Entry, Found, StoreStats, StoreUnavailable

RETRY_AFTER_S = 1.0
TRIM_EVERY = 64
CONNECT_TIMEOUT_S = 2


class PgvectorStore:
    backend = "pgvector"

    def __init__(self, dsn: str, table: str, max_entries: int) -> None:
        self.dsn = dsn
        self.table = table  # checked against a pattern by the config
        self.max_entries = max_entries
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._failed_at = 0.0
        self._dim: int | None = None
        self._writes = 0

    async def _connected(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        if time.monotonic() - self._failed_at < RETRY_AFTER_S:
            raise StoreUnavailable("pgvector: waiting before reconnecting")
        try:
            connection = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
            await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
            await register_vector_async(connection)
        except Exception as error:
            self._failed_at = time.monotonic()
            raise StoreUnavailable(f"pgvector: cannot connect ({error})") from error
        self._connection = connection
        return connection

    async def _run(self, sql: str, params: tuple[Any, ...] = (), fetch: bool = False) -> Any:
        async with self._lock:
            connection = await self._connected()
            try:
                cursor = await connection.execute(sql, params)
                return await cursor.fetchall() if fetch else cursor.rowcount
            except BaseException:
                # A failed or cancelled statement leaves the connection in doubt: start afresh.
                self._connection = None
                self._failed_at = time.monotonic()
                await _close_quietly(connection)
                raise

    async def _ensure_table(self, dim: int) -> None:
        if self._dim == dim:
            return
        table = self.table
        await self._run(
            f"CREATE TABLE IF NOT EXISTS {table} (id bigserial PRIMARY KEY, scope text NOT NULL, "
            f"key text NOT NULL, model text NOT NULL, embedding vector({dim}) NOT NULL, "
            "answer bytea NOT NULL, expires_at double precision NOT NULL, "
            "created_at double precision NOT NULL)"
        )
        await self._run(f"CREATE INDEX IF NOT EXISTS {table}_partition ON {table} (scope, key)")
        await self._run(
            f"CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} "
            "USING hnsw (embedding vector_cosine_ops)"
        )
        self._dim = dim

    async def lookup(
        self, scope: str, key: str, vector: np.ndarray, threshold: float
    ) -> Found | None:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        await self._ensure_table(query.shape[0])
        rows = await self._run(
            f"SELECT answer, 1 - (embedding <=> %s) FROM {self.table} "
            "WHERE scope = %s AND key = %s AND (expires_at = 0 OR expires_at > %s) "
            "ORDER BY embedding <=> %s LIMIT 1",
            (query, scope, key, time.time(), query),
            fetch=True,
        )
        if not rows or float(rows[0][1]) < threshold:
            return None
        return Found(bytes(rows[0][0]), float(rows[0][1]))

    async def store(self, entry: Entry) -> None:
        vector = np.asarray(entry.vector, dtype=np.float32).reshape(-1)
        await self._ensure_table(vector.shape[0])
        await self._run(
            f"INSERT INTO {self.table} (scope, key, model, embedding, answer, expires_at, "
            "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (entry.scope, entry.key, entry.model, vector, entry.answer, entry.expires_at,
             time.time()),
        )  # fmt: skip
        self._writes += 1
        if self._writes % TRIM_EVERY == 0:
            await self.trim()

    async def trim(self) -> int:
        """Delete expired rows, then the oldest beyond ``max_entries``."""
        removed = int(
            await self._run(
                f"DELETE FROM {self.table} WHERE expires_at > 0 AND expires_at <= %s",
                (time.time(),),
            )
        )
        removed += int(
            await self._run(
                f"DELETE FROM {self.table} WHERE id IN (SELECT id FROM {self.table} "
                "ORDER BY id DESC OFFSET %s)",
                (self.max_entries,),
            )
        )
        return removed

    async def flush(self, scope: str | None = None, model: str | None = None) -> int:
        if self._dim is None:
            exists = await self._run("SELECT to_regclass(%s)", (self.table,), fetch=True)
            if not exists or exists[0][0] is None:
                return 0
        return int(
            await self._run(
                f"DELETE FROM {self.table} WHERE (%s::text IS NULL OR scope = %s) "
                "AND (%s::text IS NULL OR model = %s)",
                (scope, scope, model, model),
            )
        )

    async def stats(self) -> StoreStats:
        exists = await self._run("SELECT to_regclass(%s)", (self.table,), fetch=True)
        if not exists or exists[0][0] is None:
            return StoreStats(self.backend, 0)
        rows = await self._run(
            f"SELECT count(*), pg_total_relation_size(%s) FROM {self.table}",
            (self.table,),
            fetch=True,
        )
        return StoreStats(self.backend, int(rows[0][0]), int(rows[0][1]))

    async def close(self) -> None:
        if self._connection is not None:
            await _close_quietly(self._connection)
            self._connection = None


async def _close_quietly(connection: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(Exception):
        await connection.close()
