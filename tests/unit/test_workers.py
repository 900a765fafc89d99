"""The parts of ``vsr serve --workers``: CPU counting, worker settings, readiness, the supervisor's
fail-fast rule, the cached metric children and the shared-port options."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from vsr.devstack import free_port
from vsr.errors import ConfigError
from vsr.extproc.server import grpc_options
from vsr.observability import metrics
from vsr.settings import Settings
from vsr.workers import (
    Supervisor,
    cpu_count,
    ready_workers,
    resolve_workers,
    worker_environment,
    worker_files_collector,
)


def _cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "affinity", "expected"),
    [
        ({"cpu.max": "max 100000\n"}, 8, 8),  # no quota: the CPUs it may run on
        ({"cpu.max": "200000 100000\n"}, 8, 2),
        ({"cpu.max": "150000 100000\n"}, 8, 2),  # 1.5 CPUs: rounded up
        ({"cpu.max": "50000 100000\n"}, 8, 1),
        ({"cpu.max": "400000 100000\n"}, 2, 2),  # a quota above the affinity
        ({"cpu/cpu.cfs_quota_us": "300000", "cpu/cpu.cfs_period_us": "100000"}, 8, 3),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, 4, 4),
        ({}, 6, 6),
    ],
)
def test_cpu_count_follows_the_cgroup_quota(
    tmp_path: Path, files: dict[str, str], affinity: int, expected: int
) -> None:
    assert cpu_count(_cgroup(tmp_path, files), affinity=lambda: affinity) == expected


def test_workers_zero_means_one_per_cpu() -> None:
    assert resolve_workers(0) == cpu_count() >= 1
    assert resolve_workers(3) == 3


def test_a_worker_gets_the_supervisor_settings_through_its_environment(tmp_path: Path) -> None:
    settings = Settings.load(
        {
            "config_path": tmp_path / "policy.yaml",
            "grpc_port": 50999,
            "watch_config": False,
            "failure_policy": "closed",
            "request_timeout_s": 2.5,
            "workers": 4,
        },
        environ={},
    )
    env = worker_environment(settings, 3, tmp_path / "metrics", {"PATH": "/bin"})
    assert env["PATH"] == "/bin"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "metrics")
    worker = Settings.load(environ=env)
    assert worker.worker_index == 3 and worker.workers == 1
    assert worker.model_dump(exclude={"workers", "worker_index"}) == settings.model_dump(
        exclude={"workers", "worker_index"}
    )


def test_ready_workers_counts_ready_pids() -> None:
    text = (
        "# HELP vsr_ready ...\n# TYPE vsr_ready gauge\n"
        'vsr_ready{pid="10"} 1.0\nvsr_ready{pid="11"} 0.0\nvsr_ready{pid="12"} 1.0\n'
        'vsr_requests_total{kind="auto"} 1.0\n'
    )
    assert ready_workers(text) == 2
    assert ready_workers("") == 0


def test_workers_need_fixed_ports() -> None:
    settings = Settings.load({"grpc_port": 0}, environ={})
    with pytest.raises(ConfigError, match="fixed"):
        Supervisor(settings, 2)


def test_a_worker_dying_before_it_is_ready_stops_the_supervisor(tmp_path: Path) -> None:
    settings = Settings.load(
        {"host": "127.0.0.1", "metrics_port": free_port(), "grace_period_s": 1}, environ={}
    )
    supervisor = Supervisor(
        settings,
        2,
        command=[sys.executable, "-c", "import sys; sys.exit(3)"],
        multiproc_dir=tmp_path / "metrics",
    )
    assert supervisor.run() == 1


def test_metric_children_are_cached_and_count_in_the_metric() -> None:
    child = metrics.child(metrics.REQUESTS, "auto")
    assert child is metrics.child(metrics.REQUESTS, "auto")
    assert child.metric is metrics.REQUESTS.labels(kind="auto")  # a fast face of the child
    before = metrics.REGISTRY.get_sample_value("vsr_requests_total", {"kind": "auto"}) or 0.0
    child.inc()
    assert metrics.REGISTRY.get_sample_value("vsr_requests_total", {"kind": "auto"}) == before + 1


def test_only_workers_share_the_grpc_port() -> None:
    assert ("grpc.so_reuseport", 0) in grpc_options(1 << 20, reuse_port=False)
    assert ("grpc.so_reuseport", 1) in grpc_options(1 << 20, reuse_port=True)


def test_the_supervisor_reads_worker_files_while_a_worker_is_creating_one(tmp_path: Path) -> None:
    # A worker's metric file exists empty for an instant while it is created; prometheus-client's
    # own collector fails on it (struct.error), which once stopped the supervisor at start.
    from prometheus_client import CollectorRegistry, multiprocess
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    written = MmapedDict(str(tmp_path / "gauge_liveall_10.db"))  # type: ignore[no-untyped-call]
    key = mmap_key("vsr_ready", "vsr_ready", ["pid"], ["10"], "ready")
    written.write_value(key, 1.0, 0.0)  # type: ignore[no-untyped-call]
    written.close()  # type: ignore[no-untyped-call]
    (tmp_path / "gauge_liveall_11.db").write_bytes(b"")  # a worker creating its file
    with pytest.raises(struct.error):  # the failure the supervisor used to hit
        collector = multiprocess.MultiProcessCollector(None, str(tmp_path))  # type: ignore[no-untyped-call]
        collector.collect()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    worker_files_collector(multiprocess)(registry, path=str(tmp_path))
    assert registry.get_sample_value("vsr_ready", {"pid": "10"}) == 1.0
    assert registry.get_sample_value("vsr_ready", {"pid": "11"}) is None
