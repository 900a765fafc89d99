"""``vsr serve --workers N``: N processes serving one set of ports, so one pod uses all its cores.

One Python process serves ext_proc on one core at most (grpc.aio and vsr's handling hold the GIL),
so the supervisor started by ``vsr serve --workers N`` runs N ordinary ``vsr serve`` processes
(workers), each with its own runtime and model set, and:

- the workers bind the same gRPC (50051) and HTTP API (8080) ports with ``SO_REUSEPORT``: the
  kernel spreads new connections (Envoy's HTTP/2 connections, API clients) over them;
- the supervisor serves ``/metrics`` (9190) itself, from prometheus-client's multiprocess files
  that every worker writes (``PROMETHEUS_MULTIPROC_DIR``; a fresh directory unless the variable is
  set), so one scrape sees every worker's counters added up (see ``vsr.observability.metrics``);
- SIGTERM and SIGINT are forwarded to every worker, which drain as a single ``vsr serve`` does
  (grace period), then anything still running past the grace period is killed;
- a worker that dies after it was ready is restarted (its live gauges are dropped); one that dies
  before it ever reported ready (a bad config, a port in use, a model that does not load) stops
  everything with exit status 1, as do more than ``MAX_RESTARTS`` deaths in ``RESTART_WINDOW_S``;
- a config change reloads every worker: each watches the config directory as one process does.

Settings reach the workers through their ``VSR_*`` variables (``Settings.load`` reads them).
"""

from __future__ import annotations

import glob
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from vsr.errors import ConfigError
from vsr.settings import ENV_PREFIX, SERVE_FLAGS, Settings

log = structlog.get_logger(__name__)

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
_POLL_S = 0.1
# Settings a worker gets from the supervisor (each worker is one process: not ``workers``).
_PASSED = tuple(name for name in SERVE_FLAGS if name != "workers")


def cpu_count(
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    affinity: Callable[[], int] | None = None,
) -> int:
    """CPUs this process may use: its cgroup's CPU quota (v2 ``cpu.max``, v1
    ``cpu.cfs_quota_us``), rounded up, capped by its CPU affinity; at least 1."""
    if affinity is None:
        try:
            available = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            available = os.cpu_count() or 1
    else:
        available = affinity()
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        available = min(available, max(1, math.ceil(quota)))
    return max(1, available)


