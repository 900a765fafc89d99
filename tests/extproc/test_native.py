"""The native ext_proc transport (vsr.extproc.native) with a fake handler, driven by grpc.aio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vsr.extproc.native import NativeExtProcServer


class Echo:
    """Answers each message with an empty phase answer; 'abort' and 'hang' by request header
    count (1 message: answer, 2: abort, 3: hang until cancelled)."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.started = asyncio.Event()

    async def Process(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for message in requests:
            which = len(message.request_headers.headers.headers)
            if which == 2:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no ñ")
            if which == 3:
                self.started.set()
                try:
                    await asyncio.sleep(60)
                except asyncio.CancelledError:
                    self.cancelled.set()
                    raise
            yield pb.ProcessingResponse(request_headers=pb.HeadersResponse())


def headers(count: int) -> Any:
    request = pb.ProcessingRequest()
    for index in range(count):
        request.request_headers.headers.headers.add(key=f"h{index}", value="v")
    return request


async def started(handler: Any) -> tuple[NativeExtProcServer, grpc.aio.Channel, Any]:
    server = NativeExtProcServer(
        handler, host="127.0.0.1", port=0, reuse_port=False, max_message_bytes=1 << 20
    )
    port = server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return server, channel, external_processor_pb2_grpc.ExternalProcessorStub(channel)


def test_messages_answers_abort_and_reset() -> None:
    async def scenario() -> None:
        handler = Echo()
        server, channel, stub = await started(handler)
        try:
            call = stub.Process()
            for _ in range(3):
                await call.write(headers(1))
                answer = await call.read()
                assert answer.WhichOneof("response") == "request_headers"
            await call.done_writing()
            assert await call.read() == grpc.aio.EOF
            assert await call.code() == grpc.StatusCode.OK

            call = stub.Process()
            await call.write(headers(2))
            assert await call.code() == grpc.StatusCode.PERMISSION_DENIED
            assert await call.details() == "no ñ"

            call = stub.Process()
            await call.write(headers(3))
            await asyncio.wait_for(handler.started.wait(), 5)
            call.cancel()  # the client resets the stream: the handler is cancelled
            await asyncio.wait_for(handler.cancelled.wait(), 5)
        finally:
            await channel.close()
            await server.stop(1.0)

    asyncio.run(scenario())


def test_health_check_follows_the_serving_flag_and_unknown_methods_are_unimplemented() -> None:
    async def scenario() -> None:
        server, channel, _ = await started(Echo())
        try:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "envoy.service.ext_proc.v3.ExternalProcessor"):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
            server.set_serving(True)
            reply = await health.Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            try:
                await health.Check(health_pb2.HealthCheckRequest(service="other"))
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND
            else:
                raise AssertionError("unknown service answered")
            try:
                await channel.unary_unary("/grpc.health.v1.Health/List")(b"")
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.UNIMPLEMENTED
            else:
                raise AssertionError("unknown method answered")
        finally:
            await channel.close()
            await server.stop(1.0)

    asyncio.run(scenario())


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


async def next_status(watch: Any) -> Any:
    reply = await asyncio.wait_for(watch.read(), 5)
    assert reply is not grpc.aio.EOF
    return reply.status


async def watches_drop_to(server: NativeExtProcServer, count: int) -> None:
    for _ in range(500):
        if server._core.health_watches() == count:
            return
        await asyncio.sleep(0.01)
    assert server._core.health_watches() == count


