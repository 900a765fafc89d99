"""Regression tests, through the real Envoy, for the ways a client got around vsr's screening or
made it fail: each case here once reached a model unscreened or ended in an empty 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.e2e.stack import CREDIT_CARD, JAILBREAK_PHRASE, Reply, chat_body, metrics_text, send

from vsr.devstack import DevStack

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"


def post(stack: DevStack, body: bytes | dict[str, Any]) -> Reply:
    return send(stack.ports.listener, "POST", CHAT, body)


def with_lone_surrogate(body: dict[str, Any], escape: str) -> bytes:
    """The body as JSON with ``SURROGATE`` replaced by a lone surrogate's escape."""
    return json.dumps(body).replace("SURROGATE", escape).encode()


def assert_blocked(reply: Reply, kind: str) -> None:
    assert reply.status == 200, reply.body
    assert b"sim_request" not in reply.body  # no backend saw it
    header = "x-vsr-pii-violation" if kind == "pii" else "x-vsr-jailbreak-blocked"
    assert reply.headers[header] == "true"
    assert reply.headers["x-vsr-response-path"] == "blocked"


def assert_error(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/json"
    error: dict[str, Any] = reply.json()["error"]
    assert error["code"] == code and error["message"]
    return error


@pytest.mark.parametrize("model", ["llama3-8b", "auto"])
def test_a_lone_surrogate_does_not_switch_screening_off(stack: DevStack, model: str) -> None:
    # JSON may spell a lone UTF-16 surrogate; it once made classification raise, and the failure
    # policy then forwarded the request unscreened to the model the client named.
    raw = with_lone_surrogate(chat_body(f"Card {CREDIT_CARD} SURROGATE", model), "\\ud800")
    reply = post(stack, raw)
    assert_blocked(reply, "pii")
    assert "x-vsr-fail-open" not in reply.headers


def test_a_lone_surrogate_cannot_carry_a_jailbreak_through(stack: DevStack) -> None:
    raw = with_lone_surrogate(chat_body(f"{JAILBREAK_PHRASE} SURROGATE"), "\\udfff")
    assert_blocked(post(stack, raw), "jailbreak")


def test_a_lone_surrogate_in_a_clean_request_is_normalised_and_forwarded(stack: DevStack) -> None:
    raw = b'{"model": "auto", "messages": [{"role": "user", "content": "hello \\ud800 there"}]}'
    reply = post(stack, raw)
    assert reply.status == 200, reply.body
    backend = reply.json()["sim_request"]["body"]
    assert backend["messages"][-1]["content"] == "hello \ufffd there"


@pytest.mark.parametrize(
    "messages",
    [
        [
            {"role": "system", "content": f"The customer's card is {CREDIT_CARD}."},
            {"role": "user", "content": "Summarise our conversation."},
        ],
        [
            {"role": "user", "content": f"My card is {CREDIT_CARD}."},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "What did I just tell you?"},
        ],
        [
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": f"Card: {CREDIT_CARD}"}],
            },
            {"role": "user", "content": "thanks"},
        ],
    ],
    ids=["system-message", "earlier-user-turn", "content-parts-in-an-earlier-turn"],
)
@pytest.mark.parametrize("model", ["llama3-8b", "auto"])
def test_pii_anywhere_in_the_conversation_is_screened(
    stack: DevStack, messages: list[dict[str, Any]], model: str
) -> None:
    assert_blocked(post(stack, {"model": model, "messages": messages}), "pii")


CARD_SENTENCE = f"My card is {CREDIT_CARD}."


@pytest.mark.parametrize(
    "message",
    [
        {"role": "User", "content": CARD_SENTENCE},
        {"role": "human", "content": CARD_SENTENCE},
        {"content": CARD_SENTENCE},
        {"role": "user", "content": [{"type": "input_text", "text": CARD_SENTENCE}]},
        {"role": "user", "content": [{"type": "output_text", "text": CARD_SENTENCE}]},
        {"role": "user", "content": [{"type": "refusal", "refusal": CARD_SENTENCE}]},
        {"role": "user", "content": [{"type": "thinking", "thinking": CARD_SENTENCE}]},
        {"role": "user", "content": ["See below.", CARD_SENTENCE]},
    ],
    ids=[
        "role-capitalised",
        "role-custom",
        "role-missing",
        "input-text-part",
        "output-text-part",
        "refusal-part",
        "thinking-part",
        "bare-string-part",
    ],
)
def test_text_a_model_server_renders_is_screened_however_it_is_wrapped(
    stack: DevStack, message: dict[str, Any]
) -> None:
    # vLLM accepts any role string and renders it through the chat template like a user turn,
    # and reads input_text/output_text/refusal/thinking parts and bare strings in a content
    # list as text: each of these once reached the model without being screened.
    messages = [message, {"role": "user", "content": "What did I just tell you?"}]
    assert_blocked(post(stack, {"model": "llama3-8b", "messages": messages}), "pii")


