"""Every Prometheus collector vsr exports, declared once, on vsr's own registry.

Labels take values from bounded sets only: phases, reasons and outcomes named here, and decision
and model names from the config (a config has a handful). Durations are in seconds.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

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
ACTIVE_STREAMS = Gauge("vsr_active_streams", "ext_proc streams currently open.", registry=REGISTRY)
CONFIG_RELOADS = Counter(
    "vsr_config_reloads_total",
    "Config reload attempts by result.",
    ["result"],  # success | failure
    registry=REGISTRY,
)
READY = Gauge("vsr_ready", "1 once models are loaded and warmed, else 0.", registry=REGISTRY)


def start_metrics_server(host: str, port: int) -> None:
    """Serve ``/metrics`` from a daemon thread (prometheus-client's own small HTTP server)."""
    start_http_server(port, addr=host, registry=REGISTRY)
