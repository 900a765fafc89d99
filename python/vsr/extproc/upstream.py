"""A forwarded request's second half: what goes upstream beside the routing edits, and Envoy's
response phases (headers, body chunks) until the response ends or the stream does.

The service calls these in order: ``begin`` when the request is let through, ``response_headers``
and ``response_body`` per phase, ``stream_ended`` when the gRPC stream closes. Response-side
failures never break a response: they are logged and counted, and the bytes pass through.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import structlog

from vsr.extproc import accounting, mutations
from vsr.extproc.accounting import RequestRecord
from vsr.extproc.headers import header_values
from vsr.extproc.response import JsonReader, ResponseReader, SseReader, reader_for, request_usage
from vsr.observability import metrics
from vsr.observability.tracing import RequestTrace
from vsr.routing.request import ChatRequest
from vsr.routing.result import RoutingResult
from vsr.runtime import Generation
from vsr.wire import (
    HEADER_CONTENT_LENGTH,
    HEADER_CONTENT_TYPE,
    HEADER_VSR_CONFIDENCE,
    HEADER_VSR_MATCHED_DOMAINS,
    HEADER_VSR_MATCHED_EMBEDDINGS,
    HEADER_VSR_MATCHED_KEYWORDS,
    HEADER_VSR_RESPONSE_PATH,
)

log = structlog.get_logger(__name__)

# Signal families whose fired names the debug headers report, in header order.
_DEBUG_FAMILIES = {
    "keyword": HEADER_VSR_MATCHED_KEYWORDS,
    "domain": HEADER_VSR_MATCHED_DOMAINS,
    "embedding": HEADER_VSR_MATCHED_EMBEDDINGS,
}


# The response headers this module reads.
_READ_RESPONSE_HEADERS = frozenset(
    {":status", "content-encoding", HEADER_CONTENT_TYPE, HEADER_CONTENT_LENGTH}
)


def debug_headers_wanted(generation: Generation, asked: bool) -> bool:
    """The debug set is sent when enabled, and (if the config says so) only when asked for."""
    config = generation.observability.debug_headers
    return config.enabled and (asked or not config.require_request_header)


def debug_headers(result: RoutingResult) -> dict[str, str]:
    """``x-vsr-selected-confidence`` and the names of the keyword, domain and embedding signals
    that fired (config names, never request text)."""
    headers = {}
    if result.confidence is not None:
        headers[HEADER_VSR_CONFIDENCE] = f"{result.confidence:.3f}"
    matched: dict[str, list[str]] = {}
    for signal in result.signals:  # one pass; names in signal order, as matched_signal_names
        if signal.matched and signal.type in _DEBUG_FAMILIES:
            matched.setdefault(signal.type, []).append(signal.name)
    for family, name in _DEBUG_FAMILIES.items():
        if family in matched:
            headers[name] = ",".join(matched[family])
    return headers


def begin(
    generation: Generation,
    chat: ChatRequest,
    result: RoutingResult,
    *,
    path: str,
    started: float,
    trace: RequestTrace | None,
) -> tuple[RequestRecord, dict[str, str], bool]:
    """Start accounting for a forwarded request. Returns its record, the request headers to add
    (``traceparent``) and whether the body changed here (``stream_options.include_usage``, which
    a streaming model needs to report tokens; the client then does not see that chunk)."""
    usage = generation.observability.usage
    strip_usage = (
        chat.stream
        and not chat.include_usage
        and usage.read_responses
        and usage.inject_include_usage
        and request_usage(result.body)
    )
    record = RequestRecord(generation, result, path, chat.stream, started, strip_usage=strip_usage)
    accounting.record_routed(generation, chat, result, fail_open=path == "fail_open")
    headers: dict[str, str] = {}
    if trace is not None:
        headers = trace.start_upstream(
            time.perf_counter(), {"routing.selected_model": result.served_model}
        )
    return record, headers, strip_usage


def response_headers(
    record: RequestRecord | None,
    trace: RequestTrace | None,
    request_id: str,
    message: Any,
    vsr_headers: Mapping[str, str],
) -> Any:
    """Report vsr's headers on a 2xx response, and ask for the body when there is one to read
    (``mode_override``: see ``_body_mode``)."""
    headers = header_values(message.headers, _READ_RESPONSE_HEADERS)
    status = headers.get(":status", "")
    mode = None
    remove: tuple[str, ...] = ()
    if record is not None:
        try:
            record.status = int(status) if status.isdigit() else None
            strip = record.strip_usage and status.startswith("2")
            # A compressed body cannot be read (or cut) on the way: it passes untouched.
            encoded = headers.get("content-encoding", "identity").strip().lower() != "identity"
            usage = record.generation.observability.usage
            reading = usage.read_responses and not encoded
            content_type = headers.get(HEADER_CONTENT_TYPE, "") if reading else ""
            record.reader = reader_for(content_type, strip_usage=strip)
            if message.end_of_stream or record.reader is None:
                accounting.record_completion(record, trace, request_id)
            else:
                mode = _body_mode(record.reader, headers, usage.max_buffered_json_bytes)
                if strip and isinstance(record.reader, SseReader):
                    remove = (HEADER_CONTENT_LENGTH,)  # the usage chunk is cut out of the body
        except Exception:
            _failed(record)
            mode, remove = None, ()
    # Routing headers go on 2xx answers; every answer says which path it took.
    set_headers = dict(vsr_headers)
    if not status.startswith("2"):
        set_headers = {k: v for k, v in vsr_headers.items() if k == HEADER_VSR_RESPONSE_PATH}
    return mutations.response_headers_response(set_headers, remove, mode_override=mode)


def _body_mode(reader: ResponseReader, headers: Mapping[str, str], max_buffered: int) -> Any:
    """BUFFERED for a JSON body whose ``content-length`` is at most ``max_buffered``: Envoy
    sends it as one message. STREAMED, a body that arrives after this answer costs a data chunk
    and an empty end chunk (one that came while Envoy waited for the answer goes whole in either
    mode). STREAMED for the rest: SSE, whose events must pass at once, and a body of unknown or
    larger length, which Envoy would answer with a 500 past its buffer limit. A JSON reader never
    changes the body, so only the message's timing differs (its TTFT is the whole body's)."""
    if max_buffered and isinstance(reader, JsonReader):
        length = headers.get(HEADER_CONTENT_LENGTH, "").strip()
        if length.isascii() and length.isdigit() and int(length) <= max_buffered:
            return mutations.buffered_response_body_mode()
    return mutations.streamed_response_body_mode()


def response_body(
    record: RequestRecord | None, trace: RequestTrace | None, request_id: str, message: Any
) -> Any:
    """Answer each body message at once: unchanged, or without the usage chunk vsr asked for."""
    if record is None or record.reader is None or record.finished:
        return mutations.response_body_response()
    replaced = None
    try:
        replaced = record.reader.feed(message.body, message.end_of_stream)
        if message.end_of_stream:
            accounting.record_completion(record, trace, request_id)
    except Exception:
        _failed(record)
    return mutations.response_body_response(replaced)


def stream_ended(
    record: RequestRecord | None, trace: RequestTrace | None, request_id: str, reason: str
) -> None:
    """The gRPC stream closed: a forwarded request whose response never ended is counted with
    ``reason`` (cancellation, upstream_aborted)."""
    try:
        if record is not None:
            accounting.record_completion(record, trace, request_id, error=reason)
        elif trace is not None:
            trace.end({}, error=reason)
    except Exception:
        log.exception("accounting_failed")


def _failed(record: RequestRecord) -> None:
    log.exception("response_processing_failed")
    metrics.child(metrics.REQUEST_ERRORS, record.model_label, "response_processing_error").inc()
    record.reader = None
