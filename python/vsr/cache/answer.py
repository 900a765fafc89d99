"""A cached answer: assembled from the model's response (a JSON completion or an SSE stream, as
the bytes pass through), and replayed as either form whatever form it was stored from.

Only a complete, single-choice, successful answer is kept: a stream must end with a finish
reason and ``data: [DONE]``; a body with ``error``, several choices, a refusal or (unless
allowed) tool calls is dropped. The collector never changes the bytes it reads.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vsr.wire import completion_id, json_bytes

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(r"\r\n|\n|\r")
# Finish reasons of a whole answer ("length" is whole for the same max_tokens, which is keyed).
CACHEABLE_FINISH = frozenset({"stop", "length", "tool_calls"})


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """``message``: the assistant message (role, content, and tool_calls / reasoning_content when
    present); ``usage``: the original ``usage`` object (or None)."""

    model: str
    message: Mapping[str, Any]
    finish_reason: str
    usage: Mapping[str, Any] | None

    def to_bytes(self) -> bytes:
        return json_bytes(
            {
                "model": self.model,
                "message": dict(self.message),
                "finish_reason": self.finish_reason,
                "usage": None if self.usage is None else dict(self.usage),
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> CachedAnswer:
        data = json.loads(raw)
        return cls(data["model"], data["message"], data["finish_reason"], data.get("usage"))

    def completion(self, created: int | None = None) -> bytes:
        """The answer as a ``chat.completion`` JSON body."""
        return json_bytes(
            {
                "id": completion_id(),
                "object": "chat.completion",
                "created": created if created is not None else int(time.time()),
                "model": self.model,
                "choices": [
                    {
                        "index": 0,
                        "message": dict(self.message),
                        "logprobs": None,
                        "finish_reason": self.finish_reason,
                    }
                ],
                "usage": None if self.usage is None else dict(self.usage),
            }
        )

    def stream(self, *, include_usage: bool, created: int | None = None) -> bytes:
        """The answer as SSE ``chat.completion.chunk`` events ending in ``data: [DONE]``."""
        ident = completion_id()
        created = created if created is not None else int(time.time())

        def chunk(delta: Mapping[str, Any], finish: str | None, **extra: Any) -> bytes:
            payload = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [
                    {"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish}
                ],
                **extra,
            }
            return b"data: " + json_bytes(payload) + b"\n\n"

        events = [chunk({"role": "assistant", "content": ""}, None)]
        delta = {k: v for k, v in self.message.items() if k != "role" and v is not None}
        if "tool_calls" in delta:
            delta["tool_calls"] = [
                {**call, "index": index} for index, call in enumerate(delta["tool_calls"])
            ]
        if delta:
            events.append(chunk(delta, None))
        events.append(chunk({}, self.finish_reason))
        if include_usage and self.usage is not None:
            usage = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [],
                "usage": dict(self.usage),
            }
            events.append(b"data: " + json_bytes(usage) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return b"".join(events)


@dataclass
class AnswerCollector:
    """Reads a 2xx response body as it passes (``stream``: SSE, else JSON); ``answer()`` at the
    end gives the answer to cache, or None with ``reason`` set."""

    stream: bool
    max_bytes: int
    tool_calls_allowed: bool = False
    reason: str | None = None
    _buffer: bytearray = field(default_factory=bytearray)
    _size: int = 0
    _model: str = ""
    _message: dict[str, Any] = field(default_factory=dict)
    _tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    _finish: str | None = None
    _usage: Mapping[str, Any] | None = None
    _done: bool = False
    _ended: bool = False

    def feed(self, chunk: bytes, end_of_stream: bool) -> None:
        if self.reason is not None:
            return
        try:
            self._size += len(chunk)
            if self._size > self.max_bytes * 4:
                self._give_up("too_large")
                return
            self._buffer += chunk
            if self.stream:
                self._read_events(end_of_stream)
            if end_of_stream:
                self._ended = True
                if not self.stream:
                    self._read_completion(json.loads(self._buffer))
        except Exception:
            self._give_up("unreadable")

    def _give_up(self, reason: str) -> None:
        self.reason = reason
        self._buffer.clear()

    def _read_events(self, end_of_stream: bool) -> None:
        data = bytes(self._buffer)
        position = 0
        for match in _EVENT_END.finditer(data):
            self._read_event(data[position : match.start()])
            position = match.end()
        rest = data[position:]
        if end_of_stream and rest.strip():
            self._read_event(rest)
            rest = b""
        self._buffer = bytearray(rest)

    def _read_event(self, raw: bytes) -> None:
        lines = _LINE.split(raw.decode("utf-8"))
        payload = "\n".join(ln[5:].removeprefix(" ") for ln in lines if ln.startswith("data:"))
        if not payload:
            return
        if payload.strip() == "[DONE]":
            self._done = True
            return
        event = json.loads(payload)
        if not isinstance(event, dict) or "error" in event:
            raise ValueError("an error event")
        self._model = str(event.get("model") or self._model)
        if event.get("usage"):
            self._usage = event["usage"]
        for choice in event.get("choices") or []:
            if choice.get("index", 0) != 0:
                raise ValueError("several choices")
            delta = choice.get("delta") or {}
            for name, value in delta.items():
                if name == "tool_calls":
                    self._merge_tool_calls(value)
                elif isinstance(value, str) and name != "role":
                    self._message[name] = self._message.get(name, "") + value
                elif value is not None:
                    self._message[name] = value
            if choice.get("finish_reason"):
                self._finish = str(choice["finish_reason"])

    def _merge_tool_calls(self, calls: list[dict[str, Any]]) -> None:
        for call in calls:
            merged = self._tool_calls.setdefault(int(call.get("index", 0)), {})
            for name in ("id", "type"):
                if call.get(name):
                    merged[name] = call[name]
            function = call.get("function") or {}
            target = merged.setdefault("function", {"name": "", "arguments": ""})
            target["name"] += function.get("name") or ""
            target["arguments"] += function.get("arguments") or ""

    def _read_completion(self, body: Any) -> None:
        if not isinstance(body, dict) or "error" in body:
            raise ValueError("not a completion")
        choices = body.get("choices")
        if not isinstance(choices, list) or len(choices) != 1:
            self.reason = "not_one_choice"
            return
        self._model = str(body.get("model") or "")
        self._message = dict(choices[0].get("message") or {})
        self._finish = choices[0].get("finish_reason")
        self._usage = body.get("usage")
        self._done = True

    def answer(self) -> CachedAnswer | None:
        if self.reason is not None:
            return None
        if not self._ended or not self._done or self._finish is None:
            self.reason = "incomplete"
            return None
        if self._finish not in CACHEABLE_FINISH:
            self.reason = "finish_reason"
            return None
        message = {"role": "assistant", **{k: v for k, v in self._message.items() if k != "role"}}
        if self._tool_calls:
            message["tool_calls"] = [self._tool_calls[i] for i in sorted(self._tool_calls)]
        if message.get("tool_calls") and not self.tool_calls_allowed:
            self.reason = "tool_calls"
            return None
        if message.get("refusal"):
            self.reason = "refusal"
            return None
        message.setdefault("content", None)
        answer = CachedAnswer(self._model, message, self._finish, self._usage)
        if len(answer.to_bytes()) > self.max_bytes:
            self.reason = "too_large"
            return None
        return answer
