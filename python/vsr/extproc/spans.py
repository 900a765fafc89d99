"""The spans of a routed (or blocked) request: classification, encoder passes, security checks,
the decision and what its plugins did, built from the routing result once routing ends."""

from __future__ import annotations

import time
from collections.abc import Sequence

from vsr.observability import tracing
from vsr.observability.tracing import RequestTrace
from vsr.routing.result import RoutingResult


def trace_routing(
    trace: RequestTrace,
    result: RoutingResult,
    started: float,
    finished: float,
    encoder_runs: Sequence[tracing.EncoderRun] = (),
) -> None:
    """The classification, security and decision spans of a routed (or blocked) request."""
    classification = trace.span(
        tracing.SPAN_CLASSIFICATION,
        started,
        finished,
        {
            "vsr.signals": tuple(f"{s.type}:{s.name}" for s in result.signals),
            "category.name": result.category,
            "vsr.failed_signals": tuple(f"{s.type}:{s.name}" for s in result.failed_signals),
        },
    )
    for run in encoder_runs:
        trace.span(
            tracing.SPAN_ENCODER,
            run.started,
            run.finished,
            {
                "encoder.model": run.model,
                "encoder.device": run.device,
                "encoder.texts": run.texts,
                "encoder.heads": run.heads,
            },
            parent=classification,
        )
    blocked = result.blocked
    for family, span_name in (("jailbreak", tracing.SPAN_JAILBREAK), ("pii", tracing.SPAN_PII)):
        signals = [s for s in result.signals if s.type == family]
        if not signals:
            continue
        attributes: dict[str, str | bool | float | tuple[str, ...] | None] = {
            "security.detected": any(s.matched for s in signals),
            "security.score": max(s.score for s in signals),
            "security.blocked": blocked is not None and blocked.kind == family,
        }
        if family == "pii":
            attributes["pii.types"] = tuple(sorted({t for s in signals for t in s.entity_types}))
        trace.span(span_name, started, finished, attributes, parent=classification)
    now = time.perf_counter()
    decision = trace.span(
        tracing.SPAN_DECISION,
        finished,
        now,
        {
            "routing.decision": result.decision,
            "routing.original_model": result.requested_model,
            "routing.selected_model": result.served_model,
            "routing.confidence": result.confidence,
            "routing.auto": result.auto,
            "reasoning.enabled": result.reasoning.enabled,
            "reasoning.effort": result.reasoning.effort,
            "routing.blocked": blocked.kind if blocked is not None else None,
        },
    )
    # What the plugins did (the engine applies them with the decision, in one step).
    trace.span(
        tracing.SPAN_PLUGINS,
        finished,
        now,
        {
            "plugins.system_prompt_injected": result.system_prompt_injected,
            "plugins.reasoning_applied": result.reasoning.applied,
            "plugins.body_changed": result.body_changed,
            "plugins.headers_set": tuple(sorted(result.headers.set)),
            "plugins.headers_removed": result.headers.remove,
            "plugins.semantic_cache": result.cache is not None and result.cache.enabled,
            "plugins.blocked_by": blocked.kind if blocked is not None else None,
        },
        parent=decision,
    )
