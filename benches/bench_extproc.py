"""What vsr adds to a request through Envoy: Envoy -> vsr -> simulator against Envoy -> simulator.

One run starts the simulated backends once, a plain Envoy (no ext_proc filter) and, in turn, vsr
with classification off (a keyword-only policy: no model runs) and on (a policy with model-backed
signals), each behind its own Envoy, and drives every path with the same requests:

- latency at concurrency 1: p50/p99 of the whole request, and what vsr adds over plain Envoy;
- throughput at concurrency ``--concurrency``: requests/s through one vsr process, and through
  ``vsr serve --workers W`` (``--workers``, classification off);
- both through one vsr process with ``observability.usage.read_responses: false`` (three ext_proc
  messages per request instead of four: no response body, no token accounting);
- vsr alone, without Envoy: ``extproc-load`` (benches/extproc_load, Go; ``make bench-extproc``
  builds it into .cache/bin) speaks ext_proc to vsr's gRPC port as Envoy does for the same chat
  completion (request headers, buffered body, response headers, and the response body when vsr
  asks for it), at concurrency 1 and ``--concurrency``, against one process and W workers, one
  process on grpc.aio (``--extproc-transport grpcio``; the other rows run the default, native,
  transport) and one with ``read_responses: false`` (one message fewer per request);
- the floor: ``extproc_floor.py``, a handler that answers every phase at once with a fixed
  response, on grpc.aio and on vsr's native transport, driven directly, and the native one also
  through the same Envoy: what the transport and Envoy's round trips cost before vsr decides
  anything. Envoy -> simulator alone carries few more requests/s than the target on this kind of
  machine, so vsr's own capacity shows only in the direct rows.

    .venv/bin/python benches/bench_extproc.py [--requests 300] [--concurrency 16] [--workers 2]
        [--config-on config/default.yaml] [--load-generator .cache/bin/extproc-load]

All processes share this machine's cores with the load generator: compare rows of one run, not
across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from vsr.devstack import (
    ENVOY_TEMPLATE,
    EXTPROC_FILTER,
    DevStack,
    StackPorts,
    find_envoy,
    free_port,
    render_envoy_config,
    wait_http_ok,
)

PROMPTS = [
    "What is 2+2 * (5-1)?",
    "Summarize the Kubernetes Gateway API in three sentences.",
    "What is the derivative of f(x) = x^3?",
    "Write a short poem about the sea.",
    "Explain how a bond's price relates to interest rates.",
    "Which enzyme unwinds DNA during replication?",
]

KEYWORD_POLICY: dict[str, Any] = {
    "default_model": "llama3-8b",
    "models": [{"name": "llama3-8b"}, {"name": "phi4-mini"}],
    "signals": [
        {"type": "keyword", "name": "arithmetic", "patterns": [r"\d\s*[-+*/^]\s*\(?\s*\d"]}
    ],
    "decisions": [
        {
            "name": "math",
            "priority": 100,
            "rules": {"type": "keyword", "name": "arithmetic"},
            "modelRefs": [{"model": "phi4-mini"}],
        },
        {"name": "general", "modelRefs": [{"model": "llama3-8b"}]},
    ],
}

# The same without reading responses (no token accounting): three ext_proc messages, not four.
UNREAD_POLICY: dict[str, Any] = {
    **KEYWORD_POLICY,
    "observability": {"usage": {"read_responses": False}},
}

# Used for "classification on" when config/default.yaml's models are not installed: a MiniLM
# embedding signal (the package ships with the dev requirements), one encoder pass per request.
EMBEDDING_POLICY: dict[str, Any] = {
    **KEYWORD_POLICY,
    "signals": [
        {
            "type": "embedding",
            "name": "math",
            "model": "all-MiniLM-L6-v2",
            "threshold": 0.5,
            "candidates": ["a mathematics problem", "solve this equation", "compute the value"],
        }
    ],
    "decisions": [
        {
            "name": "math",
            "priority": 100,
            "rules": {"type": "embedding", "name": "math"},
            "modelRefs": [{"model": "phi4-mini"}],
        },
        {"name": "general", "modelRefs": [{"model": "llama3-8b"}]},
    ],
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def envoy_version(envoy_bin: Path) -> str:
    output = subprocess.run([str(envoy_bin), "--version"], capture_output=True, text=True).stdout
    found = re.search(r"/(\d+\.\d+\.\d+)/", output)
    return f"Envoy {found.group(1)}" if found else "Envoy (unknown version)"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def drive(url: str, requests: int, concurrency: int) -> tuple[list[float], float]:
    """Closed loop: ``concurrency`` clients send ``requests`` in all -> latencies (s), wall time."""
    latencies: list[float] = []
    counter = iter(range(requests))

    async def client(session: aiohttp.ClientSession) -> None:
        for index in counter:
            body = {
                "model": "auto",
                "messages": [{"role": "user", "content": PROMPTS[index % len(PROMPTS)]}],
            }
            started = time.perf_counter()
            async with session.post(url, json=body) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status} from {url}")
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        return latencies, time.perf_counter() - started


def measure(url: str, requests: int, concurrency: int) -> dict[str, float]:
    asyncio.run(drive(url, 20, 1))  # warm connections and caches
    latencies, _ = asyncio.run(drive(url, requests, 1))
    throughput_latencies, wall = asyncio.run(drive(url, requests * 2, concurrency))
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "rps": len(throughput_latencies) / wall,
    }


def measure_direct(
    load_generator: Path, grpc_port: int, requests: int, concurrency: int
) -> dict[str, float]:
    """vsr alone: ``extproc-load`` at concurrency 1 (latency) and ``concurrency`` (throughput).
    8 connections, about what Envoy opens at concurrency 16 with 4 streams per connection
    (deploy/envoy/envoy.yaml), so SO_REUSEPORT spreads them over workers."""

    def run(count: int, clients: int) -> dict[str, Any]:
        command = [
            str(load_generator), "-addr", f"127.0.0.1:{grpc_port}", "-requests", str(count),
            "-concurrency", str(clients), "-conns", "8", "-json",
        ]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        result: dict[str, Any] = json.loads(output)
        return result

    latency = run(requests, 1)
    throughput = run(requests * 5, concurrency)
    return {"p50_ms": latency["p50_ms"], "p99_ms": latency["p99_ms"], "rps": throughput["rps"]}


def measure_serve_direct(
    config: Path, load_generator: Path, requests: int, concurrency: int, *extra: str
) -> dict[str, float]:
    """A lone ``vsr serve`` (no Envoy) on ``config``, driven by extproc-load."""
    ports = {name: free_port() for name in ("grpc", "http", "metrics")}
    command = [
        sys.executable, "-m", "vsr.cli", "serve", "--config", str(config),
        "--host", "127.0.0.1", "--grpc-port", str(ports["grpc"]),
        "--http-port", str(ports["http"]), "--metrics-port", str(ports["metrics"]),
        "--log-level", "warning", "--no-watch-config", *extra,
    ]  # fmt: skip
    serve = subprocess.Popen(command)
    try:
        wait_http_ok(f"http://127.0.0.1:{ports['http']}/ready", 60, serve)
        return measure_direct(load_generator, ports["grpc"], requests, concurrency)
    finally:
        serve.terminate()
        serve.wait()


def start_floor(*, native: bool) -> tuple[subprocess.Popen[bytes], int]:
    """extproc_floor.py (every phase answered at once with a fixed response) on a free port: on
    grpc.aio, or on vsr's native transport."""
    port = free_port()
    command = [sys.executable, str(Path(__file__).with_name("extproc_floor.py")), str(port)]
    floor = subprocess.Popen([*command, *(["--native"] if native else [])], stdout=subprocess.PIPE)
    assert floor.stdout is not None
    floor.stdout.readline()  # "serving"
    return floor, port


