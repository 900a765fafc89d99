"""Body edits: model, reasoning fields, system prompt; everything else survives untouched."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vsr.config.schema import ChatTemplateKwargsFamily, ReasoningEffortFamily
from vsr.config.signals import TextSelection
from vsr.routing import edits
from vsr.routing.request import ChatRequest, RequestError

QWEN = ChatTemplateKwargsFamily(type="chat_template_kwargs", parameter="enable_thinking")
DEEPSEEK = ChatTemplateKwargsFamily(type="chat_template_kwargs", parameter="thinking")
EFFORT = ReasoningEffortFamily(type="reasoning_effort")


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_set_model_reports_change() -> None:
    request = body()
    assert edits.set_model(request, "m") and request["model"] == "m"
    assert not edits.set_model(request, "m")


@pytest.mark.parametrize("family", [QWEN, DEEPSEEK])
def test_chat_template_switch_on_and_explicitly_off(family: ChatTemplateKwargsFamily) -> None:
    request = body(chat_template_kwargs={"keep": [1, 2]})
    assert edits.apply_reasoning(request, family, True, "high")
    assert request["chat_template_kwargs"] == {"keep": [1, 2], family.parameter: True}
    assert edits.apply_reasoning(request, family, False, None)
    assert request["chat_template_kwargs"][family.parameter] is False
    assert not edits.apply_reasoning(request, family, False, None)
    fresh = body()
    assert edits.apply_reasoning(fresh, family, False, None)
    assert fresh["chat_template_kwargs"] == {family.parameter: False}


def test_reasoning_effort_family() -> None:
    request = body()
    assert (
        edits.apply_reasoning(request, EFFORT, True, "low") and request["reasoning_effort"] == "low"
    )
    assert edits.apply_reasoning(request, EFFORT, False, None) and "reasoning_effort" not in request
    assert not edits.apply_reasoning(request, EFFORT, False, None)


def test_bad_chat_template_kwargs_is_a_request_error() -> None:
    with pytest.raises(RequestError, match="chat_template_kwargs"):
        edits.apply_reasoning(body(chat_template_kwargs=[1]), QWEN, True, None)


def test_system_prompt_replace_and_insert() -> None:
    request = body()
    assert edits.apply_system_prompt(request, "Be exact.", "replace")
    assert request["messages"][0] == {"role": "system", "content": "Be exact."}
    assert not edits.apply_system_prompt(request, "Be exact.", "replace")
    assert edits.apply_system_prompt(request, "Be kind.", "insert")
    assert request["messages"][0]["content"] == "Be kind.\n\nBe exact."
    assert edits.apply_system_prompt(request, "Only this.", "replace")
    assert request["messages"][0]["content"] == "Only this." and len(request["messages"]) == 2


@pytest.mark.parametrize("mode", ["replace", "insert"])
def test_system_prompt_edits_a_developer_message_like_a_system_message(mode: str) -> None:
    # "developer" is the system prompt's newer name (screening reads it as one); the plugin once
    # added a second system message in front of it, so `replace` left the client's own
    # instructions in place.
    request = body()
    request["messages"].insert(0, {"role": "developer", "content": "Answer in French."})
    assert edits.apply_system_prompt(request, "Be exact.", mode)  # type: ignore[arg-type]
    expected = "Be exact." if mode == "replace" else "Be exact.\n\nAnswer in French."
    assert request["messages"] == [
        {"role": "developer", "content": expected},
        {"role": "user", "content": "hi"},
    ]


def test_system_prompt_insert_keeps_the_clients_content_parts() -> None:
    # Inserting once flattened a content-part list to its text: an image and every part's other
    # fields (a cache hint) were dropped from the forwarded body.
    parts = [
        {"type": "text", "text": "Answer in French.", "cache_control": {"type": "ephemeral"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    request = body()
    request["messages"].insert(0, {"role": "system", "content": copy.deepcopy(parts)})
    assert edits.apply_system_prompt(request, "Be exact.", "insert")
    assert request["messages"][0]["content"] == [{"type": "text", "text": "Be exact."}, *parts]


def test_unknown_fields_survive_with_their_values() -> None:
    unknown = {
        "temperature": 0.1,
        "big": 12345678901234567890,
        "nested": {"a": [None, True, 1.5e-7, "ü"]},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    }
    request = body(**copy.deepcopy(unknown))
    request["messages"][0]["name"] = "alice"
    edits.set_model(request, "m")
    edits.apply_reasoning(request, QWEN, True, None)
    edits.apply_system_prompt(request, "p", "insert")
    for key, value in unknown.items():
        assert request[key] == value
    assert request["messages"][1] == {"role": "user", "content": "hi", "name": "alice"}


def conversation() -> ChatRequest:
    return ChatRequest.from_body(
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": None, "tool_calls": []},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "second"},
                        {"type": "image_url", "image_url": {"url": "x"}},
                        {"type": "text", "text": "part"},
                    ],
                },
            ]
        }
    )


def test_text_selection() -> None:
    request = conversation()
    assert request.routing_text(TextSelection()) == "second\npart"
    assert request.routing_text(TextSelection(user_turns=0)) == "first question\nsecond\npart"
    assert request.routing_text(TextSelection(user_turns=2, include_system=True)) == (
        "You are terse.\nfirst question\nsecond\npart"
    )
    assert request.selected_messages(TextSelection(user_turns=0, include_system=True)) == [
        (0, "You are terse."),
        (1, "first question"),
        (3, "second\npart"),
    ]


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ([], "must be a JSON object"),
        ({"model": "auto"}, "'messages' must be a non-empty list"),
        ({"messages": ["hi"]}, "messages\\[0\\] must be an object"),
        ({"model": 3, "messages": [{"role": "user", "content": "x"}]}, "'model' must be a string"),
        ({"messages": [{"role": "user", "content": 3}]}, "content must be a string or a list"),
        ({"messages": [{"role": "user", "content": "x"}], "stream": "maybe"}, "'stream' must be"),
    ],
)
def test_bad_bodies(request_body: Any, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        ChatRequest.from_body(request_body)
