"""The log lines of the ext_proc request path, as ``vsr serve`` writes them (JSON on stderr): each
line's fields in order, ``request_id`` from the stream's context on lines that do not pass it,
and nothing at all when the level drops them. Each case runs in a fresh interpreter, since
structlog keeps the logger a module first used under whatever configuration was current."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

POLICY = """
default_model: general
models: [{name: general}, {name: math}]
signals: [{type: keyword, name: sums, keywords: ["2+2"]}]
decisions: [{name: math, rules: {type: keyword, name: sums}, modelRefs: [{model: math}]}]
"""

# Three streams through the handler, as the native transport feeds it: a routed chat completion
# with its JSON response, then a body that is not JSON (rejected with a 400).
PROGRAM = """
import asyncio, json, sys, tempfile
from pathlib import Path
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from vsr.extproc.native import StreamContext, _Requests
from vsr.extproc.service import ExternalProcessor
from vsr.observability.logging import configure_logging
from vsr.runtime import Runtime, config_generation_builder

def headers(**fields):
    return base_pb2.HeaderMap(
        headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in fields.items()]
    )

def request(request_id, body, response=None):
    messages = [
        pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=headers(**{{
            ":method": "POST", ":path": "/v1/chat/completions", "x-request-id": request_id,
            "content-type": "application/json"}}))),
        pb.ProcessingRequest(request_body=pb.HttpBody(body=body, end_of_stream=True)),
    ]
    if response is not None:
        messages += [
            pb.ProcessingRequest(response_headers=pb.HttpHeaders(headers=headers(**{{
                ":status": "200", "content-type": "application/json"}}))),
            pb.ProcessingRequest(response_body=pb.HttpBody(body=response, end_of_stream=True)),
        ]
    return messages

async def main():
    configure_logging("json", {level!r})
    config = Path(tempfile.mkdtemp()) / "policy.yaml"
    config.write_text({policy!r})
    runtime = Runtime(config_generation_builder(config))
    await runtime.start()
    service = ExternalProcessor(runtime, max_body_bytes=1 << 20, failure_policy="open")
    completion = json.dumps({{"id": "c", "object": "chat.completion", "model": "math",
        "choices": [{{"index": 0, "message": {{"role": "assistant", "content": "4"}},
                      "finish_reason": "stop"}}],
        "usage": {{"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}}}}).encode()
    body = json.dumps({{"model": "auto", "messages": [{{"role": "user", "content": "2+2?"}}]}})
    for messages in (request("req-routed", body.encode(), completion),
                     request("req-rejected", b"{{not json")):
        stream = _Requests()
        for message in messages:
            stream.feed(message.SerializeToString())
        stream.feed(None)
        async for _ in service.Process(stream, StreamContext("ipv4:127.0.0.1:1")):
            pass
    runtime.current.router.close()
    print("done")

asyncio.run(main())
"""


def run(level: str) -> list[dict[str, Any]]:
    source = textwrap.dedent(PROGRAM).format(level=level, policy=POLICY)
    done = subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    # Start-up lines (config loading, the generation) are not the request path's.
    return [line for line in lines if line.get("request_id") is not None]


def test_request_path_lines_carry_their_fields_in_order_and_the_request_id() -> None:
    lines = run("debug")
    events = [(line["event"], line["request_id"]) for line in lines]
    assert events == [
        ("route_selected", "req-routed"),
        ("llm_usage", "req-routed"),
        ("llm_usage", "req-rejected"),
        ("request_rejected", "req-rejected"),
    ]
    routed, usage, rejected_usage, rejected = lines
    assert list(routed) == [
        "request_id", "decision", "category", "model", "auto", "blocked", "latency_ms",
        "event", "level", "timestamp",
    ]  # fmt: skip
    assert (routed["decision"], routed["model"], routed["auto"], routed["level"]) == (
        "math", "math", True, "debug",
    )  # fmt: skip
    assert list(usage) == [
        "model", "decision", "category", "response_path", "status", "stream", "prompt_tokens",
        "completion_tokens", "total_tokens", "cost", "currency", "ttft_ms", "latency_ms",
        "routing_ms", "error", "request_id", "trace_id", "event", "level", "timestamp",
    ]  # fmt: skip
    assert (usage["model"], usage["status"], usage["total_tokens"], usage["level"]) == (
        "math", 200, 21, "info",
    )  # fmt: skip
    # request_rejected passes no request_id: it comes from the stream's bound context, last of
    # the event's own fields, before the level and time.
    assert list(rejected) == ["status", "reason", "event", "request_id", "level", "timestamp"]
    assert (rejected["status"], rejected["reason"]) == (400, "invalid_json")
    assert (rejected_usage["status"], rejected_usage["response_path"]) == (400, "error")


@pytest.mark.parametrize(("level", "expected"), [("info", 3), ("warning", 0)])
def test_the_level_drops_request_path_lines(level: str, expected: int) -> None:
    lines = run(level)
    assert len(lines) == expected
    assert "route_selected" not in [line["event"] for line in lines]
