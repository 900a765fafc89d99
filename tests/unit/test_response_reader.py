"""The response readers: SSE events split anywhere, [DONE], usage, non-JSON lines, the usage
chunk vsr asked for cut out without delaying content; JSON usage; include_usage injection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vsr.extproc.response import JsonReader, SseReader, reader_for, request_usage


def event(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


CONTENT = [
    event({"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
    for word in ("Hello", " there", " friend")
]
FINISH = event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
USAGE = event(
    {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}
)
DONE = b"data: [DONE]\n\n"
STREAM = b"".join([*CONTENT, FINISH, USAGE, DONE])
STREAM_WITHOUT_USAGE = b"".join([*CONTENT, FINISH, DONE])


def feed_all(reader: SseReader, chunks: list[bytes]) -> bytes:
    out = b""
    for index, chunk in enumerate(chunks):
        replaced = reader.feed(chunk, end_of_stream=index == len(chunks) - 1)
        out += chunk if replaced is None else replaced
    return out


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 50, 1000])
def test_events_split_anywhere_pass_unchanged_and_usage_is_read(size: int) -> None:
    reader = SseReader()
    assert feed_all(reader, pieces(STREAM, size)) == STREAM
    assert reader.stats.usage is not None
    assert (reader.stats.usage.prompt_tokens, reader.stats.usage.completion_tokens) == (7, 3)
    assert reader.stats.done
    assert reader.stats.finish_reason == "stop"
    assert reader.stats.events == 6


@pytest.mark.parametrize("size", [1, 5, 13, 64, 1000])
def test_the_usage_chunk_vsr_asked_for_is_cut_out(size: int) -> None:
    reader = SseReader(strip_usage=True)
    assert feed_all(reader, pieces(STREAM, size)) == STREAM_WITHOUT_USAGE
    assert reader.stats.usage_stripped
    assert reader.stats.usage is not None and reader.stats.usage.total_tokens == 10


def test_content_chunks_are_never_held_back() -> None:
    reader = SseReader(strip_usage=True)
    head = CONTENT[0][:10]
    assert reader.feed(head) is None  # an incomplete content event passes at once
    assert reader.feed(CONTENT[0][10:]) is None
    # After the finish chunk, an incomplete event is held until it is complete.
    assert reader.feed(FINISH + USAGE[:8]) == FINISH
    assert reader.feed(USAGE[8:] + DONE, end_of_stream=True) == DONE


def test_crlf_comments_and_non_json_lines() -> None:
    stream = b": keep-alive\r\n\r\nevent: ping\r\ndata: not json\r\n\r\n" + STREAM.replace(
        b"\n\n", b"\r\n\r\n"
    )
    reader = SseReader(strip_usage=True)
    out = feed_all(reader, pieces(stream, 9))
    assert reader.stats.non_json_events == 1
    assert reader.stats.usage is not None
    assert b'"usage"' not in out and out.endswith(b"data: [DONE]\r\n\r\n")


def test_usage_with_choices_is_not_removed() -> None:
    combined = event(
        {
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        }
    )
    reader = SseReader(strip_usage=True)
    stream = CONTENT[0] + combined + DONE
    assert feed_all(reader, [stream]) == stream
    assert reader.stats.usage is not None and reader.stats.usage.completion_tokens == 2


def test_a_stream_cut_short_keeps_what_was_read() -> None:
    reader = SseReader(strip_usage=True)
    out = feed_all(reader, [CONTENT[0], CONTENT[1][:5]])
    assert out == CONTENT[0] + CONTENT[1][:5]
    assert reader.stats.usage is None and not reader.stats.done


def test_json_usage_and_bad_json() -> None:
    body = json.dumps(
        {
            "choices": [{"finish_reason": "length"}],
            "usage": {"prompt_tokens": 4, "completion_tokens": 9},
        }
    ).encode()
    reader = JsonReader()
    for chunk in pieces(body, 10)[:-1]:
        assert reader.feed(chunk) is None
    assert reader.feed(pieces(body, 10)[-1], end_of_stream=True) is None
    assert reader.stats.usage is not None and reader.stats.usage.total_tokens == 13
    assert reader.stats.finish_reason == "length"
    broken = JsonReader()
    broken.feed(b"{not json", end_of_stream=True)
    assert broken.stats.parse_failed and broken.stats.usage is None


def test_reader_for_content_types() -> None:
    assert isinstance(reader_for("text/event-stream; charset=utf-8", strip_usage=False), SseReader)
    assert isinstance(reader_for("application/json", strip_usage=False), JsonReader)
    assert reader_for("text/plain", strip_usage=False) is None


def test_request_usage_keeps_other_stream_options() -> None:
    body: dict[str, Any] = {"stream": True}
    assert request_usage(body) and body["stream_options"] == {"include_usage": True}
    body = {"stream": True, "stream_options": {"continuous_usage_stats": False}}
    assert request_usage(body)
    assert body["stream_options"] == {"continuous_usage_stats": False, "include_usage": True}
    body = {"stream": True, "stream_options": {"include_usage": True}}
    assert not request_usage(body)
    body = {"stream": True, "stream_options": "odd"}
    assert not request_usage(body) and body["stream_options"] == "odd"