def test_health_watch_streams_the_status_and_each_change_until_the_server_stops() -> None:
    """grpc.health.v1 Watch with grpcio's stub: the status at once, a message per change, and on
    stop NOT_SERVING then the end of the stream (UNAVAILABLE)."""

    async def scenario() -> None:
        server, channel, _ = await started(Echo())
        stopped = False
        try:
            health = health_pb2_grpc.HealthStub(channel)
            everything = health.Watch(health_pb2.HealthCheckRequest())
            ext_proc = health.Watch(
                health_pb2.HealthCheckRequest(service="envoy.service.ext_proc.v3.ExternalProcessor")
            )
            for watch in (everything, ext_proc):
                assert await next_status(watch) == NOT_SERVING
            server.set_serving(True)
            for watch in (everything, ext_proc):
                assert await next_status(watch) == SERVING
            server.set_serving(True)  # not a change: nothing is sent (the next read is the change)
            for serving, expected in ((False, NOT_SERVING), (True, SERVING)):
                server.set_serving(serving)
                for watch in (everything, ext_proc):
                    assert await next_status(watch) == expected
            # A late watcher gets the current status at once.
            late = health.Watch(health_pb2.HealthCheckRequest())
            assert await next_status(late) == SERVING
            assert server._core.health_watches() == 3

            # Stopping: NOT_SERVING first, then each stream ends with UNAVAILABLE (written out
            # before the core shuts down, not a dropped connection).
            stopped = True
            await server.stop(1.0)
            for watch in (everything, ext_proc, late):
                assert await next_status(watch) == NOT_SERVING
                try:
                    await asyncio.wait_for(watch.read(), 5)
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.UNAVAILABLE
                    assert error.details() == "server shutting down"
                else:
                    raise AssertionError("the watch went on after stop")
            assert server._core.health_watches() == 0
        finally:
            await channel.close()
            if not stopped:
                await server.stop(1.0)

    asyncio.run(scenario())


def test_health_watch_of_an_unknown_service_streams_service_unknown() -> None:
    async def scenario() -> None:
        server, channel, _ = await started(Echo())
        try:
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service="other"))
            assert await next_status(watch) == SERVICE_UNKNOWN
            server.set_serving(True)  # the known services' change sends nothing here
            known = health.Watch(health_pb2.HealthCheckRequest())
            assert await next_status(known) == SERVING
            read = asyncio.ensure_future(watch.read())
            await asyncio.sleep(0.2)
            assert not read.done()  # the call stays open, not an error
            read.cancel()
            assert not watch.done()
        finally:
            await channel.close()
            await server.stop(1.0)

    asyncio.run(scenario())


def test_health_watches_cancelled_by_the_client_end_in_the_transport() -> None:
    """A watch the client cancels ends its task (no stream kept per cancelled watch): many
    watchers come and go, on open and on closed channels, while the status changes."""

    async def scenario() -> None:
        server, channel, _ = await started(Echo())
        try:
            health = health_pb2_grpc.HealthStub(channel)
            watches = [health.Watch(health_pb2.HealthCheckRequest()) for _ in range(50)]
            for watch in watches:
                assert await next_status(watch) == NOT_SERVING
            await watches_drop_to(server, 50)
            for index, watch in enumerate(watches):
                watch.cancel()
                if index == 25:
                    server.set_serving(True)  # the change reaches the live ones, not the others
            await watches_drop_to(server, 0)
            assert server._core.open_streams() == 0

            # A closed channel resets its watches too.
            other = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
            closing = health_pb2_grpc.HealthStub(other).Watch(health_pb2.HealthCheckRequest())
            assert await next_status(closing) == SERVING
            await watches_drop_to(server, 1)
            await other.close()
            await watches_drop_to(server, 0)

            # Still answering after all of that.
            watch = health.Watch(health_pb2.HealthCheckRequest())
            assert await next_status(watch) == SERVING
            watch.cancel()
            await watches_drop_to(server, 0)
        finally:
            await channel.close()
            await server.stop(1.0)

    asyncio.run(scenario())


def test_oversize_message_is_refused_and_malformed_one_is_internal() -> None:
    async def scenario() -> None:
        server = NativeExtProcServer(
            Echo(), host="127.0.0.1", port=0, reuse_port=False, max_message_bytes=1000
        )
        port = server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        try:
            stub = external_processor_pb2_grpc.ExternalProcessorStub(channel)
            call = stub.Process()
            await call.write(headers(300))  # > 1000 bytes
            code = await asyncio.wait_for(call.code(), 5)
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            raw = channel.stream_stream(
                "/envoy.service.ext_proc.v3.ExternalProcessor/Process",
                request_serializer=lambda data: data,
                response_deserializer=lambda data: data,
            )()
            await raw.write(b"\xff\xff\xff")
            assert await asyncio.wait_for(raw.code(), 5) == grpc.StatusCode.INTERNAL
        finally:
            await channel.close()
            await server.stop(1.0)

    asyncio.run(scenario())


