"""The semantic cache on the ext_proc stream: the lookup after routing (a hit is an immediate
answer), and the write when a forwarded request's response ends well.

Screening runs first (a blocked request never reaches this), and a request routed without some
signals (fail-open) is neither answered from nor written to the cache. Every step here is
guarded: a failure is logged and counted, and the request goes on as if there were no cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from vsr.cache import AnswerCollector, CacheControl, CachedAnswer, CacheTicket, Skip
from vsr.extproc import accounting, mutations
from vsr.observability import metrics
from vsr.observability.tracing import RequestTrace
from vsr.routing.request import ChatRequest
from vsr.routing.result import RoutingResult
from vsr.runtime import Generation
from vsr.wire import (
    HEADER_CONTENT_TYPE,
    HEADER_VSR_CACHE_HIT,
    HEADER_VSR_CACHE_SIMILARITY,
    HEADER_VSR_RESPONSE_PATH,
    JSON_CONTENT_TYPE,
    SSE_CONTENT_TYPE,
)

log = structlog.get_logger(__name__)


def _skipped(stage: str, reason: str) -> None:
    metrics.CACHE_SKIPPED.labels(stage=stage, reason=reason).inc()


def ticket(
    generation: Generation,
    result: RoutingResult,
    headers: Mapping[str, str],
    control: CacheControl,
) -> CacheTicket | None:
    """The request's cache ticket, or None when the cache must stay out of it."""
    cache = generation.cache
    policy = result.cache
    if cache is None or policy is None or not policy.enabled or result.blocked is not None:
        return None
    if not control.store:
        _skipped("lookup", "no_store")
        return None
    if result.fail_open or result.cache_embedding is None:
        _skipped("lookup", "no_embedding")
        return None
    try:
        found = cache.ticket(
            result.body,
            result.served_model,
            headers,
            result.cache_embedding,
            policy.similarity_threshold,
            policy.ttl_seconds,
        )
    except Exception:
        log.exception("cache_key_failed")
        return None
    if isinstance(found, Skip):
        _skipped("lookup", found.reason)
        return None
    return found


async def lookup(
    generation: Generation,
    ticket: CacheTicket,
    chat: ChatRequest,
    result: RoutingResult,
    control: CacheControl,
    *,
    trace: RequestTrace | None,
    request_id: str,
    started: float,
) -> Any | None:
    """An immediate response when the cache holds an answer, else None."""
    cache = generation.cache
    if cache is None:
        return None
    if not control.lookup:
        _skipped("lookup", "no_cache")
        return None
    found = await cache.lookup(ticket)
    if found is None:
        return None
    try:
        answer = CachedAnswer.from_bytes(found.answer)
        if chat.stream:
            body = answer.stream(include_usage=chat.include_usage)
        else:
            body = answer.completion()
    except Exception:
        log.exception("cache_entry_unreadable")
        return None
    metrics.REQUESTS.labels(kind="cache_hit").inc()
    log.info(
        "cache_hit", decision=result.decision, similarity=round(found.similarity, 4),
        backend=cache.backend,
    )  # fmt: skip
    accounting.answered_by_vsr(
        trace, request_id, started, "cache", 200,
        model=result.served_model, decision=result.decision,
    )  # fmt: skip
    headers = {
        HEADER_VSR_CACHE_HIT: "true",
        HEADER_VSR_CACHE_SIMILARITY: f"{found.similarity:.4f}",
        HEADER_VSR_RESPONSE_PATH: "cache",
    }
    content_type = SSE_CONTENT_TYPE if chat.stream else JSON_CONTENT_TYPE
    return mutations.immediate_response(
        200, body, content_type=content_type, headers=headers, details="vsr_cache_hit"
    )


def collector(
    generation: Generation, ticket: CacheTicket | None, headers: Mapping[str, str], stream: bool
) -> AnswerCollector | None:
    """A collector for a response worth caching: 200, uncompressed JSON or SSE."""
    cache = generation.cache
    if cache is None or ticket is None:
        return None
    status = headers.get(":status", "")
    if status != "200":
        _skipped("store", "status")
        return None
    if headers.get("content-encoding", "identity").strip().lower() != "identity":
        _skipped("store", "encoded")
        return None
    kind = headers.get(HEADER_CONTENT_TYPE, "").split(";", 1)[0].strip().lower()
    if kind != (SSE_CONTENT_TYPE if stream else JSON_CONTENT_TYPE):
        _skipped("store", "content_type")
        return None
    return AnswerCollector(
        stream=stream,
        max_bytes=cache.config.max_entry_bytes,
        tool_calls_allowed=cache.config.tool_calls,
    )


def feed(
    generation: Generation,
    ticket: CacheTicket | None,
    reader: AnswerCollector | None,
    chunk: bytes,
    end_of_stream: bool,
) -> bool:
    """Read one response chunk; at the end write the answer (off the response path). Returns
    whether to keep reading."""
    cache = generation.cache
    if cache is None or ticket is None or reader is None:
        return False
    try:
        reader.feed(chunk, end_of_stream)
        if not end_of_stream:
            return reader.reason is None
        answer = reader.answer()
        if answer is None:
            _skipped("store", reader.reason or "unknown")
            return False
        cache.store_later(ticket, answer.to_bytes(), answer.model)
    except Exception:
        log.exception("cache_fill_failed")
    return False
