"""What a client asked for, read from Envoy's request headers and body, or why it is refused.

``classify_endpoint`` maps ``:method``/``:path`` to what vsr does with it; ``parse_chat_body`` turns
a buffered body into the JSON object the router edits. Both raise ``RequestRejected`` with the HTTP
status and an OpenAI-style message and code: the service answers that directly and forwards nothing.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"


class Endpoint(enum.Enum):
    CHAT_COMPLETIONS = "chat_completions"
    MODELS = "models"


class RequestRejected(Exception):
    """A client error: answered with ``status`` and an OpenAI error body; ``reason`` is the metric
    label (a fixed set: see ``observability.metrics.ERRORS``)."""

    def __init__(self, status: int, message: str, code: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.reason = reason

    @property
    def error_type(self) -> str:
        return "invalid_request_error" if self.status < 500 else "server_error"


def classify_endpoint(method: str, path: str) -> Endpoint:
    """The endpoint a request targets; anything else is a 404 (or 405 for a wrong method)."""
    bare_path = path.split("?", 1)[0].rstrip("/") or "/"
    expected = {
        CHAT_COMPLETIONS_PATH: ("POST", Endpoint.CHAT_COMPLETIONS),
        MODELS_PATH: ("GET", Endpoint.MODELS),
    }
    if bare_path not in expected:
        raise RequestRejected(
            404,
            f"Unknown path {bare_path!r}: vsr serves POST {CHAT_COMPLETIONS_PATH} and "
            f"GET {MODELS_PATH}",
            "unknown_path",
            "unknown_path",
        )
    allowed_method, endpoint = expected[bare_path]
    if method.upper() != allowed_method:
        raise RequestRejected(
            405,
            f"Method {method} is not allowed on {bare_path}; use {allowed_method}",
            "method_not_allowed",
            "method_not_allowed",
        )
    return endpoint


@dataclass(frozen=True)
class ChatRequest:
    """A parsed chat-completions body; ``body`` is the object the router edits in place."""

    body: dict[str, Any]
    stream: bool
    model: str | None


def body_too_large(size: int, limit: int) -> RequestRejected:
    return RequestRejected(
        413,
        f"Request body is {size} bytes or more; the limit is {limit} bytes",
        "request_too_large",
        "body_too_large",
    )


def parse_chat_body(raw: bytes, limit: int) -> ChatRequest:
    """Validate the shape vsr relies on; every other field is left for the backend to judge."""
    if len(raw) > limit:
        raise body_too_large(len(raw), limit)
    if not raw.strip():
        raise RequestRejected(
            400, "Request body is empty; expected a JSON object", "invalid_json", "invalid_json"
        )
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise RequestRejected(
            400, f"Request body is not valid JSON: {error}", "invalid_json", "invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise RequestRejected(
            400,
            f"Request body must be a JSON object, got a JSON {type(body).__name__}",
            "invalid_json",
            "invalid_json",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestRejected(
            400,
            "'messages' must be a non-empty list of messages",
            "invalid_messages",
            "invalid_request",
        )
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestRejected(400, "'model' must be a string", "invalid_model", "invalid_request")
    return ChatRequest(body=body, stream=body.get("stream") is True, model=model)
