"""A small OpenAI-compatible server that stands in for vLLM behind Envoy.

It answers ``/v1/chat/completions`` (JSON, or SSE when ``"stream": true``, with a usage chunk when
``stream_options.include_usage`` asks for one), ``/v1/models`` and ``/health``. Every completion
names the *serving* model in ``model``, whatever the request said, so a test can tell which backend
answered. With echo on (``--echo`` or the request header ``x-sim-echo: true``) the answer also
carries ``sim_request``: the headers and JSON body exactly as received, so tests can see what vsr
and Envoy forwarded.

Request headers script a backend's bad days, per request (so one simulator serves every test):

- ``x-sim-status: 503``: answer that status with an OpenAI error body;
- ``x-sim-split-bytes: N``: write each SSE event in pieces of N bytes (with a short pause between
  them, so they reach the proxy as separate chunks);
- ``x-sim-fail-after: K``: drop the connection after K SSE events (a model crashing mid-stream);
- ``x-sim-first-chunk-delay-ms: T``: wait T ms before the first SSE event;
- ``x-sim-chunk-delay-ms: T``: wait T ms between SSE events (a model producing tokens).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

ECHO_HEADER = "x-sim-echo"
STATUS_HEADER = "x-sim-status"
SPLIT_HEADER = "x-sim-split-bytes"
FAIL_AFTER_HEADER = "x-sim-fail-after"
FIRST_CHUNK_DELAY_HEADER = "x-sim-first-chunk-delay-ms"
CHUNK_DELAY_HEADER = "x-sim-chunk-delay-ms"


def _int_header(request: web.Request, name: str) -> int:
    try:
        return max(int(request.headers.get(name, "0")), 0)
    except ValueError:
        return 0


@dataclass(frozen=True)
class SimulatorOptions:
    """- ``model``: the served model name (what ``model`` says in every answer).
    - ``echo``: always attach ``sim_request`` (else only when the request asks for it).
    - ``strict_model``: answer 404 to a request whose ``model`` is not ``model``, as vLLM does.
    - ``delay_s``: wait this long before answering (to simulate a slower backend).
    """

    model: str
    echo: bool = False
    strict_model: bool = False
    delay_s: float = 0.0


def _openai_error(status: int, message: str, code: str) -> web.Response:
    payload = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }
    return web.json_response(payload, status=status)


def _message_text(content: Any) -> str:
    """A message's text: a plain string, or the text parts of a multi-part content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _word_count(text: str) -> int:
    return len(text.split())


class Simulator:
    def __init__(self, options: SimulatorOptions) -> None:
        self.options = options

    def reply_text(self, messages: list[Any]) -> str:
        """A deterministic answer that names the model and what it was asked."""
        last_user = ""
        for message in messages:
            if isinstance(message, dict) and message.get("role") == "user":
                last_user = _message_text(message.get("content"))
        return f"[{self.options.model}] simulated answer to: {last_user[:200]}"

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError as error:
            return _openai_error(400, f"request body is not valid JSON: {error}", "invalid_json")
        if not isinstance(body, dict):
            return _openai_error(400, "request body must be a JSON object", "invalid_json")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _openai_error(400, "'messages' must be a non-empty list", "invalid_messages")
        requested = body.get("model")
        if self.options.strict_model and requested != self.options.model:
            return _openai_error(404, f"The model `{requested}` does not exist.", "model_not_found")
        if self.options.delay_s:
            await asyncio.sleep(self.options.delay_s)
        forced = _int_header(request, STATUS_HEADER)
        if forced >= 400:
            message = f"simulated failure ({forced})"
            return _openai_error(forced, message, "server_error" if forced >= 500 else "sim_error")

        echo = self.options.echo or request.headers.get(ECHO_HEADER, "").lower() == "true"
        # Header names lower-cased: HTTP/1 proxies may re-case them, and HTTP treats them alike.
        headers = {name.lower(): value for name, value in request.headers.items()}
        received = {"headers": headers, "body": body} if echo else None
        text = self.reply_text(messages)
        prompt_tokens = sum(
            _word_count(_message_text(m.get("content"))) for m in messages if isinstance(m, dict)
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": _word_count(text),
            "total_tokens": prompt_tokens + _word_count(text),
        }
        identity = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "created": int(time.time()),
            "model": self.options.model,
        }
        log.debug("sim_completion", model=self.options.model, stream=bool(body.get("stream")))
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            return await self._stream(
                request, identity, text, usage if include_usage else None, received
            )
        payload: dict[str, Any] = {
            **identity,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        if received is not None:
            payload["sim_request"] = received
        return web.json_response(payload)

    async def _stream(
        self,
        request: web.Request,
        identity: dict[str, Any],
        text: str,
        usage: dict[str, int] | None,
        received: dict[str, Any] | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
        )
        await response.prepare(request)
        chunk_identity = {**identity, "object": "chat.completion.chunk"}

        split = _int_header(request, SPLIT_HEADER)
        fail_after = _int_header(request, FAIL_AFTER_HEADER)
        first_delay_s = _int_header(request, FIRST_CHUNK_DELAY_HEADER) / 1000
        chunk_delay_s = _int_header(request, CHUNK_DELAY_HEADER) / 1000
        sent = 0

        async def write(event: bytes) -> None:
            nonlocal sent
            if first_delay_s and sent == 0:
                await asyncio.sleep(first_delay_s)
            elif chunk_delay_s and sent > 0:
                await asyncio.sleep(chunk_delay_s)
            if fail_after and sent >= fail_after:
                # A model server crashing mid-stream: the connection drops, no terminating chunk.
                if request.transport is not None:
                    request.transport.abort()
                raise ConnectionResetError("simulated failure mid-stream")
            sent += 1
            if not split:
                await response.write(event)
                return
            for start in range(0, len(event), split):
                await response.write(event[start : start + split])
                await asyncio.sleep(0.002)

        async def send(payload: dict[str, Any]) -> None:
            await write(b"data: " + json.dumps(payload).encode() + b"\n\n")

        words = text.split(" ")
        for index, word in enumerate(words):
            delta: dict[str, Any] = {"content": word if index == 0 else " " + word}
            if index == 0:
                delta["role"] = "assistant"
            chunk: dict[str, Any] = {
                **chunk_identity,
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            if index == 0 and received is not None:
                chunk["sim_request"] = received
            await send(chunk)
        await send(
            {**chunk_identity, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        )
        if usage is not None:
            await send({**chunk_identity, "choices": [], "usage": usage})
        await write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": self.options.model,
                        "object": "model",
                        "created": 0,
                        "owned_by": "vsr-sim",
                    }
                ],
            }
        )

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "model": self.options.model})


def build_app(options: SimulatorOptions) -> web.Application:
    simulator = Simulator(options)
    # The default client_max_size (1 MiB) would reject the oversize bodies the tests send on purpose
    # before vsr could; the simulator accepts whatever a gateway lets through.
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", simulator.chat_completions)
    app.router.add_get("/v1/models", simulator.models)
    app.router.add_get("/health", simulator.health)
    return app


def run_simulator(options: SimulatorOptions, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM (aiohttp's runner handles both)."""
    log.info("sim_started", model=options.model, host=host, port=port)
    web.run_app(
        build_app(options), host=host, port=port, print=None, access_log=None, shutdown_timeout=2.0
    )
