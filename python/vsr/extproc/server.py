"""``vsr serve``: the gRPC ext_proc server, the HTTP API and metrics, started and stopped together.

Start-up order matters for probes: metrics and the HTTP API come up first (``/health`` 200,
``/ready`` 503), then the gRPC server with its health service NOT_SERVING, then the first
generation is built and warmed, and only then do gRPC health and ``/ready`` report serving.
SIGTERM reverses it: health goes NOT_SERVING, open streams get the grace period to finish, then
everything closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import structlog
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vsr.api.http import ApiOptions, HttpServer, build_http_app
from vsr.errors import ListenError
from vsr.extproc.health import HealthService
from vsr.extproc.service import ExternalProcessor
from vsr.observability import metrics, tracing
from vsr.runtime import GenerationBuilder, Runtime, watch_config_directory
from vsr.settings import Settings

# Room past the body limit for one ext_proc message: headers, framing, and bodies vsr refuses.
_MESSAGE_OVERHEAD_BYTES = 64 << 20

log = structlog.get_logger(__name__)

EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"


@dataclass
class BoundPorts:
    """The ports actually bound (differ from the settings when those ask for port 0)."""

    grpc: int
    http: int


class RouterServer:
    """The three listeners and the runtime of one ``vsr serve`` process."""

    def __init__(self, settings: Settings, build: GenerationBuilder) -> None:
        self.settings = settings
        self.runtime = Runtime(build)
        self._health = HealthService()
        self._grpc: Any = None
        self._native: Any = None  # vsr.extproc.native.NativeExtProcServer
        self._http: HttpServer | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._config_digest = b""
        self.ports: BoundPorts | None = None

    async def start(self, *, with_metrics: bool = True) -> BoundPorts:
        settings = self.settings
        if with_metrics:
            with listening("metrics", settings.host, settings.metrics_port):
                metrics.start_metrics_server(settings.host, settings.metrics_port)
        api = ApiOptions(
            token=settings.api_token,
            max_body_bytes=settings.max_body_bytes,
            max_batch_texts=settings.api_max_batch_texts,
        )
        app = build_http_app(self.runtime, api)
        # Workers of one supervisor (vsr.workers) share the ports; a lone server does not, since
        # SO_REUSEPORT (grpc's default) would let a stale server share the port and take streams.
        shared = settings.worker_index is not None
        self._http = HttpServer(app, settings.host, settings.http_port, reuse_port=shared)
        with listening("HTTP API", settings.host, settings.http_port):
            http_port = await self._http.start()

        # gRPC's default 4 MiB message limit would reject a buffered body before vsr can answer
        # 413 itself, and with failure_mode_allow Envoy would then forward it unclassified. Accept
        # well past the body limit (Envoy's own buffer limit bounds what it sends), so vsr sees
        # every body and refuses the oversize ones itself.
        message_limit = settings.max_body_bytes + _MESSAGE_OVERHEAD_BYTES
        processor = ExternalProcessor(
            self.runtime,
            max_body_bytes=settings.max_body_bytes,
            failure_policy=settings.failure_policy,
            request_timeout_s=settings.request_timeout_s,
        )
        if settings.extproc_transport == "native":
            from vsr.extproc.native import NativeExtProcServer

            with listening("ext_proc gRPC", settings.host, settings.grpc_port):
                # The native transport binds its socket when it is built.
                self._native = NativeExtProcServer(
                    processor,
                    host=settings.host,
                    port=settings.grpc_port,
                    reuse_port=shared,
                    max_message_bytes=message_limit,
                )
            await self._set_health(serving=False)
            grpc_port = self._native.start()
        else:
            self._grpc = grpc.aio.server(options=grpc_options(message_limit, reuse_port=shared))
            external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(
                processor, self._grpc
            )
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
            await self._set_health(serving=False)
            with listening("ext_proc gRPC", settings.host, settings.grpc_port, (RuntimeError,)):
                grpc_port = self._grpc.add_insecure_port(f"{settings.host}:{settings.grpc_port}")
            await self._grpc.start()
        self.ports = BoundPorts(grpc=grpc_port, http=http_port)
        log.info(
            "listening",
            grpc_port=grpc_port,
            http_port=http_port,
            metrics_port=settings.metrics_port if with_metrics else None,
        )

        self._config_digest = _file_digest(settings.config_path)
        await self.runtime.start()
        self._start_tracing()
        await self._set_health(serving=True)
        if settings.watch_config:
            # The directory, not the file: a Kubernetes ConfigMap update swaps a symlink in it.
            directory = settings.config_path.absolute().parent
            self._watcher = asyncio.create_task(
                watch_config_directory(directory, self._reload_if_config_changed)
            )
        log.info("serving", generation=self.runtime.current.number)
        return self.ports

    def _start_tracing(self) -> None:
        """Tracing is set up once, from the first generation's config and the OTEL_* variables."""
        config = self.runtime.current.observability.tracing
        environ = self.settings.otel_environment
        endpoint = tracing.tracing_endpoint(
            enabled_in_config=config.enabled, endpoint=config.endpoint, environ=environ
        )
        if endpoint is not None and not tracing.enabled():
            tracing.configure(
                endpoint=endpoint,
                service_name=config.service_name,
                sample_ratio=config.sample_ratio,
                insecure=config.insecure,
                environ=environ,
            )

    async def _reload_if_config_changed(self) -> None:
        """Reload when the config file's content changed (other files in the directory may
        change without touching it)."""
        digest = _file_digest(self.settings.config_path)
        if digest == self._config_digest:
            return
        if await self.runtime.reload():
            self._config_digest = digest

    async def _set_health(self, *, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", EXT_PROC_SERVICE):
            await self._health.set(service, status)
        if self._native is not None:
            self._native.set_serving(serving)

    async def stop(self) -> None:
        """Stop taking new streams, let open ones finish within the grace period, then close."""
        await self._set_health(serving=False)
        # Watch streams end now rather than hold the grace period open (grpc.aio transport).
        await self._health.drain()
        metrics.READY.set(0)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._grpc is not None:
            log.info("draining", grace_period_s=self.settings.grace_period_s)
            await self._grpc.stop(self.settings.grace_period_s)
        if self._native is not None:
            log.info("draining", grace_period_s=self.settings.grace_period_s)
            await self._native.stop(self.settings.grace_period_s)
        if self._http is not None:
            await self._http.stop()
        tracing.shutdown()
        log.info("stopped")


def grpc_options(message_limit: int, *, reuse_port: bool) -> list[tuple[str, int]]:
    """The gRPC server's channel arguments.

    Envoy opens one HTTP/2 connection per worker thread and multiplexes every ext_proc stream on
    it; ``max_concurrent_streams`` is left at gRPC's default (no limit), so a burst never queues
    in the transport, and nothing is compressed (ext_proc messages are small and on loopback or
    in-pod: compression would cost CPU for no gain)."""
    return [
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_receive_message_length", message_limit),
        ("grpc.max_send_message_length", message_limit),
    ]


def _file_digest(path: Path) -> bytes:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return b""


@contextlib.contextmanager
def listening(
    what: str, host: str, port: int, also: tuple[type[Exception], ...] = ()
) -> Iterator[None]:
    """Binding ``port``: a port that is taken, not ours or out of range is a ``ListenError`` that
    names it (``vsr serve`` prints one line), not a traceback from the socket layer. ``also``:
    what else the binding call raises for that (grpcio: RuntimeError)."""
    caught: tuple[type[Exception], ...] = (OSError, OverflowError, *also)
    try:
        yield
    except caught as error:
        reason = getattr(error, "strerror", None) or str(error)
        reason = reason.removeprefix(f"cannot listen on {host}:{port}: ")
        raise ListenError(f"cannot listen on {host}:{port} for the {what}: {reason}") from error


async def serve_until_signal(server: RouterServer, *, with_metrics: bool = True) -> None:
    """Run until SIGINT or SIGTERM, then stop gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start(with_metrics=with_metrics)
        await stop.wait()
        log.info("shutdown_requested")
    finally:
        await server.stop()
