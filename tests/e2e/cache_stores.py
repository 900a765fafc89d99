"""Real cache stores for the e2e suite, started on loopback and stopped by PID: a
``milvus-lite server`` on a free TCP port, and pgserver's PostgreSQL 16 + pgvector on a unix
socket."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsr.devstack import free_port


@dataclass
class RunningStore:
    """``settings``: the ``semantic_cache`` keys that point vsr at it; ``kill`` stops it hard."""

    backend: str
    settings: dict[str, Any]
    pid: int
    process: subprocess.Popen[bytes] | None = None
    server: Any = None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        elif self.server is not None:
            try:
                self.server.cleanup()
            except Exception:
                self.kill()


def start_milvus(directory: Path) -> RunningStore:
    binary = Path(sys.executable).parent / "milvus-lite"
    port = free_port()
    log = (directory / "milvus.log").open("wb")
    process = subprocess.Popen(
        [str(binary), "server", "--data-dir", str(directory / "milvus"),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("milvus-lite server did not start") from None
            time.sleep(0.1)
    milvus = {"uri": f"http://127.0.0.1:{port}", "collection": "vsr_e2e", "token_env": None}
    settings = {"backend": "milvus", "milvus": milvus}
    return RunningStore("milvus", settings, process.pid, process=process)


def start_pgvector(directory: Path) -> RunningStore:
    import pgserver

    data = directory / "pg"
    server = pgserver.get_server(str(data), cleanup_mode="stop")
    pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    pg = {"dsn": server.get_uri(), "dsn_env": None, "table": "vsr_e2e"}
    settings = {"backend": "pgvector", "pgvector": pg}
    return RunningStore("pgvector", settings, pid, server=server)
