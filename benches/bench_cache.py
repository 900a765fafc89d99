"""The semantic cache's stores, in process: lookup time by entries, memory per entry, and the
shared stores' lookup and write latency against real servers.

- memory, one partition (the worst case: every entry shares the exact key, so one HNSW index
  holds them all): p50/p99 lookup of a near-duplicate (a hit) and of a random vector (a miss) at
  each size; the index is built in bulk (``--threads``), as steady writes would leave it;
- memory, many partitions (entries spread over keys of 100): the common case with tenants or
  system prompts, where a lookup compares one partition by brute force whatever the total;
- bytes per entry: tracemalloc's growth over 10k entries with 1 KiB answers, over 384 dims;
- milvus (milvus-lite server on loopback) and pgvector (pgserver, unix socket) at ``--shared``
  entries: lookup p50/p99 through the store and write time (a write flushes, on milvus).

    .venv/bin/python benches/bench_cache.py [--sizes 10000,100000] [--shared 10000]

Vectors are random unit vectors in 384 dims (MiniLM's), harder for HNSW than real embeddings.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.cache_stores import start_milvus, start_pgvector

from vsr.cache import memory as memory_module
from vsr.cache.memory import MemoryStore
from vsr.cache.store import Entry

DIM = 384
ANSWER = b"x" * 1024
QUERIES = 300


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.standard_normal((n, DIM)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def near(rng: np.random.Generator, rows: np.ndarray) -> np.ndarray:
    noisy = rows + 0.01 * rng.standard_normal(rows.shape).astype(np.float32)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def bulk_store(n: int, partitions: int, threads: int, rng: np.random.Generator) -> tuple[
    MemoryStore, np.ndarray, list[str]
]:  # fmt: skip
    """A store holding ``n`` entries over ``partitions`` keys, indexes built in bulk."""
    store = MemoryStore(max_entries=n + 1, max_bytes=1 << 40)
    vectors = unit_rows(rng, n)
    keys = [f"k{i % partitions}" for i in range(n)]
    saved = memory_module.INDEX_AT
    memory_module.INDEX_AT = 1 << 62  # no index while loading
    for i in range(n):
        store.store_sync(Entry("s", keys[i], vectors[i], ANSWER, "m", 0.0))
    memory_module.INDEX_AT = saved
    for partition in store._partitions.values():
        if len(partition.slots) > saved:
            store._build_index(partition)  # single-threaded in the store; here in bulk:
    if partitions == 1 and n > saved:
        partition = next(iter(store._partitions.values()))
        index = hnswlib.Index(space="ip", dim=DIM)
        index.init_index(max_elements=2 * n, M=memory_module.HNSW_M,
                         ef_construction=memory_module.HNSW_EF_CONSTRUCTION,
                         allow_replace_deleted=True)  # fmt: skip
        index.set_ef(memory_module.HNSW_EF_SEARCH)
        slots = np.fromiter(partition.slots, dtype=np.int64)
        index.add_items(vectors[slots], slots, num_threads=threads)
        partition.index = index
    return store, vectors, keys


def timed(calls: list[Any]) -> tuple[float, float, list[Any]]:
    spent, results = [], []
    for call in calls:
        started = time.perf_counter()
        results.append(call())
        spent.append(time.perf_counter() - started)
    return float(np.percentile(spent, 50) * 1e3), float(np.percentile(spent, 99) * 1e3), results


def lookups(
    store: MemoryStore, keys: list[str], queries: np.ndarray, picks: np.ndarray
) -> list[Any]:
    return [
        lambda q=q, i=i: store.lookup_sync("s", keys[i], q, 0.9)
        for q, i in zip(queries, picks, strict=True)
    ]


def memory_rows(sizes: list[int], threads: int) -> list[str]:
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        for partitions in (1, max(n // 100, 1)):
            if partitions == 1 and n > 200_000:
                continue  # a 1M-entry HNSW build takes an hour on 2 cores: see README
            started = time.perf_counter()
            store, vectors, keys = bulk_store(n, partitions, threads, rng)
            built = time.perf_counter() - started
            picks = rng.integers(0, n, QUERIES)
            queries = near(rng, vectors[picks])
            hit50, hit99, found = timed(lookups(store, keys, queries, picks))
            recall = sum(f is not None for f in found) / QUERIES
            misses = unit_rows(rng, QUERIES)
            miss50, miss99, _ = timed(lookups(store, keys, misses, picks))
            layout = (
                "1 partition (HNSW)" if partitions == 1 else f"{partitions} x {n // partitions}"
            )
            rows.append(
                f"| {n:,} | {layout} | {hit50:.3f} / {hit99:.3f} | {miss50:.3f} / {miss99:.3f} "
                f"| {recall:.2f} | {built:.0f} s |"
            )
            print(rows[-1], flush=True)
    return rows


def bytes_per_entry() -> float:
    rng = np.random.default_rng(1)
    vectors = unit_rows(rng, 10_000)
    tracemalloc.start()
    store = MemoryStore(max_entries=20_000, max_bytes=1 << 40)
    before = tracemalloc.get_traced_memory()[0]
    for i, vector in enumerate(vectors):
        store.store_sync(Entry("s", f"k{i}", vector, bytes(ANSWER), "m", 0.0))
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return grown / len(vectors)


def hit_path_ms() -> tuple[float, float]:
    """p50 ms of what a hit adds beyond routing, in process: the key (hashing the routed body),
    the memory lookup at 10k entries, the answer as JSON, and the ImmediateResponse protobuf;
    and the same with the answer as SSE."""
    from vsr.cache import CachedAnswer, SemanticCache
    from vsr.config.cache import CacheConfig
    from vsr.extproc import mutations

    rng = np.random.default_rng(3)
    store, vectors, _ = bulk_store(10_000, 100, 2, rng)
    cache = SemanticCache(CacheConfig(sampled_requests=True), store)
    message = {"role": "assistant", "content": "The capital of France is Paris. " * 20}
    usage = {"prompt_tokens": 14, "completion_tokens": 140, "total_tokens": 154}
    body = {"model": "llama3-8b", "messages": [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of France?"}]}  # fmt: skip

    async def one(stream: bool, vector: np.ndarray) -> float:
        started = time.perf_counter()
        ticket = cache.ticket(body, "llama3-8b", {"x-user-id": "u"}, vector, 0.0, 60)
        assert not isinstance(ticket, type(None))
        await cache.lookup(ticket)  # type: ignore[arg-type]
        answer = CachedAnswer("llama3-8b", message, "stop", usage)
        payload = answer.stream(include_usage=True) if stream else answer.completion()
        mutations.immediate_response(200, payload, headers={"x-vsr-cache-hit": "true"})
        return time.perf_counter() - started

    async def run(stream: bool) -> float:
        spent = [await one(stream, vectors[i]) for i in rng.integers(0, 10_000, QUERIES)]
        return float(np.median(spent) * 1e3)

    return asyncio.run(run(False)), asyncio.run(run(True))


async def shared_row(name: str, n: int) -> str:
    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory() as work:
        running = start_milvus(Path(work)) if name == "milvus" else start_pgvector(Path(work))
        try:
            from vsr.cache.semantic import build_store
            from vsr.config.cache import CacheConfig

            store = build_store(CacheConfig(**running.settings, max_entries=n * 2))
            vectors = unit_rows(rng, n)
            started = time.perf_counter()
            writes = []
            for i, vector in enumerate(vectors):
                began = time.perf_counter()
                await store.store(Entry("s", "k", vector, ANSWER, "m", 0.0))
                writes.append(time.perf_counter() - began)
                if time.perf_counter() - started > 240:
                    vectors = vectors[: i + 1]
                    break
            spent = []
            found = 0
            picks = rng.integers(0, len(vectors), QUERIES // 3)
            for q in near(rng, vectors[picks]):
                began = time.perf_counter()
                found += await store.lookup("s", "k", q, 0.9) is not None
                spent.append(time.perf_counter() - began)
            await store.close()
            return (
                f"| {name} | {len(vectors):,} | {np.percentile(spent, 50) * 1e3:.2f} / "
                f"{np.percentile(spent, 99) * 1e3:.2f} | {found / len(picks):.2f} | "
                f"{np.percentile(writes, 50) * 1e3:.1f} |"
            )
        finally:
            running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--shared", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-shared", action="store_true")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    print(f"command: {' '.join(sys.argv)}\n")
    print("| entries | layout | hit p50 / p99 ms | miss p50 / p99 ms | found | load |")
    print("|---|---|---|---|---|---|")
    memory_rows([int(s) for s in args.sizes.split(",")], args.threads)
    print(f"\nmemory per entry (1 KiB answer, {DIM} dims): {bytes_per_entry():,.0f} bytes")
    json_ms, sse_ms = hit_path_ms()
    print(f"a hit beyond routing (key + lookup at 10k + answer + ImmediateResponse), p50: "
          f"{json_ms:.3f} ms JSON, {sse_ms:.3f} ms SSE\n")  # fmt: skip
    if args.skip_shared:
        return
    print("| store | entries | lookup p50 / p99 ms | found | write p50 ms |")
    print("|---|---|---|---|---|")
    for name in ("pgvector", "milvus"):
        print(asyncio.run(shared_row(name, args.shared)), flush=True)


if __name__ == "__main__":
    main()
