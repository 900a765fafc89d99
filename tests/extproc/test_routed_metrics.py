"""A forwarded request's routing series, counted from updates worked out once per outcome: the
same samples move by the same amounts on the first request of an outcome and on later ones."""

from __future__ import annotations

import gc

from tests.extproc.scripted import scripted_generation

from vsr.extproc import accounting
from vsr.observability import metrics
from vsr.routing.request import ChatRequest
from vsr.routing.result import HeaderEdits, Reasoning, RoutingResult, SignalResult

CHAT = ChatRequest.from_body({"model": "auto", "messages": [{"role": "user", "content": "x"}]})


def _result(**changes: object) -> RoutingResult:
    fields: dict[str, object] = {
        "decision": "math_decision",
        "category": "math",
        "model": "phi4-mini",
        "served_model": "phi4-mini",
        "requested_model": "auto",
        "auto": True,
        "reasoning": Reasoning(enabled=True, effort="high"),
        "blocked": None,
        "signals": (
            SignalResult("keyword", "kw", True, 1.0),
            SignalResult("domain", "math", True, 0.9, label="math"),
        ),
        "body": {},
        "body_changed": True,
        "headers": HeaderEdits(),
        "system_prompt_injected": False,
        "cache": None,
        "text": "x",
        "elapsed_s": 0.003,
    }
    fields.update(changes)
    return RoutingResult(**fields)  # type: ignore[arg-type]


def _value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def _samples(result: RoutingResult, fail_open: bool) -> dict[tuple[str, tuple[str, ...]], float]:
    """The samples record_routed moves, with the labels the reference router's code gives."""
    model = result.model if result.model in ("llama3-8b", "phi4-mini") else "unknown"
    kind = "fail_open" if fail_open else ("auto" if result.auto else "explicit")
    wanted: list[tuple[str, dict[str, str]]] = [
        ("vsr_requests_total", {"kind": kind}),
        ("vsr_decisions_total", {"decision": result.decision or "none", "model": model}),
        ("llm_model_requests_total", {"model": model}),
        ("llm_category_classifications_count", {"category": result.category or "none"}),
        ("llm_model_routing_latency_seconds_count", {}),
        ("llm_model_routing_latency_seconds_sum", {}),
    ]
    for family in sorted({signal.type for signal in result.signals}):
        wanted.append(("llm_classifier_latency_seconds_count", {"classifier": family}))
    if result.auto:
        wanted.append(
            (
                "llm_model_routing_modifications_total",
                {"source_model": "auto", "target_model": model},
            )
        )
        effort = (result.reasoning.effort or "none") if result.reasoning.enabled else "none"
        wanted.append(
            (
                "llm_reasoning_decisions_total",
                {
                    "category": result.category or "none",
                    "model": model,
                    "enabled": "true" if result.reasoning.enabled else "false",
                    "effort": effort,
                },
            )
        )
    code = "fail_open" if fail_open else "explicit_model" if not result.auto else "decision_match"
    if result.auto and not result.decision and not fail_open:
        code = "default_model"
    wanted.append(("llm_routing_reason_codes_total", {"reason_code": code, "model": model}))
    return {
        (name, tuple(sorted(labels.items()))): _value(name, **labels) for name, labels in wanted
    }


def test_routed_series_move_once_per_request_on_every_outcome() -> None:
    generation = scripted_generation()
    cases = [
        (_result(), False),
        (_result(), True),
        (_result(decision=None, category=None, reasoning=Reasoning(enabled=False)), False),
        (_result(auto=False, model="llama3-8b", requested_model="llama3-8b"), False),
        (_result(auto=False, model="made-up", requested_model="made-up"), False),
        (_result(signals=(SignalResult("pii", "pii", False, 0.0),)), False),
    ]
    for result, fail_open in cases:
        for _ in range(3):  # the first request of an outcome builds its updates, the rest reuse
            before = _samples(result, fail_open)
            accounting.record_routed(generation, CHAT, result, fail_open=fail_open)
            after = _samples(result, fail_open)
            for key, value in after.items():
                expected = result.elapsed_s if key[0].endswith("_sum") else 1.0
                assert abs(value - before[key] - expected) < 1e-9, key


def test_outcomes_go_with_their_generation() -> None:
    generation = scripted_generation()
    accounting.record_routed(generation, CHAT, _result(), fail_open=False)
    key = id(generation)
    assert key in accounting._ROUTED
    del generation
    gc.collect()
    assert key not in accounting._ROUTED
