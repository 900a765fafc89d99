"""The ext_proc stream: one small state machine per HTTP request, sequencing Envoy's phases.

Envoy opens one bidirectional stream per HTTP request and sends the phases it is configured for:
request headers, request body (BUFFERED: one message; STREAMED: chunks, assembled here before
routing), response headers, and possibly response body and trailers. This module only sequences
them; what goes on the wire is built by ``mutations``, and what a request means by the router.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc

from vsr.cache import AnswerCollector, CacheControl, CacheTicket, cache_control
from vsr.cache.keys import HEADER_CACHE_CONTROL, HEADER_VSR_CACHE_CONTROL
from vsr.extproc import accounting, caching, mutations, upstream
from vsr.extproc.accounting import RequestRecord
from vsr.extproc.headers import header_dict, untrusted_request_headers
from vsr.extproc.request import Endpoint, classify_endpoint
from vsr.observability import metrics, tracing
from vsr.observability.logging import bind_request_id
from vsr.observability.tracing import RequestTrace
from vsr.routing.request import ChatRequest, RequestError, body_too_large, parse_chat_request
from vsr.routing.result import RoutingResult
from vsr.runtime import Generation, Runtime
from vsr.settings import FailurePolicy
from vsr.wire import (
    HEADER_FAIL_OPEN,
    HEADER_REQUEST_ID,
    HEADER_RETRY_AFTER,
    HEADER_SELECTED_MODEL,
    HEADER_VSR_DEBUG,
    HEADER_VSR_RESPONSE_PATH,
    REFUSAL_MESSAGES,
    model_object,
)

log = structlog.get_logger(__name__)

# Seconds a client is asked to wait before retrying a request vsr could not screen.
RETRY_AFTER_S = 1


@dataclass(slots=True)
class StreamState:
    """What one stream has learnt so far."""

    generation: Generation
    request_id: str = ""
    request_headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    held_chunks: bool = False
    response_headers: dict[str, str] = field(default_factory=dict)
    done: bool = False  # an immediate response was sent: Envoy ends the stream
    started: float = field(default_factory=time.perf_counter)
    debug: bool = False  # the client sent x-vsr-debug: true
    chat: bool = False  # a chat-completions request (not /v1/models)
    model: str | None = None  # the model the client named (for error labels)
    record: RequestRecord | None = None  # set once the request is forwarded
    trace: RequestTrace | None = None
    cache_control: CacheControl = field(default_factory=CacheControl)
    cache_ticket: CacheTicket | None = None  # the semantic cache may answer or learn from it
    cache_reader: AnswerCollector | None = None  # reads the answer to cache
    stream: bool = False  # the client asked for SSE


class ExternalProcessor(external_processor_pb2_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    """The ``envoy.service.ext_proc.v3.ExternalProcessor`` service."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        max_body_bytes: int,
        failure_policy: FailurePolicy,
        request_timeout_s: float = 8.0,
    ) -> None:
        self.runtime = runtime
        self.max_body_bytes = max_body_bytes
        self.failure_policy = failure_policy
        self.request_timeout_s = request_timeout_s

    async def Process(
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        if not self.runtime.ready:
            # Envoy treats this like an unreachable vsr (failure_mode_allow decides what follows).
            await context.abort(grpc.StatusCode.UNAVAILABLE, "vsr is still loading its models")
        state = StreamState(generation=self.runtime.current)
        metrics.ACTIVE_STREAMS.inc()
        try:
            async for message in request_iterator:
                response = await self.handle(state, message)
                if response is not None:
                    yield response
                if state.done:
                    return
        except asyncio.CancelledError:
            # Envoy resets a stream when its client goes away or a deadline passes: not an error.
            log.debug("stream_cancelled")
            upstream.stream_ended(state.record, state.trace, state.request_id, "cancellation")
            raise
        finally:
            upstream.stream_ended(state.record, state.trace, state.request_id, "upstream_aborted")
            metrics.ACTIVE_STREAMS.dec()

    async def handle(self, state: StreamState, message: Any) -> Any | None:
        """The answer to one ProcessingRequest (None for phases that expect no answer).

        Nothing a client sends may end the stream with an empty 500: a refused request is an
        OpenAI error, and any other exception is logged with the request id, counted and answered
        as a 500 ``internal_error`` (never by forwarding the request unscreened)."""
        phase = message.WhichOneof("request")
        try:
            if phase == "request_headers":
                return self.on_request_headers(state, message.request_headers)
            if phase == "request_body":
                return await self.on_request_body(state, message.request_body)
            if phase == "response_headers":
                return self.on_response_headers(state, message.response_headers)
            if phase == "response_body":
                return self.on_response_body(state, message.response_body)
            if phase in ("request_trailers", "response_trailers"):
                return mutations.trailers_response(phase)
        except RequestError as error:
            return self.reject(state, error)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            return self.internal_error(state, phase, error)
        log.warning("unexpected_phase", phase=phase)
        return None

    def reject(self, state: StreamState, error: RequestError) -> Any:
        metrics.child(metrics.REQUESTS, "rejected").inc()
        metrics.child(metrics.ERRORS, error.reason).inc()
        accounting.record_rejected(state.generation, state.model, error.reason)
        if state.chat:
            accounting.answered_by_vsr(
                state.trace, state.request_id, state.started, "error", error.status,
                model=state.model, error=error.reason,
            )  # fmt: skip
        log.info("request_rejected", status=error.status, reason=error.reason)
        state.done = True
        headers = {HEADER_VSR_RESPONSE_PATH: "error"}
        if error.status in (429, 503):
            headers[HEADER_RETRY_AFTER] = str(RETRY_AFTER_S)
        return mutations.openai_error(error.status, error.message, error.code, headers=headers)

    def internal_error(self, state: StreamState, phase: str | None, error: Exception) -> Any:
        metrics.child(metrics.ERRORS, "internal_error").inc()
        accounting.record_rejected(state.generation, state.model, "internal_error")
        log.exception("internal_error", phase=phase, error_type=type(error).__name__)
        if phase not in ("request_headers", "request_body"):
            # The request went upstream already: let the response through untouched.
            if phase == "response_headers":
                return mutations.response_headers_response()
            if phase == "response_body":
                return mutations.response_body_response()
            return mutations.trailers_response(phase) if phase else None
        state.done = True
        if state.chat:
            accounting.answered_by_vsr(
                state.trace, state.request_id, state.started, "error", 500,
                model=state.model, error="internal_error",
            )  # fmt: skip
        return mutations.openai_error(
            500,
            f"vsr failed to process this request (request id {state.request_id})",
            "internal_error",
            headers={HEADER_VSR_RESPONSE_PATH: "error"},
        )

    def on_request_headers(self, state: StreamState, headers_message: Any) -> Any:
        headers = header_dict(headers_message.headers)
        state.request_id = headers.get(HEADER_REQUEST_ID) or uuid.uuid4().hex
        bind_request_id(state.request_id)
        state.debug = headers.get(HEADER_VSR_DEBUG, "").strip().lower() == "true"
        target = classify_endpoint(headers.get(":method", ""), headers.get(":path", ""))
        state.chat = target.endpoint is Endpoint.CHAT_COMPLETIONS
        if state.chat:
            state.trace = tracing.start_request(
                headers,
                {
                    "request.id": state.request_id,
                    "http.request.method": headers.get(":method"),
                    "url.path": headers.get(":path", "")[:256],
                },
            )
        # Read before x-vsr-* headers are dropped: a client may only ask for less caching.
        if HEADER_CACHE_CONTROL in headers or HEADER_VSR_CACHE_CONTROL in headers:
            state.cache_control = cache_control(headers)
        untrusted = untrusted_request_headers(headers)
        if untrusted:
            headers = {k: v for k, v in headers.items() if k not in untrusted}
        state.request_headers = headers
        generation = state.generation
        if target.endpoint is Endpoint.MODELS:
            metrics.child(metrics.REQUESTS, "models").inc()
            state.done = True
            return mutations.models_list_response(generation.listed_models(), generation.created)
        if target.endpoint is Endpoint.MODEL:
            metrics.child(metrics.REQUESTS, "models").inc()
            model_id = target.model_id or ""
            if model_id not in generation.listed_models():
                raise RequestError(
                    f"The model {model_id[:256]!r} does not exist",
                    status=404,
                    code="model_not_found",
                    reason="model_not_found",
                    param="model",
                )
            state.done = True
            return mutations.immediate_response(
                200, mutations.json_bytes(model_object(model_id, generation.created))
            )
        if headers_message.end_of_stream:
            raise RequestError(
                "POST /v1/chat/completions needs a JSON body",
                code="invalid_json",
                reason="invalid_json",
            )
        return mutations.request_headers_response(untrusted)

    async def on_request_body(self, state: StreamState, body_message: Any) -> Any:
        state.body += body_message.body
        if len(state.body) > self.max_body_bytes:
            raise body_too_large(len(state.body), self.max_body_bytes)
        if not body_message.end_of_stream:
            # STREAMED mode: hold the chunk back until the whole body is here.
            state.held_chunks = True
            return mutations.held_chunk_response()
        chat = parse_chat_request(bytes(state.body), self.max_body_bytes)
        state.model = chat.model
        encoder_runs = tracing.collect_encoder_runs() if state.trace is not None else None
        started = time.perf_counter()
        try:
            router = state.generation.router
            # A policy that runs no model routes without waiting: no coroutine, no deadline.
            inline = getattr(router, "route_inline", None)
            result = inline(chat, state.request_headers) if inline is not None else None
            if result is None:
                result = await self.route_before_deadline(router, chat, state.request_headers)
        finally:
            metrics.child(metrics.CLASSIFICATION_SECONDS).observe(time.perf_counter() - started)
        if state.trace is not None:
            accounting.trace_routing(
                state.trace, result, started, time.perf_counter(), encoder_runs or ()
            )
        if result.blocked is not None:
            if result.blocked.unavailable:
                return self.screening_unavailable(state, result)
            return self.refuse(state, chat, result)
        if result.fail_open:
            return self.on_failed_signals(state, chat, result)
        state.stream = chat.stream
        state.cache_ticket = caching.ticket(
            state.generation, result, state.request_headers, state.cache_control
        )
        if state.cache_ticket is not None:
            hit = await caching.lookup(
                state.generation, state.cache_ticket, chat, result, state.cache_control,
                trace=state.trace, request_id=state.request_id, started=state.started,
            )  # fmt: skip
            if hit is not None:
                state.done = True
                return hit
        return self.forward(state, chat, result)

    async def route_before_deadline(
        self, router: Any, chat: ChatRequest, headers: dict[str, str]
    ) -> RoutingResult:
        """Past the deadline the routing is cancelled, which drops its queued encoder work; the
        client gets vsr's 503 before Envoy's message timeout turns it into a 504. (A timeout
        scope, not wait_for: no task per request.)"""
        try:
            async with asyncio.timeout(self.request_timeout_s):
                result: RoutingResult = await router.aroute(chat, headers)
                return result
        except TimeoutError:
            raise RequestError(
                f"vsr could not classify this request within {self.request_timeout_s:g} s; "
                "try again later",
                status=503,
                code="classification_timeout",
                reason="timeout",
            ) from None

    def forward(
        self,
        state: StreamState,
        chat: ChatRequest,
        result: RoutingResult,
        *,
        fail_open: bool = False,
    ) -> Any:
        kind = "fail_open" if fail_open else ("auto" if result.auto else "explicit")
        metrics.child(metrics.REQUESTS, kind).inc()
        metrics.child(
            metrics.DECISIONS, result.decision or "none", state.generation.model_label(result.model)
        ).inc()
        # The routing engine logs route_selected itself (with this stream's request_id bound).
        state.response_headers = result.response_headers()
        state.response_headers[HEADER_VSR_RESPONSE_PATH] = "fail_open" if fail_open else "upstream"
        set_headers = dict(result.headers.set)
        set_headers.setdefault(HEADER_SELECTED_MODEL, result.served_model)
        if fail_open:
            state.response_headers[HEADER_FAIL_OPEN] = "true"
            set_headers[HEADER_FAIL_OPEN] = "true"
        if upstream.debug_headers_wanted(state.generation, state.debug):
            state.response_headers.update(upstream.debug_headers(result))
        state.record, trace_headers, usage_asked = upstream.begin(
            state.generation,
            chat,
            result,
            path=state.response_headers[HEADER_VSR_RESPONSE_PATH],
            started=state.started,
            trace=state.trace,
        )
        set_headers.update(trace_headers)
        # A held (STREAMED) body was cleared chunk by chunk, so the whole body goes in the last one.
        send_body = result.body_changed or state.held_chunks or usage_asked
        return mutations.request_body_response(
            body=result.body_bytes() if send_body else None,
            set_headers=set_headers,
            add_headers=result.headers.add,
            remove_headers=result.headers.remove,
            clear_route_cache=True,
        )

    def refuse(self, state: StreamState, chat: ChatRequest, result: RoutingResult) -> Any:
        assert result.blocked is not None
        kind = result.blocked.kind
        metrics.child(metrics.REQUESTS, "blocked").inc()
        metrics.child(metrics.BLOCKS, kind).inc()
        log.info(
            "request_blocked",
            reason=kind,
            signal=result.blocked.signal,
            score=round(result.blocked.score, 4),
        )
        state.done = True
        accounting.record_blocked(state.generation, chat, result)
        accounting.answered_by_vsr(
            state.trace, state.request_id, state.started, "blocked", 200,
            model=result.served_model, decision=result.decision, error=f"{kind}_block",
        )  # fmt: skip
        model = chat.model or state.generation.default_model
        headers = {**result.response_headers(), HEADER_VSR_RESPONSE_PATH: "blocked"}
        if upstream.debug_headers_wanted(state.generation, state.debug):
            headers.update(upstream.debug_headers(result))
        return mutations.refusal_response(
            model,
            REFUSAL_MESSAGES[kind],
            stream=chat.stream,
            headers=headers,
            include_usage=chat.include_usage,
        )

    def screening_unavailable(self, state: StreamState, result: RoutingResult) -> Any:
        """A screening plugin's model failed and its ``on_error`` is ``block``: nothing is
        forwarded; the client may retry."""
        assert result.blocked is not None
        log.error("screening_unavailable", reason=result.blocked.kind, detail=result.blocked.detail)
        return self.reject(
            state,
            RequestError(
                f"vsr could not screen this request ({result.blocked.kind}); try again later",
                status=503,
                code="screening_unavailable",
                reason="screening_unavailable",
            ),
        )

    def on_failed_signals(
        self, state: StreamState, chat: ChatRequest, result: RoutingResult
    ) -> Any:
        """Routing decided without some signals (their models failed; every screening that must
        block did run). ``open`` forwards the decision the rest made; ``closed`` answers 503."""
        failed = [f"{signal.type}:{signal.name}" for signal in result.failed_signals]
        metrics.child(metrics.ERRORS, "classifier_failure").inc()
        log.error("signals_failed", signals=failed, policy=self.failure_policy)
        if self.failure_policy == "closed":
            return self.reject(
                state,
                RequestError(
                    "vsr could not classify this request; try again later",
                    status=503,
                    code="classifier_unavailable",
                    reason="classifier_failure",
                ),
            )
        metrics.FAIL_OPEN.inc()
        return self.forward(state, chat, result, fail_open=True)

    def on_response_headers(self, state: StreamState, headers_message: Any) -> Any:
        if state.cache_ticket is not None and state.record is not None:
            state.cache_reader = caching.collector(
                state.generation, state.cache_ticket, header_dict(headers_message.headers),
                state.stream,
            )  # fmt: skip
        return upstream.response_headers(
            state.record, state.trace, state.request_id, headers_message, state.response_headers
        )

    def on_response_body(self, state: StreamState, body_message: Any) -> Any:
        if state.cache_reader is not None and not caching.feed(
            state.generation, state.cache_ticket, state.cache_reader, body_message.body,
            body_message.end_of_stream,
        ):  # fmt: skip
            state.cache_reader = None
        return upstream.response_body(state.record, state.trace, state.request_id, body_message)
