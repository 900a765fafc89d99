"""gRPC health (``grpc.health.v1``: Check and Watch) for the grpc.aio transport.

grpcio's own asyncio servicer keeps every Watch stream open through a drain, so ``stop()`` waited
out the whole grace period whenever a client (a probe, a mesh sidecar) was watching. This one
sends NOT_SERVING to watchers when the server drains and then ends each Watch with UNAVAILABLE,
as the native transport does (``rust/src/python/extproc/health.rs``); Check answers as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

Status = Any  # health_pb2.HealthCheckResponse.ServingStatus (an int enum value)


class HealthService(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self._status: dict[str, Status] = {}
        self._changed = asyncio.Condition()
        self._draining = False

    async def set(self, service: str, status: Status) -> None:
        """Set one service's status; ignored once draining (it stays NOT_SERVING)."""
        async with self._changed:
            if not self._draining:
                self._status[service] = status
                self._changed.notify_all()

    async def drain(self) -> None:
        """Every service NOT_SERVING for good; open Watch streams send it, then end."""
        async with self._changed:
            self._draining = True
            for service in self._status:
                self._status[service] = health_pb2.HealthCheckResponse.NOT_SERVING
            self._changed.notify_all()

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: Any
    ) -> health_pb2.HealthCheckResponse:
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        """The current status at once, then one message per change (an unknown service streams
        SERVICE_UNKNOWN until it is set); the lock is not held while writing, so a slow reader
        delays only its own stream."""
        last: Status | None = None

        def moved() -> bool:
            return self._current(request.service) != last or self._draining

        while True:
            async with self._changed:
                await self._changed.wait_for(moved)
                status, draining = self._current(request.service), self._draining
            if status != last:
                await context.write(health_pb2.HealthCheckResponse(status=status))
                last = status
            if draining:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")

    def _current(self, service: str) -> Status:
        return self._status.get(service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
