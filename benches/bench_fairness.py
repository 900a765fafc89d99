"""Short requests while long prompts run: does a long prompt hold the short ones up?

One run starts the local stack (Envoy -> vsr -> simulators) on a policy with classifiers
(``config/default.yaml``: MiniLM bundle + the PII model) and measures, side by side:

- a short request (a one-line question) alone, one at a time: p50 / p99;
- the same short requests while ``--long-clients`` clients keep sending ~30 KB prompts (each is
  read by the jailbreak and PII models in windows, within vsr's per-request budget): p50 / p99,
  the share of short requests answered 200, and the long prompts' statuses and latency.

    .venv/bin/python benches/bench_fairness.py [--short 60] [--long-clients 4] [--long-kb 30]

Before the bounded-work changes, four concurrent 30 KB prompts made an 11-byte request time out
(Envoy's 504 after 10 s). All processes share this machine's cores with the load generator.
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

import aiohttp

from bench_extproc import cpu_model, envoy_version, percentile
from vsr.devstack import DevStack, StackPorts, find_envoy

REPO = Path(__file__).resolve().parents[1]
SHORT = {"model": "auto", "messages": [{"role": "user", "content": "What is 2+2?"}]}


def long_prompt(kb: int, index: int) -> dict[str, object]:
    paragraph = (
        f"Report {index}: the committee reviewed the quarterly figures, discussed the schedule "
        "for the new warehouse and agreed to meet again after the holidays. "
    )
    text = (paragraph * (kb * 1024 // len(paragraph) + 1))[: kb * 1024]
    return {"model": "auto", "messages": [{"role": "user", "content": text + " Summarise."}]}


async def shorts(url: str, count: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    ok = 0
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(count):
            started = time.perf_counter()
            async with session.post(url, json=SHORT) as response:
                await response.read()
                ok += response.status == 200
            latencies.append(time.perf_counter() - started)
    return latencies, ok


async def longs(
    url: str, clients: int, kb: int, stop: asyncio.Event
) -> tuple[list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    timeout = aiohttp.ClientTimeout(total=60)

    async def client(session: aiohttp.ClientSession, number: int) -> None:
        index = number
        while not stop.is_set():
            started = time.perf_counter()
            async with session.post(url, json=long_prompt(kb, index)) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            latencies.append(time.perf_counter() - started)
            index += clients

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(client(session, n) for n in range(clients)))
    return latencies, statuses


async def under_load(
    url: str, count: int, clients: int, kb: int
) -> tuple[list[float], int, list[float], dict[int, int]]:
    stop = asyncio.Event()
    background = asyncio.create_task(longs(url, clients, kb, stop))
    await asyncio.sleep(2.0)  # the long prompts are queued and running
    latencies, ok = await shorts(url, count)
    stop.set()
    long_latencies, statuses = await background
    return latencies, ok, long_latencies, statuses


def row(name: str, latencies: list[float], ok: int) -> str:
    return (
        f"| {name:<44} | {statistics.median(latencies) * 1000:8.1f} | "
        f"{percentile(latencies, 0.99) * 1000:8.1f} | {ok}/{len(latencies)} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=60, help="short requests per phase")
    parser.add_argument("--long-clients", type=int, default=4)
    parser.add_argument("--long-kb", type=int, default=30)
    parser.add_argument("--config", type=Path, default=REPO / "config" / "default.yaml")
    args = parser.parse_args()
    envoy_bin = find_envoy()
    work = Path(tempfile.mkdtemp(prefix="vsr-fairness-"))
    stack = DevStack(
        args.config,
        ports=StackPorts.free(),
        envoy_bin=envoy_bin,
        log_dir=work,
        extra_serve_args=["--log-level", "warning", "--no-watch-config"],
    )
    stack.start()
    url = f"{stack.url}/v1/chat/completions"
    try:
        asyncio.run(shorts(url, 10))  # warm up
        alone, alone_ok = asyncio.run(shorts(url, args.short))
        loaded, loaded_ok, long_latencies, statuses = asyncio.run(
            under_load(url, args.short, args.long_clients, args.long_kb)
        )
    finally:
        stack.stop()
    print(
        f"machine: {platform.machine()}, {cpu_model()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}; Python {platform.python_version()}, "
        f"{envoy_version(envoy_bin)}"
    )
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"config: {args.config.name}\n")
    print(f"| {'short requests (What is 2+2?)':<44} | p50 ms   | p99 ms   | 200s |")
    print(f"|{'-' * 46}|----------|----------|------|")
    print(row("alone", alone, alone_ok))
    print(
        row(f"while {args.long_clients} clients send {args.long_kb} KB prompts", loaded, loaded_ok)
    )
    if long_latencies:
        answered = dict(sorted(statuses.items()))
        print(
            f"\nlong prompts: {len(long_latencies)} answered, statuses {answered}, "
            f"p50 {statistics.median(long_latencies):.2f} s, max {max(long_latencies):.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
