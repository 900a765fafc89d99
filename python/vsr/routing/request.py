"""The one request model: an OpenAI chat-completions body, parsed and checked once.

``parse_chat_request`` (raw bytes from the ext_proc server) and ``ChatRequest.from_body`` (a dict
from the offline API) both end in ``ChatRequest``; everything downstream reads it and nothing
parses the body again. A body vsr cannot route raises ``RequestError`` with the HTTP status, an
OpenAI error code and a metric reason, which every transport answers the same way.

What is normalised here, so no later step can fail on it: lone UTF-16 surrogates (JSON may spell
``"\\ud800"``, which no UTF-8 encoder or tokenizer accepts) become U+FFFD in every string of the
body, as a lenient JSON decoder would do; the ``stream`` flag is read the way OpenAI-compatible
servers read it (``"true"`` streams).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vsr.config.schema import TextSelection
from vsr.errors import VsrError
from vsr.routing import json_codec
from vsr.wire import LONE_SURROGATE, replace_lone_surrogates

# Roles whose messages count as instructions (the system prompt).
SYSTEM_ROLES = ("system", "developer")
# Roles whose messages are not a user's words: the system prompt (read on its own), the model's
# own turns and tool (or legacy function) results. Every other role, a misspelt or custom one
# ("User", "human") or none at all, is a user turn: model servers hand any role to the chat
# template (vLLM accepts any string), which renders its text for the model to read.
NON_USER_ROLES = frozenset({*SYSTEM_ROLES, "assistant", "tool", "function"})
# The fields of a content part that model servers render as text (vLLM: "text" of the text,
# input_text and output_text parts, "refusal" and "thinking"); a bare string in the list is
# text too. Read whatever the part's type says, so no spelling of a part hides its text.
PART_TEXT_FIELDS = ("text", "refusal", "thinking")

# Limits on the body's shape; a client exceeding them gets a 400, never a crash.
MAX_JSON_DEPTH = 64
MAX_MODEL_NAME_CHARS = 256

# JSON spells a lone surrogate as an escape; a body without one cannot hold one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
# Printable model names only: a CR/LF in a name would end up in a header.
_MODEL_NAME = re.compile(r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$")
# How OpenAI-compatible servers (pydantic's lax bool) read a boolean sent as a string.
_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}


class RequestError(VsrError):
    """A request body vsr cannot route; answered with ``status`` and an OpenAI error body.

    ``code`` is the OpenAI error code the client sees; ``reason`` is the metric label (a fixed
    set, see ``observability.metrics``)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        code: str = "invalid_request",
        reason: str = "invalid_request",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.reason = reason
        self.param = param


def body_too_large(size: int, limit: int) -> RequestError:
    return RequestError(
        f"Request body is {size} bytes or more; the limit is {limit} bytes",
        status=413,
        code="request_too_large",
        reason="body_too_large",
    )


@dataclass(frozen=True)
class ChatRequest:
    """A checked chat-completions request.

    - ``body``: the JSON object, which routing edits in place (unknown fields survive).
    - ``messages``: ``body["messages"]``, every item an object.
    - ``model``: the model the client named (None when absent).
    - ``stream``: whether the client asked for server-sent events.
    - ``include_usage``: ``stream_options.include_usage`` (a streamed refusal then ends with a
      usage chunk, as a model's stream would).
    - ``plain``: the body was read by ``json_codec.loads`` as one ``orjson`` writes back with
      ``json``'s bytes (``json_codec.dumps``); False for a body from elsewhere.
    """

    body: dict[str, Any]
    messages: list[Mapping[str, Any]]
    model: str | None
    stream: bool
    include_usage: bool
    plain: bool = False

    @classmethod
    def from_body(cls, body: Any) -> ChatRequest:
        """Check a parsed body (the offline API's door); raises ``RequestError``."""
        if not isinstance(body, dict):
            raise RequestError(
                f"the request body must be a JSON object, got a JSON {type(body).__name__}",
                code="invalid_json",
                reason="invalid_json",
            )
        _check_depth(body)
        _replace_surrogates(body)
        return cls._checked(body)

    @classmethod
    def _checked(cls, body: dict[str, Any], plain: bool = False) -> ChatRequest:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(
                "'messages' must be a non-empty list of messages",
                code="invalid_messages",
                param="messages",
            )
        for index, message in enumerate(messages):
            if not isinstance(message, Mapping):
                raise RequestError(
                    f"messages[{index}] must be an object", param=f"messages[{index}]"
                )
            message_text(message.get("content"), f"messages[{index}].content")
        model = body.get("model")
        if model is not None:
            model = _check_model_name(model)
        stream = _lax_bool(body.get("stream", False), "stream")
        options = body.get("stream_options")
        include_usage = False
        if isinstance(options, Mapping):
            include_usage = _lax_bool(options.get("include_usage", False), "stream_options")
        return cls(body, messages, model, stream, stream and include_usage, plain)

    def routing_text(self, selection: TextSelection) -> str:
        """The text routing signals read: the selected messages joined by newlines."""
        return "\n".join(text for _, text in self.selected_messages(selection))

    def selected_messages(self, selection: TextSelection) -> list[tuple[int, str]]:
        """``(message index, text)`` of the messages ``selection`` picks, empty texts left out:
        the system messages first (when included), then tool results (when included) and the
        chosen user turns in conversation order, so the newest user turn comes last."""
        if (
            selection.user_turns == 1
            and not selection.include_tool
            and not selection.include_system
        ):
            # The default (the newest user turn): one scan from the end.
            for index in range(len(self.messages) - 1, -1, -1):
                if is_user_message(self.messages[index]):
                    text = message_text(self.messages[index].get("content"))
                    return [(index, text)] if text else []
            return []
        users = [i for i, m in enumerate(self.messages) if is_user_message(m)]
        if selection.user_turns:
            users = users[-selection.user_turns :]
        chosen = set(users)
        if selection.include_tool:
            chosen |= {i for i, m in enumerate(self.messages) if m.get("role") == "tool"}
        systems: list[int] = []
        if selection.include_system:
            systems = [i for i, m in enumerate(self.messages) if m.get("role") in SYSTEM_ROLES]
        order = [*systems, *sorted(chosen)]
        texts = [(i, message_text(self.messages[i].get("content"))) for i in order]
        return [(i, text) for i, text in texts if text]


