"""What one request cost and how it went: the reference router's ``llm_*`` metrics, the
``llm_usage`` log line, and the spans built from the same values.

The service calls ``record_*`` at each outcome; ``RequestRecord`` carries what is known about a
forwarded request until its response ends (or the stream does). Label values are configured model
names (``Generation.model_label``), fixed reasons from ``metrics.ERROR_REASONS``, or names from the
config and its models; never a client's string.
"""

from __future__ import annotations

import functools
import re
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from vsr.extproc.response import ResponseReader, ResponseStats
from vsr.observability import metrics
from vsr.observability.logging import INFO, enabled_for
from vsr.observability.tracing import RequestTrace
from vsr.routing.request import ChatRequest
from vsr.routing.result import RoutingResult
from vsr.runtime import Generation

log = structlog.get_logger(__name__)

# RequestError.reason -> llm_request_errors_total{reason}
_REJECT_REASONS = {
    "invalid_json": "parse_error",
    "invalid_request": "parse_error",
    "timeout": "timeout",
    "overloaded": "overloaded",
    "body_too_large": "body_too_large",
    "model_not_found": "model_not_found",
    "screening_unavailable": "screening_unavailable",
    "classifier_failure": "classification_failed",
    "internal_error": "internal_error",
}
_BLOCK_REASONS = {"jailbreak": "jailbreak_block", "pii": "pii_policy_denied"}
# Categories and PII types come from models' label sets; this keeps a strange label bounded too.
_LABEL = re.compile(r"^[A-Za-z0-9_.:/ -]{1,64}$")


def _bounded(value: str | None, empty: str = "none") -> str:
    if not value:
        return empty
    return value if _LABEL.match(value) else "other"


@dataclass(frozen=True, slots=True)
class _ModelSeries:
    """One model label's series of the per-request metrics, labelled once (``_for_model``)."""

    requests: Any
    completion_latency: Any
    ttft: Any
    tpot: Any
    prompt_tokens: Any
    completion_tokens: Any
    tokens: Any
    prompt_tokens_per_request: Any
    completion_tokens_per_request: Any


# Model labels are configured names or ``unknown``: a bounded set.
_MODEL_SERIES: dict[str, _ModelSeries] = {}


def _for_model(model: str) -> _ModelSeries:
    found = _MODEL_SERIES.get(model)
    if found is None:
        found = _MODEL_SERIES[model] = _ModelSeries(
            *(
                metrics.child(metric, model)
                for metric in (
                    metrics.MODEL_REQUESTS,
                    metrics.COMPLETION_LATENCY,
                    metrics.TTFT,
                    metrics.TPOT,
                    metrics.PROMPT_TOKENS,
                    metrics.COMPLETION_TOKENS,
                    metrics.TOKENS,
                    metrics.PROMPT_TOKENS_PER_REQUEST,
                    metrics.COMPLETION_TOKENS_PER_REQUEST,
                )
            )
        )
    return found


@dataclass
class RequestRecord:
    """A request vsr let through, from routing until its response ends."""

    generation: Generation
    result: RoutingResult
    path: str  # upstream | fail_open
    stream: bool
    started: float  # perf_counter() when the request reached vsr
    forwarded_at: float = field(default_factory=time.perf_counter)
    strip_usage: bool = False  # vsr asked for usage the client did not
    status: int | None = None
    reader: ResponseReader | None = None
    finished: bool = False

    @property
    def model_label(self) -> str:
        return self.generation.model_label(self.result.model)


def record_routed(
    generation: Generation, chat: ChatRequest, result: RoutingResult, *, fail_open: bool
) -> None:
    """Count a forwarded request: ``vsr_requests_total``, ``vsr_decisions_total`` and the
    reference's routing series. What to update follows from a few fields of the result, so the
    updates are worked out once per outcome and generation (``_routed_updates``)."""
    model = generation.model_label(result.model)
    reasoning = result.reasoning
    key = (
        model,
        result.decision,
        result.category,
        result.auto,
        result.requested_model if result.auto else None,  # an auto name (bounded) or None
        reasoning.enabled,
        reasoning.effort,
        fail_open,
        tuple(signal.type for signal in result.signals),
    )
    outcomes = _ROUTED.get(id(generation))
    if outcomes is None:
        outcomes = _ROUTED[id(generation)] = {}
        # Entries go with their generation: an id is reused only after its object is gone.
        weakref.finalize(generation, _ROUTED.pop, id(generation), None)
    updates = outcomes.get(key)
    if updates is None:
        updates = _routed_updates(generation, result, model, fail_open)
        if len(outcomes) < _MAX_OUTCOMES:
            outcomes[key] = updates
    for inc in updates[0]:
        inc(1)
    elapsed = result.elapsed_s
    for observe in updates[1]:
        observe(elapsed)


