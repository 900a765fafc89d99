"""`vsr serve` on a port it cannot take: one line naming the port and the server, exit 1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from vsr.cli import main

CONFIG = """
default_model: general-llm
models: [{name: general-llm}]
signals: []
decisions: []
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("taken", "what", "transport"),
    [
        ("--grpc-port", "ext_proc gRPC", "native"),
        ("--grpc-port", "ext_proc gRPC", "grpcio"),
        ("--http-port", "HTTP API", "native"),
        ("--metrics-port", "metrics", "native"),
    ],
)
def test_a_port_in_use_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], taken: str, what: str, transport: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        ports = {
            "--grpc-port": free_port(),
            "--http-port": free_port(),
            "--metrics-port": free_port(),
        }
        ports[taken] = busy
        argv = ["serve", "--config", str(config), "--host", "127.0.0.1", "--no-watch-config"]
        argv += ["--extproc-transport", transport, "--log-level", "error"]
        for flag, port in ports.items():
            argv += [flag, str(port)]
        assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"vsr serve: cannot listen on 127.0.0.1:{busy} for the {what}" in err
    assert "Traceback" not in err
