"""The floor under vsr's ext_proc hop: a server on uvloop that answers every phase at once with a
fixed response (no routing, metrics or logging), as vsr's server is set up: on grpc.aio, or with
``--native`` on vsr's native transport (vsr.extproc.native, the default of ``vsr serve``).

bench_extproc drives it with extproc-load beside vsr, and through Envoy: the difference is vsr's
own work per request; the grpc.aio row is what any Python grpc.aio ext_proc server costs on the
machine, the native row what vsr's transport and Envoy's round trips cost before vsr decides
anything.

    .venv/bin/python benches/extproc_floor.py PORT [--native]
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
import uvloop
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc

# The response headers' answer asks for the body, as vsr does for a JSON response it reads.
ANSWERS = {
    "request_headers": ext_proc.ProcessingResponse(request_headers=ext_proc.HeadersResponse()),
    "request_body": ext_proc.ProcessingResponse(request_body=ext_proc.BodyResponse()),
    "response_headers": ext_proc.ProcessingResponse(
        response_headers=ext_proc.HeadersResponse(),
        mode_override=processing_mode_pb2.ProcessingMode(
            response_body_mode=processing_mode_pb2.ProcessingMode.STREAMED
        ),
    ),
    "response_body": ext_proc.ProcessingResponse(response_body=ext_proc.BodyResponse()),
}


class Floor(external_processor_pb2_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    async def Process(self, request_iterator: Any, context: Any) -> Any:
        async for message in request_iterator:
            yield ANSWERS[message.WhichOneof("request")]


async def serve(port: int) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(Floor(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("serving", flush=True)
    await server.wait_for_termination()


async def serve_native(port: int) -> None:
    from vsr.extproc.native import NativeExtProcServer

    server = NativeExtProcServer(
        Floor(), host="127.0.0.1", port=port, reuse_port=False, max_message_bytes=8 << 20
    )
    server.start()
    server.set_serving(True)
    print("serving", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if sys.argv[1:2] == [] or sys.argv[2:] not in ([], ["--native"]):
        sys.exit("usage: extproc_floor.py PORT [--native]")
    port = int(sys.argv[1])
    uvloop.run(serve_native(port) if sys.argv[2:] else serve(port))
