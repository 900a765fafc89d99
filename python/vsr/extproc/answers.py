"""What one stream has learnt, and the answers vsr gives itself instead of forwarding: a
refused or failed request (an OpenAI error), a block (a content_filter completion), and the
failure policy when signals could not be read."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from vsr.cache import AnswerCollector, CacheControl, CacheTicket
from vsr.extproc import accounting, mutations, upstream
from vsr.extproc.accounting import RequestRecord
from vsr.observability import metrics
from vsr.observability.tracing import RequestTrace
from vsr.routing.request import ChatRequest, RequestError
from vsr.routing.result import RoutingResult
from vsr.runtime import Generation
from vsr.settings import FailurePolicy
from vsr.wire import HEADER_RETRY_AFTER, HEADER_VSR_RESPONSE_PATH, REFUSAL_MESSAGES

# The ext_proc service's logger: these lines were always logged under its name.
log = structlog.get_logger("vsr.extproc.service")

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


class VsrAnswers:
    """The answers of ``ExternalProcessor`` that end a stream without forwarding (a mixin: the
    service supplies ``failure_policy`` and ``forward``)."""

    failure_policy: FailurePolicy

    def forward(
        self,
        state: StreamState,
        chat: ChatRequest,
        result: RoutingResult,
        *,
        fail_open: bool = False,
    ) -> Any:
        raise NotImplementedError

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
