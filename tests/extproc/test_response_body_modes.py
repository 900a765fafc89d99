"""The response body mode vsr asks for: BUFFERED (one message) for a JSON body whose
``content-length`` is within ``observability.usage.max_buffered_json_bytes``, STREAMED for SSE and
for JSON of unknown or larger length; the accounting the same either way."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from tests.extproc.scripted import (
    chat,
    exchange,
    header_map,
    request_body,
    request_headers,
    running_server,
    scripted_generation,
    set_headers,
)

from vsr.config.observability import (
    DEFAULT_MAX_BUFFERED_JSON_BYTES,
    ObservabilityConfig,
    UsageConfig,
)
from vsr.extproc import mutations
from vsr.observability import metrics

BUFFERED = processing_mode_pb2.ProcessingMode.BUFFERED
STREAMED = processing_mode_pb2.ProcessingMode.STREAMED
PAYLOAD = json.dumps(
    {
        "choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }
).encode()


def response_headers(content_type: str, length: int | None) -> Any:
    headers = {":status": "200", "content-type": content_type}
    if length is not None:
        headers["content-length"] = str(length)
    return ext_proc.ProcessingRequest(
        response_headers=ext_proc.HttpHeaders(headers=header_map(headers))
    )


def response_body(data: bytes, end: bool = False) -> Any:
    return ext_proc.ProcessingRequest(response_body=ext_proc.HttpBody(body=data, end_of_stream=end))


def tokens(model: str) -> float:
    name = "llm_model_completion_tokens_total"
    return metrics.REGISTRY.get_sample_value(name, {"model": model}) or 0.0


def answers_for(messages: list[Any], max_buffered: int | None = None) -> list[Any]:
    """vsr's answers to ``messages``, under a ``max_buffered_json_bytes`` (None: the default)."""

    async def build(number: int) -> Any:
        usage = (
            UsageConfig()
            if max_buffered is None
            else UsageConfig(max_buffered_json_bytes=max_buffered)
        )
        observability = ObservabilityConfig(usage=usage)
        return replace(scripted_generation(number=number), observability=observability)

    async def scenario() -> list[Any]:
        async with running_server(build=build) as (_, stub):
            return await exchange(stub, messages)

    return asyncio.run(scenario())


def forwarded(stream: bool = False) -> list[Any]:
    return [request_headers(), request_body(chat("hello", model="llama3-8b", stream=stream))]


def test_the_default_bound_is_below_envoys_default_buffer_limit() -> None:
    assert UsageConfig().max_buffered_json_bytes == DEFAULT_MAX_BUFFERED_JSON_BYTES
    assert DEFAULT_MAX_BUFFERED_JSON_BYTES <= (1 << 20) // 2


def test_a_json_body_of_known_small_length_comes_buffered_in_one_message() -> None:
    before = tokens("llama3-8b")
    answers = answers_for(
        [
            *forwarded(),
            response_headers("application/json", len(PAYLOAD)),
            response_body(PAYLOAD, end=True),
        ]
    )
    headers_answer = answers[2]
    assert headers_answer.mode_override.response_body_mode == BUFFERED
    assert not headers_answer.response_headers.response.header_mutation.remove_headers
    assert (
        set_headers(headers_answer.response_headers.response.header_mutation)["x-vsr-response-path"]
        == "upstream"
    )
    assert not answers[3].response_body.response.HasField("body_mutation")
    assert tokens("llama3-8b") - before == 2


def test_a_json_body_at_the_bound_is_buffered_and_one_past_it_streamed() -> None:
    bound = len(PAYLOAD)
    at = answers_for([*forwarded(), response_headers("application/json", bound)], bound)
    assert at[2].mode_override.response_body_mode == BUFFERED
    before = tokens("llama3-8b")
    past = answers_for(
        [
            *forwarded(),
            response_headers("application/json", len(PAYLOAD)),
            response_body(PAYLOAD[:9]),
            response_body(PAYLOAD[9:]),
            response_body(b"", end=True),  # Envoy's empty end-of-stream chunk
        ],
        bound - 1,
    )
    assert past[2].mode_override.response_body_mode == STREAMED
    assert all(not a.response_body.response.HasField("body_mutation") for a in past[3:])
    assert tokens("llama3-8b") - before == 2


def test_json_without_a_length_or_with_a_bound_of_zero_is_streamed() -> None:
    unknown = answers_for([*forwarded(), response_headers("application/json", None)])
    assert unknown[2].mode_override.response_body_mode == STREAMED
    off = answers_for([*forwarded(), response_headers("application/json", len(PAYLOAD))], 0)
    assert off[2].mode_override.response_body_mode == STREAMED


def test_a_malformed_length_is_streamed() -> None:
    for length in ("", "-1", "12a", "\uff11\uff12"):  # the last: fullwidth digits
        message = ext_proc.ProcessingRequest(
            response_headers=ext_proc.HttpHeaders(
                headers=header_map(
                    {":status": "200", "content-type": "application/json", "content-length": length}
                )
            )
        )
        answers = answers_for([*forwarded(), message])
        assert answers[2].mode_override.response_body_mode == STREAMED, length


def test_sse_is_streamed_even_with_a_length() -> None:
    answers = answers_for([*forwarded(stream=True), response_headers("text/event-stream", 40)])
    assert answers[2].mode_override.response_body_mode == STREAMED
    # vsr cuts the usage chunk it asked for: the length no longer holds.
    assert "content-length" in answers[2].response_headers.response.header_mutation.remove_headers


def test_json_answering_a_streaming_request_keeps_its_length() -> None:
    """vsr asked for usage on the stream, but a JSON answer is never cut: its length holds."""
    answers = answers_for(
        [
            *forwarded(stream=True),
            response_headers("application/json", len(PAYLOAD)),
            response_body(PAYLOAD, end=True),
        ]
    )
    assert answers[2].mode_override.response_body_mode == BUFFERED
    assert not answers[2].response_headers.response.header_mutation.remove_headers


def test_buffered_and_streamed_answers_are_shared_apart() -> None:
    headers = {"x-vsr-response-path": "upstream"}
    streamed = mutations.streamed_response_body_mode()
    buffered = mutations.buffered_response_body_mode()
    for _ in range(2):  # built, then from the shared answers
        one = mutations.response_headers_response(headers, mode_override=buffered)
        two = mutations.response_headers_response(headers, mode_override=streamed)
        three = mutations.response_headers_response(headers)
        assert one.mode_override.response_body_mode == BUFFERED
        assert two.mode_override.response_body_mode == STREAMED
        assert not three.HasField("mode_override")
