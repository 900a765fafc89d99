"""Edits to the request body, made in place on the parsed JSON so every other field survives.

Each function returns whether it changed the body; none of them adds or reorders anything it does
not own.
"""

from __future__ import annotations

from typing import Any, Literal

from vsr.config.schema import ChatTemplateKwargsFamily, ReasoningFamily
from vsr.routing.request import SYSTEM_ROLES, RequestError, message_text


def set_model(body: dict[str, Any], model: str) -> bool:
    if body.get("model") == model:
        return False
    body["model"] = model
    return True


def apply_reasoning(
    body: dict[str, Any], family: ReasoningFamily, enabled: bool, effort: str | None
) -> bool:
    """Carry the reasoning choice in the way the model's family reads it.

    ``chat_template_kwargs``: ``chat_template_kwargs.<parameter>`` is set to true, or to an
    explicit false when off (some templates think by default, so leaving it out is not "off").
    ``reasoning_effort``: ``<parameter>`` is set to the effort when on, and removed when off.
    """
    if isinstance(family, ChatTemplateKwargsFamily):
        kwargs = body.get("chat_template_kwargs")
        if kwargs is None:
            kwargs = body["chat_template_kwargs"] = {}
            created = True
        elif isinstance(kwargs, dict):
            created = False
        else:
            raise RequestError('"chat_template_kwargs" must be an object')
        before = kwargs.get(family.parameter, _MISSING)
        kwargs[family.parameter] = enabled
        return created or before is not enabled
    if enabled and effort is not None:
        if body.get(family.parameter) == effort:
            return False
        body[family.parameter] = effort
        return True
    if not enabled and family.parameter in body:
        del body[family.parameter]
        return True
    return False


_MISSING = object()


def apply_system_prompt(
    body: dict[str, Any], prompt: str, mode: Literal["replace", "insert"]
) -> bool:
    """``replace``: the first system (or ``developer``) message's content becomes ``prompt``;
    ``insert``: ``prompt`` goes in front of it (blank line between; a text part in front of
    content parts, which stay as they are). Without a system message one is added first."""
    messages: list[Any] = body["messages"]
    for message in messages:
        if isinstance(message, dict) and message.get("role") in SYSTEM_ROLES:
            content = message.get("content")
            if mode == "insert" and isinstance(content, list) and content:
                message["content"] = [{"type": "text", "text": prompt}, *content]
                return True
            current = message_text(content)
            new = prompt if mode == "replace" or not current else f"{prompt}\n\n{current}"
            if message.get("content") == new:
                return False
            message["content"] = new
            return True
    messages.insert(0, {"role": "system", "content": prompt})
    return True
