"""OpenTelemetry traces: off by default and free when off.

``configure`` is called once at start-up; until it enables tracing, ``start_request`` returns None
and nothing of OpenTelemetry is even imported, so a request pays one attribute read. When on, one
request is one trace (continuing the client's W3C ``traceparent`` when it sent one):

    semantic_router.request.received          SERVER, the whole request as vsr saw it
    ├─ semantic_router.classification         all signals (one pass per encoder)
    │  ├─ semantic_router.classification.encoder   one per encoder run (model, device, texts)
    │  ├─ semantic_router.security.jailbreak_detection
    │  └─ semantic_router.security.pii_detection
    ├─ semantic_router.routing.decision       decision, model, reasoning
    │  └─ semantic_router.routing.plugins     what the plugins did (prompt, reasoning, headers)
    └─ semantic_router.upstream.request       CLIENT, until the response's last byte; its context
                                              goes upstream as ``traceparent``

Spans are recorded with explicit start and end times taken where the work happened, so the
service builds them from values it already has. Export is OTLP over gRPC, batched on the SDK's
own thread.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import structlog

from vsr.errors import ConfigError

log = structlog.get_logger(__name__)

SPAN_REQUEST = "semantic_router.request.received"
SPAN_CLASSIFICATION = "semantic_router.classification"
SPAN_ENCODER = "semantic_router.classification.encoder"
SPAN_JAILBREAK = "semantic_router.security.jailbreak_detection"
SPAN_PII = "semantic_router.security.pii_detection"
SPAN_DECISION = "semantic_router.routing.decision"
SPAN_PLUGINS = "semantic_router.routing.plugins"
SPAN_UPSTREAM = "semantic_router.upstream.request"

# perf_counter() seconds -> epoch nanoseconds (spans are stamped with the clock the service uses).
_EPOCH_OFFSET_NS = time.time_ns() - time.perf_counter_ns()

_tracer: Any = None
_provider: Any = None

Attributes = Mapping[str, str | bool | int | float | tuple[str, ...] | None]


def enabled() -> bool:
    return _tracer is not None


@dataclass(frozen=True, slots=True)
class EncoderRun:
    """One encoder pass made for a request (the routing engine notes them while tracing)."""

    model: str
    device: str
    started: float
    finished: float
    texts: int
    heads: tuple[str, ...]


# The encoder runs of the request being routed in this task (its gather children share the list).
_encoder_runs: ContextVar[list[EncoderRun] | None] = ContextVar("vsr_encoder_runs", default=None)


def collect_encoder_runs() -> list[EncoderRun] | None:
    """Start noting this task's encoder runs; None (nothing noted) when tracing is off."""
    if _tracer is None:
        return None
    runs: list[EncoderRun] = []
    _encoder_runs.set(runs)
    return runs


def note_encoder_run(
    model: str, device: str, started: float, texts: int, heads: tuple[str, ...]
) -> None:
    """Called by the routing engine after each encoder pass; free when tracing is off."""
    if _tracer is None:
        return
    runs = _encoder_runs.get()
    if runs is not None:
        runs.append(EncoderRun(model, device, started, time.perf_counter(), texts, heads))


def tracing_endpoint(
    *, enabled_in_config: bool, endpoint: str | None, environ: Mapping[str, str]
) -> str | None:
    """The OTLP endpoint to export to, or None when tracing stays off.

    On when the config enables it, or when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` /
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; ``OTEL_SDK_DISABLED=true`` or
    ``OTEL_TRACES_EXPORTER=none`` turn it off whatever the config says."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    from_env = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not enabled_in_config and not from_env:
        return None
    return endpoint or from_env or "http://localhost:4317"


def configure(
    *,
    endpoint: str,
    service_name: str = "vsr",
    sample_ratio: float = 1.0,
    insecure: bool = True,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Start exporting spans to ``endpoint`` (OTLP/gRPC). ``OTEL_SERVICE_NAME`` wins over
    ``service_name``; the SDK reads its other ``OTEL_*`` settings (batch delay, headers) itself."""
    global _tracer, _provider
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError as error:
        # Seen when xds-protos' old copy of OpenTelemetry's protos overwrote opentelemetry-proto's.
        raise ConfigError(
            f"tracing is on but the OTLP exporter cannot be imported ({error}); reinstall the "
            "protos: pip install --force-reinstall --no-deps opentelemetry-proto"
        ) from None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    name = (environ or {}).get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(
        resource=Resource.create({"service.name": name}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=insecure))
    )
    _provider = provider
    _tracer = provider.get_tracer("vsr")
    log.info("tracing_enabled", endpoint=endpoint, service_name=name, sample_ratio=sample_ratio)


def shutdown() -> None:
    """Flush what is queued and stop exporting (at server stop)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def start_request(headers: Mapping[str, str], attributes: Attributes) -> RequestTrace | None:
    """The trace of one request, or None when tracing is off."""
    if _tracer is None:
        return None
    return RequestTrace(_tracer, headers, attributes)


def _ns(perf_s: float) -> int:
    return int(perf_s * 1e9) + _EPOCH_OFFSET_NS


def _clean(attributes: Attributes) -> dict[str, Any]:
    return {key: value for key, value in attributes.items() if value is not None}


class RequestTrace:
    """The spans of one request; every method is safe to call in any order, once or not at all."""

    def __init__(self, tracer: Any, headers: Mapping[str, str], attributes: Attributes) -> None:
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = tracer
        self._propagator = TraceContextTextMapPropagator()
        parent = self._propagator.extract(carrier=dict(headers))
        self.root = tracer.start_span(
            SPAN_REQUEST, context=parent, kind=SpanKind.SERVER, attributes=_clean(attributes)
        )
        self._upstream: Any = None
        self._ended = False

    @property
    def trace_id(self) -> str:
        return format(self.root.get_span_context().trace_id, "032x")

    def _context(self, span: Any) -> Any:
        from opentelemetry.trace import set_span_in_context

        return set_span_in_context(span)

    def span(
        self,
        name: str,
        start_s: float,
        end_s: float,
        attributes: Attributes,
        parent: Any = None,
    ) -> Any:
        """A finished child span (of ``parent``, else of the request span)."""
        span = self._tracer.start_span(
            name,
            context=self._context(parent if parent is not None else self.root),
            start_time=_ns(start_s),
            attributes=_clean(attributes),
        )
        span.end(end_time=_ns(end_s))
        return span

    def start_upstream(self, start_s: float, attributes: Attributes) -> dict[str, str]:
        """Open the upstream span; returns the headers that carry its context upstream."""
        from opentelemetry.trace import SpanKind

        self._upstream = self._tracer.start_span(
            SPAN_UPSTREAM,
            context=self._context(self.root),
            kind=SpanKind.CLIENT,
            start_time=_ns(start_s),
            attributes=_clean(attributes),
        )
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._context(self._upstream))
        return carrier

    def end(self, attributes: Attributes, *, error: str | None = None) -> None:
        """End the upstream span (if open) and the request span, with the outcome's attributes."""
        if self._ended:
            return
        self._ended = True
        from opentelemetry.trace import Status, StatusCode

        clean = _clean(attributes)
        for span in (self._upstream, self.root):
            if span is None:
                continue
            span.set_attributes(clean)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error))
            span.end()