# Per generation (by id), per routing outcome: the counters to add one to and the latency
# histograms to observe, as bound methods of their series.
_Updates = tuple[tuple[Callable[[float], None], ...], tuple[Callable[[float], None], ...]]
_ROUTED: dict[int, dict[tuple[Any, ...], _Updates]] = {}
_MAX_OUTCOMES = 4096  # outcomes are products of config names; this bounds a strange config too


def _routed_updates(
    generation: Generation, result: RoutingResult, model: str, fail_open: bool
) -> _Updates:
    kind = "fail_open" if fail_open else ("auto" if result.auto else "explicit")
    counters = [
        metrics.child(metrics.REQUESTS, kind).inc,
        metrics.child(metrics.DECISIONS, result.decision or "none", model).inc,
        _for_model(model).requests.inc,
        functools.partial(metrics.CATEGORY_CLASSIFICATIONS.inc, _bounded(result.category)),
    ]
    if result.auto:
        source = _requested_label(generation, result.requested_model)
        if source != model:
            counters.append(metrics.child(metrics.ROUTING_MODIFICATIONS, source, model).inc)
        counters.append(
            metrics.child(
                metrics.REASONING_DECISIONS,
                _bounded(result.category),
                model,
                "true" if result.reasoning.enabled else "false",
                _bounded(result.reasoning.effort if result.reasoning.enabled else None),
            ).inc
        )
    if fail_open:
        code = "fail_open"
    elif not result.auto:
        code = "explicit_model"
    else:
        code = "decision_match" if result.decision else "default_model"
    counters.append(metrics.child(metrics.ROUTING_REASON_CODES, code, model).inc)
    return tuple(counters), tuple(_latency_series(result))


def _latency_series(result: RoutingResult) -> list[Callable[[float], None]]:
    """The routing-latency histograms a routed or blocked request observes."""
    families = sorted({signal.type for signal in result.signals})
    return [metrics.child(metrics.ROUTING_LATENCY).observe] + [
        metrics.child(metrics.CLASSIFIER_LATENCY, _bounded(family)).observe for family in families
    ]


def record_blocked(generation: Generation, chat: ChatRequest, result: RoutingResult) -> None:
    assert result.blocked is not None
    model = generation.model_label(result.model)
    _record_classification(result)
    metrics.child(metrics.REQUEST_ERRORS, model, _BLOCK_REASONS[result.blocked.kind]).inc()
    metrics.child(metrics.ROUTING_REASON_CODES, "blocked", model).inc()
    for pii_type in result.blocked.entity_types:
        metrics.child(metrics.PII_VIOLATIONS, model, _bounded(pii_type)).inc()


def record_rejected(generation: Generation, model: str | None, reason: str) -> None:
    label = generation.model_label(model)
    metrics.REQUEST_ERRORS.labels(
        model=label, reason=metrics.error_reason(_REJECT_REASONS.get(reason, reason))
    ).inc()


def _record_classification(result: RoutingResult) -> None:
    metrics.CATEGORY_CLASSIFICATIONS.inc(_bounded(result.category))
    for observe in _latency_series(result):
        observe(result.elapsed_s)


def upstream_error_reason(status: int) -> str | None:
    if status in (408, 504):
        return "timeout"
    if 400 <= status < 500:
        return "upstream_4xx"
    if status >= 500:
        return "upstream_5xx"
    return None


def cost_of(generation: Generation, model: str, prompt: int, completion: int) -> tuple[float, str]:
    """(cost, currency) from the model's ``pricing`` (per million tokens); 0 without pricing."""
    pricing = generation.pricing.get(model)
    if pricing is None:
        return 0.0, "USD"
    cost = (prompt * pricing.prompt_per_1m + completion * pricing.completion_per_1m) / 1_000_000
    return cost, pricing.currency


