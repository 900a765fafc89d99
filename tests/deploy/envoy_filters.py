"""The ext_proc settings our gateway manifests inject, rebuilt as real Envoy configs.

Istio's EnvoyFilter and Envoy Gateway's EnvoyPatchPolicy both carry raw Envoy config that their
controllers pass through unchecked: a misspelt field only shows up as a rejected listener in the
cluster. Here each patch is applied, the way its controller applies it, to a minimal listener like
the one that controller generates, and the result goes to ``envoy --mode validate``, which parses
every field against Envoy's own protos.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.deploy.rendering import ENVOY, Manifest, require, run_tool

HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

Json = dict[str, Any]


def backend_cluster(name: str) -> Json:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": "127.0.0.1", "port_value": 18000}
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }


def http_connection_manager(stat_prefix: str) -> Json:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": HCM_TYPE,
            "stat_prefix": stat_prefix,
            "route_config": {
                "name": "backends",
                "virtual_hosts": [
                    {
                        "name": "all",
                        "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "backend"}}],
                    }
                ],
            },
            "http_filters": [
                {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}
            ],
        },
    }


def grpc_cluster(name: str, host: str, port: int) -> Json:
    """The HTTP/2 cluster an ext_proc filter calls, as Istio makes one for a gRPC port."""
    cluster = backend_cluster(name)
    cluster["type"] = "STRICT_DNS"
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    endpoint["address"]["socket_address"] = {"address": host, "port_value": port}
    cluster["typed_extension_protocol_options"] = {
        HTTP_PROTOCOL_OPTIONS: {
            "@type": f"type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }
    return cluster


def bootstrap(listener: Json, clusters: list[Json]) -> Json:
    return {"static_resources": {"listeners": [listener], "clusters": clusters}}


def merge(target: Json, patch: Json) -> None:
    """Protobuf-style merge (Istio's MERGE): maps merge recursively, everything else replaces."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def istio_gateway_config(envoy_filter: Manifest, vsr_cluster: tuple[str, str, int]) -> Json:
    """Apply an EnvoyFilter's GATEWAY patches to a gateway listener; ``vsr_cluster`` is
    (cluster name Istio generates for the vsr Service, host, port)."""
    listener: Json = {
        "name": "0.0.0.0_80",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 18080}},
        "filter_chains": [{"filters": [http_connection_manager("inference-gateway")]}],
    }
    for patch in envoy_filter["spec"]["configPatches"]:
        operation = patch["patch"]["operation"]
        value = patch["patch"]["value"]
        if patch["applyTo"] == "HTTP_FILTER" and operation == "INSERT_FIRST":
            for chain in listener["filter_chains"]:
                chain["filters"][0]["typed_config"]["http_filters"].insert(0, copy.deepcopy(value))
        elif patch["applyTo"] == "LISTENER" and operation == "MERGE":
            merge(listener, value)
        else:
            raise ValueError(f"unsupported EnvoyFilter patch {patch['applyTo']}/{operation}")
    name, host, port = vsr_cluster
    return bootstrap(listener, [backend_cluster("backend"), grpc_cluster(name, host, port)])


def _json_pointer_add(document: Json, pointer: str, value: Any) -> None:
    """RFC 6902 ``add``: insert into a list at an index (or ``-``), or set an object member."""
    parts = [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]
    parent: Any = document
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(value))
    else:
        parent[last] = copy.deepcopy(value)


def envoy_gateway_config(policy: Manifest, listener_name: str) -> Json:
    """Apply an EnvoyPatchPolicy's JSON patches to the listener Envoy Gateway generates for a
    Gateway's HTTP listener (HTTP filters in ``default_filter_chain``) and to the cluster list."""
    listener: Json = {
        "name": listener_name,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 18080}},
        "default_filter_chain": {"filters": [http_connection_manager("http-10080")]},
    }
    clusters = [backend_cluster("backend")]
    for patch in policy["spec"]["jsonPatches"]:
        operation = patch["operation"]
        if operation["op"] != "add":
            raise ValueError(f"unsupported JSON patch op {operation['op']!r}")
        if patch["type"] == LISTENER_TYPE:
            if patch["name"] != listener_name:
                raise ValueError(f"patch targets listener {patch['name']!r}, not {listener_name!r}")
            _json_pointer_add(listener, operation["path"], operation["value"])
        elif patch["type"] == CLUSTER_TYPE and operation["path"] == "":
            # Envoy Gateway: `add` at the root of a Cluster patch creates that cluster.
            clusters.append(copy.deepcopy(operation["value"]))
        else:
            raise ValueError(f"unsupported patch {patch['type']} at {operation['path']!r}")
    return bootstrap(listener, clusters)


def envoy_validate(config: Json, workdir: Path) -> tuple[bool, str]:
    """(accepted, Envoy's output) for ``envoy --mode validate`` on the config."""
    path = workdir / "envoy.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    result = run_tool(
        [require(ENVOY), "--mode", "validate", "-c", path, "--log-level", "error"], timeout=60
    )
    return result.returncode == 0, result.stdout + result.stderr


def ext_proc_filters(config: Json) -> list[Json]:
    """The ext_proc filters in a config's listener, in chain order."""
    listener = config["static_resources"]["listeners"][0]
    chain = listener.get("default_filter_chain") or listener["filter_chains"][0]
    filters: list[Json] = chain["filters"][0]["typed_config"]["http_filters"]
    return [f for f in filters if "ext_proc" in f["typed_config"]["@type"].lower()]


def undefined_ext_proc_clusters(config: Json) -> list[str]:
    """Clusters the ext_proc filters call that the config does not define. Envoy's validate mode
    accepts these (clusters may arrive later over CDS), so the check is ours."""
    defined = {cluster["name"] for cluster in config["static_resources"]["clusters"]}
    called = [
        f["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"]
        for f in ext_proc_filters(config)
    ]
    return [name for name in called if name not in defined]
