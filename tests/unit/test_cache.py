"""The semantic cache without a server: keys and safety rules, answers assembled and replayed,
and the memory store's bounds (entries, bytes, TTL, LRU, its HNSW path, threads)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import numpy as np
import pytest

from vsr.cache import AnswerCollector, CachedAnswer, SemanticCache, cache_control
from vsr.cache import memory as memory_module
from vsr.cache.keys import request_key, tenant_scope, uncacheable
from vsr.cache.memory import MemoryStore
from vsr.cache.store import Entry, Found
from vsr.config.cache import CacheConfig

RNG = np.random.default_rng(7)


def unit(dim: int = 16) -> np.ndarray:
    vector = RNG.standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def entry(vector: np.ndarray, answer: bytes = b"a", scope: str = "s", key: str = "k",
          expires_at: float = 0.0, model: str = "m") -> Entry:  # fmt: skip
    return Entry(scope, key, vector, answer, model, expires_at)


def body(question: str, **extra: object) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": question}], **extra}


def test_key_ignores_the_question_and_delivery_but_nothing_else() -> None:
    base = request_key(body("a"), "m")
    assert request_key(body("b", stream=True, user="u", stream_options={}), "m") == base
    assert request_key(body("a"), "other-model") != base
    extra: dict[str, Any]
    for extra in ({"temperature": 0}, {"tools": []}, {"response_format": {"type": "json"}},
                  {"max_tokens": 5}, {"some_future_field": 1}):  # fmt: skip
        assert request_key(body("a", **extra), "m") != base
    with_system = body("a")
    with_system["messages"].insert(0, {"role": "system", "content": "be brief"})  # type: ignore[attr-defined]
    assert request_key(with_system, "m") != base


def test_the_newest_turns_images_and_other_parts_are_in_the_key() -> None:
    def asking(*parts: object) -> dict[str, object]:
        return {"model": "m", "messages": [{"role": "user", "content": list(parts)}]}

    question = {"type": "text", "text": "What is in this picture?"}
    paraphrase = {"type": "text", "text": "What does this picture show?"}
    cat = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    dog = {"type": "image_url", "image_url": {"url": "https://example.com/dog.png"}}
    key = request_key(asking(question, cat), "m")
    assert request_key(asking(question, dog), "m") != key
    assert request_key(body("What is in this picture?"), "m") != key
    assert request_key(asking(question), "m") != key
    # The question's words stay out of the key (similarity judges them).
    assert request_key(asking(paraphrase, cat), "m") == key


def test_uncacheable_requests() -> None:
    config = CacheConfig()
    assert uncacheable(body("a", temperature=0), config) is None
    assert uncacheable(body("a"), config).reason == "sampled"  # type: ignore[union-attr]
    assert uncacheable(body("a", temperature=0.7), config).reason == "sampled"  # type: ignore[union-attr]
    assert uncacheable(body("a"), CacheConfig(sampled_requests=True)) is None
    assert uncacheable(body("a", temperature=0, n=2), config).reason == "n_above_1"  # type: ignore[union-attr]
    logprobs = uncacheable(body("a", temperature=0, logprobs=True), config)
    assert logprobs is not None and logprobs.reason == "unstorable_output"
    tool_turn = {"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "y"}]}
    assert uncacheable(tool_turn, config).reason == "not_user_turn"  # type: ignore[union-attr]


def test_tenant_scope_and_cache_control() -> None:
    names = ("authorization", "x-user-id")
    alice = tenant_scope({"x-user-id": "alice"}, names)
    assert alice != tenant_scope({"x-user-id": "bob"}, names)
    assert "alice" not in alice
    assert tenant_scope({}, names) == "anonymous"
    assert tenant_scope({"authorization": "k", "x-user-id": "alice"}, names) != alice
    assert cache_control({"cache-control": "no-cache"}).lookup is False
    assert cache_control({"x-vsr-cache-control": "no-store"}).store is False
    assert cache_control({"cache-control": "max-age=0"}).lookup is True


def sse(*events: object) -> bytes:
    return (
        b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    )


def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {"model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_stream_assembled_in_split_chunks_and_replayed() -> None:
    raw = sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "Par"}),
              chunk({"content": "is."}), chunk({}, "stop"),
              {"model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                                                       "total_tokens": 5}})  # fmt: skip
    collector = AnswerCollector(stream=True, max_bytes=10_000)
    for start in range(0, len(raw), 7):
        collector.feed(raw[start : start + 7], start + 7 >= len(raw))
    answer = collector.answer()
    assert answer is not None and answer.message["content"] == "Paris."
    assert answer.usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    replay = CachedAnswer.from_bytes(answer.to_bytes()).stream(include_usage=True)
    again = AnswerCollector(stream=True, max_bytes=10_000)
    again.feed(replay, True)
    assert again.answer() == answer
    completion = json.loads(answer.completion())
    assert completion["choices"][0]["message"]["content"] == "Paris."


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (sse(chunk({"content": "Par"})).removesuffix(b"data: [DONE]\n\n"), "incomplete"),
        (sse(chunk({"content": "x"}), {"error": {"message": "boom"}}), "unreadable"),
        (
            sse(
                chunk(
                    {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f"}}]},
                    "tool_calls",
                )
            ),
            "tool_calls",
        ),
        (sse(chunk({"content": "x"}, "content_filter")), "finish_reason"),
    ],
)
def test_partial_failed_or_tool_answers_are_not_kept(raw: bytes, reason: str) -> None:
    collector = AnswerCollector(stream=True, max_bytes=10_000)
    collector.feed(raw, True)
    assert collector.answer() is None and collector.reason == reason


def test_json_answer_with_two_choices_is_not_kept() -> None:
    collector = AnswerCollector(stream=False, max_bytes=10_000)
    payload = {
        "model": "m",
        "choices": [{"message": {"content": "a"}, "finish_reason": "stop"}] * 2,
    }
    collector.feed(json.dumps(payload).encode(), True)
    assert collector.answer() is None


def test_memory_store_bounds_ttl_and_lru() -> None:
    store = MemoryStore(max_entries=3, max_bytes=1 << 30)
    vectors = [unit() for _ in range(4)]
    for index, vector in enumerate(vectors[:3]):
        store.store_sync(entry(vector, f"{index}".encode()))
    found = store.lookup_sync("s", "k", vectors[0], 0.99)
    assert found is not None and found.answer == b"0" and found.similarity == pytest.approx(1.0)
    store.store_sync(entry(vectors[3], b"3"))  # evicts 1, the least recently used
    assert store.lookup_sync("s", "k", vectors[1], 0.99) is None
    assert store.lookup_sync("s", "k", vectors[0], 0.99) is not None
    assert store.lookup_sync("other", "k", vectors[0], 0.5) is None
    store.store_sync(entry(unit(), b"old", expires_at=time.time() - 1))
    assert store.flush_sync(scope="s") >= 1
    small = MemoryStore(
        max_entries=1000, max_bytes=4 * (16 * 8 + 1000 + memory_module.ENTRY_OVERHEAD_BYTES)
    )
    for _ in range(10):
        small.store_sync(entry(unit(), b"x" * 1000))
    assert len(small._meta) <= 4 and small.evictions >= 6


def test_memory_store_expired_entry_is_a_miss() -> None:
    store = MemoryStore(max_entries=10, max_bytes=1 << 30)
    vector = unit()
    store.store_sync(entry(vector, expires_at=time.time() + 0.05))
    assert store.lookup_sync("s", "k", vector, 0.9) is not None
    time.sleep(0.06)
    assert store.lookup_sync("s", "k", vector, 0.9) is None
    assert store.expirations == 1


def test_memory_store_hnsw_partition_with_eviction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_module, "INDEX_AT", 32)
    store = MemoryStore(max_entries=100, max_bytes=1 << 30)
    vectors = [unit(32) for _ in range(300)]
    for index, vector in enumerate(vectors):
        store.store_sync(entry(vector, f"{index}".encode()))
        if index % 5 == 0:
            store.store_sync(entry(unit(32), b"other", key="k2"))
    assert len(store._meta) == 100
    found = [store.lookup_sync("s", "k", vectors[i], 0.999) for i in range(280, 300)]
    assert sum(f is not None and f.answer == f"{i}".encode()
               for i, f in zip(range(280, 300), found, strict=True)) >= 18  # fmt: skip
    assert store.lookup_sync("s", "k", vectors[0], 0.999) is None


def test_memory_store_from_threads() -> None:
    store = MemoryStore(max_entries=200, max_bytes=1 << 30)

    def work() -> None:
        for _ in range(300):
            vector = unit()
            store.store_sync(entry(vector))
            store.lookup_sync("s", "k", vector, 0.5)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store._meta) == 200


class SlowStore(MemoryStore):
    async def lookup(self, *args: object, **kwargs: object) -> Found | None:
        await asyncio.sleep(1)
        return None


def test_slow_or_failing_store_is_a_miss() -> None:
    async def run() -> None:
        cache = SemanticCache(CacheConfig(timeout_ms=20), SlowStore(10, 1 << 20))
        ticket = cache.ticket(body("a", temperature=0), "m", {}, unit(), 0.9, 60)
        assert not isinstance(ticket, type(None))
        started = time.perf_counter()
        assert await cache.lookup(ticket) is None  # type: ignore[arg-type]
        assert time.perf_counter() - started < 0.5

    asyncio.run(run())


def test_index_built_while_writes_and_evictions_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never a wrong answer: every hit's answer is the one stored with the vector it matched."""
    monkeypatch.setattr(memory_module, "INDEX_AT", 64)
    store = MemoryStore(max_entries=150, max_bytes=1 << 30)
    stored: dict[bytes, np.ndarray] = {}
    lock = threading.Lock()

    def work(worker: int) -> None:
        for i in range(200):
            vector = unit(32)
            answer = f"{worker}-{i}".encode()
            with lock:
                stored[answer] = vector
            store.store_sync(entry(vector, answer))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    partition = store._partitions[("s", "k")]
    assert partition.index is not None and not partition.building
    live = [meta.answer for meta in store._meta.values()]
    assert len(live) == 150
    found = 0
    for answer, vector in stored.items():
        hit = store.lookup_sync("s", "k", vector, 0.999)
        if hit is not None:
            assert hit.answer == answer
            found += 1
    assert found >= 140


