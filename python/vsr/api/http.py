"""The HTTP API on port 8080: ``/health`` (liveness), ``/ready`` (readiness), ``/v1/models``.

``/ready`` answers 503 until the first generation is loaded and warmed, so a Kubernetes readiness
probe keeps traffic away while models load; ``/health`` answers 200 as soon as the process serves.
"""

from __future__ import annotations

from aiohttp import web

from vsr.extproc.mutations import models_list_payload
from vsr.runtime import Runtime

RUNTIME_KEY = web.AppKey("runtime", Runtime)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    if not runtime.ready:
        return web.json_response({"status": "loading"}, status=503)
    return web.json_response({"status": "ready", "generation": runtime.current.number})


async def models(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    if not runtime.ready:
        payload = {
            "error": {
                "message": "vsr is still loading its models",
                "type": "server_error",
                "param": None,
                "code": "not_ready",
            }
        }
        return web.json_response(payload, status=503)
    generation = runtime.current
    return web.Response(
        body=models_list_payload(generation.listed_models(), generation.created),
        content_type="application/json",
    )


def build_http_app(runtime: Runtime) -> web.Application:
    app = web.Application()
    app[RUNTIME_KEY] = runtime
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/v1/models", models)
    return app
