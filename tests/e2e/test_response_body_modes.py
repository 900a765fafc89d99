"""The response body mode vsr asks Envoy for, through a real Envoy: a JSON body with a small
``content-length`` reaches vsr BUFFERED, as one ext_proc message; SSE, JSON over
``max_buffered_json_bytes`` and chunked JSON (no length) stay STREAMED. The client gets every
byte either way, and the accounting is the same.

The backend here is a few lines of ``http.server`` rather than the simulator: the simulator always
sends a ``content-length`` with JSON, and these tests need chunked JSON and exact bodies. Messages
are counted by Envoy itself (its ext_proc filter's ``stream_msgs_sent`` counter)."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.conftest import _start
from tests.e2e.stack import Reply, chat_body, metrics_text, router_config, send

from vsr.devstack import DevStack, StackPorts

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
# Small, so that a test body can be over it; the mechanism is the same at the default.
BOUND = 16 * 1024
HEADERS_FIRST_S = 0.3  # well past vsr's headers answer, even on a loaded CI box
LARGE_WORDS = 40_000  # ~240 KB of JSON: many data chunks through Envoy
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
# What Envoy sends vsr for a forwarded request whose response body vsr reads in one message:
# request headers, request body, response headers, response body.
ONE_BODY_MESSAGE = 4


def completion(words: int = 3) -> bytes:
    """The backend's JSON answer: deterministic, so a test can compare the bytes it gets."""
    content = " ".join(["word"] * words)
    message = {"role": "assistant", "content": content}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    payload = {"id": "chatcmpl-1", "object": "chat.completion", "model": "llama3-8b",
               "choices": [choice], "usage": USAGE}  # fmt: skip
    return json.dumps(payload).encode()


def sse_stream(include_usage: bool) -> bytes:
    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return data({"object": "chat.completion.chunk", "choices": [choice]})

    def data(payload: Any) -> bytes:
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    events = [event({"content": word}) for word in ("one ", "two ", "three")]
    events.append(event({}, "stop"))
    if include_usage:
        events.append(data({"object": "chat.completion.chunk", "choices": [], "usage": USAGE}))
    return b"".join(events) + b"data: [DONE]\n\n"


class Backend(BaseHTTPRequestHandler):
    """``x-test-reply``: ``json`` (default, with content-length), ``large`` (JSON over BOUND),
    ``chunked`` (JSON without a length, in two chunks); ``"stream": true`` gets SSE, chunked."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        reply = self.headers.get("x-test-reply", "json")
        if request.get("stream"):
            include = bool((request.get("stream_options") or {}).get("include_usage"))
            self._chunked("text/event-stream", sse_stream(include))
        elif reply == "chunked":
            self._chunked("application/json", completion())
        else:
            body = completion(LARGE_WORDS if reply == "large" else 3)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self._headers_first()
            self.wfile.write(body)

    def _chunked(self, content_type: str, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("transfer-encoding", "chunked")
        self._headers_first()
        middle = len(body) // 2
        for piece in (body[:middle], body[middle:]):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _headers_first(self) -> None:
        """Send the headers, then let vsr answer them before any body byte arrives. A body that
        comes while Envoy still waits for that answer is held and sent whole in any mode, so
        only a later body shows the mode (STREAMED: a data chunk, then an empty end chunk)."""
        self.end_headers()
        self.wfile.flush()
        time.sleep(HEADERS_FIRST_S)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def backend() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stack(
    envoy_bin: Path, tmp_path_factory: pytest.TempPathFactory, backend: int
) -> Iterator[DevStack]:
    work = tmp_path_factory.mktemp("e2e-body-modes")
    config = router_config()
    config["observability"] = {"usage": {"max_buffered_json_bytes": BOUND}}
    path = work / "router.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    ports = dataclasses.replace(
        StackPorts.free(), backends={"llama3-8b": backend, "phi4-mini": backend}
    )
    devstack = DevStack(
        path, ports=ports, envoy_bin=envoy_bin, log_dir=work / "logs", with_simulators=False,
        extra_serve_args=["--no-watch-config"],
    )  # fmt: skip
    yield _start(devstack)
    devstack.stop()


def messages_sent(stack: DevStack) -> int:
    """Envoy's count of the ext_proc messages it has sent vsr."""
    url = f"http://127.0.0.1:{stack.ports.admin}/stats?filter=ext_proc\\.stream_msgs_sent$"
    with urllib.request.urlopen(url, timeout=5) as response:
        lines = response.read().decode().splitlines()
    (line,) = [line for line in lines if line.strip()]
    return int(line.rsplit(":", 1)[1])


