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

``--instructions`` counts instructions instead of CPU time (valgrind's cachegrind, no cache
simulation): per tree and round, the handler run for ``--requests`` and for 100 requests in two
processes (``PYTHONHASHSEED=0``), and the difference per request: what the handler executes,
mostly whatever else runs on the machine (one round takes about a minute; rounds agreed within
~2% at load 2-3, but work that follows wall time, such as other threads' polls, grows under
valgrind's slowdown: at load 3-7 rounds of one tree spread by +-7%).

``--serve .cache/bin/extproc-load`` measures the whole server instead: per tree and round a
``vsr serve`` on the same policy (native transport, ``--log-level warning``) driven by extproc-load
(``--requests`` at concurrency 16 over 8 connections, after 2,000 to warm up), with the CPU time
of its event-loop thread and of the core's transport thread (``vsr-extproc``) per request, read
from ``/proc``, and the requests/s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


def measure_instructions(tree: Path, requests: int, log_level: str) -> dict[str, float]:
    """Instructions per request of the in-process handler under cachegrind (see the docstring)."""
    low = 100

    def count(n: int) -> int:
        env = {**os.environ, "PYTHONPATH": str(tree.resolve() / "python"), "PYTHONHASHSEED": "0"}
        command = [
            "valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
            sys.executable, __file__, "--once", "--requests", str(n), "--log-level", log_level,
        ]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
        if found is None:
            raise RuntimeError(f"no instruction count from valgrind: {done.stderr[-400:]}")
        return int(found.group(1).replace(",", ""))

    return {"instructions": (count(requests) - count(low)) / (requests - low)}


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of each thread of ``pid``, by thread name (the main thread is named
    after the process; threads of one name add up)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        name = "event loop" if task.name == str(pid) else name
        found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return found


def measure_serve(tree: Path, load_generator: Path, requests: int) -> dict[str, float]:
    """One ``vsr serve`` of ``tree`` under extproc-load: req/s and CPU us per request by thread."""
    from vsr.devstack import free_ports, wait_http_ok

    work = Path(tempfile.mkdtemp(prefix="vsr-bench-handler-"))
    config = work / "keyword.yaml"
    config.write_text(json.dumps(KEYWORD_POLICY))
    ports = dict(zip(("grpc", "http", "metrics"), free_ports(3), strict=True))
    env = {**os.environ, "PYTHONPATH": str(tree.resolve() / "python")}
    serve = subprocess.Popen(
        [
            sys.executable, "-m", "vsr.cli", "serve", "--config", str(config),
            "--host", "127.0.0.1", "--grpc-port", str(ports["grpc"]),
            "--http-port", str(ports["http"]), "--metrics-port", str(ports["metrics"]),
            "--log-level", "warning", "--no-watch-config",
        ],
        env=env,
    )  # fmt: skip

    def load(count: int) -> dict[str, Any]:
        command = [
            str(load_generator), "-addr", f"127.0.0.1:{ports['grpc']}", "-requests", str(count),
            "-concurrency", "16", "-conns", "8", "-json",
        ]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        result: dict[str, Any] = json.loads(output)
        return result

    try:
        wait_http_ok(f"http://127.0.0.1:{ports['http']}/ready", 60, serve)
        load(2000)
        before = _thread_cpu(serve.pid)
        rps = load(requests)["rps"]
        after = _thread_cpu(serve.pid)
    finally:
        serve.terminate()
        serve.wait()
    per_request = {
        f"{name} CPU us/request": (after[name] - before.get(name, 0.0)) / requests * 1e6
        for name in after
        if after[name] > before.get(name, 0.0)
    }
    return {"req/s": rps, **per_request}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--tree", type=Path, action="append", help="a checkout to measure")
    parser.add_argument("--serve", type=Path, metavar="EXTPROC_LOAD", help="measure vsr serve")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions (valgrind) per request"
    )
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
            if args.serve is not None:
                results[tree].append(measure_serve(tree, args.serve, args.requests))
                continue
            if args.instructions:
                results[tree].append(measure_instructions(tree, args.requests, args.log_level))
                continue
            env = {**os.environ, "PYTHONPATH": str(tree.resolve() / "python")}
            command = [
                sys.executable, __file__, "--once", "--requests", str(args.requests),
                "--log-level", args.log_level,
            ]  # fmt: skip
            output = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results[tree].append(json.loads(output.stdout.strip().splitlines()[-1]))
    what = "vsr serve under extproc-load" if args.serve else f"log level {args.log_level}"
    print(
        f"load average {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
        f"{args.rounds} interleaved rounds of {args.requests} requests, {what}"
    )
    if args.serve is not None:
        for tree, runs in results.items():
            keys = [key for key in runs[0] if all(key in run for run in runs)]
            medians = ", ".join(
                f"{key} {statistics.median(r[key] for r in runs):.0f}" for key in keys
            )
            print(f"{tree!s:<40} medians: {medians}")
            for run in runs:
                print(f"{'':<42}" + ", ".join(f"{key} {value:.0f}" for key, value in run.items()))
        return 0
    if args.instructions:
        for tree, runs in results.items():
            counts = [run["instructions"] for run in runs]
            runs_text = ", ".join(f"{value / 1000:.0f}k" for value in counts)
            median = statistics.median(counts) / 1000
            print(f"{tree!s:<40} instructions/request median {median:.0f}k (runs {runs_text})")
        return 0
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
