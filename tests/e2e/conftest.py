"""Fixtures that start the real stack: Envoy (from .venv-envoy), ``vsr serve``, simulated backends.

Every port is chosen at run time. Process logs go to the test's temporary directory and are
printed when a stack fails to start, so a broken start-up explains itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.e2e.stack import write_router_config

from vsr.devstack import DevStack, StackPorts, find_envoy

# vsr answers 413 above this; the tests send a larger body on purpose.
MAX_BODY_BYTES = 64 * 1024


@pytest.fixture(scope="session")
def envoy_bin() -> Path:
    try:
        return find_envoy()
    except FileNotFoundError as error:
        pytest.skip(f"{error} (make test installs it)")


def _start(stack: DevStack) -> DevStack:
    try:
        stack.start()
    except Exception as error:
        logs = []
        if stack.log_dir is not None:
            for log_file in sorted(stack.log_dir.glob("*.log")):
                logs.append(
                    f"--- {log_file.name} ---\n{log_file.read_text(errors='replace')[-4000:]}"
                )
        raise RuntimeError(f"the e2e stack did not start: {error}\n" + "\n".join(logs)) from error
    return stack


@pytest.fixture(scope="session")
def stack(envoy_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """Envoy -> vsr -> llama3-8b / phi4-mini simulators, with echo on."""
    work = tmp_path_factory.mktemp("e2e-stack")
    config = write_router_config(work)
    devstack = DevStack(
        config,
        ports=StackPorts.free(),
        envoy_bin=envoy_bin,
        log_dir=work / "logs",
        sim_echo=True,
        extra_serve_args=["--max-body-bytes", str(MAX_BODY_BYTES), "--no-watch-config"],
    )
    yield _start(devstack)
    devstack.stop()


@pytest.fixture
def stack_without_vsr(envoy_bin: Path, tmp_path: Path) -> Iterator[Callable[[bool], DevStack]]:
    """Start Envoy and the backends with vsr absent, for a given ``failure_mode_allow``."""
    started: list[DevStack] = []

    def start(failure_mode_allow: bool) -> DevStack:
        devstack = DevStack(
            tmp_path / "unused.yaml",
            ports=StackPorts.free(),
            envoy_bin=envoy_bin,
            log_dir=tmp_path / f"logs-{failure_mode_allow}",
            with_vsr=False,
            sim_echo=True,
            failure_mode_allow=failure_mode_allow,
        )
        started.append(devstack)
        return _start(devstack)

    yield start
    for devstack in started:
        devstack.stop()
