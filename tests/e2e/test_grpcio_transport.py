"""The same stack with ``vsr serve --extproc-transport grpcio`` (grpc.aio; the e2e suite runs on
the default, native, transport): routing, screening, streamed response accounting, oversize
bodies, clients that hang up, a soak and the gRPC health check, each by the existing test.

(``VSR_EXTPROC_TRANSPORT=grpcio pytest tests/e2e`` runs every e2e test on grpc.aio.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tests.e2e import test_envoy_stack as envoy_stack
from tests.e2e import test_faults as faults
from tests.e2e import test_responses as responses
from tests.e2e.conftest import MAX_BODY_BYTES, _start, write_router_config
from tests.e2e.otlp_receiver import OtlpReceiver
from tests.e2e.stack import router_config

from vsr.devstack import DevStack, StackPorts

TRANSPORT = ["--extproc-transport", "grpcio"]


@pytest.fixture(scope="module")
def grpcio_stack(envoy_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    work = tmp_path_factory.mktemp("e2e-grpcio")
    devstack = DevStack(
        write_router_config(work),
        ports=StackPorts.free(),
        envoy_bin=envoy_bin,
        log_dir=work / "logs",
        sim_echo=True,
        extra_serve_args=[*TRANSPORT, "--max-body-bytes", str(MAX_BODY_BYTES), "--no-watch-config"],
    )
    yield _start(devstack)
    devstack.stop()


@pytest.fixture
def make_grpcio_stack(envoy_bin: Path, tmp_path: Path) -> Iterator[Callable[..., DevStack]]:
    started: list[DevStack] = []

    def make(*serve_args: str) -> DevStack:
        devstack = DevStack(
            write_router_config(tmp_path),
            ports=StackPorts.free(),
            envoy_bin=envoy_bin,
            log_dir=tmp_path / f"logs-{len(started)}",
            sim_echo=True,
            extra_serve_args=["--no-watch-config", *TRANSPORT, *serve_args],
        )
        started.append(devstack)
        return _start(devstack)

    yield make
    for devstack in started:
        devstack.stop()


@pytest.mark.parametrize(
    "check",
    [
        envoy_stack.test_auto_routes_math_to_phi4_mini,
        envoy_stack.test_system_prompt_and_reasoning_as_the_backend_sees_them,
        envoy_stack.test_client_cannot_forge_routing_or_report_headers,
        envoy_stack.test_jailbreak_is_blocked_as_json,
        envoy_stack.test_jailbreak_is_blocked_as_sse_when_streaming,
        envoy_stack.test_pii_is_blocked,
        envoy_stack.test_models_are_listed_by_vsr,
        envoy_stack.test_sse_response_passes_through,
        envoy_stack.test_oversize_body_gets_413,
        envoy_stack.test_200_concurrent_requests_keep_their_own_route,
    ],
    ids=lambda check: check.__name__,
)
def test_on_grpcio(grpcio_stack: DevStack, check: Callable[[DevStack], None]) -> None:
    check(grpcio_stack)


@pytest.fixture(scope="module")
def grpcio_pricing_stack(
    envoy_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevStack]:
    """test_responses' stack (pricing, tracing) on grpc.aio."""
    otlp = OtlpReceiver()
    otlp.start()
    work = tmp_path_factory.mktemp("e2e-grpcio-responses")
    config = router_config()
    for model in config["models"]:
        model["pricing"] = responses.PRICING[model["name"]]
    path = work / "router.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    devstack = DevStack(
        path, ports=StackPorts.free(), envoy_bin=envoy_bin, log_dir=work / "logs",
        extra_serve_args=["--no-watch-config", *TRANSPORT],
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint)
        patch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        patch.setenv("OTEL_SERVICE_NAME", "vsr-e2e")
        _start(devstack)
    yield devstack
    devstack.stop()
    otlp.stop()


@pytest.mark.parametrize(
    "check",
    [
        responses.test_buffered_auto_request_counts_tokens_cost_and_ttft,
        responses.test_stream_without_usage_asked_gets_none_but_is_counted,
        responses.test_a_stream_that_fails_midway_is_counted,
        responses.test_blocks_count_as_errors_with_their_reason,
    ],
    ids=lambda check: check.__name__,
)
def test_accounting_on_grpcio(
    grpcio_pricing_stack: DevStack, check: Callable[[DevStack], None]
) -> None:
    check(grpcio_pricing_stack)


def test_grpcio_clients_that_hang_up_leave_nothing_behind(
    make_grpcio_stack: Callable[..., DevStack],
) -> None:
    faults.test_clients_that_hang_up_leave_nothing_behind(make_grpcio_stack)


def test_grpcio_bounded_soak(make_grpcio_stack: Callable[..., DevStack]) -> None:
    faults.test_a_bounded_soak_loses_and_mixes_nothing(make_grpcio_stack)


def test_grpcio_grpc_health_check(grpcio_stack: DevStack) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{grpcio_stack.ports.grpc}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="envoy.service.ext_proc.v3.ExternalProcessor"),
            timeout=5,
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