def record_completion(
    record: RequestRecord,
    trace: RequestTrace | None,
    request_id: str,
    *,
    error: str | None = None,
) -> None:
    """The response ended (``error`` None), or the stream ended before it did (``error`` is a
    reason from ``metrics.ERROR_REASONS``): count it once, log ``llm_usage``, end the trace."""
    if record.finished:
        return
    record.finished = True
    now = time.perf_counter()
    model = record.model_label
    stats = record.reader.stats if record.reader is not None else ResponseStats()
    status_error = upstream_error_reason(record.status) if record.status is not None else None
    reason = error or status_error
    if stats.parse_failed and reason is None:
        reason = "response_parse_error"
    if reason is not None:
        metrics.child(metrics.REQUEST_ERRORS, model, metrics.error_reason(reason)).inc()
    if stats.usage_stripped:
        metrics.child(metrics.RESPONSE_EVENTS, "usage_stripped").inc()
    if stats.non_json_events:
        metrics.child(metrics.RESPONSE_EVENTS, "non_json_event").inc(stats.non_json_events)
    if stats.events:
        metrics.child(metrics.RESPONSE_EVENTS, "sse_event").inc(stats.events)
    if stats.broken:
        metrics.child(metrics.RESPONSE_EVENTS, "body_too_large_to_parse").inc()
    ok = reason is None
    latency = now - record.started
    ttft = stats.first_chunk_at - record.started if stats.first_chunk_at is not None else None
    prompt = completion = None
    cost, currency = 0.0, "USD"
    if ok:
        series = _for_model(model)
        series.completion_latency.observe(latency)
        if ttft is not None:
            series.ttft.observe(ttft)
        usage = stats.usage
        if usage is None and record.reader is not None:
            metrics.child(metrics.RESPONSE_EVENTS, "usage_missing").inc()
        if usage is not None:
            prompt, completion = usage.prompt_tokens, usage.completion_tokens
            series.prompt_tokens.inc(prompt)
            series.completion_tokens.inc(completion)
            series.tokens.inc(usage.total_tokens)
            series.prompt_tokens_per_request.observe(prompt)
            series.completion_tokens_per_request.observe(completion)
            cost, currency = cost_of(record.generation, record.result.model, prompt, completion)
            if model != metrics.UNKNOWN or cost:
                metrics.child(metrics.COST, model, _bounded(currency, "USD")).inc(cost)
            if (
                record.stream
                and completion > 1
                and stats.first_chunk_at is not None
                and stats.last_chunk_at is not None
            ):
                tpot = (stats.last_chunk_at - stats.first_chunk_at) / (completion - 1)
                series.tpot.observe(tpot)
    result = record.result
    trace_id = trace.trace_id if trace is not None else None
    # The fields are built only when the line is written (not at --log-level warning).
    if enabled_for(log, INFO):
        log.info(
            "llm_usage",
            model=result.served_model,
            decision=result.decision,
            category=result.category,
            response_path=record.path,
            status=record.status,
            stream=record.stream,
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=None if prompt is None or completion is None else prompt + completion,
            cost=round(cost, 9),
            currency=currency,
            ttft_ms=None if ttft is None else round(ttft * 1000, 3),
            latency_ms=round(latency * 1000, 3),
            routing_ms=round(result.elapsed_s * 1000, 3),
            error=reason,
            request_id=request_id,
            trace_id=trace_id,
        )
    if trace is not None:
        trace.end(
            {
                "http.response.status_code": record.status,
                "gen_ai.usage.input_tokens": prompt,
                "gen_ai.usage.output_tokens": completion,
                "vsr.cost": cost if prompt is not None else None,
                "vsr.ttft_ms": None if ttft is None else round(ttft * 1000, 3),
                "vsr.response_path": record.path,
                "vsr.finish_reason": stats.finish_reason,
            },
            error=reason,
        )


def answered_by_vsr(
    trace: RequestTrace | None,
    request_id: str,
    started: float,
    path: str,
    status: int,
    *,
    model: str | None,
    decision: str | None = None,
    error: str | None = None,
) -> None:
    """A chat request vsr answered itself (blocked, or an error): its ``llm_usage`` line (no
    tokens were used) and the end of its trace."""
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    log.info(
        "llm_usage",
        model=model,
        decision=decision,
        response_path=path,
        status=status,
        prompt_tokens=0,
        completion_tokens=0,
        total_tokens=0,
        cost=0.0,
        latency_ms=latency_ms,
        error=error,
        request_id=request_id,
        trace_id=trace.trace_id if trace is not None else None,
    )
    if trace is not None:
        trace.end(
            {"http.response.status_code": status, "vsr.response_path": path},
            error=error if path == "error" else None,
        )


def _requested_label(generation: Generation, requested: str | None) -> str:
    """The requested model as a label: a configured or auto name, else ``unknown``."""
    if requested is None:
        return "auto"
    return generation.auto_name(requested) or generation.model_label(requested)
