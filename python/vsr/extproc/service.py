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
from typing import Any

import grpc
import structlog
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc

from vsr.cache import cache_control
from vsr.cache.keys import HEADER_CACHE_CONTROL, HEADER_VSR_CACHE_CONTROL
from vsr.extproc import caching, mutations, spans, upstream
from vsr.extproc.answers import StreamState, VsrAnswers
from vsr.extproc.headers import header_dict, untrusted_request_headers
from vsr.extproc.request import Endpoint, classify_endpoint
from vsr.observability import metrics, tracing
from vsr.observability.logging import bind_request_id
from vsr.routing.request import ChatRequest, RequestError, body_too_large, parse_chat_request
from vsr.routing.result import RoutingResult
from vsr.runtime import Runtime
from vsr.settings import FailurePolicy
from vsr.wire import (
    HEADER_FAIL_OPEN,
    HEADER_REQUEST_ID,
    HEADER_SELECTED_MODEL,
    HEADER_VSR_DEBUG,
    HEADER_VSR_RESPONSE_PATH,
    model_object,
)

log = structlog.get_logger(__name__)


class ExternalProcessor(VsrAnswers, external_processor_pb2_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    """The ``envoy.service.ext_proc.v3.ExternalProcessor`` service (its own answers, the ones
    that forward nothing, are ``VsrAnswers``)."""

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
            # The auto names match in any case, as in a chat request.
            model_id = generation.auto_name(model_id) or model_id
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
            spans.trace_routing(
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
        # vsr_requests_total and vsr_decisions_total are counted with the rest of the routing
        # series (upstream.begin -> accounting.record_routed); the routing engine logs
        # route_selected itself (with this stream's request_id bound).
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
