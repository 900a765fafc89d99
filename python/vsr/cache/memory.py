"""The in-process store: entries in one process's memory, bounded by count and bytes, LRU.

Entries are partitioned by ``(scope, key)``. A partition's vectors are compared by brute force
(one matrix product over rows of a shared float32 matrix) while it is small, which is faster
than any index below a few thousand rows; a partition that grows past ``INDEX_AT`` entries gets
its own HNSW index (hnswlib: on these 2 cores hnswlib, usearch and faiss all answer a query at
100k x 384 in ~0.6 ms, and hnswlib alone reuses deleted slots, so an evicting index never grows).

One lock guards everything, so the store is safe from threads and from the event loop; every
operation under it is sub-millisecond except an HNSW insertion, which ``store`` runs on a worker
thread (hnswlib releases the GIL).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import hnswlib
import numpy as np

from vsr.cache.store import Entry, Found, StoreStats

# Partitions larger than this are searched through their own HNSW index.
INDEX_AT = 2048
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 64
# What an entry costs beside its answer and vector: dicts, keys, slot bookkeeping (measured
# with tracemalloc; benches/bench_cache.py reports the real figure).
ENTRY_OVERHEAD_BYTES = 400
# Expired entries removed per write, from the least recently used end.
SWEEP_PER_WRITE = 16


@dataclass(slots=True)
class _Meta:
    partition: tuple[str, str]
    answer: bytes
    model: str
    expires_at: float
    size: int


@dataclass
class _Partition:
    slots: dict[int, None] = field(default_factory=dict)  # an ordered set
    index: hnswlib.Index | None = None
    building: bool = False  # an index is being built outside the lock
    added: list[int] = field(default_factory=list)  # slots stored while it was


class MemoryStore:
    backend = "memory"

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._vectors: np.ndarray | None = None  # rows by slot, grown by doubling
        self._free: list[int] = []
        self._next_slot = 0
        self._meta: OrderedDict[int, _Meta] = OrderedDict()  # least recently used first
        self._partitions: dict[tuple[str, str], _Partition] = {}
        self._bytes = 0
        self.evictions = 0
        self.expirations = 0

    # -- the async interface (lookups inline: they take microseconds) --
    async def lookup(
        self, scope: str, key: str, vector: np.ndarray, threshold: float
    ) -> Found | None:
        return self.lookup_sync(scope, key, vector, threshold)

    async def store(self, entry: Entry) -> None:
        await asyncio.to_thread(self.store_sync, entry)

    async def flush(self, scope: str | None = None, model: str | None = None) -> int:
        return self.flush_sync(scope, model)

    async def stats(self) -> StoreStats:
        with self._lock:
            return StoreStats(
                self.backend, len(self._meta), self._bytes, self.evictions, self.expirations
            )

    async def close(self) -> None:
        self.flush_sync()

    # -- the work --
    def lookup_sync(
        self, scope: str, key: str, vector: np.ndarray, threshold: float
    ) -> Found | None:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._lock:
            partition = self._partitions.get((scope, key))
            if partition is None or self._vectors is None:
                return None
            slot, similarity = self._best(partition, query)
            if slot < 0 or similarity < threshold:
                return None
            meta = self._meta[slot]
            if meta.expires_at and meta.expires_at <= time.time():
                self.expirations += 1
                self._remove(slot)
                return None
            self._meta.move_to_end(slot)
            return Found(meta.answer, similarity)

    def _best(self, partition: _Partition, query: np.ndarray) -> tuple[int, float]:
        assert self._vectors is not None
        if partition.index is not None:
            labels, distances = partition.index.knn_query(query, k=1, num_threads=1)
            return int(labels[0][0]), 1.0 - float(distances[0][0])
        slots = list(partition.slots)
        if len(slots) == 1:
            return slots[0], float(self._vectors[slots[0]] @ query)
        similarities = self._vectors[slots] @ query
        best = int(similarities.argmax())
        return slots[best], float(similarities[best])

    def store_sync(self, entry: Entry) -> None:
        vector = np.asarray(entry.vector, dtype=np.float32).reshape(-1)
        size = len(entry.answer) + len(entry.key) + len(entry.scope) + vector.nbytes * 2
        size += ENTRY_OVERHEAD_BYTES
        if size > self.max_bytes:
            return
        with self._lock:
            self._sweep()
            while self._meta and (
                len(self._meta) >= self.max_entries or self._bytes + size > self.max_bytes
            ):
                self.evictions += 1
                self._remove(next(iter(self._meta)))
            slot = self._take_slot(vector.shape[0])
            assert self._vectors is not None
            self._vectors[slot] = vector
            key = (entry.scope, entry.key)
            partition = self._partitions.setdefault(key, _Partition())
            partition.slots[slot] = None
            self._meta[slot] = _Meta(key, entry.answer, entry.model, entry.expires_at, size)
            self._bytes += size
            if partition.index is not None:
                self._index_add(partition, slot)
                return
            if partition.building:
                partition.added.append(slot)
                return
            if len(partition.slots) <= INDEX_AT:
                return
            partition.building = True
            slots = np.fromiter(partition.slots, dtype=np.int64)
            rows = self._vectors[slots].copy()
        # Built outside the lock (it takes a second): lookups go on by brute force meanwhile.
        index = _new_index(rows.shape[1], max(2 * len(slots), 2 * INDEX_AT))
        index.add_items(rows, slots, num_threads=1)
        with self._lock:
            self._install(key, partition, index, set(slots.tolist()))

    def _install(
        self, key: tuple[str, str], partition: _Partition, index: hnswlib.Index, built: set[int]
    ) -> None:
        """Catch the new index up with what changed while it was built, then use it."""
        partition.building = False
        added, partition.added = partition.added, []
        if self._partitions.get(key) is not partition:
            return  # emptied meanwhile
        for gone in built - partition.slots.keys():
            index.mark_deleted(gone)
        partition.index = index
        for slot in added:
            if slot in partition.slots:
                if slot in built:  # left and came back: its vector changed
                    index.mark_deleted(slot)
                self._index_add(partition, slot)

    def flush_sync(self, scope: str | None = None, model: str | None = None) -> int:
        with self._lock:
            doomed = [
                slot
                for slot, meta in self._meta.items()
                if (scope is None or meta.partition[0] == scope)
                and (model is None or meta.model == model)
            ]
            for slot in doomed:
                self._remove(slot)
            return len(doomed)

    def _sweep(self) -> None:
        now = time.time()
        for slot in list(itertools.islice(self._meta, SWEEP_PER_WRITE)):
            expires_at = self._meta[slot].expires_at
            if expires_at and expires_at <= now:
                self.expirations += 1
                self._remove(slot)

    def _take_slot(self, dim: int) -> int:
        if self._vectors is None:
            self._vectors = np.zeros((min(1024, self.max_entries), dim), dtype=np.float32)
        if self._free:
            return self._free.pop()
        slot = self._next_slot
        if slot >= self._vectors.shape[0]:
            rows = min(self._vectors.shape[0] * 2, self.max_entries)
            grown = np.zeros((rows, dim), dtype=np.float32)
            grown[: self._vectors.shape[0]] = self._vectors
            self._vectors = grown
        self._next_slot += 1
        return slot

    def _remove(self, slot: int) -> None:
        meta = self._meta.pop(slot)
        self._bytes -= meta.size
        partition = self._partitions[meta.partition]
        del partition.slots[slot]
        if not partition.slots:
            del self._partitions[meta.partition]
        elif partition.index is not None:
            partition.index.mark_deleted(slot)
        self._free.append(slot)

    def _build_index(self, partition: _Partition) -> None:
        """Index a partition at once, under the lock (bulk loads: benches, tests)."""
        assert self._vectors is not None
        slots = np.fromiter(partition.slots, dtype=np.int64)
        index = _new_index(self._vectors.shape[1], max(2 * len(slots), 2 * INDEX_AT))
        index.add_items(self._vectors[slots], slots, num_threads=1)
        partition.index = index

    def _index_add(self, partition: _Partition, slot: int) -> None:
        """Add ``slot`` to the partition's index. Labels are slots: a slot that left this
        partition is marked deleted and may come back (unmark, then update its vector); a new
        label reuses a deleted element's place, and the index doubles only when none is free."""
        assert self._vectors is not None and partition.index is not None
        index = partition.index
        row = self._vectors[slot][None]
        try:
            index.unmark_deleted(slot)
        except RuntimeError:  # not in the index (new, or its element was reused)
            try:
                index.add_items(row, [slot], num_threads=1, replace_deleted=True)
            except RuntimeError:  # full, nothing deleted to reuse
                index.resize_index(index.get_max_elements() * 2)
                index.add_items(row, [slot], num_threads=1, replace_deleted=True)
            return
        index.add_items(row, [slot], num_threads=1)


def _new_index(dim: int, capacity: int) -> hnswlib.Index:
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(
        max_elements=capacity,
        M=HNSW_M,
        ef_construction=HNSW_EF_CONSTRUCTION,
        allow_replace_deleted=True,
    )
    index.set_ef(HNSW_EF_SEARCH)
    return index
