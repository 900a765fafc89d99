"""Every Prometheus collector vsr exports, declared once, on vsr's own registry.

Labels take values from bounded sets only: phases, reasons and outcomes named here, and decision
and model names from the config (a config has a handful). Durations are in seconds.

Under ``vsr serve --workers N`` every worker process records into prometheus-client's multiprocess
files (``PROMETHEUS_MULTIPROC_DIR``, set by the supervisor before a worker starts) and the
supervisor serves ``/metrics`` from all of them: counters and histograms add up; each gauge says
how (``multiprocess_mode``: ``vsr_ready`` per worker ``pid``, open streams and cache entries summed
over live workers).

Updates on the request path go through ``child`` (``vsr.observability.series``): a label set's
series, cached, updated without prometheus-client's per-call checks.
"""

from __future__ import annotations

import os
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics_core import Metric

from vsr.observability.series import CounterSeries as CounterSeries
from vsr.observability.series import HistogramSeries as HistogramSeries
from vsr.observability.series import child as child
from vsr.observability.series import series as series

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "vsr_requests_total",
    "Requests seen by the ext_proc server, by how they were handled.",
    ["kind"],  # auto | explicit | models | blocked | rejected
    registry=REGISTRY,
)
DECISIONS = Counter(
    "vsr_decisions_total",
    "Routed requests by matched decision ('none' when no decision matched) and selected model.",
    ["decision", "model"],
    registry=REGISTRY,
)
CLASSIFICATION_SECONDS = Histogram(
    "vsr_classification_seconds",
    "Time spent classifying and routing one request (all signals, decision, plugins).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
BLOCKS = Counter(
    "vsr_blocks_total",
    "Requests refused with a content_filter completion, by reason.",
    ["reason"],  # jailbreak | pii
    registry=REGISTRY,
)
ERRORS = Counter(
    "vsr_errors_total",
    "Requests vsr could not handle normally, by reason.",
    # invalid_json | invalid_request | body_too_large | unknown_path | method_not_allowed |
    # classifier_failure | stream_error
    ["reason"],
    registry=REGISTRY,
)
FAIL_OPEN = Counter(
    "vsr_fail_open_total",
    "Requests forwarded to the default model because classification failed (failure policy open).",
    registry=REGISTRY,
)
ACTIVE_STREAMS = Gauge(
    "vsr_active_streams",
    "ext_proc streams currently open.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
CONFIG_RELOADS = Counter(
    "vsr_config_reloads_total",
    "Config reload attempts by result.",
    ["result"],  # success | failure
    registry=REGISTRY,
)
READY = Gauge(
    "vsr_ready",
    "1 once models are loaded and warmed, else 0 (with --workers: one series per worker pid).",
    registry=REGISTRY,
    multiprocess_mode="liveall",
)

# --- The reference router's series (vLLM Semantic Router's ``llm_*`` names and labels), so its
# Grafana dashboard and alerts work unchanged. ``model`` labels are configured names or ``unknown``
# (``Generation.model_label``); other labels come from a fixed set named here or in the config.

UNKNOWN = "unknown"
# llm_request_errors_total{reason}: anything else is counted as ``other``.
ERROR_REASONS = frozenset(
    {
        "upstream_4xx",
        "upstream_5xx",
        "timeout",
        "cancellation",
        "upstream_aborted",
        "parse_error",
        "response_parse_error",
        "response_processing_error",
        "jailbreak_block",
        "pii_policy_denied",
        "classification_failed",
        "screening_unavailable",
        "body_too_large",
        "model_not_found",
        "overloaded",
        "internal_error",
        "other",
    }
)
# llm_routing_reason_codes_total{reason_code}
REASON_CODES = frozenset(
    {"decision_match", "default_model", "explicit_model", "fail_open", "blocked"}
)
_DURATION = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LONG_DURATION = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_TOKENS = (0, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)

MODEL_REQUESTS = Counter(
    "llm_model_requests_total",
    "Requests forwarded to each model.",
    ["model"],
    registry=REGISTRY,
)
REQUEST_ERRORS = Counter(
    "llm_request_errors_total",
    "Request errors by model and reason (upstream_4xx, upstream_5xx, timeout, cancellation, "
    "parse_error, jailbreak_block, pii_policy_denied, ...).",
    ["model", "reason"],
    registry=REGISTRY,
)
ROUTING_MODIFICATIONS = Counter(
    "llm_model_routing_modifications_total",
    "Requests whose model vsr changed, from the requested (auto) name to the selected model.",
    ["source_model", "target_model"],
    registry=REGISTRY,
)
ROUTING_LATENCY = Histogram(
    "llm_model_routing_latency_seconds",
    "Time to route one request (signals, decision, plugins, edits).",
    buckets=(0.001, 0.0025, *_DURATION),
    registry=REGISTRY,
)
COMPLETION_LATENCY = Histogram(
    "llm_model_completion_latency_seconds",
    "From the request reaching vsr to the last byte of the model's response.",
    ["model"],
    buckets=_LONG_DURATION,
    registry=REGISTRY,
)
TTFT = Histogram(
    "llm_model_ttft_seconds",
    "Time to first token: from the request reaching vsr to the first response body chunk.",
    ["model"],
    buckets=(*_DURATION, 30.0, 60.0),
    registry=REGISTRY,
)
TPOT = Histogram(
    "llm_model_tpot_seconds",
    "Time per output token after the first (streamed responses with usage).",
    ["model"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28),
    registry=REGISTRY,
)
PROMPT_TOKENS = Counter(
    "llm_model_prompt_tokens_total", "Prompt tokens by model.", ["model"], registry=REGISTRY
)
COMPLETION_TOKENS = Counter(
    "llm_model_completion_tokens_total", "Completion tokens by model.", ["model"], registry=REGISTRY
)
TOKENS = Counter(
    "llm_model_tokens_total", "Prompt + completion tokens by model.", ["model"], registry=REGISTRY
)
PROMPT_TOKENS_PER_REQUEST = Histogram(
    "llm_prompt_tokens_per_request",
    "Prompt tokens per request by model.",
    ["model"],
    buckets=_TOKENS,
    registry=REGISTRY,
)
COMPLETION_TOKENS_PER_REQUEST = Histogram(
    "llm_completion_tokens_per_request",
    "Completion tokens per request by model.",
    ["model"],
    buckets=_TOKENS,
    registry=REGISTRY,
)
COST = Counter(
    "llm_model_cost_total",
    "Cost of the tokens used, from the config's per-model pricing, by currency.",
    ["model", "currency"],
    registry=REGISTRY,
)


def multiprocess_enabled() -> bool:
    """True in a ``vsr serve --workers N`` worker: values go to the shared multiprocess files."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class ExactNameCounter:
    """A counter exported under exactly ``name``: prometheus-client adds ``_total`` to every
    counter, but the reference's ``llm_category_classifications_count`` has no such suffix, and
    its dashboards query that name. Exposed untyped (Prometheus queries it the same way)."""

    def __init__(self, name: str, documentation: str, label_name: str) -> None:
        self.name = name
        self.documentation = documentation
        self.label_name = label_name
        self._labelnames = (label_name,)
        self._values: dict[str, float] = {}
        self._lock = threading.Lock()
        # Worker processes also write it to the multiprocess files, as a gauge summed over every
        # worker that ever ran (gauges keep their name as it is), which the supervisor exports.
        self._shared: Gauge | None = None
        if multiprocess_enabled():
            self._shared = Gauge(
                name, documentation, [label_name], registry=None, multiprocess_mode="sum"
            )
        REGISTRY.register(self)

    def inc(self, label_value: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[label_value] = self._values.get(label_value, 0.0) + amount
        if self._shared is not None:
            child(self._shared, label_value).inc(amount)

    def value(self, label_value: str) -> float:
        with self._lock:
            return self._values.get(label_value, 0.0)

    def describe(self) -> list[Metric]:
        return [Metric(self.name, self.documentation, "unknown")]

    def collect(self) -> list[Metric]:
        family = Metric(self.name, self.documentation, "unknown")
        with self._lock:
            for label_value, count in sorted(self._values.items()):
                family.add_sample(self.name, {self.label_name: label_value}, count)
        return [family]


CATEGORY_CLASSIFICATIONS = ExactNameCounter(
    "llm_category_classifications_count",
    "Requests by the domain category behind their routing ('none' without one).",
    "category",
)
CLASSIFIER_LATENCY = Histogram(
    "llm_classifier_latency_seconds",
    "Classification time by signal family; families on one encoder share its pass, so each "
    "records the whole classification.",
    ["classifier"],
    buckets=(0.001, 0.0025, *_DURATION),
    registry=REGISTRY,
)
PII_VIOLATIONS = Counter(
    "llm_pii_violations_total",
    "Requests refused by the PII policy, by model and entity type.",
    ["model", "pii_type"],
    registry=REGISTRY,
)
REASONING_DECISIONS = Counter(
    "llm_reasoning_decisions_total",
    "Reasoning choices for auto-routed requests.",
    ["category", "model", "enabled", "effort"],
    registry=REGISTRY,
)
ROUTING_REASON_CODES = Counter(
    "llm_routing_reason_codes_total",
    "Routing outcomes by reason code (decision_match, default_model, explicit_model, fail_open, "
    "blocked) and model.",
    ["reason_code", "model"],
    registry=REGISTRY,
)
RESPONSE_EVENTS = Counter(
    "vsr_response_events_total",
    "What vsr saw on response bodies: sse_event, non_json_event, usage_stripped, "
    "usage_missing, body_too_large_to_parse.",
    ["kind"],
    registry=REGISTRY,
)


def error_reason(reason: str) -> str:
    """``reason`` if it is one of ``ERROR_REASONS``, else ``other`` (labels stay bounded)."""
    return reason if reason in ERROR_REASONS else "other"


def start_metrics_server(host: str, port: int) -> None:
    """Serve ``/metrics`` from a daemon thread (prometheus-client's own small HTTP server)."""
    start_http_server(port, addr=host, registry=REGISTRY)


# The semantic cache (the reference router's names). ``backend``: memory | milvus | pgvector.
CACHE_HITS = Counter(
    "llm_cache_hits_total", "Requests answered from the semantic cache.", ["backend"],
    registry=REGISTRY,
)  # fmt: skip
CACHE_MISSES = Counter(
    "llm_cache_misses_total",
    "Cache lookups that found nothing usable, by reason.",
    ["backend", "reason"],  # no_match | error | timeout
    registry=REGISTRY,
)
CACHE_OPERATIONS = Counter(
    "llm_cache_operations_total",
    "Cache store operations by kind and outcome.",
    ["backend", "operation", "status"],  # lookup | store | flush ; success | error | timeout
    registry=REGISTRY,
)
CACHE_OPERATION_SECONDS = Histogram(
    "llm_cache_operation_duration_seconds",
    "Time one cache store operation took.",
    ["backend", "operation"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
    registry=REGISTRY,
)
CACHE_ENTRIES = Gauge(
    "llm_cache_entries_total",
    "Entries in the semantic cache.",
    ["backend"],
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
CACHE_SKIPPED = Counter(
    "vsr_cache_skipped_total",
    "Requests or answers the cache left alone, by reason (a fixed set, see vsr.cache).",
    ["stage", "reason"],  # lookup | store
    registry=REGISTRY,
)
