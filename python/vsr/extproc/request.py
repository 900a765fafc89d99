"""Which endpoint a request targets, read from Envoy's ``:method`` and ``:path`` headers.

The body itself is parsed and checked once, by ``vsr.routing.request`` (the one request model);
a refused request raises ``RequestError`` there or here, and the service answers it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import unquote

from vsr.routing.request import RequestError

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"


class Endpoint(enum.Enum):
    CHAT_COMPLETIONS = "chat_completions"
    MODELS = "models"  # GET /v1/models
    MODEL = "model"  # GET /v1/models/{id}


@dataclass(frozen=True)
class Target:
    endpoint: Endpoint
    model_id: str | None = None


def classify_endpoint(method: str, path: str) -> Target:
    """The endpoint a request targets; anything else is a 404 (or 405 for a wrong method)."""
    bare_path = path.split("?", 1)[0].rstrip("/") or "/"
    if bare_path.startswith(MODELS_PATH + "/"):
        _require(method, "GET", bare_path)
        return Target(Endpoint.MODEL, unquote(bare_path[len(MODELS_PATH) + 1 :]))
    expected = _FIXED_PATHS.get(bare_path)
    if expected is None:
        raise RequestError(
            f"Unknown path {bare_path[:200]!r}: vsr serves POST {CHAT_COMPLETIONS_PATH}, "
            f"GET {MODELS_PATH} and GET {MODELS_PATH}/{{model}}",
            status=404,
            code="unknown_path",
            reason="unknown_path",
        )
    allowed_method, target = expected
    if method != allowed_method:  # the common case skips upper()
        _require(method, allowed_method, bare_path)
    return target


# The paths without a parameter, their method and their (shared, frozen) target.
_FIXED_PATHS = {
    CHAT_COMPLETIONS_PATH: ("POST", Target(Endpoint.CHAT_COMPLETIONS)),
    MODELS_PATH: ("GET", Target(Endpoint.MODELS)),
}


def _require(method: str, allowed: str, path: str) -> None:
    if method.upper() != allowed:
        raise RequestError(
            f"Method {method[:20]} is not allowed on {path[:200]}; use {allowed}",
            status=405,
            code="method_not_allowed",
            reason="method_not_allowed",
        )
