"""The serving state: a ``Generation`` (config + loaded models + router), built, warmed, swapped.

A generation is immutable once built. ``Runtime`` holds the current one; a stream reads
``runtime.current`` once when it starts and keeps that generation to its end, so a reload never
changes the rules in the middle of a request. A reload builds a whole new generation beside the
old one (the model registry reuses loaded weights), warms it, then swaps one reference. A failed
reload logs, counts ``vsr_config_reloads_total{result="failure"}`` and keeps serving the old one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from vsr.cache import SemanticCache, build_store
from vsr.config.observability import ObservabilityConfig
from vsr.config.schema import Pricing, RouterConfig
from vsr.observability import metrics
from vsr.routing.request import ChatRequest
from vsr.routing.result import RoutingResult

log = structlog.get_logger(__name__)


class RequestRouter(Protocol):
    """What the ext_proc service needs from the routing engine (``vsr.Router`` is one).

    ``aroute`` edits ``body`` in place and returns the result; it must not block the event loop
    (model calls run on the inference pool's threads).
    """

    async def aroute(
        self, body: dict[str, Any] | ChatRequest, headers: Mapping[str, str] | None = None
    ) -> RoutingResult: ...


@dataclass(frozen=True)
class Generation:
    """One loaded configuration. ``number`` counts reloads (1 = the configuration at start)."""

    number: int
    router: RequestRouter
    default_model: str
    auto_model_names: tuple[str, ...]
    model_names: tuple[str, ...]
    source: Path | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    close: Callable[[], None] | None = None  # releases the router's threads once retired
    pricing: Mapping[str, Pricing] = field(default_factory=dict)  # by model name
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    cache: SemanticCache | None = None  # when a semantic_cache plugin is enabled anywhere

    def model_label(self, name: str | None) -> str:
        """A metric label for a model: a configured name, else ``unknown`` (labels never carry a
        client's string)."""
        return name if name is not None and name in self.model_names else "unknown"

    def auto_name(self, name: str) -> str | None:
        """The configured spelling of an auto name ``name`` matches in any case ("mom" is MoM),
        or None when it is not one."""
        folded = name.casefold()
        return next((auto for auto in self.auto_model_names if auto.casefold() == folded), None)

    def listed_models(self) -> list[str]:
        """What ``GET /v1/models`` lists: the auto names first, then the configured models."""
        names = list(self.auto_model_names)
        names += [name for name in self.model_names if name not in names]
        return names


GenerationBuilder = Callable[[int], Awaitable[Generation]]


class Runtime:
    """Holds the current generation and rebuilds it on request (see ``reload``)."""

    def __init__(self, build: GenerationBuilder, retire_after_s: float = 60.0) -> None:
        self._build = build
        self._retire_after_s = retire_after_s
        self._current: Generation | None = None
        self._lock = asyncio.Lock()
        self._number = 0

    @property
    def ready(self) -> bool:
        return self._current is not None

    @property
    def current(self) -> Generation:
        if self._current is None:
            raise RuntimeError("no generation loaded yet: call Runtime.start() first")
        return self._current

    async def start(self) -> Generation:
        """Build and warm the first generation; errors propagate (a bad config stops start-up)."""
        async with self._lock:
            self._number += 1
            self._current = await self._build(self._number)
        metrics.READY.set(1)
        log.info("generation_ready", generation=self._current.number)
        return self._current

    async def reload(self) -> bool:
        """Build a new generation and swap it in; on failure keep the old one. True: swapped."""
        async with self._lock:
            number = self._number + 1
            started = time.perf_counter()
            try:
                generation = await self._build(number)
            except Exception as error:  # a reload must never take the server down
                metrics.CONFIG_RELOADS.labels(result="failure").inc()
                log.error("config_reload_failed", generation=number, error=str(error))
                return False
            self._number = number
            previous, self._current = self._current, generation
        if previous is not None and previous.close is not None:
            # Streams that started on the old generation keep using it; release it once they
            # have surely finished (well past Envoy's message timeout).
            asyncio.get_running_loop().call_later(self._retire_after_s, previous.close)
        metrics.CONFIG_RELOADS.labels(result="success").inc()
        log.info(
            "config_reloaded",
            generation=number,
            seconds=round(time.perf_counter() - started, 3),
        )
        return True


WARM_UP_TEXT = "Warm-up request: what is 2 + 2?"


async def warm_up(router: RequestRouter, model_name: str) -> None:
    """Route one request so every model the config uses has run once before real traffic (the
    first forward pass pays for allocation and, on a GPU, kernel compilation)."""
    body = {"model": model_name, "messages": [{"role": "user", "content": WARM_UP_TEXT}]}
    await router.aroute(body, {})


def config_generation_builder(config_path: Path) -> GenerationBuilder:
    """Build generations from the YAML at ``config_path``, reusing loaded weights across reloads."""
    from vsr.config import load_config
    from vsr.router import Router

    previous: list[Router] = []
    caches: list[SemanticCache] = []

    def load(number: int) -> Router:
        config = load_config(config_path)
        registry = previous[-1].registry if previous else None
        return Router.from_config(config, registry=registry)

    async def build(number: int) -> Generation:
        started = time.perf_counter()
        router = await asyncio.to_thread(load, number)
        config = router.config
        try:
            await warm_up(router, config.auto_model_names[0])
        except BaseException:
            router.close()
            raise
        previous[:] = [router]
        cache = _cache_for(config, caches)
        log.info(
            "generation_built",
            generation=number,
            config=str(config_path),
            seconds=round(time.perf_counter() - started, 3),
        )
        return Generation(
            number=number,
            router=router,
            default_model=config.default_model,
            auto_model_names=tuple(config.auto_model_names),
            model_names=tuple(model.name for model in config.models),
            source=config_path,
            close=router.close,
            pricing={m.name: m.pricing for m in config.models if m.pricing is not None},
            observability=config.observability,
            cache=cache,
        )

    return build


RETIRE_CACHE_AFTER_S = 60.0
_closing: set[asyncio.Task[None]] = set()


def _cache_for(config: RouterConfig, caches: list[SemanticCache]) -> SemanticCache | None:
    """The previous generation's cache when its settings are unchanged (entries survive a
    reload), else a new one; None when no plugin enables the cache."""
    from vsr.routing.plugins import cache_wanted

    if not cache_wanted(config):
        return None
    if caches and caches[0].config == config.semantic_cache:
        return caches[0]
    cache = SemanticCache(config.semantic_cache, build_store(config.semantic_cache))
    retired, caches[:] = caches[:], [cache]
    loop = asyncio.get_running_loop()
    for old in retired:
        # Streams of the old generation may still use it for a while (see Runtime.reload).
        loop.call_later(RETIRE_CACHE_AFTER_S, _close_later, loop, old)
    return cache


def _close_later(loop: asyncio.AbstractEventLoop, cache: SemanticCache) -> None:
    task = loop.create_task(cache.close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


def directory_signature(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, mtime_ns, size) of every entry, following symlinks.

    Kubernetes updates a mounted ConfigMap by swapping the ``..data`` symlink, which changes no
    mtime on the file path we were given; resolving every entry sees the new target.
    """
    entries = []
    try:
        children = sorted(directory.iterdir())
    except OSError:
        return ()
    for child in children:
        try:
            stat = child.stat()
        except OSError:  # a dangling link in the middle of a swap
            continue
        entries.append((child.name, stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


async def watch_config_directory(
    directory: Path, on_change: Callable[[], Awaitable[object]], interval_s: float = 1.0
) -> None:
    """Call ``on_change`` after the directory's contents change; runs until cancelled.

    Polling keeps this dependency-free and works the same on every filesystem (inotify does not see
    changes on some network volumes). A change is acted on once it has been stable for one
    interval, so an editor's write-then-rename is read as one edit.
    """
    seen = directory_signature(directory)
    pending: tuple[tuple[str, int, int], ...] | None = None
    while True:
        await asyncio.sleep(interval_s)
        now = directory_signature(directory)
        if now == seen:
            pending = None
            continue
        if pending != now:
            pending = now
            continue
        seen, pending = now, None
        log.info("config_change_detected", directory=str(directory))
        await on_change()
