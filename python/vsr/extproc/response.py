"""Reading a model's response as it passes through: token usage, first-chunk time, and the usage
chunk vsr asked for on the client's behalf.

Envoy sends a streamed (SSE) response body chunk by chunk, and waits for vsr's answer to each
before passing it on, so every chunk is answered at once: unchanged, except that the usage chunk
vsr added (``stream_options.include_usage`` the client did not ask for) is cut out. Events may be
split across chunks anywhere; only an event that starts after the model's finish chunk is held
until it is complete (the usage chunk comes after the finish chunk), so content is never delayed.

A JSON response is collected (up to ``MAX_JSON_BYTES``) and its ``usage`` read at the end. Nothing
here may break a response: on any surprise the reader stops parsing and passes the bytes through.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vsr.routing import json_codec

# Events are separated by a blank line; servers end lines with LF, CRLF or CR.
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(r"\r\n|\n|\r")
# A chunk that ends a choice: "finish_reason" with a string, not null.
_FINISHED = re.compile(r'"finish_reason"\s*:\s*"')
# An incomplete event longer than this is not parsed (nor held): the stream passes through.
MAX_EVENT_BYTES = 1 << 20
MAX_JSON_BYTES = 8 << 20


def request_usage(body: dict[str, Any]) -> bool:
    """Set ``stream_options.include_usage: true`` on a streaming body that did not ask for it.

    True when the body changed. Other ``stream_options`` survive; a ``stream_options`` that is not
    an object is left alone (the model server decides what it means)."""
    options = body.get("stream_options")
    if options is None:
        body["stream_options"] = {"include_usage": True}
        return True
    if isinstance(options, dict) and options.get("include_usage") is not True:
        options["include_usage"] = True
        return True
    return False


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_payload(cls, usage: Any) -> Usage | None:
        """OpenAI's ``usage`` object, or None when it is not one."""
        if not isinstance(usage, Mapping):
            return None
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not isinstance(prompt, int) or not isinstance(completion, int):
            return None
        return cls(max(prompt, 0), max(completion, 0))


@dataclass
class ResponseStats:
    """What the reader learnt; read by accounting when the response ends."""

    first_chunk_at: float | None = None  # perf_counter() of the first body bytes
    last_chunk_at: float | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    done: bool = False  # ``data: [DONE]`` seen
    events: int = 0
    non_json_events: int = 0
    usage_stripped: bool = False
    parse_failed: bool = False  # a JSON body that did not parse, or a reader error
    broken: bool = False  # the reader gave up; bytes pass through unread
    bytes_seen: int = 0


