"""The HTTP API on port 8080: probes, ``/v1/models``, the classification API and the playground.

``/ready`` answers 503 until the first generation is loaded and warmed, so a Kubernetes readiness
probe keeps traffic away while models load; ``/health`` answers 200 as soon as the process serves.
The app is FastAPI on the pydantic models of ``vsr.api.schemas``, so ``/openapi.json`` and the
interactive docs at ``/docs`` are generated from the same types the handlers validate with (the
docs' assets come from the ``fastapi-offline`` package: nothing is fetched from the internet).
``HttpServer`` runs it with uvicorn on the event loop the gRPC server uses, so API requests share
the inference pool's batches with ext_proc traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline

import vsr
from vsr.api import cache, playground, routes
from vsr.api.errors import install_error_handlers
from vsr.api.middleware import ApiGuard
from vsr.api.state import ApiOptions, ApiState
from vsr.runtime import Runtime
from vsr.wire import error_payload, models_list_payload

__all__ = ["ApiOptions", "HttpServer", "build_http_app"]


def build_http_app(runtime: Runtime, options: ApiOptions | None = None) -> Any:
    """The ASGI app: FastAPI wrapped in the token and body-size guard."""
    options = options or ApiOptions()
    app = FastAPIOffline(
        title="vsr",
        version=vsr.__version__,
        summary="Semantic router for LLM traffic: classification, routing and the playground.",
        redoc_url=None,
        static_url="/docs/static",
    )
    app.state.vsr = ApiState(runtime, options)
    install_error_handlers(app)
    _add_probes(app)
    app.include_router(routes.router)
    app.include_router(cache.router)
    playground.install(app)
    return ApiGuard(app, token=options.token, max_body_bytes=options.max_body_bytes)


def _add_probes(app: FastAPI) -> None:
    @app.get("/health", tags=["probes"])
    async def health() -> dict[str, str]:
        """Liveness: 200 as soon as the process serves."""
        return {"status": "ok"}

    @app.get("/ready", tags=["probes"])
    async def ready(request: Request) -> JSONResponse:
        """Readiness: 503 until the first config generation is loaded and warmed."""
        runtime = request.app.state.vsr.runtime
        if not runtime.ready:
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse({"status": "ready", "generation": runtime.current.number})

    @app.get("/v1/models", tags=["openai"])
    async def models(request: Request) -> Response:
        """OpenAI's model list: the auto names, then the configured models."""
        runtime = request.app.state.vsr.runtime
        if not runtime.ready:
            payload = error_payload("vsr is still loading its models", "not_ready", status=503)
            return JSONResponse(payload, status_code=503)
        generation = runtime.current
        body = models_list_payload(generation.listed_models(), generation.created)
        return Response(body, media_type="application/json")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # ``vsr serve`` owns SIGINT/SIGTERM (it drains gRPC streams first); uvicorn must not
        # take them over.
        yield


class HttpServer:
    """uvicorn serving ``app`` on ``host:port`` inside the running event loop."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        grace_period_s: float = 5.0,
        reuse_port: bool = False,
    ) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._reuse_port = reuse_port  # workers of one supervisor share the port (vsr.workers)
        self._grace_period_s = grace_period_s
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Bind and serve; returns the bound port (useful when asked for port 0)."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self._reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self._host, self._port))
        port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._app,
            log_config=None,  # vsr configures logging; uvicorn's own lines go through it
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(self._grace_period_s) or None,
        )
        self._server = _Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)
        return port

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = self._task = None