def test_numbers_and_quoted_text_of_the_question_are_in_the_key() -> None:
    """An embedding barely sees numbers ("17 times 23" / "17 times 24": 0.91 with MiniLM)."""
    assert request_key(body("What is 17 times 23?"), "m") != request_key(
        body("What is 17 times 24?"), "m"
    )
    assert request_key(body("What is 17 times 23?"), "m") == request_key(
        body("Compute 17 times 23, please."), "m"
    )
    assert request_key(body("Translate 'good morning' to French"), "m") != request_key(
        body("Translate 'good night' to French"), "m"
    )
    assert request_key(body("What's the capital of France?"), "m") == request_key(
        body("Which city is France's capital?"), "m"
    )


def test_a_reload_keeps_the_cache_unless_its_settings_change() -> None:
    from vsr.config import parse_config_text
    from vsr.runtime import _cache_for

    text = """
default_model: m
models: [{name: m}]
semantic_cache: {max_entries: %d}
plugins: [{type: semantic_cache}]
"""

    async def run() -> None:
        caches: list[SemanticCache] = []
        first = _cache_for(parse_config_text(text % 10), caches)
        assert first is not None and _cache_for(parse_config_text(text % 10), caches) is first
        second = _cache_for(parse_config_text(text % 20), caches)
        assert second is not None and second is not first
        off = parse_config_text(text.replace("plugins: [{type: semantic_cache}]", "") % 20)
        assert _cache_for(off, caches) is None

    asyncio.run(run())
