"""First-chunk latency of a streamed completion through Envoy with vsr against Envoy alone.

One run starts the simulated backends, ``vsr serve`` behind its Envoy (a keyword-only policy, so
the numbers are the ext_proc hops and vsr's stream reading, not a model) and a plain Envoy with
the same routes and no ext_proc filter, then sends the same streaming requests to both,
alternating request by request so both paths see the same machine load:

- first chunk: from sending the request to the first body bytes (the client's TTFT);
- whole stream: to the last byte (``data: [DONE]``), every SSE chunk having passed vsr;
- with vsr, the request is streamed both without ``stream_options`` (vsr asks the model for usage
  and cuts that chunk out) and with ``include_usage`` (passed through untouched), and through a
  second vsr whose config turns response reading off (``observability.usage.read_responses:
  false``): the request side alone, so the difference is what reading the stream costs.

    .venv/bin/python benches/bench_stream.py [--requests 300] [--words 64]

Processes share this machine's cores with the load generator: compare columns of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench_extproc import KEYWORD_POLICY, cpu_model, envoy_version, percentile, plain_envoy
from vsr.devstack import DevStack, StackPorts, find_envoy, free_port


def body(words: int, include_usage: bool) -> dict[str, Any]:
    # The simulator answers with the prompt echoed, so the prompt's length sets the stream's.
    prompt = " ".join(["word"] * words)
    request: dict[str, Any] = {
        "model": "auto",
        "stream": True,
        "messages": [{"role": "user", "content": prompt}],
    }
    if include_usage:
        request["stream_options"] = {"include_usage": True}
    return request


async def one(
    session: aiohttp.ClientSession, url: str, payload: Any, headers: dict[str, str]
) -> tuple[float, float]:
    """(seconds to the first body bytes, seconds to the end of the stream)."""
    started = time.perf_counter()
    async with session.post(url, json=payload, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} from {url}")
        first = await response.content.readany()
        first_at = time.perf_counter()
        rest = await response.read()
        done = time.perf_counter()
    if not (first + rest).rstrip().endswith(b"data: [DONE]"):
        raise RuntimeError(f"stream from {url} did not end with [DONE]")
    return first_at - started, done - started


async def run(
    paths: dict[str, tuple[str, Any]], requests: int, headers: dict[str, str]
) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    connector = aiohttp.TCPConnector(limit=len(paths))
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(10):  # warm connections
            for url, payload in paths.values():
                await one(session, url, payload, headers)
        for _ in range(requests):
            for name, (url, payload) in paths.items():
                results[name].append(await one(session, url, payload, headers))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--words", type=int, default=64, help="words (SSE chunks) per stream")
    parser.add_argument(
        "--chunk-delay-ms",
        type=int,
        default=1,
        help="the simulator's pause between SSE events (0: it writes them all at once)",
    )
    args = parser.parse_args()
    envoy_bin = find_envoy()
    work = Path(tempfile.mkdtemp(prefix="vsr-bench-stream-"))
    config = work / "keyword.yaml"
    config.write_text(yaml.safe_dump(KEYWORD_POLICY))
    ports = StackPorts.free()
    stack = DevStack(
        config,
        ports=ports,
        envoy_bin=envoy_bin,
        log_dir=work / "vsr",
        extra_serve_args=["--log-level", "warning", "--no-watch-config"],
    )
    unread_config = work / "keyword-unread.yaml"
    unread_config.write_text(
        yaml.safe_dump({**KEYWORD_POLICY, "observability": {"usage": {"read_responses": False}}})
    )
    unread_ports = StackPorts.free(backend_names=())
    unread = DevStack(
        unread_config,
        # Its Envoy reaches the first stack's simulators: same backend ports, none started.
        ports=StackPorts(**{**unread_ports.__dict__, "backends": ports.backends}),
        envoy_bin=envoy_bin,
        log_dir=work / "vsr-unread",
        with_simulators=False,
        extra_serve_args=["--log-level", "warning", "--no-watch-config"],
    )
    stack.start()
    unread.start()
    try:
        plain_ports = StackPorts(
            listener=free_port(), admin=free_port(), grpc=ports.grpc, backends=ports.backends
        )
        plain = plain_envoy(plain_ports, work, envoy_bin)
        try:
            plain_url = f"http://127.0.0.1:{plain_ports.listener}/v1/chat/completions"
            vsr_url = f"{stack.url}/v1/chat/completions"
            paths = {
                "Envoy -> simulator": (plain_url, body(args.words, include_usage=False)),
                "Envoy -> vsr -> simulator (usage asked by vsr, chunk cut)": (
                    vsr_url,
                    body(args.words, include_usage=False),
                ),
                "Envoy -> vsr -> simulator (client asked for usage)": (
                    vsr_url,
                    body(args.words, include_usage=True),
                ),
                "Envoy -> vsr -> simulator (response reading off)": (
                    f"{unread.url}/v1/chat/completions",
                    body(args.words, include_usage=False),
                ),
            }
            sim_headers = {"x-sim-chunk-delay-ms": str(args.chunk_delay_ms)}
            results = asyncio.run(run(paths, args.requests, sim_headers))
        finally:
            plain.terminate()
            plain.wait()
    finally:
        unread.stop()
        stack.stop()

    print(
        f"machine: {platform.machine()}, {cpu_model()}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}, {envoy_version(envoy_bin)}"
    )
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"requests: {args.requests} per path, interleaved, one at a time; "
        f"{args.words + 3} SSE events per stream, {args.chunk_delay_ms} ms apart "
        "(keyword-only policy)\n"
    )
    baseline = results["Envoy -> simulator"]
    base_first = statistics.median(first for first, _ in baseline)
    header = (
        f"| {'path':<58} | first chunk p50 ms | p99 ms | vs Envoy p50 | "
        "whole stream p50 ms | p99 ms |"
    )
    print(header)
    print("|" + "|".join("-" * len(part) for part in header.split("|")[1:-1]) + "|")
    for name, samples in results.items():
        firsts = [first for first, _ in samples]
        wholes = [whole for _, whole in samples]
        first50 = statistics.median(firsts)
        print(
            f"| {name:<58} | {first50 * 1000:18.2f} | {percentile(firsts, 0.99) * 1000:6.2f} | "
            f"{first50 / base_first:11.2f}x | {statistics.median(wholes) * 1000:19.2f} | "
            f"{percentile(wholes, 0.99) * 1000:6.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
