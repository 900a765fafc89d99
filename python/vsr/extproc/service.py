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

from vsr.extproc import mutations
from vsr.extproc.headers import (
    HEADER_FAIL_OPEN,
    HEADER_REQUEST_ID,
    HEADER_SELECTED_MODEL,
    header_dict,
    untrusted_request_headers,
)
from vsr.extproc.request import (
    ChatRequest,
    Endpoint,
    RequestRejected,
    body_too_large,
    classify_endpoint,
    parse_chat_body,
)
from vsr.observability import metrics
from vsr.observability.logging import bind_request_id
from vsr.routing.request import RequestError
from vsr.routing.result import RoutingResult
from vsr.runtime import Generation, Runtime
from vsr.settings import FailurePolicy

log = structlog.get_logger(__name__)

REFUSAL_MESSAGES = {
    "jailbreak": "This request was blocked by vsr's safety policy (jailbreak detected).",
    "pii": "This request was blocked by vsr's privacy policy (personal information detected).",
}


@dataclass
class StreamState:
    """What one stream has learnt so far."""

    generation: Generation
    request_id: str = ""
    request_headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    held_chunks: bool = False
    response_headers: dict[str, str] = field(default_factory=dict)
    done: bool = False  # an immediate response was sent: Envoy ends the stream


class ExternalProcessor(external_processor_pb2_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    """The ``envoy.service.ext_proc.v3.ExternalProcessor`` service."""

    def __init__(
        self, runtime: Runtime, *, max_body_bytes: int, failure_policy: FailurePolicy
    ) -> None:
        self.runtime = runtime
        self.max_body_bytes = max_body_bytes
        self.failure_policy = failure_policy

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
            raise
        finally:
            metrics.ACTIVE_STREAMS.dec()

    async def handle(self, state: StreamState, message: Any) -> Any | None:
        """The answer to one ProcessingRequest (None for phases that expect no answer)."""
        phase = message.WhichOneof("request")
        try:
            if phase == "request_headers":
                return self.on_request_headers(state, message.request_headers)
            if phase == "request_body":
                return await self.on_request_body(state, message.request_body)
        except RequestRejected as rejected:
            return self.reject(state, rejected)
        if phase == "response_headers":
            return self.on_response_headers(state, message.response_headers)
        if phase == "response_body":
            return mutations.response_body_response()
        if phase in ("request_trailers", "response_trailers"):
            return mutations.trailers_response(phase)
        log.warning("unexpected_phase", phase=phase)
        return None

    def reject(self, state: StreamState, rejected: RequestRejected) -> Any:
        metrics.REQUESTS.labels(kind="rejected").inc()
        metrics.ERRORS.labels(reason=rejected.reason).inc()
        log.info("request_rejected", status=rejected.status, reason=rejected.reason)
        state.done = True
        return mutations.openai_error(
            rejected.status, rejected.message, rejected.error_type, rejected.code
        )

    def on_request_headers(self, state: StreamState, headers_message: Any) -> Any:
        headers = header_dict(headers_message.headers)
        state.request_id = headers.get(HEADER_REQUEST_ID) or uuid.uuid4().hex
        bind_request_id(state.request_id)
        endpoint = classify_endpoint(headers.get(":method", ""), headers.get(":path", ""))
        untrusted = untrusted_request_headers(headers)
        state.request_headers = {k: v for k, v in headers.items() if k not in untrusted}
        if endpoint is Endpoint.MODELS:
            metrics.REQUESTS.labels(kind="models").inc()
            state.done = True
            generation = state.generation
            return mutations.models_list_response(generation.listed_models(), generation.created)
        if headers_message.end_of_stream:
            raise RequestRejected(
                400, "POST /v1/chat/completions needs a JSON body", "invalid_json", "invalid_json"
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
        chat = parse_chat_body(bytes(state.body), self.max_body_bytes)
        started = time.perf_counter()
        try:
            result = await state.generation.router.aroute(chat.body, state.request_headers)
        except RequestError as error:  # the router's own check of the body's shape
            raise RequestRejected(400, str(error), "invalid_request", "invalid_request") from None
        except Exception as error:
            return self.on_routing_failure(state, chat, error)
        finally:
            metrics.CLASSIFICATION_SECONDS.observe(time.perf_counter() - started)
        if result.blocked is not None:
            return self.refuse(state, chat, result)
        return self.forward(state, chat, result)

    def forward(self, state: StreamState, chat: ChatRequest, result: RoutingResult) -> Any:
        metrics.REQUESTS.labels(kind="auto" if result.auto else "explicit").inc()
        metrics.DECISIONS.labels(decision=result.decision or "none", model=result.model).inc()
        # The routing engine logs route_selected itself (with this stream's request_id bound).
        state.response_headers = result.response_headers()
        set_headers = dict(result.headers.set)
        set_headers.setdefault(HEADER_SELECTED_MODEL, result.served_model)
        # A held (STREAMED) body was cleared chunk by chunk, so the whole body goes in the last one.
        send_body = result.body_changed or state.held_chunks
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
        metrics.REQUESTS.labels(kind="blocked").inc()
        metrics.BLOCKS.labels(reason=kind).inc()
        log.info(
            "request_blocked",
            reason=kind,
            signal=result.blocked.signal,
            score=round(result.blocked.score, 4),
        )
        state.done = True
        return mutations.refusal_response(
            chat.model or state.generation.default_model,
            REFUSAL_MESSAGES[kind],
            stream=chat.stream,
            headers=result.response_headers(),
        )

    def on_routing_failure(self, state: StreamState, chat: ChatRequest, error: Exception) -> Any:
        """A classifier (or router) failure: fail open to the default model, or fail closed."""
        metrics.ERRORS.labels(reason="classifier_failure").inc()
        log.error(
            "routing_failed",
            error=str(error),
            error_type=type(error).__name__,
            policy=self.failure_policy,
        )
        if self.failure_policy == "closed":
            return self.reject(
                state,
                RequestRejected(
                    503,
                    "vsr could not classify this request; try again later",
                    "classifier_unavailable",
                    "classifier_failure",
                ),
            )
        metrics.FAIL_OPEN.inc()
        metrics.REQUESTS.labels(kind="fail_open").inc()
        generation = state.generation
        explicit = chat.model is not None and chat.model not in generation.auto_model_names
        model = chat.model if explicit and chat.model else generation.default_model
        body: bytes | None = None
        if not explicit:
            chat.body["model"] = model
            body = mutations.json_bytes(chat.body)
        elif state.held_chunks:
            body = bytes(state.body)
        state.response_headers = {HEADER_FAIL_OPEN: "true"}
        return mutations.request_body_response(
            body=body,
            set_headers={HEADER_SELECTED_MODEL: model, HEADER_FAIL_OPEN: "true"},
            clear_route_cache=True,
        )

    def on_response_headers(self, state: StreamState, headers_message: Any) -> Any:
        status = header_dict(headers_message.headers).get(":status", "")
        if status.startswith("2") and state.response_headers:
            return mutations.response_headers_response(state.response_headers)
        return mutations.response_headers_response()
