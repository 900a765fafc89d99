"""The config's ``observability`` block: response accounting, debug headers and tracing.

Tracing is set up once, from the configuration the server starts with (or the standard ``OTEL_*``
environment variables); the rest is read per request from the current generation.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from vsr.config.base import StrictModel

# Half of Envoy's default per-connection buffer limit (1 MiB): see UsageConfig.
DEFAULT_MAX_BUFFERED_JSON_BYTES = 512 * 1024


class UsageConfig(StrictModel):
    """- ``read_responses``: read JSON and SSE response bodies as they pass (token, cost, TTFT
      metrics); false leaves every response body to the gateway's own mode.
    - ``inject_include_usage``: for a streaming request that did not ask for usage, vsr sets
      ``stream_options.include_usage: true`` so the model reports tokens, and removes that usage
      chunk from what the client sees.
    - ``max_buffered_json_bytes``: a JSON response whose ``content-length`` is at most this many
      bytes is read BUFFERED (one ext_proc message) rather than STREAMED (a data chunk and an
      empty end chunk when the body comes after vsr's headers answer); others, and SSE, stay
      STREAMED. Envoy answers 500 in place of a buffered
      body over its buffer limit (the listener's ``per_connection_buffer_limit_bytes``, 1 MiB
      unless set), so the default is half that default: safe behind any gateway that keeps it.
      Lower it if the gateway's limit is lower; 0 reads every body STREAMED."""

    read_responses: bool = True
    inject_include_usage: bool = True
    max_buffered_json_bytes: Annotated[int, Field(ge=0)] = DEFAULT_MAX_BUFFERED_JSON_BYTES


class DebugHeadersConfig(StrictModel):
    """``x-vsr-selected-confidence``, ``x-vsr-matched-keywords``, ``-domains``, ``-embeddings``.

    - ``enabled``: send them at all.
    - ``require_request_header``: only when the request carries ``x-vsr-debug: true``.
    """

    enabled: bool = True
    require_request_header: bool = False


class TracingConfig(StrictModel):
    """OpenTelemetry traces over OTLP/gRPC; off unless enabled here or by ``OTEL_*`` variables
    (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` turns it on)."""

    enabled: bool = False
    endpoint: str | None = Field(
        default=None, description="OTLP gRPC endpoint, e.g. http://otel:4317"
    )
    insecure: bool = True
    service_name: str = "vsr"
    sample_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0


class ObservabilityConfig(StrictModel):
    usage: UsageConfig = UsageConfig()
    debug_headers: DebugHeadersConfig = DebugHeadersConfig()
    tracing: TracingConfig = TracingConfig()