def _cgroup_quota(root: Path) -> float | None:
    """CPUs allowed by the cgroup (quota / period), or None without a limit."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota == "max":
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def resolve_workers(requested: int) -> int:
    """``--workers``: 0 means one per usable CPU."""
    return cpu_count() if requested == 0 else requested


def worker_environment(
    settings: Settings, index: int, multiproc_dir: Path, base: Mapping[str, str]
) -> dict[str, str]:
    """The environment of worker ``index``: its settings as ``VSR_*`` variables, one worker per
    process, and the shared metrics directory."""
    env = dict(base)
    for name in _PASSED:
        value = getattr(settings, name)
        if isinstance(value, bool):
            value = "true" if value else "false"
        env[ENV_PREFIX + name.upper()] = str(value)
    env[ENV_PREFIX + "WORKERS"] = "1"
    env[ENV_PREFIX + "WORKER_INDEX"] = str(index)
    env[MULTIPROC_VARIABLE] = str(multiproc_dir)
    return env


@dataclass
class Worker:
    index: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    ready: bool = False


class Supervisor:
    """Starts and watches the workers; ``run`` returns the exit status of ``vsr serve``."""

    def __init__(
        self,
        settings: Settings,
        count: int,
        *,
        command: list[str] | None = None,
        multiproc_dir: Path | None = None,
    ) -> None:
        if count < 2:
            raise ValueError("a supervisor runs two workers or more")
        if 0 in (settings.grpc_port, settings.http_port):
            raise ConfigError(
                "--workers needs fixed --grpc-port and --http-port (workers share them; port 0 "
                "would give each worker its own)"
            )
        self.settings = settings
        self.count = count
        self.command = command or [sys.executable, "-m", "vsr.cli", "serve"]
        self._own_dir = multiproc_dir is None and not os.environ.get(MULTIPROC_VARIABLE)
        self.multiproc_dir = multiproc_dir or Path(
            os.environ.get(MULTIPROC_VARIABLE) or tempfile.mkdtemp(prefix="vsr-metrics-")
        )
        self.workers: list[Worker] = []
        self._deaths: deque[float] = deque()
        self._stop_signal: int | None = None
        self._registry: Any = None

    # --- metrics -------------------------------------------------------------------------------

    def _prepare_metrics(self) -> None:
        """An empty multiprocess directory, and ``/metrics`` served from it."""
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        self.multiproc_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.multiproc_dir.glob("*.db"):
            stale.unlink()
        self._registry = CollectorRegistry()
        worker_files_collector(multiprocess)(self._registry, path=str(self.multiproc_dir))
        start_http_server(
            self.settings.metrics_port, addr=self.settings.host, registry=self._registry
        )

    def _is_ready(self, worker: Worker) -> bool:
        """The worker set ``vsr_ready`` to 1 (read from its multiprocess file)."""
        if self._registry is None:
            return False
        value = self._registry.get_sample_value("vsr_ready", {"pid": str(worker.process.pid)})
        return bool(value == 1.0)

    def _forget(self, pid: int) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(self.multiproc_dir))  # type: ignore[no-untyped-call]

    # --- processes -----------------------------------------------------------------------------

    def _spawn(self, index: int) -> Worker:
        env = worker_environment(self.settings, index, self.multiproc_dir, os.environ)
        process = subprocess.Popen(self.command, env=env)
        log.info("worker_started", worker=index, pid=process.pid)
        return Worker(index, process)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stop_signal = signum

    def run(self) -> int:
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        status = 0
        try:
            self._prepare_metrics()
            self.workers = [self._spawn(index) for index in range(self.count)]
            log.info("supervising", workers=self.count, metrics_dir=str(self.multiproc_dir))
            status = self._watch()
        finally:
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self._own_dir:
                shutil.rmtree(self.multiproc_dir, ignore_errors=True)
        return status

    def _watch(self) -> int:
        """Until a stop signal (0) or a failure the supervisor cannot mend (1)."""
        while self._stop_signal is None:
            for slot, worker in enumerate(self.workers):
                if not worker.ready and self._is_ready(worker):
                    worker.ready = True
                    log.info("worker_ready", worker=worker.index, pid=worker.process.pid)
                code = worker.process.poll()
                if code is None:
                    continue
                self._forget(worker.process.pid)
                if self._stop_signal is not None:
                    break
                if not worker.ready:
                    log.error(
                        "worker_failed_to_start", worker=worker.index, pid=worker.process.pid,
                        exit_code=code,
                    )  # fmt: skip
                    return 1
                now = time.monotonic()
                self._deaths.append(now)
                while self._deaths and now - self._deaths[0] > RESTART_WINDOW_S:
                    self._deaths.popleft()
                if len(self._deaths) > MAX_RESTARTS:
                    log.error(
                        "workers_keep_dying", deaths=len(self._deaths), window_s=RESTART_WINDOW_S
                    )
                    return 1
                log.warning(
                    "worker_died", worker=worker.index, pid=worker.process.pid, exit_code=code
                )
                self.workers[slot] = self._spawn(worker.index)
            time.sleep(_POLL_S)
        log.info("shutdown_requested", signal=signal.Signals(self._stop_signal).name)
        return 0

    def _stop_all(self) -> None:
        """SIGTERM to every worker still running; SIGKILL past the grace period (and a margin)."""
        running = [w.process for w in self.workers if w.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.grace_period_s + 10.0
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker_killed", pid=process.pid)
                process.kill()
                process.wait()
        log.info("stopped")


def worker_files_collector(multiprocess: Any) -> Any:
    """prometheus-client's multiprocess collector, made safe against files changing under it.

    A worker creates a metric's file when it first touches the metric: for an instant the file
    exists and is empty, and prometheus-client's reader fails on it (``struct.error``), which
    failed that ``/metrics`` scrape and, through the readiness check, stopped the supervisor at
    start (seen once in CI). A dead worker's live gauges are deleted, so a file can also vanish
    between listing and reading. Files shorter than their 8-byte header are skipped (the next
    scrape reads them) and a vanished file means reading the directory again.
    """

    class WorkerFilesCollector(multiprocess.MultiProcessCollector):  # type: ignore[misc]
        def collect(self) -> Any:
            for _ in range(3):
                files = glob.glob(os.path.join(self._path, "*.db"))
                try:
                    readable = [path for path in files if os.path.getsize(path) >= 8]
                    return self.merge(readable, accumulate=True)
                except FileNotFoundError:
                    continue
            return []

    return WorkerFilesCollector


def supervise(settings: Settings, count: int) -> int:
    return Supervisor(settings, count).run()


def ready_workers(metrics_text: str) -> int:
    """How many workers report ``vsr_ready 1`` in the supervisor's ``/metrics`` text."""
    return sum(
        1
        for line in metrics_text.splitlines()
        if line.startswith('vsr_ready{pid="') and float(line.rsplit(" ", 1)[1]) == 1.0
    )


def wait_workers_ready(metrics_url: str, count: int, timeout_s: float) -> None:
    """Poll the supervisor's ``/metrics`` until ``count`` workers are ready (tests, benches)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(metrics_url, timeout=2) as response:
                seen = ready_workers(response.read().decode())
        except (urllib.error.URLError, OSError):
            seen = 0
        if seen >= count:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{seen} of {count} workers ready after {timeout_s:.0f}s ({metrics_url})")