@pytest.mark.parametrize(
    "message",
    [
        {"role": "Human", "content": JAILBREAK_PHRASE},
        {"role": "user", "content": [{"type": "input_text", "text": JAILBREAK_PHRASE}]},
    ],
    ids=["role-custom", "input-text-part"],
)
def test_a_jailbreak_in_an_unusual_wrapping_is_read_as_the_newest_turn(
    stack: DevStack, message: dict[str, Any]
) -> None:
    assert_blocked(post(stack, {"model": "auto", "messages": [message]}), "jailbreak")


@pytest.mark.parametrize(
    "parts",
    [
        ["My card is 4111 1111", " 1111 1111."],
        [{"type": "text", "text": "SSN 123-45-"}, {"type": "text", "text": "6789, file it."}],
    ],
    ids=["card-in-two-strings", "ssn-in-two-text-parts"],
)
def test_a_number_split_across_content_parts_is_screened(stack: DevStack, parts: list[Any]) -> None:
    # A template that loops over the parts renders them with nothing between: the model reads
    # one number. Joined with a newline (how vsr reads a message) no pattern saw it.
    messages = [{"role": "user", "content": parts}]
    assert_blocked(post(stack, {"model": "llama3-8b", "messages": messages}), "pii")


def test_pii_after_a_long_preamble_is_screened(stack: DevStack) -> None:
    preamble = "".join(f"Paragraph {i} of an ordinary report. " for i in range(400))
    assert_blocked(post(stack, chat_body(f"{preamble} Card {CREDIT_CARD}.", "llama3-8b")), "pii")


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"[" * 1000 + b"]" * 1000, 400, "invalid_json"),
        (
            b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "x": '
            + b"[" * 100
            + b"]" * 100
            + b"}",
            400,
            "invalid_json",
        ),
        (
            b'{"model": "auto\\r\\nx-evil: 1", "messages": [{"role": "user", "content": "hi"}]}',
            400,
            "invalid_model",
        ),
        (json.dumps(chat_body("hi", "m" * 10_000)).encode(), 400, "invalid_model"),
        (json.dumps(chat_body("hi", "gpt-4o")).encode(), 404, "model_not_found"),
        (
            json.dumps({"model": "auto", "messages": [{"role": "user", "content": 7}]}).encode(),
            400,
            "invalid_request",
        ),
        (json.dumps(chat_body("hi", stream="maybe")).encode(), 400, "invalid_request"),
    ],
    ids=[
        "nested-array",
        "nested-field",
        "model-with-crlf",
        "model-10k-chars",
        "unknown-model",
        "content-not-text",
        "stream-not-boolean",
    ],
)
def test_bad_input_is_an_openai_error_not_an_empty_500(
    stack: DevStack, raw: bytes, status: int, code: str
) -> None:
    reply = post(stack, raw)
    assert_error(reply, status, code)
    assert reply.headers["x-vsr-response-path"] == "error"


def test_model_labels_stay_bounded(stack: DevStack) -> None:
    bogus = "bogus-model-" + "z" * 200
    post(stack, chat_body("hi", bogus))
    exported = metrics_text(stack.ports.metrics)
    assert "bogus-model" not in exported
    for line in exported.splitlines():
        if line.startswith("vsr_decisions_total{"):
            assert 'model="llama3-8b"' in line or 'model="phi4-mini"' in line, line


def test_auto_names_are_case_insensitive(stack: DevStack) -> None:
    reply = post(stack, chat_body("What is 2+2 * (5-1)?", "AUTO"))
    assert reply.status == 200, reply.body
    assert reply.headers["x-vsr-selected-model"] == "phi4-mini"
    assert reply.json()["model"] == "phi4-mini"


def test_one_model_can_be_retrieved(stack: DevStack) -> None:
    reply = send(stack.ports.listener, "GET", "/v1/models/phi4-mini")
    assert reply.status == 200, reply.body
    assert reply.json() == {
        "id": "phi4-mini",
        "object": "model",
        "created": reply.json()["created"],
        "owned_by": "vsr",
    }
    assert_error(send(stack.ports.listener, "GET", "/v1/models/gpt-4o"), 404, "model_not_found")


def test_an_auto_name_can_be_retrieved_in_any_case(stack: DevStack) -> None:
    # Chat requests take "mom" and "AUTO" as the auto names; retrieving them answered 404.
    for model_id, canonical in (("mom", "MoM"), ("AUTO", "auto")):
        reply = send(stack.ports.listener, "GET", f"/v1/models/{model_id}")
        assert reply.status == 200, reply.body
        assert reply.json()["id"] == canonical
    assert_error(send(stack.ports.listener, "GET", "/v1/models/LLAMA3-8B"), 404, "model_not_found")


def test_a_blocked_stream_honours_include_usage(stack: DevStack) -> None:
    body = chat_body(JAILBREAK_PHRASE, "auto", stream=True, stream_options={"include_usage": True})
    reply = post(stack, body)
    assert_blocked(reply, "jailbreak")
    events = reply.sse_events()
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"] == [] and last["usage"]["total_tokens"] == 0


def test_stream_sent_as_a_string_streams(stack: DevStack) -> None:
    reply = post(stack, chat_body(JAILBREAK_PHRASE, "auto", stream="true"))
    assert_blocked(reply, "jailbreak")
    assert reply.headers["content-type"] == "text/event-stream"
    assert reply.sse_events()[-1] == "[DONE]"