def parse_chat_request(raw: bytes, limit: int) -> ChatRequest:
    """Parse and check a buffered body (the ext_proc server's door); raises ``RequestError``."""
    if len(raw) > limit:
        raise body_too_large(len(raw), limit)
    if not raw.strip():
        raise RequestError(
            "Request body is empty; expected a JSON object",
            code="invalid_json",
            reason="invalid_json",
        )
    try:
        # orjson where it reads exactly as json does, else json (its value, or its error).
        body, plain = json_codec.loads(raw)
    except RecursionError:
        raise _too_deep() from None
    except (UnicodeDecodeError, ValueError) as error:
        raise RequestError(
            f"Request body is not valid JSON: {error}", code="invalid_json", reason="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise RequestError(
            f"Request body must be a JSON object, got a JSON {type(body).__name__}",
            code="invalid_json",
            reason="invalid_json",
        )
    # Brackets bound the nesting depth: most bodies skip the walk.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:
        _check_depth(body)
    if _SURROGATE_ESCAPE.search(raw):
        _replace_surrogates(body)
    return ChatRequest._checked(body, plain)


def is_user_message(message: Mapping[str, Any]) -> bool:
    """Whether a model reads ``message`` as a user turn (see ``NON_USER_ROLES``)."""
    role = message.get("role")
    return not (isinstance(role, str) and role in NON_USER_ROLES)


def message_text(content: Any, where: str = "content") -> str:
    """A message's text: a plain string, or the text of OpenAI content parts (``PART_TEXT_FIELDS``
    and bare strings) joined by newlines (image and audio parts carry no text to classify)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_part_texts(content))
    raise RequestError(
        f"{where} must be a string or a list of content parts, got a JSON {type(content).__name__}",
        param=where,
    )


def joined_parts(content: Any) -> str | None:
    """A content list's text parts joined with nothing between them, as chat templates that loop
    over the parts render them (vLLM joins them with newlines for the others, ``message_text``),
    so a number split across two parts is one number; None when there are not two text parts."""
    if not isinstance(content, list):
        return None
    texts = _part_texts(content)
    return "".join(texts) if len(texts) > 1 else None


def _part_texts(content: list[Any]) -> list[str]:
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping):
            texts += (part[f] for f in PART_TEXT_FIELDS if isinstance(part.get(f), str))
    return texts


def _check_model_name(model: Any) -> str:
    if not isinstance(model, str):
        raise RequestError(
            f"'model' must be a string, got a JSON {type(model).__name__}",
            code="invalid_model",
            param="model",
        )
    if len(model) > MAX_MODEL_NAME_CHARS:
        raise RequestError(
            f"'model' is {len(model)} characters long; the limit is {MAX_MODEL_NAME_CHARS}",
            code="invalid_model",
            param="model",
        )
    if not _MODEL_NAME.match(model):
        raise RequestError(
            "'model' must be printable ASCII without control characters or surrounding spaces",
            code="invalid_model",
            param="model",
        )
    return model


def _lax_bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise RequestError(f"'{field}' must be a boolean, got {value!r:.40}", param=field)


def _too_deep() -> RequestError:
    return RequestError(
        f"Request body is nested more than {MAX_JSON_DEPTH} levels deep",
        code="invalid_json",
        reason="invalid_json",
    )


def _check_depth(body: Any) -> None:
    """Iterative, so a deep body cannot exhaust the interpreter's stack."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        if isinstance(value, dict):
            stack.extend((child, depth + 1) for child in value.values() if _nests(child))
        elif isinstance(value, list):
            stack.extend((child, depth + 1) for child in value if _nests(child))


def _nests(value: Any) -> bool:
    return isinstance(value, dict | list)


def _replace_surrogates(body: dict[str, Any]) -> None:
    """Every string (keys too) with lone surrogates replaced, in place; iterative."""
    stack: list[Any] = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key in list(value):
                child = value[key]
                if isinstance(key, str) and LONE_SURROGATE.search(key):
                    del value[key]
                    key = replace_lone_surrogates(key)
                    value[key] = child
                if isinstance(child, str):
                    value[key] = replace_lone_surrogates(child)
                elif _nests(child):
                    stack.append(child)
        elif isinstance(value, list):
            for index, child in enumerate(value):
                if isinstance(child, str):
                    value[index] = replace_lone_surrogates(child)
                elif _nests(child):
                    stack.append(child)
