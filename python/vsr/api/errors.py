"""Errors of the HTTP API, answered in OpenAI's shape: ``{"error": {"message", "type", "param",
"code"}}`` (the body builder is ``vsr.wire.error_payload``, shared with the ext_proc server).

Handlers raise ``ApiError``; FastAPI's own failures (a body that is not JSON, a field of the wrong
type, an unknown path or method) are turned into the same shape here, so a client sees one error
format on every path, with the offending field in ``param``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vsr.wire import error_payload

log = structlog.get_logger(__name__)


class ApiError(Exception):
    """A request the API refuses: the HTTP status, a machine-readable ``code`` and a sentence."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param


def error_response(
    status: int, code: str, message: str, param: str | None = None, headers: Any = None
) -> JSONResponse:
    return JSONResponse(
        error_payload(message, code, status=status, param=param),
        status_code=status,
        headers=headers,
    )


def _field_path(location: Sequence[Any]) -> str | None:
    """``("body", "texts", 3)`` -> ``texts[3]``; None for the body as a whole."""
    path = ""
    for part in location[1:] if location and location[0] == "body" else location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or None


# pydantic error types -> our codes; anything else is ``invalid_value``.
_CODES = {
    "json_invalid": "invalid_json",
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "literal_error": "invalid_value",
}


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0]
    param = _field_path(first.get("loc", ()))
    code = _CODES.get(str(first.get("type")), "invalid_value")
    message = str(first.get("msg", "invalid request"))
    if code == "invalid_json":
        return error_response(400, code, "the request body is not valid JSON")
    if param is None:
        if code == "missing_field":
            return error_response(400, "missing_body", "the request needs a JSON object body")
        return error_response(
            400, "invalid_body", f"the request body must be a JSON object: {message}"
        )
    if param == "task_type" and code == "invalid_value":
        code = "unknown_task"
    # pydantic prefixes custom checks with "Value error, "; the field name reads better.
    message = message.removeprefix("Value error, ")
    return error_response(400, code, f"{param}: {message}", param)


async def _api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return error_response(error.status, error.code, error.message, error.param, headers)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 404:
        return error_response(404, "unknown_path", f"no API path {request.url.path}")
    if error.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        return error_response(405, "method_not_allowed", message)
    return error_response(error.status_code, "http_error", str(error.detail))


async def _internal_error(request: Request, error: Exception) -> JSONResponse:
    """A bug inside vsr: logged with its traceback, answered as a 500 in OpenAI form (as the chat
    path answers one) without its internals, instead of uvicorn's bare-text 500."""
    log.exception("api_internal_error", path=request.url.path, error_type=type(error).__name__)
    return error_response(500, "internal_error", f"vsr failed to process {request.url.path}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _internal_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
