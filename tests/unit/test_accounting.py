"""Cost from pricing, bounded labels, upstream status reasons."""

from __future__ import annotations

import pytest

from vsr.config.schema import Pricing
from vsr.extproc import accounting
from vsr.observability import metrics
from vsr.runtime import Generation


def generation() -> Generation:
    return Generation(
        number=1,
        router=None,  # type: ignore[arg-type]
        default_model="a",
        auto_model_names=("auto", "MoM"),
        model_names=("a", "b"),
        pricing={"a": Pricing(prompt_per_1m=2.0, completion_per_1m=10.0, currency="EUR")},
    )


def test_cost_from_pricing_per_million_tokens() -> None:
    cost, currency = accounting.cost_of(generation(), "a", 1_000, 500)
    assert cost == pytest.approx((1_000 * 2.0 + 500 * 10.0) / 1e6) and currency == "EUR"
    assert accounting.cost_of(generation(), "b", 1_000, 500) == (0.0, "USD")


@pytest.mark.parametrize(
    ("status", "reason"),
    [(200, None), (404, "upstream_4xx"), (429, "upstream_4xx"), (408, "timeout"),
     (504, "timeout"), (500, "upstream_5xx"), (503, "upstream_5xx")],
)  # fmt: skip
def test_upstream_reasons(status: int, reason: str | None) -> None:
    assert accounting.upstream_error_reason(status) == reason


def test_labels_stay_bounded() -> None:
    assert metrics.error_reason("made-up") == "other"
    assert metrics.error_reason("upstream_5xx") == "upstream_5xx"
    before = metrics.REGISTRY.get_sample_value(
        "llm_request_errors_total", {"model": "unknown", "reason": "parse_error"}
    )
    accounting.record_rejected(generation(), "client-invented-name", "invalid_json")
    after = metrics.REGISTRY.get_sample_value(
        "llm_request_errors_total", {"model": "unknown", "reason": "parse_error"}
    )
    assert (after or 0) - (before or 0) == 1
    assert accounting._bounded("law") == "law"
    assert accounting._bounded("x" * 65) == "other"
    assert accounting._bounded("<script>") == "other"
    assert accounting._bounded(None) == "none"


def test_requested_label_keeps_auto_names_and_drops_others() -> None:
    assert accounting._requested_label(generation(), "AUTO") == "auto"
    assert accounting._requested_label(generation(), "b") == "b"
    assert accounting._requested_label(generation(), "whatever") == "unknown"
    assert accounting._requested_label(generation(), None) == "auto"
