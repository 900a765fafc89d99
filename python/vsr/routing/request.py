"""Reading an OpenAI chat-completions body: the model asked for, and the text to classify."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vsr.config.schema import TextSelection
from vsr.errors import VsrError

# Roles whose messages count as instructions when ``include_system`` is set.
_SYSTEM_ROLES = ("system", "developer")


class RequestError(VsrError):
    """A request body vsr cannot route (not a chat-completions object); the message says why."""


def message_text(content: Any) -> str:
    """A message's text: a plain string, or the ``text`` parts of OpenAI content parts joined by
    newlines (image and audio parts carry no text to classify)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    raise RequestError(f"message content must be a string or a list of parts, got {content!r:.80}")


def check_body(body: Any) -> list[Any]:
    """The ``messages`` list of a chat-completions body, or RequestError."""
    if not isinstance(body, dict):
        raise RequestError(f"the request body must be a JSON object, got {type(body).__name__}")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise RequestError('the request body has no "messages" list (not a chat completion)')
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise RequestError(f"messages[{index}] must be an object")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(f'"model" must be a string, got {type(model).__name__}')
    return messages


def classified_text(messages: list[Any], selection: TextSelection) -> str:
    """The text the signals read: the most recent user message(s), optionally with the system
    prompt in front, joined by newlines."""
    user_texts = [
        message_text(message.get("content"))
        for message in messages
        if message.get("role") == "user"
    ]
    if selection.user_turns:
        user_texts = user_texts[-selection.user_turns :]
    parts = []
    if selection.include_system:
        parts = [
            message_text(message.get("content"))
            for message in messages
            if message.get("role") in _SYSTEM_ROLES
        ]
    return "\n".join(text for text in [*parts, *user_texts] if text)
