"""The response phases in-process: mode_override for bodies vsr reads, every chunk answered at
once (the usage chunk vsr asked for cut out), debug headers, and failures that never break a
response."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from tests.extproc.scripted import (
    chat,
    exchange,
    header_map,
    request_body,
    request_headers,
    running_server,
    set_headers,
)

from vsr.extproc import response as response_module
from vsr.observability import metrics

STREAMED = processing_mode_pb2.ProcessingMode.STREAMED


def response_headers(status: int, content_type: str) -> Any:
    return ext_proc.ProcessingRequest(
        response_headers=ext_proc.HttpHeaders(
            headers=header_map({":status": str(status), "content-type": content_type})
        )
    )


def response_body(data: bytes, end: bool = False) -> Any:
    return ext_proc.ProcessingRequest(response_body=ext_proc.HttpBody(body=data, end_of_stream=end))


def sse(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


CONTENT = sse({"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]})
FINISH = sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
USAGE = sse({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
DONE = b"data: [DONE]\n\n"


def counter(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_streaming_request_asks_for_usage_and_the_client_does_not_see_it() -> None:
    async def scenario() -> list[Any]:
        async with running_server() as (_, stub):
            return await exchange(
                stub,
                [
                    request_headers(),
                    request_body(chat("math please", stream=True)),
                    response_headers(200, "text/event-stream"),
                    response_body(CONTENT),
                    response_body(FINISH + USAGE[:10]),
                    response_body(USAGE[10:] + DONE, end=True),
                ],
            )

    before = counter("llm_model_prompt_tokens_total", model="phi4-mini")
    answers = run(scenario())
    body_common = answers[1].request_body.response
    sent = json.loads(body_common.body_mutation.body)
    assert sent["stream_options"] == {"include_usage": True}
    assert int(set_headers(body_common.header_mutation)["content-length"]) == len(
        body_common.body_mutation.body
    )
    headers_answer = answers[2]
    assert headers_answer.mode_override.response_body_mode == STREAMED
    assert (
        "content-length" in headers_answer.response_headers.response.header_mutation.remove_headers
    )
    reported = set_headers(headers_answer.response_headers.response.header_mutation)
    assert reported["x-vsr-response-path"] == "upstream"
    chunks = [a.response_body.response for a in answers[3:]]
    assert not chunks[0].HasField("body_mutation")  # content passes unchanged
    assert chunks[1].body_mutation.body == FINISH
    assert chunks[2].body_mutation.body == DONE
    assert counter("llm_model_prompt_tokens_total", model="phi4-mini") - before == 3


def test_json_response_is_read_without_changing_it() -> None:
    payload = json.dumps({"usage": {"prompt_tokens": 5, "completion_tokens": 2}}).encode()

    async def scenario() -> list[Any]:
        async with running_server() as (_, stub):
            return await exchange(
                stub,
                [
                    request_headers(),
                    request_body(chat("hello", model="llama3-8b")),
                    response_headers(200, "application/json"),
                    response_body(payload[:7]),
                    response_body(payload[7:], end=True),
                ],
            )

    before = counter("llm_model_completion_tokens_total", model="llama3-8b")
    answers = run(scenario())
    assert answers[2].mode_override.response_body_mode == STREAMED
    assert not answers[3].response_body.response.HasField("body_mutation")
    assert not answers[4].response_body.response.HasField("body_mutation")
    assert counter("llm_model_completion_tokens_total", model="llama3-8b") - before == 2


def test_upstream_error_is_counted_without_reading_its_body() -> None:
    async def scenario() -> list[Any]:
        async with running_server() as (_, stub):
            return await exchange(
                stub,
                [
                    request_headers(),
                    request_body(chat("hello", model="llama3-8b")),
                    response_headers(502, "text/plain"),
                ],
            )

    before = counter("llm_request_errors_total", model="llama3-8b", reason="upstream_5xx")
    answers = run(scenario())
    assert not answers[2].HasField("mode_override")
    reported = set_headers(answers[2].response_headers.response.header_mutation)
    assert reported == {"x-vsr-response-path": "upstream"}
    after = counter("llm_request_errors_total", model="llama3-8b", reason="upstream_5xx")
    assert after - before == 1


def test_a_reader_failure_passes_the_bytes_through(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(self: Any, chunk: bytes, end_of_stream: bool = False) -> bytes | None:
        raise RuntimeError("reader bug")

    monkeypatch.setattr(response_module.SseReader, "feed", explode)

    async def scenario() -> list[Any]:
        async with running_server() as (_, stub):
            return await exchange(
                stub,
                [
                    request_headers(),
                    request_body(chat("hello", model="llama3-8b", stream=True)),
                    response_headers(200, "text/event-stream"),
                    response_body(CONTENT),
                    response_body(DONE, end=True),
                ],
            )

    reason = "response_processing_error"
    before = counter("llm_request_errors_total", model="llama3-8b", reason=reason)
    answers = run(scenario())
    assert len(answers) == 5
    for answer in answers[3:]:
        assert answer.WhichOneof("response") == "response_body"
        assert not answer.response_body.response.HasField("body_mutation")
    assert counter("llm_request_errors_total", model="llama3-8b", reason=reason) - before == 1


def test_a_stream_closed_before_the_response_ends_is_counted() -> None:
    async def scenario() -> list[Any]:
        async with running_server() as (_, stub):
            answers = await exchange(
                stub,
                [
                    request_headers(),
                    request_body(chat("hello", model="llama3-8b", stream=True)),
                    response_headers(200, "text/event-stream"),
                    response_body(CONTENT),
                ],
            )
            await asyncio.sleep(0.2)  # the server sees the stream end
            return answers

    before = counter("llm_request_errors_total", model="llama3-8b", reason="upstream_aborted")
    run(scenario())
    after = counter("llm_request_errors_total", model="llama3-8b", reason="upstream_aborted")
    assert after - before == 1


def test_a_compressed_body_is_not_read() -> None:
    async def scenario() -> list[Any]:
        async with running_server() as (_, stub):
            compressed = ext_proc.ProcessingRequest(
                response_headers=ext_proc.HttpHeaders(
                    headers=header_map(
                        {
                            ":status": "200",
                            "content-type": "application/json",
                            "content-encoding": "gzip",
                        }
                    )
                )
            )
            return await exchange(
                stub,
                [request_headers(), request_body(chat("hello", model="llama3-8b")), compressed],
            )

    answers = run(scenario())
    assert not answers[2].HasField("mode_override")


def test_response_reading_off_leaves_bodies_and_requests_alone() -> None:
    from dataclasses import replace

    from tests.extproc.scripted import scripted_generation

    from vsr.config.observability import ObservabilityConfig, UsageConfig

    async def build(number: int) -> Any:
        off = ObservabilityConfig(usage=UsageConfig(read_responses=False))
        return replace(scripted_generation(number=number), observability=off)

    async def scenario() -> list[Any]:
        async with running_server(build=build) as (_, stub):
            return await exchange(
                stub,
                [
                    request_headers(),
                    request_body(chat("hello", model="llama3-8b", stream=True)),
                    response_headers(200, "text/event-stream"),
                ],
            )

    answers = run(scenario())
    assert not answers[1].request_body.response.HasField("body_mutation")  # no include_usage
    assert not answers[2].HasField("mode_override")
