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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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
        # One batcher per encoder, created on first use inside the running loop.
        self._batchers: dict[EncoderKey, _EncoderBatcher] = {}

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
        batcher = self._batchers.get(key)
        if batcher is None:
            batcher = self._batchers[key] = _EncoderBatcher(self, key)
        return await batcher.submit(texts, heads)

    async def count_tokens(self, key: EncoderKey, texts: Sequence[str]) -> list[int]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.count_tokens_sync, key, texts)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class _EncoderBatcher:
    """Queues one encoder's requests and starts batches; lives on the event loop's thread only.

    Dispatch rules, checked whenever a request arrives, a batch finishes or the wait timer fires:
    nothing in flight -> run what is queued now; a slot free but others running -> run once the
    queue fills a batch or the oldest request has waited ``max_wait_ms``; no slot free -> wait.
    """

    def __init__(self, pool: InferencePool, key: EncoderKey) -> None:
        self._pool = pool
        self._key = key
        self._config = pool.batching
        self._queue = BatchQueue(self._config)
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, texts: Sequence[str], heads: Sequence[str]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[dict[str, Any]] = loop.create_future()
        request = self._queue.add(texts, heads, result)
        self._dispatch()
        try:
            return await result
        except asyncio.CancelledError:
            self._queue.drop(request)
            raise

    def _dispatch(self) -> None:
        while self._queue and self._in_flight < self._config.max_concurrent_batches:
            idle = self._in_flight == 0
            if not (idle or self._queue.full() or self._config.max_wait_s == 0):
                self._arm_timer()
                return
            self._start(self._queue.take())

    def _arm_timer(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._config.max_wait_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        while self._queue and self._in_flight < self._config.max_concurrent_batches:
            self._start(self._queue.take())

    def _start(self, batch: list[PendingRequest]) -> None:
        live = [request for request in batch if not request.result.done()]
        if not live:
            return
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._execute(live))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _execute(self, batch: list[PendingRequest]) -> None:
        texts = [text for request in batch for text in request.texts]
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(
                self._pool._executor, self._pool.run_sync, self._key, texts, union_heads(batch)
            )
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
            self._in_flight -= 1
            if len(batch) > 1:
                log.debug(
                    "encoder_batch", path=self._key.path, requests=len(batch), texts=len(texts)
                )
            self._dispatch()
