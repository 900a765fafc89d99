"""Faults through the real Envoy: vsr killed and restarted under load, a backend down, a
classification past its deadline, clients that hang up, and a bounded soak.

Each test starts its own stack (a fault must not leak into the shared one). What must hold: no
request that screening would refuse ever reaches a model, every answer a client gets is either
the right one or an OpenAI-shaped error, and vsr stays healthy (no lost or mixed requests, RSS
stable).
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.e2e.conftest import _start
from tests.e2e.stack import CREDIT_CARD, chat_body, metrics_text, send, write_router_config

from vsr.devstack import DevStack, StackPorts

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"


@pytest.fixture
def make_stack(envoy_bin: Path, tmp_path: Path) -> Iterator[Callable[..., DevStack]]:
    started: list[DevStack] = []

    def make(*serve_args: str) -> DevStack:
        config = write_router_config(tmp_path)
        devstack = DevStack(
            config,
            ports=StackPorts.free(),
            envoy_bin=envoy_bin,
            log_dir=tmp_path / f"logs-{len(started)}",
            sim_echo=True,
            extra_serve_args=["--no-watch-config", *serve_args],
        )
        started.append(devstack)
        return _start(devstack)

    yield make
    for devstack in started:
        devstack.stop()


def request_for(index: int) -> tuple[dict[str, Any], str]:
    """A request and what must happen to it: 'math', 'general' or 'blocked'."""
    kind = ("math", "general", "blocked")[index % 3]
    if kind == "math":
        return chat_body(f"request {index}: what is {index} + 1?"), kind
    if kind == "general":
        return chat_body(f"request {index}: hello there", "llama3-8b"), kind
    return chat_body(f"request {index}: my card is {CREDIT_CARD}", "llama3-8b"), kind


def check(index: int, kind: str, status: int, payload: dict[str, Any]) -> str:
    """'ok' for the right answer, 'unavailable' for the OpenAI-shaped 503; anything else fails."""
    if status == 503:
        assert payload["error"]["code"] in {"router_unavailable", "screening_unavailable"}
        return "unavailable"
    assert status == 200, (index, kind, status, payload)
    if kind == "blocked":
        assert "sim_request" not in payload, f"request {index} reached a model unscreened"
        assert payload["choices"][0]["finish_reason"] == "content_filter"
    else:
        expected = "phi4-mini" if kind == "math" else "llama3-8b"
        assert payload["model"] == expected, (index, payload)
        content = payload["sim_request"]["body"]["messages"][-1]["content"]
        assert content.startswith(f"request {index}: "), "a response went to the wrong client"
    return "ok"


async def load(stack: DevStack, seconds: float, clients: int, first: int = 0) -> dict[str, int]:
    """``clients`` loops sending requests for ``seconds``; counts outcomes (checking each)."""
    outcomes = {"ok": 0, "unavailable": 0}
    deadline = time.monotonic() + seconds
    counter = iter(range(first, first + 10_000_000))

    async def client(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            index = next(counter)
            body, kind = request_for(index)
            try:
                async with session.post(f"{stack.url}{CHAT}", json=body) as response:
                    payload = await response.json(content_type=None)
                    outcomes[check(index, kind, response.status, payload)] += 1
            except aiohttp.ClientConnectionError:
                # Envoy resets the connection only if the client gives up; count as unavailable.
                outcomes["unavailable"] += 1

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return outcomes


def test_vsr_killed_and_restarted_under_load(make_stack: Callable[..., DevStack]) -> None:
    stack = make_stack()

    async def scenario() -> tuple[dict[str, int], dict[str, int]]:
        during = asyncio.create_task(load(stack, seconds=6.0, clients=6))
        await asyncio.sleep(1.0)
        stack.kill("vsr")
        await asyncio.sleep(1.0)
        await asyncio.to_thread(stack.restart_vsr)
        outcomes = await during
        after = await load(stack, seconds=1.0, clients=4, first=5_000_000)
        return outcomes, after

    during, after = asyncio.run(scenario())
    # While vsr was down the clients got Envoy's OpenAI-shaped 503, nothing unscreened.
    assert during["unavailable"] > 0 and during["ok"] > 0
    assert after == {"ok": after["ok"], "unavailable": 0} and after["ok"] > 0


def test_a_backend_down_is_an_openai_error_and_the_others_keep_serving(
    make_stack: Callable[..., DevStack],
) -> None:
    stack = make_stack()
    stack.kill("sim-phi4-mini")
    reply = send(stack.ports.listener, "POST", CHAT, chat_body("what is 2 + 2?"))
    assert reply.status == 503
    assert reply.json()["error"]["code"] == "gateway_error"
    ok = send(stack.ports.listener, "POST", CHAT, chat_body("hello", "llama3-8b"))
    assert ok.status == 200 and ok.json()["model"] == "llama3-8b"


def test_classification_past_the_deadline_is_a_503_never_a_forward(
    make_stack: Callable[..., DevStack],
) -> None:
    stack = make_stack("--request-timeout-s", "0.0001")
    reply = send(stack.ports.listener, "POST", CHAT, chat_body(f"card {CREDIT_CARD}", "llama3-8b"))
    assert reply.status == 503, reply.body
    assert reply.headers["retry-after"] == "1"
    assert reply.json()["error"]["code"] == "classification_timeout"
    assert b"sim_request" not in reply.body


def active_streams(stack: DevStack) -> float:
    text = metrics_text(stack.ports.metrics)
    (line,) = [line for line in text.splitlines() if line.startswith("vsr_active_streams ")]
    return float(line.split()[1])


def test_clients_that_hang_up_leave_nothing_behind(make_stack: Callable[..., DevStack]) -> None:
    stack = make_stack()
    body = b'{"model": "auto", "messages": [' + b" " * 50_000
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", stack.ports.listener), timeout=5) as sock:
            sock.sendall(
                f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body) + 10}\r\n\r\n".encode()
                + body  # 10 bytes short: Envoy is still waiting for the body when we hang up
            )
    # Envoy opened an ext_proc stream for each (the headers arrived) and resets it when its
    # client goes; wait for all 20 to have started, then for vsr to have closed them all.
    deadline = time.monotonic() + 15
    while envoy_stat(stack, "ext_proc.streams_started") < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert envoy_stat(stack, "ext_proc.streams_started") >= 20
    while active_streams(stack) > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert active_streams(stack) == 0
    reply = send(stack.ports.listener, "POST", CHAT, chat_body("what is 2 + 2?"))
    assert reply.status == 200 and reply.json()["model"] == "phi4-mini"


def envoy_stat(stack: DevStack, suffix: str) -> int:
    """The sum of Envoy's counters whose name ends with ``suffix`` (admin /stats)."""
    connection = http.client.HTTPConnection("127.0.0.1", stack.ports.admin, timeout=10)
    try:
        connection.request("GET", "/stats?filter=" + suffix.replace(".", "\\."))
        lines = connection.getresponse().read().decode().splitlines()
    finally:
        connection.close()
    return sum(
        int(line.rsplit(": ", 1)[1]) for line in lines if line.split(":")[0].endswith(suffix)
    )


def rss_kib(stack: DevStack) -> int:
    status = Path(f"/proc/{stack.process('vsr').process.pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(line.split()[1])


def test_a_bounded_soak_loses_and_mixes_nothing(make_stack: Callable[..., DevStack]) -> None:
    stack = make_stack()
    warm = asyncio.run(load(stack, seconds=3.0, clients=8))
    before = rss_kib(stack)
    outcomes = asyncio.run(load(stack, seconds=20.0, clients=8, first=1_000_000))
    after = rss_kib(stack)
    assert warm["unavailable"] == 0 and outcomes["unavailable"] == 0
    assert outcomes["ok"] > 100
    # Growth after warm-up stays small (allocator noise, not a per-request leak).
    assert after - before < 32 * 1024, (before, after, outcomes)
