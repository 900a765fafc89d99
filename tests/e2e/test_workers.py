"""``vsr serve --workers 2``: two processes behind one set of ports, one ``/metrics`` for both.

The requests go straight to the shared gRPC port as Envoy's phases, each over a new connection,
so SO_REUSEPORT spreads them; each worker's own counters are read from its multiprocess file.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from prometheus_client import CollectorRegistry, multiprocess
from tests.extproc.scripted import chat, exchange, request_body, request_headers, response_headers

from vsr.devstack import DevStack, StackPorts, free_ports, wait_http_ok
from vsr.workers import ready_workers, wait_workers_ready

POLICY: dict[str, Any] = {
    "default_model": "llama3-8b",
    "models": [{"name": "llama3-8b"}, {"name": "phi4-mini"}],
    "signals": [{"type": "keyword", "name": "arithmetic", "patterns": [r"\d\s*[-+*/]\s*\d"]}],
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
REQUESTS = 24


class Workers:
    def __init__(self, process: subprocess.Popen[bytes], grpc_port: int, http_port: int,
                 metrics_port: int, metrics_dir: Path) -> None:  # fmt: skip
        self.process = process
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.metrics_dir = metrics_dir

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            return str(response.read().decode())

    def ready_pids(self) -> set[int]:
        return {
            int(line.split('"')[1])
            for line in self.metrics().splitlines()
            if line.startswith('vsr_ready{pid="') and line.endswith(" 1.0")
        }


def _serve(
    config: Path, tmp_path: Path, *extra: str
) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    ports = dict(zip(("grpc", "http", "metrics"), free_ports(3), strict=True))
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "vsr.cli", "serve", "--config", str(config),
            "--host", "127.0.0.1", "--grpc-port", str(ports["grpc"]),
            "--http-port", str(ports["http"]), "--metrics-port", str(ports["metrics"]),
            "--log-level", "info", "--grace-period-s", "2", *extra,
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return process, ports


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(POLICY))
    return path


@pytest.fixture
def workers(config: Path, tmp_path: Path) -> Iterator[Workers]:
    process, ports = _serve(config, tmp_path, "--workers", "2")
    running = Workers(process, ports["grpc"], ports["http"], ports["metrics"], tmp_path / "metrics")
    try:
        wait_http_ok(f"http://127.0.0.1:{ports['http']}/ready", 60, process)
        wait_workers_ready(running.metrics_url, 2, 60)
        yield running
    except Exception:
        print((tmp_path / "serve.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _one_request(port: int, index: int) -> str:
    """One chat completion's phases over its own connection -> the selected model."""
    # A local subchannel pool: otherwise gRPC shares one TCP connection among channels to the
    # same target in a process, and every request would reach whichever worker accepted it.
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        stub = external_processor_pb2_grpc.ExternalProcessorStub(channel)
        content = "What is 2+2?" if index % 2 else "Write a haiku about the sea."
        answers = await exchange(
            stub,
            [
                request_headers(extra={"content-type": "application/json"}),
                request_body(chat(content)),
                response_headers(),
            ],
        )
    assert len(answers) == 3, answers
    headers = answers[1].request_body.response.header_mutation.set_headers
    return next(o.header.raw_value.decode() for o in headers if o.header.key == "x-selected-model")


def _worker_counts(metrics_dir: Path, tmp_path: Path) -> dict[int, float]:
    """vsr_requests_total{kind="auto"} per worker, from each worker's own counter file."""
    counts = {}
    for index, db in enumerate(sorted(metrics_dir.glob("counter_*.db"))):
        alone = tmp_path / f"alone-{index}"
        alone.mkdir()
        shutil.copy(db, alone / db.name)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(alone))
        value = registry.get_sample_value("vsr_requests_total", {"kind": "auto"}) or 0.0
        counts[int(db.stem.split("_")[-1])] = value
    return counts


