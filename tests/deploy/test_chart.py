"""The Helm chart: lint, render, the properties the issue asks of it, and its router config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.deploy.rendering import (
    CHART,
    DEFAULT_CONFIG,
    HELM,
    NAMESPACE,
    RELEASE,
    REPO,
    VALUE_SETS,
    Manifest,
    ValueSet,
    find,
    helm_template,
    require,
    router_config_text,
    run_tool,
)


@pytest.mark.parametrize("value_set", VALUE_SETS, ids=lambda value_set: value_set.name)
def test_helm_lint_is_clean(value_set: ValueSet) -> None:
    result = run_tool([require(HELM), "lint", "--strict", CHART, *value_set.helm_args()])
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_render_has_every_object(rendered: dict[str, list[Manifest]]) -> None:
    kinds = sorted(manifest["kind"] for manifest in rendered["default"])
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "Service",
        "Service",
        "ServiceAccount",
    ]
    widest = {manifest["kind"] for manifest in rendered["gpu-everything"]}
    assert {"HorizontalPodAutoscaler", "ServiceMonitor"} <= widest


@pytest.mark.parametrize("name", [value_set.name for value_set in VALUE_SETS])
def test_pod_runs_vsr_serve_hardened_with_probes(
    rendered: dict[str, list[Manifest]], name: str
) -> None:
    pod = find(rendered[name], "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["serve"]
    assert {port["name"]: port["containerPort"] for port in container["ports"]} == {
        "grpc": 50051,
        "http": 8080,
        "metrics": 9190,
    }
    assert container["startupProbe"]["httpGet"]["path"] == "/ready"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    startup = container["startupProbe"]
    # Model loading gets minutes, not the liveness probe's seconds.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"]
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert mounts["/etc/vsr"] == "config" and "/tmp" in mounts
    environment = {item["name"]: item.get("value") for item in container["env"]}
    assert environment["VSR_CONFIG_PATH"] == "/etc/vsr/config.yaml"


def test_chart_environment_names_are_vsr_settings(rendered: dict[str, list[Manifest]]) -> None:
    """Every VSR_* variable the chart sets must be a field of vsr.settings.Settings."""
    settings = pytest.importorskip("vsr.settings", reason="vsr.settings needs the native core")
    container = find(rendered["default"], "Deployment")["spec"]["template"]["spec"]["containers"][0]
    fields = {f"VSR_{name.upper()}" for name in settings.Settings.model_fields}
    assert {item["name"] for item in container["env"]} <= fields


def test_api_token_comes_from_a_secret_only_when_named(
    rendered: dict[str, list[Manifest]],
) -> None:
    def environment(name: str) -> dict[str, dict[str, object]]:
        pod = find(rendered[name], "Deployment")["spec"]["template"]["spec"]
        return {item["name"]: item for item in pod["containers"][0]["env"]}

    default = environment("default")
    assert "VSR_API_TOKEN" not in default
    assert default["VSR_API_MAX_BATCH_TEXTS"]["value"] == "100"
    token = environment("gpu-everything")["VSR_API_TOKEN"]
    assert token["valueFrom"] == {"secretKeyRef": {"name": "vsr-api-token", "key": "token"}}


def test_cache_store_credentials_come_from_secrets(rendered: dict[str, list[Manifest]]) -> None:
    def environment(name: str) -> dict[str, dict[str, object]]:
        pod = find(rendered[name], "Deployment")["spec"]["template"]["spec"]
        return {item["name"]: item for item in pod["containers"][0]["env"]}

    assert "VSR_CACHE_MILVUS_TOKEN" not in environment("default")
    assert "VSR_CACHE_PG_DSN" not in environment("cache-memory")
    milvus = environment("cache-milvus")["VSR_CACHE_MILVUS_TOKEN"]["valueFrom"]
    assert milvus == {"secretKeyRef": {"name": "vsr-cache-milvus", "key": "token"}}
    pg = environment("cache-pgvector")["VSR_CACHE_PG_DSN"]["valueFrom"]
    assert pg == {"secretKeyRef": {"name": "vsr-cache-pg", "key": "dsn"}}
    for name in ("cache-milvus", "cache-pgvector"):
        config = yaml.safe_load(find(rendered[name], "ConfigMap")["data"]["config.yaml"])
        assert "PASSWORD" not in str(config) and config["semantic_cache"]["backend"] in name


def test_gpu_values_use_cuda_image_and_gpu(rendered: dict[str, list[Manifest]]) -> None:
    manifests = rendered["gpu-everything"]
    container = find(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith("-cuda")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert yaml.safe_load(router_config_text(manifests))["device"] == "cuda:0"
    cpu = find(rendered["default"], "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in cpu["resources"].get("limits", {})
    assert not cpu["image"].endswith("-cuda")


def test_services_expose_grpc_headless_and_metrics(rendered: dict[str, list[Manifest]]) -> None:
    manifests = rendered["default"]
    service = find(manifests, "Service", RELEASE)
    assert {port["name"]: port["port"] for port in service["spec"]["ports"]} == {
        "grpc": 50051,
        "http": 8080,
    }
    headless = find(manifests, "Service", f"{RELEASE}-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert [port["port"] for port in headless["spec"]["ports"]] == [50051]
    metrics = find(manifests, "Service", f"{RELEASE}-metrics")
    assert [port["port"] for port in metrics["spec"]["ports"]] == [9190]
    selector = find(manifests, "Deployment")["spec"]["selector"]["matchLabels"]
    for each in (service, headless, metrics):
        assert each["spec"]["selector"] == selector


def test_service_monitor_selects_only_the_metrics_service(
    rendered: dict[str, list[Manifest]],
) -> None:
    manifests = rendered["gpu-everything"]
    wanted = find(manifests, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    selected = [
        manifest["metadata"]["name"]
        for manifest in manifests
        if manifest["kind"] == "Service"
        and wanted.items() <= manifest["metadata"]["labels"].items()
    ]
    assert selected == [f"{RELEASE}-metrics"]


def test_values_schema_rejects_a_misspelt_key() -> None:
    result = run_tool(
        [require(HELM), "template", RELEASE, CHART, "--set", "replicaCont=3"], timeout=60
    )
    assert result.returncode != 0
    assert "replicaCont" in result.stderr


def test_chart_default_config_is_config_default_yaml() -> None:
    """The chart cannot read files outside itself, so it carries a copy; keep them identical."""
    copy = CHART / "files" / "config.yaml"
    assert copy.read_text(encoding="utf-8") == DEFAULT_CONFIG.read_text(encoding="utf-8"), (
        f"run: cp {DEFAULT_CONFIG.relative_to(REPO)} {copy.relative_to(REPO)}"
    )


def _vsr_cli_can_run() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", "import vsr._core"],
        env={**os.environ, "PYTHONPATH": str(REPO / "python")},
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.mark.parametrize("name", [value_set.name for value_set in VALUE_SETS])
def test_rendered_router_config_passes_validate_config(
    rendered: dict[str, list[Manifest]], name: str, tmp_path: Path
) -> None:
    if not _vsr_cli_can_run():
        pytest.skip("vsr._core is not built yet (make build)")
    path = tmp_path / "config.yaml"
    path.write_text(router_config_text(rendered[name]), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "vsr.cli", "validate-config", str(path)],
        env={**os.environ, "PYTHONPATH": str(REPO / "python")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_notes_render_with_the_service_address() -> None:
    result = run_tool(
        [require(HELM), "install", RELEASE, CHART, "--dry-run=client", "-n", NAMESPACE]
    )
    assert result.returncode == 0, result.stderr
    assert f"{RELEASE}.{NAMESPACE}.svc.cluster.local:50051" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "workers"),
    [
        ((), "1"),  # the default request, cpu "1"
        (("resources.requests.cpu=2",), "2"),
        (("resources.requests.cpu=1500m",), "2"),
        (("resources.requests.cpu=250m",), "1"),
        (("resources.requests.cpu=4", "server.workers=3"), "3"),
        (("resources.requests.cpu=4", "gpu.enabled=true"), "1"),
    ],
)
def test_workers_follow_the_cpu_request(overrides: tuple[str, ...], workers: str) -> None:
    """VSR_WORKERS (vsr serve --workers): one process per requested CPU, unless set."""
    manifests = helm_template(ValueSet("workers", overrides=overrides))
    container = find(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    environment = {item["name"]: item.get("value") for item in container["env"]}
    assert environment["VSR_WORKERS"] == workers
