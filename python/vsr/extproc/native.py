"""The native ext_proc transport (``vsr serve --extproc-transport native``).

The HTTP/2 and gRPC work runs in the Rust core (``vsr._core.ExtProcServer``, on its own threads,
never taking the GIL); this module connects it to the asyncio loop. The core's eventfd wakes the
loop (``loop.add_reader``), one ``drain()`` takes every waiting event, and each stream runs the
**same** ``ExternalProcessor.Process`` coroutine grpc.aio runs, fed parsed ``ProcessingRequest``
messages through an async iterator; what it yields is serialized, queued, and handed to the core
once every ready handler of the loop pass has run (one wake of the core's thread per burst).
A stream the client resets cancels its handler task, as grpc.aio does. gRPC health (``Check``
and ``Watch``) is answered by the core from :meth:`NativeExtProcServer.set_serving`; ``Watch``
streams get each change, and end once :meth:`NativeExtProcServer.stop` begins (after NOT_SERVING).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
from typing import Any

import grpc
import structlog
from envoy.service.ext_proc.v3 import external_processor_pb2

log = structlog.get_logger(__name__)

_OPENED, _MESSAGE, _HALF_CLOSED, _RESET = 0, 1, 2, 3
_OK = grpc.StatusCode.OK.value[0]
_UNKNOWN = grpc.StatusCode.UNKNOWN.value[0]
_INTERNAL = grpc.StatusCode.INTERNAL.value[0]
_CANCELLED = grpc.StatusCode.CANCELLED.value[0]
_ProcessingRequest = external_processor_pb2.ProcessingRequest


class AbortError(Exception):
    """Raised by :meth:`StreamContext.abort` to end the stream with a status (grpc.aio's
    ``AbortError`` plays the same part)."""

    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _Requests:
    """The request iterator of one stream: messages arrive from ``drain()`` as bytes and are
    parsed when the handler asks for them."""

    __slots__ = ("_ended", "_items", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        # The loop, known when the stream opens: ``get_running_loop()`` per wait checks the
        # process id (a getpid syscall) each time.
        self._loop = loop
        self._items: collections.deque[bytes] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False

    def feed(self, data: bytes | None) -> None:
        if data is None:
            self._ended = True
        else:
            self._items.append(data)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> _Requests:
        return self

    async def __anext__(self) -> Any:
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            loop = self._loop or asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        try:
            return _ProcessingRequest.FromString(self._items.popleft())
        except Exception as error:  # protobuf's DecodeError
            raise AbortError(_INTERNAL, f"malformed ProcessingRequest: {error}") from None


class StreamContext:
    """The part of ``grpc.aio.ServicerContext`` the ext_proc handler uses."""

    __slots__ = ("_peer", "cancelled_by_peer")

    def __init__(self, peer: str) -> None:
        self._peer = peer
        self.cancelled_by_peer = False

    async def abort(self, code: grpc.StatusCode, details: str = "", *_: Any) -> None:
        # A str whatever the caller passed: the end goes to the core in a batch with other
        # streams' answers, which one bad value would otherwise make it refuse.
        raise AbortError(code.value[0], str(details or ""))

    def peer(self) -> str:
        return self._peer

    def cancelled(self) -> bool:
        return self.cancelled_by_peer

    def invocation_metadata(self) -> tuple[()]:
        return ()


class _Stream:
    __slots__ = ("context", "requests", "task")

    def __init__(self, peer: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.requests = _Requests(loop)
        self.context = StreamContext(peer)
        self.task: asyncio.Task[None] | None = None


class NativeExtProcServer:
    """The ext_proc listener of one ``vsr serve`` process on the native transport."""

    def __init__(
        self,
        servicer: Any,
        *,
        host: str,
        port: int,
        reuse_port: bool,
        max_message_bytes: int,
        threads: int = 1,
    ) -> None:
        from vsr._core import ExtProcServer

        self._servicer = servicer
        self._core = ExtProcServer(
            host,
            port,
            reuse_port=reuse_port,
            max_message_bytes=max_message_bytes,
            threads=threads,
        )
        self._streams: dict[int, _Stream] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Event | None = None
        # Answers wait here until the loop has run every ready handler, then go to the core in
        # one call: the core's thread is woken once per burst instead of once per answer (each
        # wake from this thread is an eventfd write that often switches threads).
        self._outbound: list[tuple[int, bytes | None, int, str]] = []

    @property
    def port(self) -> int:
        return int(self._core.port)

    def start(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._loop.add_reader(self._core.fileno(), self._on_events)
        return self.port

    def set_serving(self, serving: bool) -> None:
        """The health status: what ``Check`` answers and ``Watch`` streams send on a change."""
        self._core.set_serving(serving)

    def _on_events(self) -> None:
        streams = self._streams
        for kind, stream_id, payload in self._core.drain():
            if kind == _MESSAGE:
                stream = streams.get(stream_id)
                if stream is not None:
                    stream.requests.feed(payload)
            elif kind == _OPENED:
                stream = _Stream(payload, self._loop)
                streams[stream_id] = stream
                task = self._loop.create_task(self._run(stream_id, stream))  # type: ignore[union-attr]
                # Let go of the stream when its task ends, however it ends: a stream reset in the
                # same drain as its opening is cancelled before its coroutine ever runs, so no
                # code inside _run (a finally) would run for it.
                task.add_done_callback(functools.partial(self._ended, stream_id))
                stream.task = task
            elif kind == _HALF_CLOSED:
                stream = streams.get(stream_id)
                if stream is not None:
                    stream.requests.feed(None)
            else:  # reset by the peer (or a transport error): cancel the handler, as grpc.aio does
                stream = streams.get(stream_id)
                if stream is not None and stream.task is not None:
                    stream.context.cancelled_by_peer = True
                    stream.task.cancel()

    def _queue(
        self, stream_id: int, data: bytes | None, code: int = _OK, details: str = ""
    ) -> None:
        """Queue an answer (``data``) or the end of a stream (``data`` None: ``code``)."""
        if not self._outbound:
            self._loop.call_soon(self._flush)  # type: ignore[union-attr]
        self._outbound.append((stream_id, data, code, details))

    def _flush(self) -> None:
        outbound, self._outbound = self._outbound, []
        try:
            self._core.send_batch(outbound)
        except Exception:
            # One item the core refuses must not leave the other streams of the pass unanswered.
            log.exception("extproc_send_failed")
            for item in outbound:
                try:
                    self._core.send_batch([item])
                except Exception:  # end that stream rather than leave Envoy waiting on it
                    with contextlib.suppress(Exception):
                        self._core.send_batch([(item[0], None, _INTERNAL, "answer not sendable")])

    async def _run(self, stream_id: int, stream: _Stream) -> None:
        queue = self._queue
        code, details = _OK, ""
        try:
            async for response in self._servicer.Process(stream.requests, stream.context):
                queue(stream_id, response.SerializeToString())
        except AbortError as abort:
            code, details = abort.code, abort.details
        except asyncio.CancelledError:
            if not stream.context.cancelled_by_peer:
                queue(stream_id, None, _CANCELLED, "server shutting down")
            code = -1
        except Exception:
            log.exception("extproc_handler_failed")
            code, details = _UNKNOWN, "Unexpected error in the ext_proc handler"
        if code >= 0:
            queue(stream_id, None, code, details)

    def _ended(self, stream_id: int, _task: asyncio.Task[None]) -> None:
        self._streams.pop(stream_id, None)
        if not self._streams and self._idle is not None:
            self._idle.set()

    async def stop(self, grace_s: float) -> None:
        """Stop taking connections (GOAWAY on open ones), give open streams ``grace_s`` to
        finish, cancel the rest, then stop the core."""
        self._core.set_serving(False)
        self._core.stop_accepting()
        if self._streams and self._idle is not None:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace_s)
        tasks = [stream.task for stream in self._streams.values() if stream.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._flush()  # the cancelled streams' closes
        if self._loop is not None:
            self._loop.remove_reader(self._core.fileno())
        self._core.shutdown()
