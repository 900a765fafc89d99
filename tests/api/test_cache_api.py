"""``GET /api/v1/cache/stats`` and ``DELETE /api/v1/cache`` (all, per tenant, per model)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient
from tests.api.conftest import FakeEncoder

from vsr.api.http import ApiOptions, build_http_app
from vsr.cache import Entry, SemanticCache, scope_id
from vsr.cache.memory import MemoryStore
from vsr.config.cache import CacheConfig
from vsr.router import Router
from vsr.runtime import Generation, Runtime


@pytest.fixture
def cached(
    fakes: tuple[Router, dict[str, FakeEncoder]],
) -> Iterator[tuple[TestClient, MemoryStore]]:
    store = MemoryStore(max_entries=10, max_bytes=1 << 20)
    cache = SemanticCache(CacheConfig(max_entries=10), store)

    async def build(number: int) -> Generation:
        return Generation(
            number=number, router=fakes[0], default_model="llama3-8b",
            auto_model_names=("auto",), model_names=("llama3-8b", "phi4-mini"),
            source=Path("policy.yaml"), cache=cache,
        )  # fmt: skip

    runtime = Runtime(build)
    asyncio.run(runtime.start())
    with TestClient(build_http_app(runtime, ApiOptions())) as client:
        yield client, store


def put(store: MemoryStore, scope: str, model: str = "llama3-8b") -> None:
    vector = np.ones(8, dtype=np.float32) / np.sqrt(8)
    store.store_sync(Entry(scope, "k", vector, b"{}", model, 0.0))


def test_stats_and_flush_per_tenant_and_model(cached: tuple[TestClient, MemoryStore]) -> None:
    client, store = cached
    put(store, scope_id("x-user-id", "alice"))
    put(store, scope_id("x-user-id", "bob"))
    put(store, "anonymous", model="phi4-mini")
    stats: dict[str, Any] = client.get("/api/v1/cache/stats").json()
    assert stats["backend"] == "memory" and stats["entries"] == 3 and stats["max_entries"] == 10
    flushed = client.delete(
        "/api/v1/cache", params={"tenant_header": "x-user-id", "tenant": "alice"}
    )
    assert flushed.status_code == 200 and flushed.json()["removed"] == 1
    assert client.delete("/api/v1/cache", params={"model": "phi4-mini"}).json()["removed"] == 1
    wrong = client.delete("/api/v1/cache", params={"tenant_header": "x-other", "tenant": "a"})
    assert wrong.status_code == 400
    assert client.delete("/api/v1/cache", params={"tenant": "a"}).status_code == 400
    assert client.delete("/api/v1/cache").json()["removed"] == 1
    assert client.get("/api/v1/cache/stats").json()["entries"] == 0


def test_without_a_cache_the_endpoints_say_so(client: TestClient) -> None:
    reply = client.get("/api/v1/cache/stats")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "cache_disabled"
    assert client.delete("/api/v1/cache").status_code == 404
