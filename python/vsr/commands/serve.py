"""``vsr serve``: the Envoy ext_proc server with its HTTP API and metrics.

Every flag has a ``VSR_<NAME>`` environment variable (``--grpc-port`` -> ``VSR_GRPC_PORT``); flags
win. See ``vsr.settings.Settings`` for what each one means.
"""

from __future__ import annotations

import argparse
from collections.abc import Coroutine
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the ext_proc gRPC server (50051), HTTP API (8080) and metrics (9190)",
        description="Serve Envoy's ext_proc protocol, routing each chat completion by the config.",
    )
    parser.add_argument(
        "--config",
        dest="config_path",
        type=Path,
        help="router config YAML (default config/default.yaml; VSR_CONFIG_PATH)",
    )
    parser.add_argument("--host", help="address to bind (default 0.0.0.0)")
    parser.add_argument("--grpc-port", type=int, help="ext_proc gRPC port (default 50051)")
    parser.add_argument("--http-port", type=int, help="HTTP API port (default 8080)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (default 9190)")
    parser.add_argument("--log-format", choices=("json", "console"), help="default json")
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), help="default info"
    )
    parser.add_argument(
        "--max-body-bytes", type=int, help="larger request bodies get a 413 (default 8 MiB)"
    )
    parser.add_argument(
        "--failure-policy",
        choices=("open", "closed"),
        help="when a routing signal's model fails: route with the signals that worked "
        "(open, the default) or answer 503 (closed); screening never fails open unless its "
        "plugin says on_error: allow",
    )
    parser.add_argument(
        "--request-timeout-s",
        type=float,
        help="classification deadline per request, then a 503 (default 8; keep it below "
        "Envoy's ext_proc message_timeout)",
    )
    parser.add_argument(
        "--grace-period-s",
        type=float,
        help="on SIGTERM, how long open streams may take to finish (default 10)",
    )
    parser.add_argument(
        "--api-max-batch-texts",
        type=int,
        help="most texts in one classification batch or embeddings request (default 100); "
        "the API's bearer token comes from VSR_API_TOKEN only",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="processes serving the same ports (SO_REUSEPORT), each with its own models, under a "
        "supervisor that serves /metrics for all of them; 0: one per usable CPU (cgroup quota); "
        "default 1 (this process serves)",
    )
    parser.add_argument(
        "--extproc-transport",
        choices=("grpcio", "native"),
        help="what carries the ext_proc streams: HTTP/2 in the Rust core (native, the default: "
        "same handler, a third of the transport cost) or grpc.aio (grpcio)",
    )
    parser.add_argument(
        "--no-watch-config",
        dest="watch_config",
        action="store_const",
        const=False,
        help="do not reload when the config directory changes",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vsr.observability.logging import configure_logging
    from vsr.settings import SERVE_FLAGS, Settings

    settings = Settings.load({name: getattr(args, name) for name in SERVE_FLAGS})
    configure_logging(settings.log_format, settings.log_level)
    if settings.worker_index is None:
        # The supervisor never imports the metrics module: its values would be one more
        # "process" in the shared multiprocess files.
        from vsr.workers import resolve_workers, supervise

        count = resolve_workers(settings.workers)
        if count > 1:
            return supervise(settings, count)
    from vsr.extproc.server import RouterServer, serve_until_signal
    from vsr.runtime import config_generation_builder

    server = RouterServer(settings, config_generation_builder(settings.config_path))
    # A worker leaves /metrics to its supervisor, which reads every worker's values.
    run_event_loop(serve_until_signal(server, with_metrics=settings.worker_index is None))
    return 0


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run the server on uvloop when it is installed (a base dependency on Linux): grpc.aio's
    message handling is most of vsr's per-request cost without models, and uvloop's loop cut it
    enough for ~18% more requests/s through Envoy (benches/bench_extproc.py). Falls back to
    asyncio's own loop elsewhere."""
    import asyncio

    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)
