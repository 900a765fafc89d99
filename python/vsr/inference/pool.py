"""Running encoder heads for requests: batched per encoder, off the event loop.

The unit of work is ``(encoder, texts, heads)``: every head a request needs on one encoder is run
on a single encoder pass. ``run`` is the async door: concurrent requests to the same encoder are
grouped into one native call (``vsr.inference.batching`` says which and when) and run on a small
thread pool, so the event loop never waits on a model (the native core releases the GIL).
``run_sync`` is the same work, unbatched, for callers without a loop.

Why batch: one forward pass over 32 texts costs little more than over one on a GPU (the weights
are read once, kernels launch once) and far less than 32 passes on a CPU. A lone request never
waits: it runs as soon as it arrives at an idle encoder.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from vsr.inference.batching import (
    BatchingConfig,
    BatchQueue,
    PendingRequest,
    split_outputs,
    union_heads,
)
from vsr.inference.registry import EncoderKey, ModelRegistry

log = structlog.get_logger(__name__)


class InferencePool:
    def __init__(
        self,
        registry: ModelRegistry,
        *,
        max_workers: int = 2,
        batching: BatchingConfig | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.registry = registry
        self.batching = batching or BatchingConfig()
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="vsr-infer")
        # Created on first use inside the running loop; one slot per worker thread, so a batch
        # never queues inside the executor behind work the scheduler would have ordered later.
        # One per event loop: a scheduler and its futures belong to one loop's thread, and a
        # library caller may run a loop per thread (asyncio.run in each) on one Router.
        self._max_workers = max_workers
        self._schedulers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Scheduler] = (
            weakref.WeakKeyDictionary()
        )

    def run_sync(
        self, key: EncoderKey, texts: Sequence[str], heads: Sequence[str]
    ) -> dict[str, Any]:
        """Per head name: its output for ``texts`` (see ``vsr.models``), from one encoder pass."""
        model = self.registry.get(key)
        # A single-head model answers to whichever names its signals used.
        native_names = {head: self.registry.resolve_head(key, head).name for head in heads}
        native = sorted(set(native_names.values()))
        started = time.perf_counter()
        outputs = model.run(list(texts), native)
        log.debug(
            "encoder_run",
            path=key.path,
            texts=len(texts),
            heads=native,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return {head: outputs[native_names[head]] for head in heads}

    def count_tokens_sync(self, key: EncoderKey, texts: Sequence[str]) -> list[int]:
        return self.registry.get(key).count_tokens(list(texts))

    async def run(
        self, key: EncoderKey, texts: Sequence[str], heads: Sequence[str]
    ) -> dict[str, Any]:
        if not self.batching.enabled or not texts:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self.run_sync, key, texts, heads)
        loop = asyncio.get_running_loop()
        scheduler = self._schedulers.get(loop)
        if scheduler is None:
            scheduler = self._schedulers[loop] = _Scheduler(self, self._max_workers)
        return await scheduler.submit(key, texts, heads)

    async def count_tokens(self, key: EncoderKey, texts: Sequence[str]) -> list[int]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.count_tokens_sync, key, texts)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass
class _EncoderQueue:
    """One encoder's waiting requests and how many of its batches are running."""

    queue: BatchQueue
    running: int = 0