def tokens(stack: DevStack) -> dict[str, float]:
    counted = {}
    for family in text_string_to_metric_families(metrics_text(stack.ports.metrics)):
        for sample in family.samples:
            if sample.labels.get("model") == "llama3-8b" and sample.name in (
                "llm_model_prompt_tokens_total",
                "llm_model_completion_tokens_total",
                "llm_model_ttft_seconds_count",
                "llm_model_completion_latency_seconds_count",
            ):
                counted[sample.name] = sample.value
    return counted


def exchange(
    stack: DevStack, body: Any, headers: Mapping[str, str]
) -> tuple[Reply, int, dict[str, float]]:
    """The reply, the ext_proc messages it took and the metric changes it made."""
    sent, counted = messages_sent(stack), tokens(stack)
    reply = send(stack.ports.listener, "POST", CHAT, body, headers)
    after = tokens(stack)
    changes = {name: after.get(name, 0.0) - counted.get(name, 0.0) for name in after}
    return reply, messages_sent(stack) - sent, changes


def assert_counted(changes: Mapping[str, float]) -> None:
    assert changes["llm_model_prompt_tokens_total"] == USAGE["prompt_tokens"]
    assert changes["llm_model_completion_tokens_total"] == USAGE["completion_tokens"]
    assert changes["llm_model_ttft_seconds_count"] == 1
    assert changes["llm_model_completion_latency_seconds_count"] == 1


def test_a_small_json_body_reaches_vsr_in_one_message(stack: DevStack) -> None:
    reply, messages, changes = exchange(stack, chat_body("hello", "llama3-8b"), {})
    assert reply.status == 200
    assert reply.body == completion()
    assert reply.headers["x-vsr-response-path"] == "upstream"
    assert reply.headers["x-vsr-selected-model"] == "llama3-8b"
    assert messages == ONE_BODY_MESSAGE
    assert_counted(changes)


def test_a_json_body_over_the_bound_is_streamed_whole(stack: DevStack) -> None:
    reply, messages, changes = exchange(
        stack, chat_body("hello", "llama3-8b"), {"x-test-reply": "large"}
    )
    assert reply.status == 200
    assert len(completion(LARGE_WORDS)) > BOUND
    assert reply.body == completion(LARGE_WORDS)  # not truncated, not a 500
    assert messages > ONE_BODY_MESSAGE
    assert_counted(changes)


def test_chunked_json_without_a_length_is_streamed(stack: DevStack) -> None:
    reply, messages, changes = exchange(
        stack, chat_body("hello", "llama3-8b"), {"x-test-reply": "chunked"}
    )
    assert reply.status == 200
    assert reply.body == completion()
    assert messages > ONE_BODY_MESSAGE
    assert_counted(changes)


def test_sse_is_still_streamed_and_the_usage_chunk_vsr_asked_for_cut(stack: DevStack) -> None:
    reply, messages, changes = exchange(stack, chat_body("hello", "llama3-8b", stream=True), {})
    assert reply.status == 200
    assert reply.body == sse_stream(include_usage=False)  # vsr asked for usage; the client did not
    assert messages > ONE_BODY_MESSAGE
    assert_counted(changes)
