"""Every manifest we ship or render, against the schema its API server would apply, and the names
that tie the pieces together (gateway -> vsr Service, vsr's models -> routes -> pools -> pods)."""

from __future__ import annotations

import copy

import yaml
from tests.deploy.rendering import NAMESPACE, RELEASE, Manifest, find, router_config_text
from tests.deploy.schemas import validate_all, vendored_errors


def _all(manifests_by_file: dict[str, list[Manifest]]) -> list[Manifest]:
    return [manifest for manifests in manifests_by_file.values() for manifest in manifests]


def test_rendered_charts_validate(rendered: dict[str, list[Manifest]]) -> None:
    everything = [manifest for manifests in rendered.values() for manifest in manifests]
    problems, unvalidated = validate_all(everything)
    assert problems == []
    assert unvalidated == []


def test_istio_manifests_validate(istio_manifests: dict[str, list[Manifest]]) -> None:
    problems, unvalidated = validate_all(_all(istio_manifests))
    assert problems == []
    assert unvalidated == []


def test_aibrix_manifests_validate(aibrix_manifests: dict[str, list[Manifest]]) -> None:
    problems, unvalidated = validate_all(_all(aibrix_manifests))
    assert problems == []
    assert unvalidated == []


def test_validators_catch_mistakes(istio_manifests: dict[str, list[Manifest]]) -> None:
    """Each checker rejects a broken copy of a real manifest, so a pass above means something."""
    route = copy.deepcopy(find(_all(istio_manifests), "HTTPRoute", "vllm-phi4-mini-instruct"))
    route["spec"]["rules"][0]["matches"][0]["headers"][0]["type"] = "Exactly"
    pool = copy.deepcopy(find(_all(istio_manifests), "InferencePool", "vllm-phi4-mini-instruct"))
    pool["spec"]["targetPort"] = pool["spec"].pop("targetPorts")
    picker = copy.deepcopy(find(_all(istio_manifests), "InferencePool", "vllm-phi4-mini-instruct"))
    del picker["spec"]["endpointPickerRef"]["port"]
    deployment = copy.deepcopy(find(_all(istio_manifests), "Deployment", "vllm-phi4-mini-instruct"))
    deployment["spec"]["template"]["spec"]["containers"][0]["portz"] = []
    problems, _ = validate_all([route, pool, picker, deployment])
    assert len(problems) >= 4, problems
    assert any("targetPort" in problem for problem in problems)
    assert any("port is required" in problem for problem in problems)
    assert any("portz" in problem for problem in problems)
    assert any("HTTPRoute" in problem for problem in problems)


def test_envoy_patch_policy_schema_rejects_unknown_op(
    aibrix_manifests: dict[str, list[Manifest]],
) -> None:
    policy = copy.deepcopy(find(_all(aibrix_manifests), "EnvoyPatchPolicy"))
    policy["spec"]["jsonPatches"][0]["operation"]["op"] = "insert"
    assert vendored_errors(policy)


def test_istio_routes_cover_every_model_vsr_selects(
    rendered: dict[str, list[Manifest]], istio_manifests: dict[str, list[Manifest]]
) -> None:
    """vsr writes a config model's name into x-selected-model; each needs an HTTPRoute to a pool
    whose selector matches a demo Deployment serving that name."""
    config = yaml.safe_load(router_config_text(rendered["istio"]))
    models = {model["name"] for model in config["models"]}
    manifests = _all(istio_manifests)
    routed: dict[str, str] = {}
    for route in (m for m in manifests if m["kind"] == "HTTPRoute"):
        assert route["spec"]["parentRefs"][0]["name"] == "inference-gateway"
        for rule in route["spec"]["rules"]:
            (header,) = rule["matches"][0]["headers"]
            assert header["name"] == "x-selected-model"
            (backend,) = rule["backendRefs"]
            assert backend["kind"] == "InferencePool"
            routed[header["value"]] = backend["name"]
    assert set(routed) == models
    for model, pool_name in routed.items():
        pool = find(manifests, "InferencePool", pool_name)
        labels = pool["spec"]["selector"]["matchLabels"]
        servers = [
            m
            for m in manifests
            if m["kind"] == "Deployment"
            and labels.items() <= m["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(servers) == 1, f"pool {pool_name} selects {len(servers)} Deployments"
        (server,) = servers
        assert (
            f"--served-model-name={model}"
            in server["spec"]["template"]["spec"]["containers"][0]["args"]
        )
        assert server["metadata"]["namespace"] == pool["metadata"]["namespace"]
        picker = find(manifests, "Service", pool["spec"]["endpointPickerRef"]["name"])
        assert (
            picker["spec"]["ports"][0]["port"]
            == pool["spec"]["endpointPickerRef"]["port"]["number"]
        )


def test_istio_filter_and_rule_point_at_the_chart_service(
    rendered: dict[str, list[Manifest]], istio_manifests: dict[str, list[Manifest]]
) -> None:
    service = find(rendered["istio"], "Service", RELEASE)
    grpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    host = f"{RELEASE}.{NAMESPACE}.svc.cluster.local"
    manifests = _all(istio_manifests)
    envoy_filter = find(manifests, "EnvoyFilter")
    value = envoy_filter["spec"]["configPatches"][0]["patch"]["value"]
    cluster = value["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"]
    assert cluster == f"outbound|{grpc_port}||{host}"
    selector = envoy_filter["spec"]["workloadSelector"]["labels"]
    gateway = find(manifests, "Gateway")
    assert selector == {"gateway.networking.k8s.io/gateway-name": gateway["metadata"]["name"]}
    assert gateway["spec"]["gatewayClassName"] == "istio"
    assert find(manifests, "DestinationRule", "vsr")["spec"]["host"] == host


def test_aibrix_policy_points_at_the_headless_service(
    rendered: dict[str, list[Manifest]], aibrix_manifests: dict[str, list[Manifest]]
) -> None:
    headless = find(rendered["aibrix"], "Service", f"{RELEASE}-headless")
    policy = find(_all(aibrix_manifests), "EnvoyPatchPolicy")
    assert policy["metadata"]["namespace"] == "aibrix-system"
    assert policy["spec"]["targetRef"] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": "aibrix-eg",
    }
    (cluster_patch,) = [p for p in policy["spec"]["jsonPatches"] if p["type"].endswith("Cluster")]
    endpoint = cluster_patch["operation"]["value"]["load_assignment"]["endpoints"][0]
    address = endpoint["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert address == {
        "address": f"{RELEASE}-headless.{NAMESPACE}.svc.cluster.local",
        "port_value": headless["spec"]["ports"][0]["port"],
    }


def test_aibrix_demo_model_is_the_one_vsr_routes_to(
    rendered: dict[str, list[Manifest]], aibrix_manifests: dict[str, list[Manifest]]
) -> None:
    config = yaml.safe_load(router_config_text(rendered["aibrix"]))
    assert "MoM" in config["auto_model_names"]
    (model,) = [m["name"] for m in config["models"]]
    manifests = _all(aibrix_manifests)
    deployment = find(manifests, "Deployment", model)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["model.aibrix.ai/name"] == model
    assert f"--model={model}" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert find(manifests, "Service", model)["spec"]["selector"].items() <= labels.items()