def measure_floor(
    load_generator: Path, requests: int, concurrency: int, *, native: bool = False
) -> dict[str, float]:
    """The same load on the floor: what the gRPC stack (grpc.aio, or vsr's native transport)
    costs before vsr does any work."""
    floor, port = start_floor(native=native)
    try:
        return measure_direct(load_generator, port, requests, concurrency)
    finally:
        floor.terminate()
        floor.wait()


def plain_envoy(ports: StackPorts, work: Path, envoy_bin: Path) -> subprocess.Popen[bytes]:
    """An Envoy with the same routes and no ext_proc filter: the baseline."""
    config = render_envoy_config(yaml.safe_load(ENVOY_TEMPLATE.read_text()), ports)
    for chain in config["static_resources"]["listeners"][0]["filter_chains"]:
        for network_filter in chain["filters"]:
            filters = network_filter["typed_config"]["http_filters"]
            filters[:] = [f for f in filters if f["name"] != EXTPROC_FILTER]
    path = work / "envoy-plain.json"
    path.write_text(json.dumps(config))
    process = subprocess.Popen(
        [str(envoy_bin), "-c", str(path), "--disable-hot-restart", "--log-level", "error"]
    )
    wait_http_ok(f"http://127.0.0.1:{ports.admin}/ready", 30, process)
    return process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--config-on",
        type=Path,
        help="policy with classifiers (default: "
        "config/default.yaml if its models load, else a MiniLM embedding policy)",
    )
    parser.add_argument("--workers", type=int, default=2, help="workers of the --workers rows")
    parser.add_argument(
        "--load-generator",
        type=Path,
        default=Path(".cache/bin/extproc-load"),
        help="extproc-load binary (make bench-extproc builds it); the direct rows are left out "
        "when it is missing",
    )
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    envoy_bin = find_envoy()
    direct = args.load_generator if args.load_generator.is_file() else None
    if direct is None:
        print(f"{args.load_generator} not found: no direct rows (make bench-extproc builds it)")
    work = Path(tempfile.mkdtemp(prefix="vsr-bench-"))
    off_config = work / "keyword.yaml"
    off_config.write_text(yaml.safe_dump(KEYWORD_POLICY))
    # One ext_proc message fewer per request: vsr does not ask for the response body.
    unread = work / "keyword-unread.yaml"
    unread.write_text(yaml.safe_dump(UNREAD_POLICY))
    on_config = args.config_on or work / "embedding.yaml"
    if args.config_on is None:
        on_config.write_text(yaml.safe_dump(EMBEDDING_POLICY))

    base_ports = StackPorts.free()
    rows: list[tuple[str, dict[str, float]]] = []
    direct_rows: list[tuple[str, dict[str, float]]] = []
    serve_args = ["--log-level", "warning", "--no-watch-config"]
    # The first stack's simulators serve every path, so backends are identical across rows.
    off = DevStack(
        off_config,
        ports=base_ports,
        envoy_bin=envoy_bin,
        log_dir=work / "off",
        extra_serve_args=serve_args,
    )
    off.start()
    try:
        plain_ports = StackPorts(
            listener=free_port(),
            admin=free_port(),
            grpc=base_ports.grpc,
            backends=base_ports.backends,
        )
        plain = plain_envoy(plain_ports, work, envoy_bin)
        try:
            rows.append(
                (
                    "Envoy -> simulator",
                    measure(
                        f"http://127.0.0.1:{plain_ports.listener}/v1/chat/completions",
                        args.requests,
                        args.concurrency,
                    ),
                )
            )
        finally:
            plain.terminate()
            plain.wait()
        rows.append(
            (
                "Envoy -> vsr (classification off) -> simulator",
                measure(f"{off.url}/v1/chat/completions", args.requests, args.concurrency),
            )
        )
        # The same Envoy config and phases on the empty native handler: what Envoy's ext_proc
        # round trips and vsr's transport cost before vsr decides anything.
        floor, floor_port = start_floor(native=True)
        floor_ports = StackPorts(
            listener=free_port(), admin=free_port(), grpc=floor_port, backends=base_ports.backends
        )
        floor_stack = DevStack(
            off_config,
            ports=floor_ports,
            envoy_bin=envoy_bin,
            log_dir=work / "floor",
            with_vsr=False,
            with_simulators=False,
        )
        try:
            floor_stack.start()
            rows.append(
                (
                    "Envoy -> empty handler, native transport -> simulator",
                    measure(
                        f"{floor_stack.url}/v1/chat/completions", args.requests, args.concurrency
                    ),
                )
            )
        finally:
            floor_stack.stop()
            floor.terminate()
            floor.wait()
        if direct is not None:
            direct_rows.append(
                (
                    "extproc-load -> empty grpc.aio handler (extproc_floor.py)",
                    measure_floor(direct, args.requests, args.concurrency),
                )
            )
            direct_rows.append(
                (
                    "extproc-load -> empty handler, native transport (--native)",
                    measure_floor(direct, args.requests, args.concurrency, native=True),
                )
            )
            direct_rows.append(
                (
                    "extproc-load -> vsr (classification off)",
                    measure_direct(direct, base_ports.grpc, args.requests, args.concurrency),
                )
            )
            # The same process on grpc.aio instead of the native transport (the default).
            direct_rows.append(
                (
                    "extproc-load -> vsr on grpc.aio (classification off)",
                    measure_serve_direct(
                        off_config,
                        direct,
                        args.requests,
                        args.concurrency,
                        "--extproc-transport",
                        "grpcio",
                    ),
                )
            )
            direct_rows.append(
                (
                    "extproc-load -> vsr (off, read_responses: false)",
                    measure_serve_direct(unread, direct, args.requests, args.concurrency),
                )
            )

        def sharing_simulators() -> StackPorts:
            ports = StackPorts.free(backend_names=())
            return StackPorts(
                listener=ports.listener,
                admin=ports.admin,
                grpc=ports.grpc,
                http=ports.http,
                metrics=ports.metrics,
                backends=base_ports.backends,
            )

        unread_stack = DevStack(
            unread,
            ports=sharing_simulators(),
            envoy_bin=envoy_bin,
            log_dir=work / "unread",
            with_simulators=False,
            extra_serve_args=serve_args,
        )
        unread_stack.start()
        try:
            rows.append(
                (
                    "Envoy -> vsr (off, read_responses: false) -> simulator",
                    measure(
                        f"{unread_stack.url}/v1/chat/completions", args.requests, args.concurrency
                    ),
                )
            )
        finally:
            unread_stack.stop()
        if args.workers > 1:
            workers_ports = sharing_simulators()
            workers = DevStack(
                off_config,
                ports=workers_ports,
                envoy_bin=envoy_bin,
                log_dir=work / "workers",
                with_simulators=False,
                extra_serve_args=[*serve_args, "--workers", str(args.workers)],
            )
            workers.start()
            try:
                label = f"vsr --workers {args.workers} (classification off)"
                rows.append(
                    (
                        f"Envoy -> {label} -> simulator",
                        measure(
                            f"{workers.url}/v1/chat/completions", args.requests, args.concurrency
                        ),
                    )
                )
                if direct is not None:
                    direct_rows.append(
                        (
                            f"extproc-load -> {label}",
                            measure_direct(
                                direct, workers_ports.grpc, args.requests, args.concurrency
                            ),
                        )
                    )
            finally:
                workers.stop()
        on_ports = sharing_simulators()
        # Its Envoy reaches the first stack's simulators: same backend ports, none started.
        on = DevStack(
            on_config,
            ports=on_ports,
            envoy_bin=envoy_bin,
            log_dir=work / "on",
            with_simulators=False,
            extra_serve_args=serve_args,
        )
        on.start()
        try:
            rows.append(
                (
                    f"Envoy -> vsr (classification on: {on_config.name}) -> simulator",
                    measure(f"{on.url}/v1/chat/completions", args.requests, args.concurrency),
                )
            )
        finally:
            on.stop()
    finally:
        off.stop()

    baseline = rows[0][1]
    load = os.getloadavg()[0]
    print(
        f"machine: {platform.machine()}, {cpu_model()}, {os.cpu_count()} cores (load average "
        f"{load_at_start:.1f} at the start, {load:.1f} at the end); Python "
        f"{platform.python_version()}, {envoy_version(envoy_bin)}"
    )
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"requests: {args.requests} at concurrency 1 (latency), {args.requests * 2} at "
        f"concurrency {args.concurrency} (throughput) through Envoy; direct rows (extproc-load): "
        f"{args.requests} at concurrency 1, {args.requests * 5} at concurrency "
        f"{args.concurrency}, 8 connections; prompts: {len(PROMPTS)} rotating\n"
    )
    header = f"| {'path':<62} | p50 ms | p99 ms | added p50 | added p99 | req/s |"
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
    for name, result in rows:
        added50 = result["p50_ms"] - baseline["p50_ms"]
        added99 = result["p99_ms"] - baseline["p99_ms"]
        print(
            f"| {name:<62} | {result['p50_ms']:6.2f} | {result['p99_ms']:6.2f} | "
            f"{added50:9.2f} | {added99:9.2f} | {result['rps']:5.0f} |"
        )
    # Without Envoy there is nothing to add to: p50/p99 are the whole ext_proc exchange.
    for name, result in direct_rows:
        print(
            f"| {name:<62} | {result['p50_ms']:6.2f} | {result['p99_ms']:6.2f} | "
            f"{'-':>9} | {'-':>9} | {result['rps']:5.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
