"""The semantic cache through Envoy, per backend: what a miss adds, and a hit against a call.

One stack per backend (Envoy -> ``vsr serve`` with config/examples/semantic-cache.yaml, whose
routing pass runs the shipped encoder for the domain, jailbreak and embedding heads, and the PII
model -> the simulated backends), then, interleaved request by request so all see the same load:

- ``off``: a new question with ``Cache-Control: no-store`` (no lookup, no write): the routing pass
  and the backend call, what every request costs without a cache;
- ``miss``: a new question (lookup finds nothing; the answer is written after the response);
- ``hit``: a paraphrase of a stored question, answered by vsr.

The simulator answers in about a millisecond; a real model takes from 100 ms to seconds, which a
hit saves whole.

    .venv/bin/python benches/bench_cache_envoy.py [--requests 60] [--backends memory,milvus]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.cache_stores import RunningStore, start_milvus, start_pgvector
from tests.e2e.stack import chat_body, send

from vsr.devstack import REPO_ROOT, DevStack, StackPorts, find_envoy

EXAMPLE = REPO_ROOT / "config" / "examples" / "semantic-cache.yaml"


def question(i: int) -> str:
    return f"Question {i}: tell me one surprising fact about the number {i * 7919}."


def timed(port: int, body: Any, headers: dict[str, str], want_hit: bool) -> float:
    started = time.perf_counter()
    reply = send(port, "POST", "/v1/chat/completions", body, headers)
    spent = time.perf_counter() - started
    if reply.status != 200 or (reply.headers.get("x-vsr-cache-hit") == "true") != want_hit:
        raise RuntimeError(f"unexpected reply {reply.status} {reply.headers}")
    return spent


def run(backend: str, requests: int, work: Path) -> str:
    running: RunningStore | None = None
    if backend == "milvus":
        running = start_milvus(work)
    elif backend == "pgvector":
        running = start_pgvector(work)
    config = yaml.safe_load(EXAMPLE.read_text())
    if running is not None:
        config["semantic_cache"].update(running.settings, timeout_ms=200)
    path = work / "router.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    stack = DevStack(path, ports=StackPorts.free(), envoy_bin=find_envoy(),
                     log_dir=work / "logs", extra_serve_args=["--no-watch-config"])  # fmt: skip
    try:
        stack.start()
        port = stack.ports.listener
        tenant = {"x-user-id": "bench"}
        stored = "What is the capital of France?"
        timed(port, chat_body(stored), tenant, False)
        time.sleep(1.0)  # the write lands off the request path
        for _ in range(5):  # warm
            timed(port, chat_body("Which city is the capital of France?"), tenant, True)
        off, miss, hit = [], [], []
        for i in range(requests):
            off.append(timed(port, chat_body(question(2 * i)), {**tenant,
                             "cache-control": "no-store"}, False))  # fmt: skip
            miss.append(timed(port, chat_body(question(2 * i + 1)), tenant, False))
            hit.append(timed(port, chat_body("Which city is the capital of France?"), tenant, True))
        p50 = {name: float(np.median(v)) * 1e3 for name, v in
               (("off", off), ("miss", miss), ("hit", hit))}  # fmt: skip
        return (
            f"| {backend} | {p50['off']:.1f} | {p50['miss']:.1f} | "
            f"{p50['miss'] - p50['off']:+.1f} | {p50['hit']:.1f} | "
            f"{np.percentile(hit, 99) * 1e3:.1f} |"
        )
    finally:
        stack.stop()
        if running is not None:
            running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--backends", default="memory,pgvector,milvus")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    print(f"command: {' '.join(sys.argv)}\n")
    print("| backend | off p50 ms | miss p50 ms | miss adds | hit p50 ms | hit p99 ms |")
    print("|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as work:
            print(run(backend, args.requests, Path(work)), flush=True)


if __name__ == "__main__":
    main()
