"""Milvus: one collection shared by every router pod (pymilvus's client, on worker threads).

Rows carry the partition (``scope``, ``key``) as scalar fields that every search filters on,
the vector (cosine, HNSW), the answer and its expiry. Writes ``flush`` before returning, so the
next search reads sealed segments (unflushed data made a search take ~400 ms instead of ~10 ms
on milvus-lite). Expired rows are never returned, and are deleted every ``TRIM_EVERY`` writes.
A failed call drops the client; the next call reconnects, not sooner than ``RETRY_AFTER_S``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

from vsr.cache.store import Entry, Found, StoreStats, StoreUnavailable

RETRY_AFTER_S = 1.0
TRIM_EVERY = 64
CONNECT_TIMEOUT_S = 2.0
# A VARCHAR field holds at most 65,535 bytes: answers are stored base64 up to that.
MAX_ANSWER_CHARS = 65_535


def _quoted(value: str) -> str:
    # Scopes and keys are hex digests or fixed words; quote anyway.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class MilvusStore:
    backend = "milvus"

    def __init__(self, uri: str, collection: str, token: str | None = None) -> None:
        self.uri = uri
        self.collection = collection
        self.token = token
        self._client: MilvusClient | None = None
        self._lock = threading.Lock()
        self._failed_at = 0.0
        self._dim: int | None = None
        self._writes = 0

    def _connected(self) -> MilvusClient:
        if self._client is not None:
            return self._client
        if time.monotonic() - self._failed_at < RETRY_AFTER_S:
            raise StoreUnavailable("milvus: waiting before reconnecting")
        try:
            self._client = MilvusClient(
                uri=self.uri, token=self.token or "", timeout=CONNECT_TIMEOUT_S
            )
        except Exception as error:
            self._failed_at = time.monotonic()
            raise StoreUnavailable(f"milvus: cannot connect ({error})") from error
        return self._client

    def _call(self, work: Any) -> Any:
        with self._lock:
            client = self._connected()
            try:
                return work(client)
            except Exception:
                self._client = None
                self._dim = None
                self._failed_at = time.monotonic()
                raise

    def _ensure(self, client: MilvusClient, dim: int) -> None:
        if self._dim == dim:
            return
        if not client.has_collection(self.collection):
            schema = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("scope", DataType.VARCHAR, max_length=64)
            schema.add_field("key", DataType.VARCHAR, max_length=64)
            schema.add_field("model", DataType.VARCHAR, max_length=256)
            schema.add_field("answer", DataType.VARCHAR, max_length=MAX_ANSWER_CHARS)
            schema.add_field("expires_at", DataType.DOUBLE)
            index = client.prepare_index_params()
            index.add_index("embedding", index_type="HNSW", metric_type="COSINE",
                            params={"M": 16, "efConstruction": 100})  # fmt: skip
            client.create_collection(self.collection, schema=schema, index_params=index)
        client.load_collection(self.collection)
        self._dim = dim

    async def lookup(
        self, scope: str, key: str, vector: np.ndarray, threshold: float
    ) -> Found | None:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)

        def work(client: MilvusClient) -> Found | None:
            self._ensure(client, query.shape[0])
            hits = client.search(
                self.collection,
                data=[query.tolist()],
                limit=1,
                filter=f"scope == {_quoted(scope)} and key == {_quoted(key)} "
                f"and (expires_at == 0 or expires_at > {time.time():.3f})",
                output_fields=["answer"],
                search_params={"metric_type": "COSINE", "params": {"ef": 64}},
            )
            if not hits or not hits[0]:
                return None
            best = hits[0][0]
            similarity = min(float(best["distance"]), 1.0)
            if similarity < threshold:
                return None
            return Found(base64.b64decode(best["entity"]["answer"]), similarity)

        found: Found | None = await asyncio.to_thread(self._call, work)
        return found

    async def store(self, entry: Entry) -> None:
        answer = base64.b64encode(entry.answer).decode()
        if len(answer) > MAX_ANSWER_CHARS:
            return
        vector = np.asarray(entry.vector, dtype=np.float32).reshape(-1)
        row = {
            "embedding": vector.tolist(), "scope": entry.scope, "key": entry.key,
            "model": entry.model[:256], "answer": answer, "expires_at": entry.expires_at,
        }  # fmt: skip

        def work(client: MilvusClient) -> None:
            self._ensure(client, vector.shape[0])
            client.insert(self.collection, [row])
            self._writes += 1
            if self._writes % TRIM_EVERY == 0:
                client.delete(
                    self.collection, filter=f"expires_at > 0 and expires_at <= {time.time():.3f}"
                )
            client.flush(self.collection)

        await asyncio.to_thread(self._call, work)

    async def flush(self, scope: str | None = None, model: str | None = None) -> int:
        clauses = ["id >= 0"]
        if scope is not None:
            clauses.append(f"scope == {_quoted(scope)}")
        if model is not None:
            clauses.append(f"model == {_quoted(model)}")

        def work(client: MilvusClient) -> int:
            if not client.has_collection(self.collection):
                return 0
            result = client.delete(self.collection, filter=" and ".join(clauses))
            client.flush(self.collection)
            # Servers answer with the deleted keys, or with a count.
            if isinstance(result, list):
                return len(result)
            return int(result.get("delete_count", 0)) if isinstance(result, dict) else 0

        removed: int = await asyncio.to_thread(self._call, work)
        return removed

    async def stats(self) -> StoreStats:
        def work(client: MilvusClient) -> StoreStats:
            if not client.has_collection(self.collection):
                return StoreStats(self.backend, 0)
            rows = client.query(self.collection, filter="id >= 0", output_fields=["count(*)"])
            return StoreStats(self.backend, int(rows[0]["count(*)"]) if rows else 0)

        stats: StoreStats = await asyncio.to_thread(self._call, work)
        return stats

    async def close(self) -> None:
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
                self._client = None
