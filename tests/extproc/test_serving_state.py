"""Settings, generation reloads, the config watcher, the HTTP API and the Envoy config render."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.extproc.scripted import scripted_generation

from vsr.api.http import build_http_app
from vsr.devstack import ENVOY_TEMPLATE, StackPorts, render_envoy_config
from vsr.errors import ConfigError
from vsr.observability import metrics
from vsr.runtime import Generation, Runtime, watch_config_directory
from vsr.settings import Settings


def test_settings_precedence_flags_over_environment_over_defaults() -> None:
    environ = {"VSR_GRPC_PORT": "6000", "VSR_HTTP_PORT": "7000", "VSR_WATCH_CONFIG": "false"}
    settings = Settings.load({"grpc_port": 5000, "http_port": None}, environ=environ)
    assert (settings.grpc_port, settings.http_port, settings.metrics_port) == (5000, 7000, 9190)
    assert settings.watch_config is False


def test_bad_settings_name_their_source() -> None:
    with pytest.raises(ConfigError, match="VSR_FAILURE_POLICY"):
        Settings.load(environ={"VSR_FAILURE_POLICY": "sometimes"})
    with pytest.raises(ConfigError, match="--grpc-port"):
        Settings.load({"grpc_port": 70000}, environ={})


def test_failed_reload_keeps_the_old_generation() -> None:
    attempts: list[int] = []

    async def build(number: int) -> Generation:
        attempts.append(number)
        if len(attempts) == 2:  # the first reload fails
            raise ConfigError("broken config")
        return scripted_generation(number=number)

    async def scenario() -> list[int]:
        runtime = Runtime(build, retire_after_s=0.0)
        await runtime.start()
        seen = [runtime.current.number]
        assert not await runtime.reload()
        seen.append(runtime.current.number)
        assert await runtime.reload()
        seen.append(runtime.current.number)
        return seen

    failures = (
        metrics.REGISTRY.get_sample_value("vsr_config_reloads_total", {"result": "failure"}) or 0.0
    )
    assert asyncio.run(scenario()) == [1, 1, 2]
    assert (
        metrics.REGISTRY.get_sample_value("vsr_config_reloads_total", {"result": "failure"})
        == failures + 1
    )


def test_watcher_sees_a_symlink_swap(tmp_path: Path) -> None:
    """Kubernetes swaps a ConfigMap's ``..data`` link; the file path itself does not change."""
    for version in ("v1", "v2"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "config.yaml").write_text(f"version: {version}\n")
    (tmp_path / "..data").symlink_to("v1")
    (tmp_path / "config.yaml").symlink_to("..data/config.yaml")
    changes: list[str] = []

    async def on_change() -> None:
        changes.append((tmp_path / "config.yaml").read_text())

    async def scenario() -> None:
        watcher = asyncio.create_task(watch_config_directory(tmp_path, on_change, 0.02))
        await asyncio.sleep(0.1)
        os.symlink("v2", tmp_path / "..data_tmp")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
        (tmp_path / "v2" / "config.yaml").write_text("version: v2\nedited: true\n")
        for _ in range(100):
            if changes:
                break
            await asyncio.sleep(0.02)
        watcher.cancel()

    asyncio.run(scenario())
    assert changes == ["version: v2\nedited: true\n"]


def test_http_api_ready_only_after_start() -> None:
    async def scenario() -> list[Any]:
        async def build(number: int) -> Generation:
            return scripted_generation(number=number)

        runtime = Runtime(build)
        transport = httpx.ASGITransport(app=build_http_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://vsr") as client:
            before = (await client.get("/ready")).status_code
            health = (await client.get("/health")).status_code
            await runtime.start()
            after = (await client.get("/ready")).status_code
            models = (await client.get("/v1/models")).json()
        return [before, health, after, [m["id"] for m in models["data"]]]

    before, health, after, models = asyncio.run(scenario())
    assert (before, health, after) == (503, 200, 200)
    assert models == ["auto", "MoM", "llama3-8b", "phi4-mini"]


def test_envoy_config_render_changes_only_ports_and_failure_mode() -> None:
    template = yaml.safe_load(ENVOY_TEMPLATE.read_text())
    ports = StackPorts(listener=1, admin=2, grpc=3, backends={"llama3-8b": 4, "phi4-mini": 5})
    config = render_envoy_config(template, ports, failure_mode_allow=True)
    listener = config["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["port_value"] == 1
    clusters = {
        c["name"]: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
            "socket_address"
        ]["port_value"]
        for c in config["static_resources"]["clusters"]
    }
    assert clusters == {"vsr-extproc": 3, "llama3-8b": 4, "phi4-mini": 5}
    http_filters = listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
    assert http_filters[0]["typed_config"]["failure_mode_allow"] is True
    assert template["admin"]["address"]["socket_address"]["port_value"] == 9901  # untouched
    with pytest.raises(ValueError, match="no cluster"):
        render_envoy_config(template, StackPorts(backends={"gpt-x": 9}))
