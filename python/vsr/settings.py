"""Process settings for ``vsr serve``: ports, config path, logging, limits and failure policy.

This is the only module that reads environment variables. Precedence, highest first: command-line
flags, ``VSR_*`` environment variables, the defaults below. Everything is validated by pydantic so a
bad value fails at start-up with the variable or flag named.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vsr.errors import ConfigError

LogFormat = Literal["json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]
FailurePolicy = Literal["open", "closed"]
ExtProcTransport = Literal["grpcio", "native"]

ENV_PREFIX = "VSR_"
# The settings ``vsr serve`` takes as flags, and (all but ``workers``) what the supervisor of
# ``--workers N`` hands each worker as ``VSR_*`` variables. The API token and OTEL_* variables
# are environment-only and reach workers as they are.
SERVE_FLAGS = (
    "config_path",
    "host",
    "grpc_port",
    "http_port",
    "metrics_port",
    "log_format",
    "log_level",
    "max_body_bytes",
    "failure_policy",
    "request_timeout_s",
    "grace_period_s",
    "watch_config",
    "api_max_batch_texts",
    "workers",
    "extproc_transport",
)


class Settings(BaseModel):
    """How one ``vsr serve`` process runs (the routing behaviour itself lives in the config file).

    - ``failure_policy``: what a failed *routing* signal does to a request. ``open`` routes it with
      the signals that worked and says so in ``x-vsr-fail-open``; ``closed`` answers 503.
      Screening (jailbreak, PII) never fails open unless its plugin says ``on_error: allow``.
    - ``request_timeout_s``: the classification deadline of one request; past it vsr answers 503
      (``classification_timeout``) and drops the request's queued work. Keep it below Envoy's
      ext_proc ``message_timeout`` so the client gets vsr's answer, not Envoy's.
    - ``max_body_bytes``: request bodies above this get a 413 from vsr. Keep it below Envoy's buffer
      limit, or Envoy answers 413 itself before vsr sees the body.
    - ``grace_period_s``: on SIGTERM, streams still open get this long to finish.
    - ``api_token``: when set, the HTTP API (all but probes and static pages) requires
      ``Authorization: Bearer <token>``; set it through ``VSR_API_TOKEN`` (a Secret), not a flag.
    - ``api_max_batch_texts``: the most texts one classification batch or embeddings request
      may carry.
    - ``workers``: processes serving the three ports together (``vsr.workers``); 0 means one per
      CPU the process may use (its cgroup's quota, else its affinity). 1 serves in this process.
    - ``worker_index``: set by the supervisor for each worker it starts (``VSR_WORKER_INDEX``), not
      by people: a worker binds its ports with SO_REUSEPORT and leaves ``/metrics`` to the
      supervisor.
    - ``extproc_transport``: what carries the ext_proc gRPC streams. ``native`` (the default) is
      HTTP/2 in the Rust core (``vsr.extproc.native``) with the same Python handler deciding
      everything; ``grpcio`` is grpc.aio (health Watch, gRPC's own server options).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    config_path: Path = Path("config/default.yaml")
    host: str = "0.0.0.0"
    grpc_port: int = Field(50051, ge=0, le=65535)
    http_port: int = Field(8080, ge=0, le=65535)
    metrics_port: int = Field(9190, ge=0, le=65535)
    log_format: LogFormat = "json"
    log_level: LogLevel = "info"
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)
    failure_policy: FailurePolicy = "open"
    request_timeout_s: float = Field(8.0, gt=0)
    grace_period_s: float = Field(10.0, ge=0)
    watch_config: bool = True
    api_token: str | None = Field(None, min_length=1, repr=False)
    api_max_batch_texts: int = Field(100, ge=1)
    workers: int = Field(1, ge=0, le=256)
    worker_index: int | None = Field(None, ge=0)
    extproc_transport: ExtProcTransport = "native"
    # The standard OpenTelemetry variables (OTEL_*), read here like every other variable.
    otel_environment: dict[str, str] = Field(default_factory=dict, repr=False)

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Defaults, then ``VSR_<FIELD>`` variables, then ``overrides`` (flags; None: not given)."""
        import os

        environment = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name in cls.model_fields:
            variable = ENV_PREFIX + name.upper()
            if variable in environment:
                values[name] = _parse_env_value(environment[variable])
                sources[name] = f"environment variable {variable}"
        otel = {key: value for key, value in environment.items() if key.startswith("OTEL_")}
        if otel:
            values["otel_environment"] = otel
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
                sources[name] = f"--{name.replace('_', '-')}"
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = []
            for item in error.errors():
                field = str(item["loc"][0]) if item["loc"] else "settings"
                problems.append(f"{sources.get(field, field)}: {item['msg']}")
            raise ConfigError("invalid settings: " + "; ".join(problems)) from None


def _parse_env_value(raw: str) -> Any:
    """Booleans as people write them; everything else is left to pydantic's coercion."""
    lowered = raw.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    return raw.strip()
