"""The hand-off between the asyncio loop and the native transport's runtime thread under stress:
many streams in lock-step and in bursts, answers sent at once, after a loop pass or after a timer
(the runtime parked by then), and streams cancelled midway. A lost wake-up leaves a stream
waiting forever, so every scenario runs under a deadline."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc

from vsr.extproc.native import NativeExtProcServer


class Delayed:
    """Echoes each message's header key; the header value says when: "now", "pass" (after one
    loop pass) or "timer" (after a short sleep, when the runtime has parked)."""

    async def Process(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for message in requests:
            header = message.request_headers.headers.headers[0]
            if header.value == "pass":
                await asyncio.sleep(0)
            elif header.value == "timer":
                await asyncio.sleep(0.0005)
            answer = pb.ProcessingResponse()
            answer.request_headers.response.header_mutation.remove_headers.append(header.key)
            yield answer


def request(key: str, when: str) -> Any:
    message = pb.ProcessingRequest()
    message.request_headers.headers.headers.add(key=key, value=when)
    return message


async def lock_step(stub: Any, name: str, count: int, rng: random.Random) -> list[str]:
    """Write one message, wait for its answer, repeat: every answer may find the runtime parked."""
    call = stub.Process()
    tags = []
    for index in range(count):
        await call.write(request(f"{name}-{index}", rng.choice(("now", "pass", "timer"))))
        answer = await call.read()
        tags += answer.request_headers.response.header_mutation.remove_headers
    await call.done_writing()
    assert await call.read() == grpc.aio.EOF
    assert await call.code() == grpc.StatusCode.OK
    return tags


async def burst(stub: Any, name: str, count: int, rng: random.Random) -> list[str]:
    """Write every message before reading: answers of one stream leave in bursts."""
    call = stub.Process()
    for index in range(count):
        await call.write(request(f"{name}-{index}", rng.choice(("now", "now", "pass", "timer"))))
    await call.done_writing()
    tags = []
    while (answer := await call.read()) != grpc.aio.EOF:
        tags += answer.request_headers.response.header_mutation.remove_headers
    assert await call.code() == grpc.StatusCode.OK
    return tags


async def cancelled(stub: Any, name: str, rng: random.Random) -> None:
    """Open a stream, get an answer or not, and cancel it."""
    call = stub.Process()
    await call.write(request(f"{name}-0", rng.choice(("now", "timer"))))
    if rng.random() < 0.5:
        await call.read()
    call.cancel()


def test_many_streams_in_lock_step_and_bursts_with_cancellations_all_get_their_answers() -> None:
    async def scenario() -> None:
        rng = random.Random(7)
        server = NativeExtProcServer(
            Delayed(), host="127.0.0.1", port=0, reuse_port=False, max_message_bytes=1 << 20
        )
        port = server.start()
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(4)]
        stubs = [external_processor_pb2_grpc.ExternalProcessorStub(c) for c in channels]
        try:
            for round_ in range(3):
                jobs: list[Any] = []
                for index in range(120):
                    stub, name = stubs[index % len(stubs)], f"r{round_}s{index}"
                    kind = index % 3
                    if kind == 0:
                        jobs.append(lock_step(stub, name, 6, rng))
                    elif kind == 1:
                        jobs.append(burst(stub, name, 8, rng))
                    else:
                        jobs.append(cancelled(stub, name, rng))
                results = await asyncio.wait_for(asyncio.gather(*jobs), 60)
                for index, tags in enumerate(results):
                    count = (6, 8, 0)[index % 3]
                    if count:
                        assert tags == [f"r{round_}s{index}-{n}" for n in range(count)]
                # Lone lock-step streams: the runtime is parked before each answer.
                for index in range(20):
                    name = f"r{round_}lone{index}"
                    tags = await asyncio.wait_for(lock_step(stubs[0], name, 3, rng), 10)
                    assert tags == [f"{name}-{n}" for n in range(3)]
            # Cancelled streams end in the transport too, nothing is left open. The handler side
            # lets go of a reset stream when its cancelled task next runs (the core's count drops
            # first), so both are waited for; a stream that is never let go still fails here.
            for _ in range(500):
                if server._core.open_streams() == 0 and not server._streams:
                    break
                await asyncio.sleep(0.01)
            assert server._core.open_streams() == 0
            assert not server._streams
            # Answers to a parked runtime woke it (a timer's answer always finds it parked).
            assert server._core.wakes() > 0
        finally:
            for channel in channels:
                await channel.close()
            await server.stop(1.0)

    asyncio.run(scenario())
