"""Ports picked for a local stack are distinct: a stack once got one port twice (vsr's HTTP API
and a simulator), and vsr could not bind it."""

from __future__ import annotations

import socket

from vsr.devstack import StackPorts, free_ports


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(64)
    assert len(set(ports)) == 64
    for port in ports[:8]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_stack_ports_never_repeat_within_a_stack() -> None:
    for _ in range(50):
        ports = StackPorts.free(["a", "b", "c"])
        picked = [
            ports.listener,
            ports.admin,
            ports.grpc,
            ports.http,
            ports.metrics,
            *ports.backends.values(),
        ]
        assert len(set(picked)) == len(picked) == 8
        assert list(ports.backends) == ["a", "b", "c"]
