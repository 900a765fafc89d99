"""What the API's handlers share: the runtime, the limits, and the current generation's tasks."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from vsr.api.classification import Classifiers
from vsr.api.errors import ApiError
from vsr.router import Router
from vsr.runtime import Generation, Runtime

DEFAULT_MAX_BATCH_TEXTS = 100


@dataclass(frozen=True)
class ApiOptions:
    """``token``: the bearer token every data path requires (None: no auth).
    ``max_body_bytes``: larger request bodies get a 413. ``max_batch_texts``: the most texts one
    batch or embeddings request may carry."""

    token: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_texts: int = DEFAULT_MAX_BATCH_TEXTS


@dataclass
class ApiState:
    runtime: Runtime
    options: ApiOptions
    _cached: tuple[Generation, Classifiers] | None = field(default=None, repr=False)

    def generation(self) -> Generation:
        if not self.runtime.ready:
            raise ApiError(503, "not_ready", "vsr is still loading its models")
        return self.runtime.current

    def router(self) -> Router:
        router = self.generation().router
        if not isinstance(router, Router):
            raise ApiError(503, "not_available", "this server's router has no classifiers")
        return router

    def classifiers(self) -> Classifiers:
        """The tasks of the generation in force (rebuilt once after a reload)."""
        generation = self.generation()
        if self._cached is None or self._cached[0] is not generation:
            self._cached = (generation, Classifiers(self.router()))
        return self._cached[1]

    def check_batch(self, count: int, param: str = "texts") -> None:
        limit = self.options.max_batch_texts
        if count > limit:
            raise ApiError(
                400,
                "too_many_texts",
                f"{param}: {count} texts, more than this server accepts in one request ({limit})",
                param,
            )


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.vsr
    return state
