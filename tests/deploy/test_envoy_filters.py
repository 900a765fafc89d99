"""The ext_proc filter settings in the Istio EnvoyFilter and the AIBrix EnvoyPatchPolicy, applied
to a listener the way their controllers apply them and loaded into a real Envoy 1.40."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from tests.deploy.envoy_filters import (
    Json,
    envoy_gateway_config,
    envoy_validate,
    ext_proc_filters,
    istio_gateway_config,
    undefined_ext_proc_clusters,
)
from tests.deploy.rendering import NAMESPACE, RELEASE, Manifest, find

from vsr.settings import Settings


def _seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


VSR_HOST = f"{RELEASE}.{NAMESPACE}.svc.cluster.local"
# The listener name Envoy Gateway gives Gateway aibrix-eg's listener "http" in aibrix-system.
AIBRIX_LISTENER = "aibrix-system/aibrix-eg/http"


def _istio_config(istio_manifests: dict[str, list[Manifest]]) -> Json:
    envoy_filter = find(istio_manifests["envoyfilter.yaml"], "EnvoyFilter")
    return istio_gateway_config(envoy_filter, (f"outbound|50051||{VSR_HOST}", VSR_HOST, 50051))


def _aibrix_config(aibrix_manifests: dict[str, list[Manifest]]) -> Json:
    policy = find(aibrix_manifests["envoypatchpolicy.yaml"], "EnvoyPatchPolicy")
    return envoy_gateway_config(policy, AIBRIX_LISTENER)


@pytest.mark.parametrize("integration", ["istio", "aibrix"])
def test_filter_loads_in_envoy(
    integration: str,
    istio_manifests: dict[str, list[Manifest]],
    aibrix_manifests: dict[str, list[Manifest]],
    tmp_path: Path,
) -> None:
    if integration == "istio":
        config = _istio_config(istio_manifests)
    else:
        config = _aibrix_config(aibrix_manifests)
    accepted, output = envoy_validate(config, tmp_path)
    assert accepted, output
    assert undefined_ext_proc_clusters(config) == []


@pytest.mark.parametrize("integration", ["istio", "aibrix"])
def test_filter_runs_first_with_the_design_processing_modes(
    integration: str,
    istio_manifests: dict[str, list[Manifest]],
    aibrix_manifests: dict[str, list[Manifest]],
) -> None:
    if integration == "istio":
        config = _istio_config(istio_manifests)
    else:
        config = _aibrix_config(aibrix_manifests)
    listener = config["static_resources"]["listeners"][0]
    chain = listener.get("default_filter_chain") or listener["filter_chains"][0]
    first = chain["filters"][0]["typed_config"]["http_filters"][0]
    (ext_proc,) = ext_proc_filters(config)
    assert first is ext_proc
    settings = ext_proc["typed_config"]
    modes = settings["processing_mode"]
    assert modes["request_header_mode"] == "SEND"
    assert modes["request_body_mode"] == "BUFFERED"
    assert modes["response_header_mode"] == "SEND"
    assert settings["allow_mode_override"] is True
    # Screening is not optional: vsr down or too slow is an error, never an unscreened request.
    assert settings["failure_mode_allow"] is False
    # Envoy waits longer than vsr's own classification deadline, so vsr answers a slow request.
    assert _seconds(settings["message_timeout"]) > Settings().request_timeout_s
    # vsr needs the whole body: the listener buffer must hold well more than vsr's 8 MiB limit.
    assert listener["per_connection_buffer_limit_bytes"] > 8 * 1024 * 1024
    # vsr asks for the bodies it reads (mode_override); the rest must pass unheld (SSE with
    # response reading off, compressed bodies), and no list may refuse BUFFERED or STREAMED.
    assert modes["response_body_mode"] == "NONE"
    assert "allowed_override_modes" not in settings


def test_a_misspelt_field_is_rejected(
    istio_manifests: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    """The reason this check exists: Istio passes the patch through, Envoy refuses it."""
    config = copy.deepcopy(_istio_config(istio_manifests))
    (ext_proc,) = ext_proc_filters(config)
    ext_proc["typed_config"]["processing_modes"] = ext_proc["typed_config"].pop("processing_mode")
    accepted, output = envoy_validate(config, tmp_path)
    assert not accepted
    assert "processing_modes" in output


def test_an_unknown_cluster_is_caught(aibrix_manifests: dict[str, list[Manifest]]) -> None:
    config = copy.deepcopy(_aibrix_config(aibrix_manifests))
    (ext_proc,) = ext_proc_filters(config)
    ext_proc["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] = "vsr-typo"
    assert undefined_ext_proc_clusters(config) == ["vsr-typo"]
