"""Pure builders of Envoy ext_proc responses: header and body mutations, immediate responses.

Nothing here does I/O or keeps state, so every builder is tested without a server. Header values
always go in ``raw_value`` (bytes), which is what Envoy reads when it sends ``raw_value`` itself;
setting both ``value`` and ``raw_value`` is rejected by Envoy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from envoy.type.v3 import http_status_pb2

from vsr.wire import (
    HEADER_CONTENT_LENGTH,
    HEADER_CONTENT_TYPE,
    HEADER_TRACEPARENT,
    JSON_CONTENT_TYPE,
    SSE_CONTENT_TYPE,
    content_filter_completion,
    content_filter_stream,
    error_payload,
    json_bytes,
    models_list_payload,
)

__all__ = ["json_bytes", "models_list_payload"]

_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_APPEND = base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD

# Built header options by (name, value, append). Most of what vsr sets repeats from request to
# request (x-selected-model, the x-vsr-* report), and a repeated field copies what it is given,
# so one built option serves every answer: building it (two nested messages) costs more than
# the rest of an answer. Bounded, oldest out first, since a few values (content-length,
# traceparent) rarely repeat.
_OPTIONS: dict[tuple[str, str, bool], Any] = {}
_MAX_OPTIONS = 4096


# The answers that repeat from request to request (the same edits; a request body's bytes are
# set apart), serialized once by everything that makes them: parsing the bytes back gives each
# answer its own message (an answer may be edited without touching the next) at a tenth of what
# building it costs. Bounded like _OPTIONS.
_ANSWERS: dict[tuple[Any, ...], bytes] = {}
_MAX_ANSWERS = 4096
_ProcessingResponse = ext_proc.ProcessingResponse


def _answer(key: tuple[Any, ...], build: Callable[..., Any], *args: Any) -> Any:
    """``build(*args)``, from the serialized answer of ``key`` when one was built before."""
    data = _ANSWERS.get(key)
    if data is None:
        data = build(*args).SerializeToString()
        if len(_ANSWERS) >= _MAX_ANSWERS:
            del _ANSWERS[next(iter(_ANSWERS))]
        _ANSWERS[key] = data
    return _ProcessingResponse.FromString(data)


def header_option(name: str, value: str, *, append: bool = False) -> Any:
    """One header to set (or append to), with the value in ``raw_value``."""
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=name, raw_value=value.encode("utf-8")),
        append_action=_APPEND if append else _OVERWRITE,
    )


def _option(name: str, value: str, append: bool = False) -> Any:
    """``header_option``, shared: only ever copied into an answer, never changed."""
    key = (name, value, append)
    option = _OPTIONS.get(key)
    if option is None:
        option = header_option(name, value, append=append)
        if len(_OPTIONS) >= _MAX_OPTIONS:
            del _OPTIONS[next(iter(_OPTIONS))]
        _OPTIONS[key] = option
    return option


def _fill_mutation(
    mutation: Any,
    set_headers: Mapping[str, str] | None,
    add_headers: Iterable[tuple[str, str]],
    remove_headers: Iterable[str],
) -> None:
    """Write the edits into ``mutation`` (a ``HeaderMutation`` in its parent: filled in place,
    since building one apart and copying it in costs twice)."""
    mutation.SetInParent()
    options = [_option(name, value) for name, value in set_headers.items()] if set_headers else []
    options += [_option(name, value, True) for name, value in add_headers]
    if options:
        mutation.set_headers.extend(options)
    if remove_headers:
        mutation.remove_headers.extend(remove_headers)


def header_mutation(
    set_headers: Mapping[str, str] | None = None,
    add_headers: Iterable[tuple[str, str]] = (),
    remove_headers: Iterable[str] = (),
) -> Any:
    """A ``HeaderMutation``: overwrite ``set_headers``, append ``add_headers``, drop the rest."""
    mutation = ext_proc.HeaderMutation()
    _fill_mutation(mutation, set_headers, add_headers, remove_headers)
    return mutation


def request_headers_response(remove_headers: Sequence[str] = ()) -> Any:
    """Let the request headers through, minus the headers a client may not send."""
    return _answer(("request_headers", tuple(remove_headers)), _request_headers, remove_headers)


def _request_headers(remove_headers: Sequence[str]) -> Any:
    response = ext_proc.ProcessingResponse()
    common = response.request_headers.response
    common.SetInParent()
    if remove_headers:
        _fill_mutation(common.header_mutation, None, (), remove_headers)
    return response


def request_body_response(
    *,
    body: bytes | None = None,
    set_headers: Mapping[str, str] | None = None,
    add_headers: Iterable[tuple[str, str]] = (),
    remove_headers: Iterable[str] = (),
    clear_route_cache: bool = False,
) -> Any:
    """The answer to a buffered request body: header edits, and the new body when it changed.

    A replaced body gets a matching ``content-length``: Envoy forwards the header as received, and a
    stale length makes the backend read a truncated or hanging body. ``clear_route_cache`` makes
    Envoy match routes again, now on the ``x-selected-model`` set here.
    """
    headers = dict(set_headers or {})
    add, remove = tuple(add_headers), tuple(remove_headers)
    if HEADER_TRACEPARENT in headers or (
        body is not None and (add or HEADER_CONTENT_LENGTH in headers)
    ):
        # A traceparent is new on every request (nothing to share); content-length could not go
        # last of the set headers on a shared answer: build this one whole.
        if body is not None:
            headers[HEADER_CONTENT_LENGTH] = str(len(body))
        response = _request_body(tuple(headers.items()), add, remove, clear_route_cache)
    else:
        # The edits repeat from request to request; the body's length and bytes do not: they
        # go on the parsed answer, content-length last of the set headers (as built whole).
        edits = (tuple(headers.items()), add, remove, clear_route_cache)
        response = _answer(("request_body", *edits), _request_body, *edits)
        if body is not None:
            response.request_body.response.header_mutation.set_headers.append(
                _option(HEADER_CONTENT_LENGTH, str(len(body)))
            )
    if body is not None:
        response.request_body.response.body_mutation.body = body
    return response


def _request_body(
    headers: tuple[tuple[str, str], ...],
    add_headers: tuple[tuple[str, str], ...],
    remove_headers: tuple[str, ...],
    clear_route_cache: bool,
) -> Any:
    response = ext_proc.ProcessingResponse()
    common = response.request_body.response
    if clear_route_cache:
        common.clear_route_cache = True
    _fill_mutation(common.header_mutation, dict(headers), add_headers, remove_headers)
    return response


def held_chunk_response() -> Any:
    """The answer to a STREAMED request-body chunk that vsr holds back until the body is complete.

    The chunk is cleared on its way upstream; the final chunk's answer carries the whole (possibly
    rewritten) body, so the backend never sees the original and the rewrite mixed.
    """
    response = ext_proc.ProcessingResponse()
    response.request_body.response.body_mutation.clear_body = True
    return response


def response_headers_response(
    set_headers: Mapping[str, str] | None = None,
    remove_headers: Sequence[str] = (),
    *,
    mode_override: Any | None = None,
) -> Any:
    """Response header edits, and optionally a new processing mode for the response body."""
    if (
        mode_override is not None
        and mode_override is not _STREAMED_RESPONSE_BODY
        and mode_override is not _BUFFERED_RESPONSE_BODY
    ):
        # Not one of the shared overrides: build this answer whole, unshared.
        return _response_headers(set_headers, remove_headers, mode_override)
    key = (
        "response_headers",
        tuple(set_headers.items()) if set_headers else (),
        tuple(remove_headers),
        None if mode_override is None else mode_override.response_body_mode,
    )
    return _answer(key, _response_headers, set_headers, remove_headers, mode_override)


def _response_headers(
    set_headers: Mapping[str, str] | None, remove_headers: Sequence[str], mode_override: Any
) -> Any:
    response = ext_proc.ProcessingResponse()
    common = response.response_headers.response
    common.SetInParent()
    if set_headers or remove_headers:
        _fill_mutation(common.header_mutation, set_headers, (), remove_headers)
    if mode_override is not None:
        response.mode_override.CopyFrom(mode_override)
    return response


def response_body_response(body: bytes | None = None) -> Any:
    """Let a response body (chunk) through: unchanged (None), or replaced by ``body`` (a STREAMED
    chunk with vsr's usage chunk cut out; empty clears the chunk)."""
    if body is None:
        return _answer(("response_body",), _response_body, None)
    return _response_body(body)


def _response_body(body: bytes | None) -> Any:
    response = ext_proc.ProcessingResponse()
    common = response.response_body.response
    common.SetInParent()
    if body is not None:
        if body:
            common.body_mutation.body = body
        else:
            common.body_mutation.clear_body = True
    return response


def trailers_response(phase: str) -> Any:
    """Let request or response trailers through unchanged (``phase`` is the oneof field name)."""
    return ext_proc.ProcessingResponse(**{phase: ext_proc.TrailersResponse()})


_STREAMED_RESPONSE_BODY = processing_mode_pb2.ProcessingMode(
    response_body_mode=processing_mode_pb2.ProcessingMode.STREAMED
)
_BUFFERED_RESPONSE_BODY = processing_mode_pb2.ProcessingMode(
    response_body_mode=processing_mode_pb2.ProcessingMode.BUFFERED
)


def streamed_response_body_mode() -> Any:
    """A ``mode_override`` that switches the response body to STREAMED (needs allow_mode_override).

    Only for features that must read a response body: each chunk passes on as soon as it is
    answered, so SSE reaches the client unbuffered. One shared message: answers copy it
    (``CopyFrom``), never change it.
    """
    return _STREAMED_RESPONSE_BODY


def buffered_response_body_mode() -> Any:
    """A ``mode_override`` that switches the response body to BUFFERED (needs allow_mode_override).

    Envoy holds the body until it ends and sends it as one message, where STREAMED sends a body
    arriving after this answer as a data chunk plus an empty end chunk (HTTP/1 codec).
    Only for a body of known length well below Envoy's buffer limit: past it Envoy replaces the
    response with a 500. Shared like ``streamed_response_body_mode``.
    """
    return _BUFFERED_RESPONSE_BODY


def immediate_response(
    status: int,
    body: bytes,
    *,
    content_type: str = JSON_CONTENT_TYPE,
    headers: Mapping[str, str] | None = None,
    details: str = "",
) -> Any:
    """Answer the client directly: Envoy sends this response and nothing goes upstream."""
    all_headers = {HEADER_CONTENT_TYPE: content_type, **(headers or {})}
    return ext_proc.ProcessingResponse(
        immediate_response=ext_proc.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=status),
            headers=header_mutation(all_headers),
            body=body,
            details=details,
        )
    )


def openai_error(
    status: int,
    message: str,
    code: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """An immediate OpenAI-shaped error: ``{"error": {"message", "type", "param", "code"}}``."""
    body = json_bytes(error_payload(message, code, status=status))
    return immediate_response(status, body, headers=headers, details=f"vsr_{code}")


def refusal_response(
    model: str,
    message: str,
    *,
    stream: bool,
    headers: Mapping[str, str],
    include_usage: bool = False,
) -> Any:
    """A block as HTTP 200: a completion (or SSE when the client streams) with block headers."""
    if stream:
        body = content_filter_stream(model, message, include_usage=include_usage)
        return immediate_response(
            200, body, content_type=SSE_CONTENT_TYPE, headers=headers, details="vsr_blocked"
        )
    body = content_filter_completion(model, message)
    return immediate_response(200, body, headers=headers, details="vsr_blocked")


def models_list_response(model_names: Sequence[str], created: int, owner: str = "vsr") -> Any:
    """``GET /v1/models`` answered by vsr: an OpenAI ``list`` of ``model`` objects."""
    return immediate_response(
        200, models_list_payload(model_names, created, owner), details="vsr_models"
    )
