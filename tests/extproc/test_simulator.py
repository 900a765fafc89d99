"""The OpenAI simulator: JSON and SSE completions, echo, strict model names, models, health."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from vsr.simulator import SimulatorOptions, build_app


async def _with_client(options: SimulatorOptions, scenario: Any) -> Any:
    async with TestClient(TestServer(build_app(options))) as client:
        return await scenario(client)


def run(options: SimulatorOptions, scenario: Any) -> Any:
    return asyncio.run(_with_client(options, scenario))


BODY = {"model": "auto", "messages": [{"role": "user", "content": "hello there"}]}


def test_json_completion_names_the_serving_model() -> None:
    async def scenario(client: TestClient) -> Any:
        response = await client.post("/v1/chat/completions", json=BODY)
        return response.status, await response.json()

    status, payload = run(SimulatorOptions(model="phi4-mini"), scenario)
    assert status == 200
    assert payload["model"] == "phi4-mini"
    assert payload["choices"][0]["message"]["content"].endswith("hello there")
    assert payload["usage"]["prompt_tokens"] == 2
    assert "sim_request" not in payload


def test_echo_on_request_shows_headers_and_body() -> None:
    async def scenario(client: TestClient) -> Any:
        response = await client.post(
            "/v1/chat/completions", json=BODY, headers={"x-sim-echo": "true", "x-team": "a"}
        )
        return await response.json()

    echoed = run(SimulatorOptions(model="m"), scenario)["sim_request"]
    assert echoed["body"] == BODY
    assert echoed["headers"]["x-team"] == "a"


def test_sse_stream_with_usage() -> None:
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}

    async def scenario(client: TestClient) -> Any:
        response = await client.post("/v1/chat/completions", json=body)
        return response.headers["content-type"], (await response.read()).decode()

    content_type, text = run(SimulatorOptions(model="m", echo=True), scenario)
    assert content_type.startswith("text/event-stream")
    events = [block.removeprefix("data: ") for block in text.split("\n\n") if block]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["sim_request"]["body"] == body
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    usage = chunks[-1]["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert streamed == "[m] simulated answer to: hello there"


def test_strict_model_and_bad_bodies() -> None:
    async def scenario(client: TestClient) -> list[tuple[int, str]]:
        out = []
        for raw in (json.dumps(BODY), "{nope", json.dumps({"model": "m", "messages": []})):
            response = await client.post("/v1/chat/completions", data=raw)
            out.append((response.status, (await response.json())["error"]["code"]))
        return out

    results = run(SimulatorOptions(model="m", strict_model=True), scenario)
    assert results == [(404, "model_not_found"), (400, "invalid_json"), (400, "invalid_messages")]


def test_models_and_health() -> None:
    async def scenario(client: TestClient) -> Any:
        models = await (await client.get("/v1/models")).json()
        health = await client.get("/health")
        return models, health.status

    models, health_status = run(SimulatorOptions(model="llama3-8b"), scenario)
    assert [m["id"] for m in models["data"]] == ["llama3-8b"]
    assert health_status == 200


def test_vsr_sim_on_a_port_in_use_says_so_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    from vsr.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["sim", "--model", "m", "--host", "127.0.0.1", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"vsr sim: cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
    assert main(["sim", "--model", "m", "--port", "99999"]) == 1
    assert "vsr sim: cannot listen on" in capsys.readouterr().err
