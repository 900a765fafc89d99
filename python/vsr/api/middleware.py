"""What every request to the API port passes first: the bearer token and the body size limit.

Plain ASGI (not FastAPI dependencies) so the checks hold on every path, the OpenAPI document and
the playground included, and a too-large body is refused while it streams in rather than after
it has been buffered whole.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from vsr.wire import error_payload, json_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# Probes and the static pages carry no data: they stay open when a token is required (the
# playground asks for the token and sends it with its API calls).
PUBLIC_PATHS = ("/health", "/ready", "/", "/ui", "/docs", "/openapi.json")
PUBLIC_PREFIXES = ("/ui/", "/docs/")


class _BodyTooLarge(Exception):
    pass


async def _send_error(
    send: Send, status: int, code: str, message: str, extra_headers: list[tuple[bytes, bytes]]
) -> None:
    body = json_bytes(error_payload(message, code, status=status))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ApiGuard:
    """Bearer-token auth (when ``token`` is set) and a request body limit, around ``app``."""

    def __init__(self, app: App, *, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode() if token else None
        self.max_body_bytes = max_body_bytes

    def _authorised(self, scope: Scope) -> bool:
        if self._expected is None:
            return True
        path = str(scope.get("path", ""))
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return True
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                # Constant time, so the token cannot be guessed byte by byte from timings.
                return hmac.compare_digest(bytes(value), self._expected)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._authorised(scope):
            message = "this API needs a bearer token: send 'Authorization: Bearer <token>'"
            await _send_error(
                send, 401, "invalid_api_key", message, [(b"www-authenticate", b"Bearer")]
            )
            return
        scope = _as_json(scope)
        limit = self.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _send_error(send, 413, "request_too_large", _too_large(limit), [])
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_error(send, 413, "request_too_large", _too_large(limit), [])


def _as_json(scope: Scope) -> Scope:
    """Every request body of this API is JSON, whatever the client labels it: ``curl -d`` sends
    ``application/x-www-form-urlencoded``, and the reference router ignores the content type."""
    if scope.get("method") not in ("POST", "PUT", "PATCH"):
        return scope
    headers = [(k, v) for k, v in scope.get("headers", ()) if k != b"content-type"]
    return {**scope, "headers": [*headers, (b"content-type", b"application/json")]}


def _too_large(limit: int) -> str:
    return f"the request body is larger than this server accepts ({limit} bytes)"
