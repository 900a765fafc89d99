"""vsr through a real Envoy: each behaviour of the ext_proc contract, end to end on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from tests.e2e.conftest import MAX_BODY_BYTES
from tests.e2e.stack import (
    CREDIT_CARD,
    JAILBREAK_PHRASE,
    MATH_SYSTEM_PROMPT,
    Reply,
    chat_body,
    send,
)

from vsr.devstack import DevStack

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
MATH_PROMPT = "What is 2+2 * (5-1)?"


def post_chat(stack: DevStack, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return send(stack.ports.listener, "POST", CHAT, body, headers)


def received(reply: Reply) -> dict[str, Any]:
    """What the simulated backend received (its echo)."""
    return reply.json()["sim_request"]  # type: ignore[no-any-return]


def test_explicit_model_is_forwarded_unchanged(stack: DevStack) -> None:
    body = chat_body("Summarize the Kubernetes Gateway API in three sentences.", "llama3-8b")
    body["unknown_field"] = {"kept": True}
    reply = post_chat(stack, body)
    assert reply.status == 200, reply.body
    assert reply.json()["model"] == "llama3-8b"
    assert reply.headers["x-vsr-selected-model"] == "llama3-8b"
    backend = received(reply)
    assert backend["body"] == body
    assert backend["headers"]["x-selected-model"] == "llama3-8b"


def test_auto_routes_math_to_phi4_mini(stack: DevStack) -> None:
    reply = post_chat(stack, chat_body(MATH_PROMPT, max_tokens=64))
    assert reply.status == 200, reply.body
    assert reply.json()["model"] == "phi4-mini"
    assert reply.headers["x-vsr-selected-model"] == "phi4-mini"
    assert reply.headers["x-vsr-selected-decision"] == "math"
    # The category comes from the (random, tiny) domain model here; the README's demo with the
    # trained vsr-default bundle reports "math".
    assert reply.headers["x-vsr-selected-category"] in {"math", "law", "other"}
    backend = received(reply)
    assert backend["body"]["model"] == "phi4-mini"
    assert backend["body"]["max_tokens"] == 64
    assert backend["headers"]["content-length"] == str(
        len(json.dumps(backend["body"], separators=(",", ":")))
    )


def test_system_prompt_and_reasoning_as_the_backend_sees_them(stack: DevStack) -> None:
    math = post_chat(stack, chat_body("What is the derivative of f(x) = x^3?"))
    backend = received(math)["body"]
    assert backend["messages"][0] == {"role": "system", "content": MATH_SYSTEM_PROMPT}
    assert backend["chat_template_kwargs"] == {"enable_thinking": True}
    assert math.headers["x-vsr-selected-reasoning"] == "on"
    assert math.headers["x-vsr-injected-system-prompt"] == "true"

    general = post_chat(stack, chat_body("Tell me about the history of Rome."))
    backend = received(general)["body"]
    assert general.json()["model"] == "llama3-8b"
    assert [m["role"] for m in backend["messages"]] == ["user"]
    assert backend["chat_template_kwargs"] == {"enable_thinking": False}
    assert general.headers["x-vsr-selected-reasoning"] == "off"
    assert general.headers["x-vsr-injected-system-prompt"] == "false"


def test_client_cannot_forge_routing_or_report_headers(stack: DevStack) -> None:
    reply = post_chat(
        stack,
        chat_body("Tell me about Rome."),
        headers={"x-selected-model": "phi4-mini", "x-vsr-selected-category": "forged"},
    )
    assert reply.json()["model"] == "llama3-8b"
    headers = received(reply)["headers"]
    assert headers["x-selected-model"] == "llama3-8b"
    assert not [name for name in headers if name.lower().startswith("x-vsr-")]
    assert reply.headers.get("x-vsr-selected-category") != "forged"


def test_jailbreak_is_blocked_as_json(stack: DevStack) -> None:
    reply = post_chat(stack, chat_body(f"Please {JAILBREAK_PHRASE} and tell me a secret."))
    assert reply.status == 200
    assert reply.headers["x-vsr-jailbreak-blocked"] == "true"
    completion = reply.json()
    assert "sim_request" not in completion  # nothing reached a backend
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["finish_reason"] == "content_filter"


def test_jailbreak_is_blocked_as_sse_when_streaming(stack: DevStack) -> None:
    reply = post_chat(stack, chat_body(f"{JAILBREAK_PHRASE}!", stream=True))
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/event-stream"
    assert reply.headers["x-vsr-jailbreak-blocked"] == "true"
    events = reply.sse_events()
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "content_filter"


def test_pii_is_blocked(stack: DevStack) -> None:
    reply = post_chat(stack, chat_body(f"My card is {CREDIT_CARD}, is it valid?"))
    assert reply.status == 200
    assert reply.headers["x-vsr-pii-violation"] == "true"
    assert "CREDIT_CARD" in reply.headers["x-vsr-pii-types"]
    assert reply.json()["choices"][0]["finish_reason"] == "content_filter"


def test_models_are_listed_by_vsr(stack: DevStack) -> None:
    reply = send(stack.ports.listener, "GET", "/v1/models")
    assert reply.status == 200
    ids = [model["id"] for model in reply.json()["data"]]
    assert ids == ["auto", "MoM", "llama3-8b", "phi4-mini"]


def test_sse_response_passes_through(stack: DevStack) -> None:
    body = chat_body(
        "Stream me a story.", "llama3-8b", stream=True, stream_options={"include_usage": True}
    )
    reply = post_chat(stack, body)
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/event-stream"
    assert reply.headers["x-vsr-selected-model"] == "llama3-8b"
    events = reply.sse_events()
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "[llama3-8b] simulated answer to: Stream me a story."
    assert chunks[-1]["usage"]["completion_tokens"] == len(text.split())


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b'{"model": "auto", "messages": [', 400, "invalid_json"),
        (b"this is not JSON", 400, "invalid_json"),
        (b'{"model": "auto"}', 400, "invalid_messages"),
    ],
)
def test_bad_bodies_get_openai_errors(stack: DevStack, raw: bytes, status: int, code: str) -> None:
    reply = post_chat(stack, raw)
    assert reply.status == status
    error = reply.json()["error"]
    assert error["code"] == code
    assert error["message"]


def test_oversize_body_gets_413(stack: DevStack) -> None:
    reply = post_chat(stack, chat_body("x" * (MAX_BODY_BYTES + 1000)))
    assert reply.status == 413
    assert reply.json()["error"]["code"] == "request_too_large"


def test_unknown_path_gets_404(stack: DevStack) -> None:
    reply = send(stack.ports.listener, "POST", "/v1/embeddings", {"input": "x"})
    assert reply.status == 404
    assert reply.json()["error"]["code"] == "unknown_path"


def test_vsr_down_with_failure_mode_allow(
    stack_without_vsr: Callable[[bool], DevStack],
) -> None:
    devstack = stack_without_vsr(True)
    reply = post_chat(devstack, chat_body(MATH_PROMPT))
    assert reply.status == 200
    assert reply.json()["model"] == "llama3-8b"  # unrouted: Envoy's default route
    assert "x-vsr-selected-model" not in reply.headers


def test_vsr_down_without_failure_mode_allow(
    stack_without_vsr: Callable[[bool], DevStack],
) -> None:
    devstack = stack_without_vsr(False)
    reply = post_chat(devstack, chat_body(MATH_PROMPT))
    # Envoy's own answer, in OpenAI form (deploy/envoy/envoy.yaml's local_reply_config).
    assert reply.status == 503
    assert reply.headers["retry-after"] == "1"
    assert reply.json()["error"]["code"] == "router_unavailable"
    assert b"sim_request" not in reply.body


def test_200_concurrent_requests_keep_their_own_route(stack: DevStack) -> None:
    count = 200

    async def one(session: aiohttp.ClientSession, index: int) -> tuple[int, int, dict[str, Any]]:
        math = index % 2 == 0
        content = f"request {index}: " + (f"what is {index} + 1?" if math else "hello there")
        async with session.post(f"{stack.url}{CHAT}", json=chat_body(content)) as response:
            return index, response.status, await response.json()

    async def run_all() -> list[tuple[int, int, dict[str, Any]]]:
        connector = aiohttp.TCPConnector(limit=count)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            return await asyncio.gather(*(one(session, i) for i in range(count)))

    results = asyncio.run(run_all())
    assert len(results) == count
    for index, status, payload in results:
        assert status == 200, payload
        expected = "phi4-mini" if index % 2 == 0 else "llama3-8b"
        assert payload["model"] == expected
        forwarded = payload["sim_request"]["body"]["messages"][-1]["content"]
        assert forwarded.startswith(f"request {index}: ")
