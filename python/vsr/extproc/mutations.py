"""Pure builders of Envoy ext_proc responses: header and body mutations, immediate responses.

Nothing here does I/O or keeps state, so every builder is tested without a server. Header values
always go in ``raw_value`` (bytes), which is what Envoy reads when it sends ``raw_value`` itself;
setting both ``value`` and ``raw_value`` is rejected by Envoy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from envoy.type.v3 import http_status_pb2

from vsr.wire import (
    HEADER_CONTENT_LENGTH,
    HEADER_CONTENT_TYPE,
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


def header_option(name: str, value: str, *, append: bool = False) -> Any:
    """One header to set (or append to), with the value in ``raw_value``."""
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=name, raw_value=value.encode("utf-8")),
        append_action=_APPEND if append else _OVERWRITE,
    )


def header_mutation(
    set_headers: Mapping[str, str] | None = None,
    add_headers: Iterable[tuple[str, str]] = (),
    remove_headers: Iterable[str] = (),
) -> Any:
    """A ``HeaderMutation``: overwrite ``set_headers``, append ``add_headers``, drop the rest."""
    options = [header_option(name, value) for name, value in (set_headers or {}).items()]
    options += [header_option(name, value, append=True) for name, value in add_headers]
    return ext_proc.HeaderMutation(set_headers=options, remove_headers=list(remove_headers))


def _common(
    header_edit: Any | None = None, body: bytes | None = None, clear_route_cache: bool = False
) -> Any:
    common = ext_proc.CommonResponse(clear_route_cache=clear_route_cache)
    if header_edit is not None:
        common.header_mutation.CopyFrom(header_edit)
    if body is not None:
        common.body_mutation.CopyFrom(ext_proc.BodyMutation(body=body))
    return common


def request_headers_response(remove_headers: Sequence[str] = ()) -> Any:
    """Let the request headers through, minus the headers a client may not send."""
    edit = header_mutation(remove_headers=remove_headers) if remove_headers else None
    return ext_proc.ProcessingResponse(
        request_headers=ext_proc.HeadersResponse(response=_common(edit))
    )


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
    if body is not None:
        headers[HEADER_CONTENT_LENGTH] = str(len(body))
    edit = header_mutation(headers, add_headers, remove_headers)
    return ext_proc.ProcessingResponse(
        request_body=ext_proc.BodyResponse(
            response=_common(edit, body=body, clear_route_cache=clear_route_cache)
        )
    )


def held_chunk_response() -> Any:
    """The answer to a STREAMED request-body chunk that vsr holds back until the body is complete.

    The chunk is cleared on its way upstream; the final chunk's answer carries the whole (possibly
    rewritten) body, so the backend never sees the original and the rewrite mixed.
    """
    common = ext_proc.CommonResponse()
    common.body_mutation.CopyFrom(ext_proc.BodyMutation(clear_body=True))
    return ext_proc.ProcessingResponse(request_body=ext_proc.BodyResponse(response=common))


def response_headers_response(
    set_headers: Mapping[str, str] | None = None,
    remove_headers: Sequence[str] = (),
    *,
    mode_override: Any | None = None,
) -> Any:
    """Response header edits, and optionally a new processing mode for the response body."""
    edit = (
        header_mutation(set_headers, (), remove_headers) if set_headers or remove_headers else None
    )
    response = ext_proc.ProcessingResponse(
        response_headers=ext_proc.HeadersResponse(response=_common(edit))
    )
    if mode_override is not None:
        response.mode_override.CopyFrom(mode_override)
    return response


def response_body_response(body: bytes | None = None) -> Any:
    """Let a response body (chunk) through: unchanged (None), or replaced by ``body`` (a STREAMED
    chunk with vsr's usage chunk cut out; empty clears the chunk)."""
    common = _common()
    if body is not None:
        mutation = (
            ext_proc.BodyMutation(body=body) if body else ext_proc.BodyMutation(clear_body=True)
        )
        common.body_mutation.CopyFrom(mutation)
    return ext_proc.ProcessingResponse(response_body=ext_proc.BodyResponse(response=common))


def trailers_response(phase: str) -> Any:
    """Let request or response trailers through unchanged (``phase`` is the oneof field name)."""
    return ext_proc.ProcessingResponse(**{phase: ext_proc.TrailersResponse()})


def streamed_response_body_mode() -> Any:
    """A ``mode_override`` that switches the response body to STREAMED (needs allow_mode_override).

    Only for features that must read a streamed (SSE) response; everything else leaves the response
    body alone so SSE reaches the client untouched and unbuffered.
    """
    return processing_mode_pb2.ProcessingMode(
        response_body_mode=processing_mode_pb2.ProcessingMode.STREAMED
    )


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
