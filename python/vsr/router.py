"""The offline API: route chat-completions requests with a config, in a script or a notebook.

    router = vsr.Router.from_file("config/default.yaml")
    result = router.route({"model": "auto", "messages": [{"role": "user", "content": "2+2?"}]})
    result.model, result.category, result.body

The ext_proc server uses the same class, so a policy behaves the same in both places.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vsr.config import RouterConfig, load_config
from vsr.inference import InferencePool, ModelRegistry
from vsr.routing.engine import RoutingEngine
from vsr.routing.request import ChatRequest
from vsr.routing.result import RoutingResult


class Router:
    """A validated config with its models loaded, ready to route requests.

    ``route`` edits the body dict it is given, in place (see ``RoutingResult.body``); pass a copy
    to keep the original.
    """

    def __init__(
        self,
        config: RouterConfig,
        *,
        registry: ModelRegistry | None = None,
        max_workers: int = 2,
    ) -> None:
        self.config = config
        self.registry = registry or ModelRegistry(config.device)
        # A registry shared across reloads takes each new config's dtypes for the keys it
        # resolves from now on; loaded models stay keyed by the dtype they were loaded in.
        self.registry.dtypes = dict(config.dtypes)
        self._pool = InferencePool(self.registry, max_workers=max_workers, batching=config.batching)
        try:
            self._engine = RoutingEngine(config, self._pool)
        except BaseException:
            self._pool.close()
            raise

    @property
    def pool(self) -> InferencePool:
        """The inference pool the router's signals run on (the HTTP API shares it)."""
        return self._pool

    @classmethod
    def from_file(cls, path: str | Path, *, device: str | None = None) -> Router:
        """Load and validate a YAML config, then load the models it needs.

        ``device`` ("cpu", "cuda:0") overrides the config's ``device``.
        """
        config = load_config(path)
        if device is not None:
            config = config.model_copy(update={"device": device})
        return cls(config)

    @classmethod
    def from_config(cls, config: RouterConfig, *, registry: ModelRegistry | None = None) -> Router:
        """Build from an already-validated config. Pass the previous router's ``registry`` on a
        reload so models both configs use stay loaded (it must be for the same device)."""
        if registry is not None and registry.device != config.device:
            registry = None
        return cls(config, registry=registry)

    def route(
        self, body: dict[str, Any] | ChatRequest, headers: Mapping[str, str] | None = None
    ) -> RoutingResult:
        """Route one request body (a parsed chat-completions JSON object); blocks on inference."""
        return self._engine.route(body, headers)

    async def aroute(
        self, body: dict[str, Any] | ChatRequest, headers: Mapping[str, str] | None = None
    ) -> RoutingResult:
        """As ``route``, with inference on a worker thread so the event loop stays free."""
        return await self._engine.aroute(body, headers)

    def route_inline(
        self, body: dict[str, Any] | ChatRequest, headers: Mapping[str, str] | None = None
    ) -> RoutingResult | None:
        """``aroute``'s result when routing would not wait for anything (the config runs no
        model and the text is short enough for the event loop), else None (await ``aroute``)."""
        return self._engine.route_inline(body, headers)

    def close(self) -> None:
        """Stop the worker threads (loaded models stay in the registry)."""
        self._pool.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