class _Scheduler:
    """Runs batches on the pool's worker slots (one slot per worker thread); lives on the event
    loop's thread only.

    Whenever a slot is free it picks the next batch across every encoder: the one whose anchor
    (``BatchQueue.anchor``: the earliest fair time, arrival plus the request's weight in tokens)
    is earliest; ``BatchQueue.take`` then groups that request with its neighbours in length. So a
    short prompt is not stuck behind long prompts of any encoder, no request is starved, and a
    batch is cut only when it can run (requests arriving meanwhile can still join it). An encoder
    already running a batch waits up to ``max_wait_ms`` for more company unless its queue fills a
    batch. Requests whose caller gave up (cancelled, past its deadline) are dropped before their
    batch runs.

    Large batches (long prompts' windows) may hold all slots but one: on a CPU a batch of long
    windows takes seconds, and short prompts arriving meanwhile need a slot that is not behind it.
    """

    def __init__(self, pool: InferencePool, slots: int) -> None:
        self._pool = pool
        self._config = pool.batching
        self._free = slots
        # Large batches may hold all slots but one, which stays for small ones.
        self._large_limit = max(1, slots - 1)
        self._large_running = 0
        self._queues: dict[EncoderKey, _EncoderQueue] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def submit(
        self, key: EncoderKey, texts: Sequence[str], heads: Sequence[str]
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[dict[str, Any]] = loop.create_future()
        state = self._queues.get(key)
        if state is None:
            state = self._queues[key] = _EncoderQueue(BatchQueue(self._config))
        request = state.queue.add(texts, heads, result)  # QueueFull: refused at once
        self._dispatch()
        try:
            return await result
        except asyncio.CancelledError:
            state.queue.drop(request)
            raise

    def _dispatch(self) -> None:
        now = time.monotonic()
        while self._free > 0:
            key = self._next(now)
            if key is None:
                return
            state = self._queues[key]
            batch = [r for r in state.queue.take(self._large_full()) if not r.result.done()]
            if batch:
                self._start(key, state, batch)

    def _next(self, now: float) -> EncoderKey | None:
        """The encoder whose batch runs next, or None (then a timer may be armed)."""
        config = self._config
        # (fair time, arrival sequence) of each ready encoder's anchor request.
        ready: list[tuple[float, int, EncoderKey]] = []
        wake_at: float | None = None
        for key, state in self._queues.items():
            queue = state.queue
            if not queue or state.running >= config.max_concurrent_batches:
                continue
            # With the large slots taken, the batch is built around the earliest small request
            # (a large one ahead of it must not keep it from the slot kept for it).
            anchor = queue.anchor(small_only=self._large_full())
            if anchor is None:
                continue
            oldest = queue.waiting[0].queued_at
            if state.running == 0 or queue.full() or now - oldest >= config.max_wait_s:
                ready.append((anchor.fair_time(queue.weight()), anchor.sequence, key))
            else:
                due = oldest + config.max_wait_s
                wake_at = due if wake_at is None else min(wake_at, due)
        if not ready:
            if wake_at is not None:
                self._arm_timer(wake_at - now)
            return None
        return min(ready, key=lambda item: (item[0], item[1]))[2]

    def _large_full(self) -> bool:
        """Whether large batches hold every slot they may: the last is kept for small ones."""
        return self._large_running >= self._large_limit

    def _arm_timer(self, delay_s: float) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(delay_s, 0.0), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()

    def _start(self, key: EncoderKey, state: _EncoderQueue, batch: list[PendingRequest]) -> None:
        self._free -= 1
        state.running += 1
        large = any(request.large for request in batch)
        self._large_running += large
        task = asyncio.get_running_loop().create_task(self._execute(key, state, batch, large))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _execute(
        self, key: EncoderKey, state: _EncoderQueue, batch: list[PendingRequest], large: bool
    ) -> None:
        texts = [text for request in batch for text in request.texts]
        loop = asyncio.get_running_loop()
        heads = union_heads(batch)

        def run() -> tuple[dict[str, Any], float]:
            started = time.perf_counter()
            return self._pool.run_sync(key, texts, heads), time.perf_counter() - started

        try:
            outputs, seconds = await loop.run_in_executor(self._pool._executor, run)
            state.queue.record(sum(request.tokens for request in batch), seconds)
            shares = split_outputs(outputs, batch)
        except Exception as error:
            # One native call served them all, so its failure is each one's failure.
            for request in batch:
                if not request.result.done():
                    request.result.set_exception(error)
        else:
            for request, share in zip(batch, shares, strict=True):
                if not request.result.done():
                    request.result.set_result(share)
        finally:
            self._free += 1
            self._large_running -= large
            state.running -= 1
            if len(batch) > 1:
                log.debug("encoder_batch", path=key.path, requests=len(batch), texts=len(texts))
            self._dispatch()
