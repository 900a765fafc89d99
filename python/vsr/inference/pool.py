"""Running encoder heads for requests: one call per encoder, off the event loop.

The unit of work is ``(encoder, texts, heads)``: every head a request needs on one encoder is run
on a single encoder pass. ``run`` is the async door (a small thread pool, so the event loop never
waits on a model; the native core releases the GIL); ``run_sync`` is the same work for callers
without a loop. Dynamic batching (collecting concurrent requests to the same encoder into one
call) belongs in ``run``: callers already hand over exactly what it needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from vsr.inference.registry import EncoderKey, ModelRegistry

log = structlog.get_logger(__name__)


class InferencePool:
    def __init__(self, registry: ModelRegistry, *, max_workers: int = 2) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.registry = registry
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="vsr-infer")

    def run_sync(
        self, key: EncoderKey, texts: Sequence[str], heads: Sequence[str]
    ) -> dict[str, Any]:
        """Per head name: its output for ``texts`` (see ``vsr.models``), from one encoder pass."""
        model = self.registry.get(key)
        # A single-head model answers to whichever names its signals used.
        native = sorted({self.registry.resolve_head(key, head).name for head in heads})
        started = time.perf_counter()
        outputs = model.run(list(texts), native)
        log.debug(
            "encoder_run",
            path=key.path,
            texts=len(texts),
            heads=native,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return {head: outputs[self.registry.resolve_head(key, head).name] for head in heads}

    def count_tokens_sync(self, key: EncoderKey, texts: Sequence[str]) -> list[int]:
        return self.registry.get(key).count_tokens(list(texts))

    async def run(
        self, key: EncoderKey, texts: Sequence[str], heads: Sequence[str]
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run_sync, key, texts, heads)

    async def count_tokens(self, key: EncoderKey, texts: Sequence[str]) -> list[int]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.count_tokens_sync, key, texts)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