@dataclass
class SseReader:
    """Parses an SSE stream incrementally; ``feed`` returns the bytes to send for each chunk
    (None: the chunk unchanged).

    ``strip_usage``: cut out the usage-only chunk (``"choices": []`` with ``usage``)."""

    strip_usage: bool = False
    stats: ResponseStats = field(default_factory=ResponseStats)
    _partial: bytearray = field(default_factory=bytearray)  # the current incomplete event
    _held: bool = False  # whether _partial's bytes were withheld from the client

    def feed(self, chunk: bytes, end_of_stream: bool = False) -> bytes | None:
        _note_chunk(self.stats, chunk)
        if self.stats.broken:
            return None
        try:
            out = self._feed(chunk, end_of_stream)
        except Exception:
            # Never break the stream: give back what was held, then read no more.
            self.stats.broken = True
            out = (bytes(self._partial) if self._held else b"") + chunk
            self._partial.clear()
        return None if out == chunk else out

    def _feed(self, chunk: bytes, end_of_stream: bool) -> bytes:
        buffer = bytes(self._partial) + chunk
        chunk_start = len(self._partial)  # where this chunk's bytes begin in buffer
        out = bytearray()
        position = 0
        for match in _EVENT_END.finditer(buffer):
            self._emit(buffer, position, match.end(), chunk_start, out)
            position = match.end()
        rest = buffer[position:]
        if position > 0 or not self._partial:
            # A new incomplete event starts in this chunk: hold it only after the finish chunk.
            self._held = (
                self.strip_usage and self.stats.finish_reason is not None and not end_of_stream
            )
            if not self._held:
                out += buffer[max(position, chunk_start) :]
        elif not self._held:
            out += chunk  # the same incomplete event continues, already passing through
        self._partial = bytearray(rest)
        if end_of_stream:
            if rest:
                self._emit(buffer, position, len(buffer), chunk_start, out, already=not self._held)
            self._partial.clear()
        elif len(self._partial) > MAX_EVENT_BYTES:
            if self._held:
                out += self._partial
            self.stats.broken = True
            self._partial.clear()
        return bytes(out)

    def _emit(
        self,
        buffer: bytes,
        start: int,
        end: int,
        chunk_start: int,
        out: bytearray,
        *,
        already: bool = False,
    ) -> None:
        """Read one complete event ``buffer[start:end]`` and add what the client should get."""
        event = buffer[start:end]
        drop = self._read_event(event) and self.strip_usage
        if already:
            return  # its bytes went out with the incomplete tail (end of stream)
        if start < chunk_start and not self._held:
            # Its head already reached the client: it cannot be taken back, send the rest.
            if drop:
                self.stats.usage_stripped = False
            out += buffer[chunk_start:end]
            return
        if drop:
            self.stats.usage_stripped = True
            return
        out += event

    def _read_event(self, raw: bytes) -> bool:
        """Note what one event says; True when it is a usage-only chunk."""
        lines = _LINE.split(raw.decode("utf-8", errors="replace"))
        data = [line[5:].removeprefix(" ") for line in lines if line.startswith("data:")]
        if not data:
            return False  # a comment (": keep-alive") or a bare event/id line
        payload = "\n".join(data)
        self.stats.events += 1
        if payload.strip() == "[DONE]":
            self.stats.done = True
            return False
        if not payload.lstrip().startswith("{"):
            self.stats.non_json_events += 1
            return False
        if '"usage"' not in payload and not _FINISHED.search(payload):
            return False  # a plain content chunk: nothing to learn, no JSON parse on the loop
        try:
            parsed = json.loads(payload)
        except ValueError:
            self.stats.non_json_events += 1
            return False
        if not isinstance(parsed, dict):
            self.stats.non_json_events += 1
            return False
        choices = parsed.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, Mapping) and choice.get("finish_reason"):
                    self.stats.finish_reason = str(choice["finish_reason"])[:64]
        usage = Usage.from_payload(parsed.get("usage"))
        if usage is not None:
            self.stats.usage = usage
            return choices == []
        return False


@dataclass
class JsonReader:
    """Collects a JSON response (passing every chunk on unchanged) and reads its ``usage``."""

    stats: ResponseStats = field(default_factory=ResponseStats)
    _body: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes, end_of_stream: bool = False) -> bytes | None:
        _note_chunk(self.stats, chunk)
        if self.stats.broken:
            return None
        if len(self._body) + len(chunk) > MAX_JSON_BYTES:
            self.stats.broken = True
            self._body.clear()
            return None
        if end_of_stream and not self._body:
            self._finish(chunk)  # the whole body in one chunk: read it where it is
            return None
        self._body += chunk
        if end_of_stream:
            self._finish(self._body)
        return None

    def _finish(self, body: bytes | bytearray) -> None:
        try:
            parsed = json_codec.loads_lenient(body)
            if _reads_float(parsed):
                # orjson reads an integer past 64 bits as a float: read it as json does.
                parsed = json.loads(body)
        except ValueError:
            self.stats.parse_failed = True
            return
        finally:
            self._body.clear()
        if isinstance(parsed, dict):
            self.stats.usage = Usage.from_payload(parsed.get("usage"))
            choices = parsed.get("choices")
            if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
                reason = choices[0].get("finish_reason")
                self.stats.finish_reason = str(reason)[:64] if reason else None


def _reads_float(parsed: Any) -> bool:
    """Whether a value ``JsonReader`` reads (the usage's token counts, the first choice's
    finish_reason) is a float."""
    if not isinstance(parsed, dict):
        return False
    usage = parsed.get("usage")
    if isinstance(usage, Mapping) and (
        isinstance(usage.get("prompt_tokens"), float)
        or isinstance(usage.get("completion_tokens"), float)
    ):
        return True
    choices = parsed.get("choices")
    return (
        isinstance(choices, list)
        and bool(choices)
        and isinstance(choices[0], Mapping)
        and isinstance(choices[0].get("finish_reason"), float)
    )


ResponseReader = SseReader | JsonReader


def reader_for(content_type: str, *, strip_usage: bool) -> ResponseReader | None:
    """The reader for a response's ``content-type``; None for bodies vsr does not read."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "text/event-stream":
        return SseReader(strip_usage=strip_usage)
    if kind == "application/json":
        return JsonReader()
    return None


def _note_chunk(stats: ResponseStats, chunk: bytes) -> None:
    now = time.perf_counter()
    if chunk and stats.first_chunk_at is None:
        stats.first_chunk_at = now
    stats.last_chunk_at = now
    stats.bytes_seen += len(chunk)
