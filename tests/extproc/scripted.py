"""ext_proc test helpers: Envoy-shaped messages, a scripted router, an in-process server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc

from vsr.extproc.server import RouterServer
from vsr.routing.request import ChatRequest
from vsr.routing.result import (
    BlockReason,
    HeaderEdits,
    Reasoning,
    RoutingResult,
    SignalResult,
)
from vsr.runtime import Generation
from vsr.settings import Settings

AUTO_NAMES = ("auto", "MoM")
DEFAULT_MODEL = "llama3-8b"


def header_map(headers: Mapping[str, str]) -> Any:
    """Headers the way Envoy sends them: the value in ``raw_value``."""
    return base_pb2.HeaderMap(
        headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers.items()]
    )


def request_headers(
    path: str = "/v1/chat/completions",
    method: str = "POST",
    extra: Mapping[str, str] | None = None,
    end_of_stream: bool = False,
) -> Any:
    headers = {":method": method, ":path": path, ":authority": "vsr.test", **(extra or {})}
    return ext_proc.ProcessingRequest(
        request_headers=ext_proc.HttpHeaders(
            headers=header_map(headers), end_of_stream=end_of_stream
        )
    )


def request_body(body: bytes | Mapping[str, Any], end_of_stream: bool = True) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ext_proc.ProcessingRequest(
        request_body=ext_proc.HttpBody(body=raw, end_of_stream=end_of_stream)
    )


def response_headers(status: int = 200) -> Any:
    return ext_proc.ProcessingRequest(
        response_headers=ext_proc.HttpHeaders(
            headers=header_map({":status": str(status), "content-type": "application/json"})
        )
    )


def chat(content: str, model: str = "auto", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def set_headers(mutation: Any) -> dict[str, str]:
    return {o.header.key: o.header.raw_value.decode() for o in mutation.set_headers}


class ScriptedRouter:
    """Routes like a tiny policy: 'math' in the text -> phi4-mini (category math) with a system
    prompt; 'ignore previous' -> jailbreak block; an email-like '@' -> PII block; 'explode' ->
    the router itself raises (a bug); 'degraded' -> a routing signal's model failed (decided
    without it); 'screening down' -> the jailbreak model failed with on_error block; 'slow' ->
    takes 5 s. Explicit
    models pass through unchanged. Records what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], dict[str, str]]] = []

    async def aroute(
        self, request: ChatRequest | dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> RoutingResult:
        body = request.body if isinstance(request, ChatRequest) else request
        self.calls.append((json.loads(json.dumps(body)), dict(headers or {})))
        text = str(body["messages"][-1]["content"])
        await asyncio.sleep(0)
        if "explode" in text:
            raise RuntimeError("classifier exploded")
        if "slow" in text:
            await asyncio.sleep(5)
        requested = body.get("model")
        auto = requested in AUTO_NAMES
        block = None
        signals: tuple[SignalResult, ...] = ()
        if "degraded" in text:
            signals = (SignalResult("domain", "math", False, 0.0, error="InferenceError: boom"),)
        if "screening down" in text:
            block = BlockReason(
                "jailbreak", "jailbreak", "jailbreak screening could not run", 0.0, unavailable=True
            )
        elif "ignore previous" in text:
            block = BlockReason("jailbreak", "jailbreak", "jailbreak detected", 0.97, "jailbreak")
        elif "@" in text:
            block = BlockReason("pii", "pii", "email found", 0.9, None, ("EMAIL_ADDRESS",))
        math = "math" in text
        model = ("phi4-mini" if math else DEFAULT_MODEL) if auto else str(requested)
        changed = False
        if auto and block is None:
            body["model"] = model
            if math:
                body["messages"].insert(0, {"role": "system", "content": "You are a math tutor."})
            changed = True
        return RoutingResult(
            decision="math_decision" if math else None,
            category="math" if math else None,
            model=model,
            served_model=model,
            requested_model=requested,
            auto=auto,
            reasoning=Reasoning(enabled=math),
            blocked=block,
            signals=signals,
            body=body,
            body_changed=changed,
            headers=HeaderEdits(set={"x-selected-model": model}),
            system_prompt_injected=auto and math and block is None,
            cache=None,
            text=text,
            elapsed_s=0.001,
        )


def scripted_generation(router: Any | None = None, number: int = 1) -> Generation:
    return Generation(
        number=number,
        router=router or ScriptedRouter(),
        default_model=DEFAULT_MODEL,
        auto_model_names=AUTO_NAMES,
        model_names=("llama3-8b", "phi4-mini"),
        created=1700000000,
    )


# The ext_proc transport running_server uses (test_service runs its tests on both).
TRANSPORT = {"name": "native"}


def server_settings(**settings: Any) -> Settings:
    """Loopback, free ports, no config watching, a short grace period, ``TRANSPORT``'s transport."""
    return Settings.load(
        {
            "host": "127.0.0.1",
            "grpc_port": 0,
            "http_port": 0,
            "watch_config": False,
            "grace_period_s": 1.0,
            "extproc_transport": TRANSPORT["name"],
            **settings,
        },
        environ={},
    )


@asynccontextmanager
async def running_server(
    router: Any | None = None, build: Callable[[int], Any] | None = None, **settings: Any
) -> AsyncIterator[tuple[RouterServer, Any]]:
    """An in-process ``RouterServer`` on free ports and a stub connected to it."""

    async def default_build(number: int) -> Generation:
        return scripted_generation(router, number)

    server = RouterServer(server_settings(**settings), build or default_build)
    ports = await server.start(with_metrics=False)
    # Like Envoy's gRPC client, accept the large body mutations vsr may send back.
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{ports.grpc}", options=[("grpc.max_receive_message_length", 64 << 20)]
    )
    try:
        yield server, external_processor_pb2_grpc.ExternalProcessorStub(channel)
    finally:
        await channel.close()
        await server.stop()


async def exchange(stub: Any, messages: Sequence[Any]) -> list[Any]:
    """Send Envoy's phases one at a time, as Envoy does, collecting one answer per phase; stops
    when vsr sends an immediate response."""
    call = stub.Process()
    answers = []
    for message in messages:
        await call.write(message)
        answer = await call.read()
        if answer is grpc.aio.EOF:
            break
        answers.append(answer)
        if answer.WhichOneof("response") == "immediate_response":
            break
    await call.done_writing()
    return answers
