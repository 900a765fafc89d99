"""CPU per request of vsr's ext_proc handler in process: no transport, no Envoy, no load generator.

One ``vsr serve``'s handler (``ExternalProcessor.Process``, what the native transport runs per
stream) is fed the four messages extproc-load sends for one chat completion (request headers, the
buffered body, response headers, the response body), as serialized bytes, and its answers are
serialized, as the native adapter does; requests run one after another on uvloop. The policy is
bench_extproc's keyword-only one (no model runs), logging as ``vsr serve --log-level warning``.

A/B in one run: ``--tree DIR`` (repeatable) runs each tree's ``python/`` (e.g. a git worktree of
the commit before) in its own process, rounds interleaved, and prints the median per tree:

    .venv/bin/python benches/bench_handler.py --tree /tmp/before --tree . [--rounds 5]
        [--requests 3000] [--log-level warning]

The figure is ``time.process_time()`` per request (all threads of the process), so other jobs on
the machine lengthen it less than wall time; compare trees of one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_extproc import KEYWORD_POLICY, PROMPTS

# What extproc-load's simulated backend answers (benches/extproc_load/main.go).
COMPLETION = (
    b'{"id":"chatcmpl-sim","object":"chat.completion","created":1700000000,'
    b'"model":"phi4-mini","choices":[{"index":0,"message":{"role":"assistant","content":'
    b'"This is a simulated answer from the backend."},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}'
)


def messages(index: int) -> list[bytes]:
    """The serialized ProcessingRequests of request ``index``, as extproc-load sends them."""
    from envoy.config.core.v3 import base_pb2
    from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc

    def header_map(headers: dict[str, str]) -> Any:
        return base_pb2.HeaderMap(
            headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in headers.items()]
        )

    prompt = PROMPTS[index % len(PROMPTS)]
    body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": prompt}]}).encode()
    request_headers = {
        ":authority": "127.0.0.1:8801",
        ":path": "/v1/chat/completions",
        ":method": "POST",
        ":scheme": "http",
        "content-type": "application/json",
        "content-length": str(len(body)),
        "user-agent": "extproc-load/1",
        "accept": "*/*",
        "x-forwarded-proto": "http",
        "x-request-id": f"00000000-0000-4000-8000-{index:012d}",
    }
    response_headers = {
        ":status": "200",
        "content-type": "application/json",
        "content-length": str(len(COMPLETION)),
        "date": "Wed, 02 Dec 2026 00:00:00 GMT",
        "server": "envoy",
        "x-envoy-upstream-service-time": "0",
    }
    return [
        ext_proc.ProcessingRequest(
            request_headers=ext_proc.HttpHeaders(headers=header_map(request_headers))
        ).SerializeToString(),
        ext_proc.ProcessingRequest(
            request_body=ext_proc.HttpBody(body=body, end_of_stream=True)
        ).SerializeToString(),
        ext_proc.ProcessingRequest(
            response_headers=ext_proc.HttpHeaders(headers=header_map(response_headers))
        ).SerializeToString(),
        ext_proc.ProcessingRequest(
            response_body=ext_proc.HttpBody(body=COMPLETION, end_of_stream=True)
        ).SerializeToString(),
    ]


async def measure(requests: int, log_level: str) -> dict[str, float]:
    """Handle ``requests`` requests (after a warm-up); CPU and wall microseconds per request."""
    from vsr.extproc.native import StreamContext, _Requests
    from vsr.extproc.service import ExternalProcessor
    from vsr.observability.logging import configure_logging
    from vsr.runtime import Runtime, config_generation_builder

    configure_logging("json", log_level)
    work = Path(tempfile.mkdtemp(prefix="vsr-bench-handler-"))
    config = work / "keyword.yaml"
    config.write_text(json.dumps(KEYWORD_POLICY))
    runtime = Runtime(config_generation_builder(config))
    await runtime.start()
    service = ExternalProcessor(runtime, max_body_bytes=8 << 20, failure_policy="open")
    prepared = [messages(index) for index in range(len(PROMPTS))]
    answers = 0

    async def one(index: int) -> None:
        nonlocal answers
        stream = _Requests()
        for data in prepared[index % len(prepared)]:
            stream.feed(data)
        stream.feed(None)
        async for response in service.Process(stream, StreamContext("ipv4:127.0.0.1:1")):
            response.SerializeToString()
            answers += 1

    for index in range(200):
        await one(index)
    answers = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for index in range(requests):
        await one(index)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if answers != 4 * requests:
        raise RuntimeError(f"{answers} answers to {requests} requests: expected four each")
    runtime.current.router.close()  # type: ignore[attr-defined]
    return {"cpu_us": cpu / requests * 1e6, "wall_us": wall / requests * 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--tree", type=Path, action="append", help="a checkout to measure")
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.once:
        import uvloop

        print(json.dumps(uvloop.run(measure(args.requests, args.log_level))))
        return 0
    trees = args.tree or [Path(__file__).resolve().parent.parent]
    results: dict[Path, list[dict[str, float]]] = {tree: [] for tree in trees}
    load_at_start = os.getloadavg()[0]
    for _ in range(args.rounds):
        for tree in trees:
            env = {**os.environ, "PYTHONPATH": str(tree.resolve() / "python")}
            command = [
                sys.executable, __file__, "--once", "--requests", str(args.requests),
                "--log-level", args.log_level,
            ]  # fmt: skip
            output = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results[tree].append(json.loads(output.stdout.strip().splitlines()[-1]))
    print(
        f"load average {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
        f"{args.rounds} interleaved rounds of {args.requests} requests, log level {args.log_level}"
    )
    for tree, runs in results.items():
        cpu = [run["cpu_us"] for run in runs]
        wall = [run["wall_us"] for run in runs]
        runs_text = ", ".join(f"{value:.0f}" for value in cpu)
        print(
            f"{tree!s:<40} CPU us/request median {statistics.median(cpu):6.1f} (runs {runs_text}); "
            f"wall median {statistics.median(wall):6.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