def test_two_workers_share_the_ports_and_one_metrics_endpoint(
    workers: Workers, tmp_path: Path
) -> None:
    pids = workers.ready_pids()
    assert len(pids) == 2 and workers.process.pid not in pids

    async def send_all() -> list[str]:
        return [await _one_request(workers.grpc_port, index) for index in range(REQUESTS)]

    models = asyncio.run(send_all())
    assert models == ["llama3-8b" if index % 2 == 0 else "phi4-mini" for index in range(REQUESTS)]

    # The HTTP API answers from the shared port too (new connections, either worker).
    for _ in range(4):
        wait_http_ok(f"http://127.0.0.1:{workers.http_port}/ready", 5)

    per_worker = _worker_counts(workers.metrics_dir, tmp_path)
    assert set(per_worker) == pids
    assert all(count > 0 for count in per_worker.values()), per_worker  # both served
    assert sum(per_worker.values()) == REQUESTS
    text = workers.metrics()
    assert f'vsr_requests_total{{kind="auto"}} {float(REQUESTS)}' in text  # added up
    assert f'llm_model_requests_total{{model="phi4-mini"}} {float(REQUESTS // 2)}' in text
    assert "llm_category_classifications_count" in text
    assert "vsr_active_streams 0.0" in text


def test_a_dead_worker_is_replaced_and_sigterm_stops_all(workers: Workers) -> None:
    first = workers.ready_pids()
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = workers.ready_pids()
        if len(now) == 2 and victim not in now:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"no replacement worker: ready {workers.ready_pids()}")
    assert asyncio.run(_one_request(workers.grpc_port, 1)) == "phi4-mini"

    survivors = workers.ready_pids()
    workers.process.send_signal(signal.SIGTERM)
    assert workers.process.wait(timeout=30) == 0
    for pid in survivors:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_worker_that_cannot_start_stops_the_supervisor(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("default_model: nowhere\nmodels: []\n")
    process, _ = _serve(broken, tmp_path, "--workers", "2")
    try:
        assert process.wait(timeout=60) == 1
    finally:
        if process.poll() is None:
            process.kill()
    assert "worker_failed_to_start" in (tmp_path / "serve.log").read_text()


def test_requests_through_envoy_reach_two_workers(
    envoy_bin: Path, config: Path, tmp_path: Path
) -> None:
    stack = DevStack(
        config,
        ports=StackPorts.free(),
        envoy_bin=envoy_bin,
        log_dir=tmp_path / "logs",
        extra_serve_args=["--workers", "2", "--no-watch-config"],
    )
    stack.start()
    try:
        for index in range(6):
            request = urllib.request.Request(
                f"{stack.url}/v1/chat/completions",
                data=json.dumps(chat(f"{index} + 1 = ?")).encode(),
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
                assert response.headers["x-vsr-selected-model"] == "phi4-mini"
        metrics = f"http://127.0.0.1:{stack.ports.metrics}/metrics"
        with urllib.request.urlopen(metrics, timeout=5) as response:
            text = response.read().decode()
        assert ready_workers(text) == 2
        assert 'vsr_requests_total{kind="auto"} 6.0' in text
    finally:
        stack.stop()


def test_a_config_change_reloads_every_worker(workers: Workers, config: Path) -> None:
    general = {"name": "general", "modelRefs": [{"model": "phi4-mini"}]}
    policy = {**POLICY, "decisions": [POLICY["decisions"][0], general]}
    config.write_text(yaml.safe_dump(policy))
    reloaded = 'vsr_config_reloads_total{result="success"} 2.0'
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and reloaded not in workers.metrics():
        time.sleep(0.2)
    assert reloaded in workers.metrics()
    # Whichever worker takes the connection now routes with the new default.
    models = asyncio.run(_routed_plainly(workers.grpc_port))
    assert set(models) == {"phi4-mini"}


async def _routed_plainly(port: int) -> list[str]:
    return [await _one_request(port, 0) for _ in range(8)]