class Tagged:
    """Answers each message with its first header's name in ``remove_headers``, so a client can
    tell which answer is which."""

    async def Process(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for message in requests:
            tag = message.request_headers.headers.headers[0].key
            answer = pb.ProcessingResponse()
            answer.request_headers.response.header_mutation.remove_headers.append(tag)
            yield answer


def test_answers_of_many_streams_share_batches_and_keep_their_order() -> None:
    """Answers and stream ends queued in one loop pass reach the core in one batch: each stream
    still gets its own answers, in order, then its end."""

    async def one_stream(stub: Any, stream: int) -> list[str]:
        call = stub.Process()
        for index in range(3):  # pipelined: vsr gets them back to back, as Envoy may send them
            message = pb.ProcessingRequest()
            message.request_headers.headers.headers.add(key=f"s{stream}-{index}", value="v")
            await call.write(message)
        await call.done_writing()
        tags = []
        while (answer := await call.read()) != grpc.aio.EOF:
            tags += answer.request_headers.response.header_mutation.remove_headers
        assert await call.code() == grpc.StatusCode.OK
        return tags

    async def scenario() -> None:
        server, channel, stub = await started(Tagged())
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(one_stream(stub, stream) for stream in range(40))), 10
            )
        finally:
            await channel.close()
            await server.stop(1.0)
        for stream, tags in enumerate(results):
            assert tags == [f"s{stream}-{index}" for index in range(3)]

    asyncio.run(scenario())


class AbortsWithoutDetails:
    """Aborts a stream with details None (grpc.aio accepts it); answers the others."""

    async def Process(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for message in requests:
            if message.request_headers.headers.headers[0].key == "abort":
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, None)
            yield pb.ProcessingResponse(request_headers=pb.HeadersResponse())


def test_an_abort_without_details_ends_its_stream_and_spares_the_batch() -> None:
    async def one(stub: Any, key: str) -> grpc.StatusCode:
        call = stub.Process()
        message = pb.ProcessingRequest()
        message.request_headers.headers.headers.add(key=key, value="v")
        await call.write(message)
        await call.done_writing()
        try:
            while await call.read() != grpc.aio.EOF:
                pass
        except grpc.aio.AioRpcError as error:
            return error.code()
        return await call.code()

    async def scenario() -> list[grpc.StatusCode]:
        server, channel, stub = await started(AbortsWithoutDetails())
        try:
            keys = ["abort" if index % 2 else "answer" for index in range(20)]
            return await asyncio.wait_for(asyncio.gather(*(one(stub, k) for k in keys)), 10)
        finally:
            await channel.close()
            await server.stop(1.0)

    codes = asyncio.run(scenario())
    assert codes[0::2] == [grpc.StatusCode.OK] * 10
    assert codes[1::2] == [grpc.StatusCode.FAILED_PRECONDITION] * 10


def test_an_answer_the_core_refuses_ends_its_stream_and_spares_the_others() -> None:
    """If the core refuses a batch (a value of a type it cannot take), each item is handed over
    on its own, and a refused one ends its stream with INTERNAL instead of leaving it open."""

    class Core:
        def __init__(self) -> None:
            self.taken: list[tuple[int, bytes | None, int, Any]] = []

        def send_batch(self, items: list[tuple[int, bytes | None, int, Any]]) -> None:
            if any(not isinstance(details, str) for _, _, _, details in items):
                raise TypeError("details must be a str")
            self.taken += items

    server = NativeExtProcServer(
        Echo(), host="127.0.0.1", port=0, reuse_port=False, max_message_bytes=1 << 20
    )
    try:
        core = Core()
        bad: Any = object()  # what send_batch refuses
        server._outbound = [(1, b"a", 0, ""), (2, None, 9, bad), (3, None, 0, "")]
        real, server._core = server._core, core  # type: ignore[assignment]
        server._flush()
        assert core.taken == [
            (1, b"a", 0, ""),
            (2, None, 13, "answer not sendable"),
            (3, None, 0, ""),
        ]
    finally:
        server._core = real
        real.shutdown()
