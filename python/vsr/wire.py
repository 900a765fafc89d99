"""One home for what vsr puts on the wire: header names, refusal texts and OpenAI payload shapes
(and how a client's text is normalised: lone surrogates).

Used by the ext_proc server, the HTTP API and routing, so a header is spelt once and an error body
has one shape everywhere. Pure Python: nothing here knows Envoy's protobufs (``extproc.mutations``
wraps these payloads for Envoy) or the native core.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

# A lone UTF-16 surrogate: JSON may spell one ("\\ud800") though it has no UTF-8 form, so no
# tokenizer, writer or upstream server takes it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_lone_surrogates(text: str) -> str:
    """``text`` with every lone UTF-16 surrogate replaced by U+FFFD, one character for one (so
    offsets hold): the one normalisation of every text a client sends, on the chat path, the
    HTTP API, the Python API and offline files alike."""
    return LONE_SURROGATE.sub("\ufffd", text)


# Request headers.
HEADER_SELECTED_MODEL = "x-selected-model"  # what the gateway routes on (set by vsr only)
HEADER_REQUEST_ID = "x-request-id"
HEADER_CONTENT_LENGTH = "content-length"
HEADER_CONTENT_TYPE = "content-type"
HEADER_ACCEPT = "accept"
HEADER_RETRY_AFTER = "retry-after"

# Response headers vsr reports (names match vLLM Semantic Router, which the deployment guides
# show). Client-sent copies of any ``x-vsr-*`` header are removed before routing.
VSR_HEADER_PREFIX = "x-vsr-"
HEADER_VSR_MODEL = "x-vsr-selected-model"
HEADER_VSR_CATEGORY = "x-vsr-selected-category"
HEADER_VSR_DECISION = "x-vsr-selected-decision"
HEADER_VSR_REASONING = "x-vsr-selected-reasoning"
HEADER_VSR_SYSTEM_PROMPT = "x-vsr-injected-system-prompt"
HEADER_VSR_JAILBREAK_BLOCKED = "x-vsr-jailbreak-blocked"
HEADER_VSR_JAILBREAK_TYPE = "x-vsr-jailbreak-type"
HEADER_VSR_JAILBREAK_CONFIDENCE = "x-vsr-jailbreak-confidence"
HEADER_VSR_PII_VIOLATION = "x-vsr-pii-violation"
HEADER_VSR_PII_TYPES = "x-vsr-pii-types"
HEADER_FAIL_OPEN = "x-vsr-fail-open"
HEADER_VSR_RESPONSE_PATH = "x-vsr-response-path"  # upstream | blocked | error | fail_open
# Debug headers (sent unless the config requires the request header ``x-vsr-debug: true``).
HEADER_VSR_CONFIDENCE = "x-vsr-selected-confidence"
HEADER_VSR_MATCHED_KEYWORDS = "x-vsr-matched-keywords"
HEADER_VSR_MATCHED_DOMAINS = "x-vsr-matched-domains"
HEADER_VSR_MATCHED_EMBEDDINGS = "x-vsr-matched-embeddings"
HEADER_VSR_CACHE_HIT = "x-vsr-cache-hit"  # "true" on an answer from the semantic cache
HEADER_VSR_CACHE_SIMILARITY = "x-vsr-cache-similarity"
HEADER_VSR_DEBUG = "x-vsr-debug"  # request header: ask for the debug set
# W3C trace context (https://www.w3.org/TR/trace-context/), read from the request and sent upstream.
HEADER_TRACEPARENT = "traceparent"
HEADER_TRACESTATE = "tracestate"

JSON_CONTENT_TYPE = "application/json"
SSE_CONTENT_TYPE = "text/event-stream"

REFUSAL_MESSAGES = {
    "jailbreak": "This request was blocked by vsr's safety policy (jailbreak detected).",
    "pii": "This request was blocked by vsr's privacy policy (personal information detected).",
}


def json_bytes(payload: Any) -> bytes:
    """Compact UTF-8 JSON (the bytes vsr sends)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_type_for(status: int) -> str:
    """OpenAI's ``type`` for an HTTP status."""
    return "invalid_request_error" if status < 500 else "server_error"


def error_payload(
    message: str, code: str, *, status: int = 400, param: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``, as OpenAI answers errors."""
    return {
        "error": {"message": message, "type": error_type_for(status), "param": param, "code": code}
    }


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


_ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def content_filter_completion(model: str, message: str, created: int | None = None) -> bytes:
    """A whole ``chat.completion`` whose only choice is a refusal with ``content_filter``."""
    payload = {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": message},
                "finish_reason": "content_filter",
            }
        ],
        "usage": dict(_ZERO_USAGE),
    }
    return json_bytes(payload)


def content_filter_stream(
    model: str, message: str, created: int | None = None, *, include_usage: bool = False
) -> bytes:
    """The same refusal as server-sent events: a role+content chunk, a finish chunk, a usage
    chunk when the client asked for one (``stream_options.include_usage``), then ``[DONE]``."""
    identity = {
        "id": completion_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()) if created is None else created,
        "model": model,
    }
    chunks: list[dict[str, Any]] = [
        {
            **identity,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": message},
                    "finish_reason": None,
                }
            ],
        },
        {**identity, "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]},
    ]
    if include_usage:
        # OpenAI's last chunk when include_usage is set: no choices, the request's usage.
        chunks.append({**identity, "choices": [], "usage": dict(_ZERO_USAGE)})
    events = [b"data: " + json_bytes(chunk) + b"\n\n" for chunk in chunks]
    return b"".join(events) + b"data: [DONE]\n\n"


def model_object(name: str, created: int, owner: str = "vsr") -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": owner}


def models_list_payload(model_names: Sequence[str], created: int, owner: str = "vsr") -> bytes:
    """``GET /v1/models``: an OpenAI ``list`` of ``model`` objects."""
    return json_bytes(
        {"object": "list", "data": [model_object(name, created, owner) for name in model_names]}
    )


def response_path_headers(path: str, headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """``headers`` plus ``x-vsr-response-path``."""
    return {**(headers or {}), HEADER_VSR_RESPONSE_PATH: path}
