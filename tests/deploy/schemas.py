"""Validation of manifests against the schemas their API servers would apply, offline.

- Core kinds (apps/v1, v1, policy/v1, ...): kubernetes-validate's bundled OpenAPI schemas, strict
  (unknown fields are errors, as with ``kubectl apply --validate=strict``).
- Gateway API, Istio and prometheus-operator kinds: the CRD schemas @kubernetes-models ships, run
  by tests/deploy/js/validate.mjs in one node process.
- InferencePool and EnvoyPatchPolicy: CRDs vendored under tests/deploy/schemas/, made strict the
  way kubectl's field validation is, plus the CRD's CEL rules written out in Python.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from tests.deploy.rendering import (
    KUBERNETES_VERSION,
    NODE_MODELS,
    Manifest,
    require,
    run_tool,
)

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
NODE_VALIDATOR = Path(__file__).resolve().parent / "js" / "validate.mjs"

# apiVersion groups checked by the node CRD models.
NODE_GROUPS = frozenset(
    {"gateway.networking.k8s.io", "networking.istio.io", "monitoring.coreos.com"}
)


def label(manifest: Manifest) -> str:
    return f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"


def group_of(manifest: Manifest) -> str:
    api_version = str(manifest.get("apiVersion", ""))
    return api_version.split("/")[0] if "/" in api_version else ""


def core_errors(manifest: Manifest) -> tuple[bool, str | None]:
    """(whether kubernetes-validate knows the kind, the first error with its field path or None)."""
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.utils.SchemaNotFoundError:
        return False, None
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path) or "(root)"
        return True, f"{label(manifest)}: {where}: {error.message}"
    return True, None


def node_results(manifests: list[Manifest]) -> list[dict[str, Any]]:
    """One {kind, name, status, error} per manifest from the @kubernetes-models CRD schemas."""
    require(NODE_MODELS)
    result = run_tool(["node", NODE_VALIDATOR], timeout=60, stdin=json.dumps(manifests))
    if result.returncode != 0:
        raise RuntimeError(f"validate.mjs failed:\n{result.stderr}")
    results: list[dict[str, Any]] = json.loads(result.stdout)
    return results


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Unknown fields become errors wherever the CRD lists properties (as kubectl's strict field
    validation does); ``x-kubernetes-preserve-unknown-fields`` subtrees stay open, and
    ``metadata`` is left to the server."""
    schema = copy.deepcopy(schema)

    def visit(node: dict[str, Any], path: tuple[str, ...]) -> None:
        properties = node.get("properties")
        if isinstance(properties, dict):
            if "additionalProperties" not in node and path != ():
                node["additionalProperties"] = False
            for name, child in properties.items():
                if name != "metadata":
                    visit(child, (*path, name))
        for key in ("items", "additionalProperties"):
            child = node.get(key)
            if isinstance(child, dict):
                visit(child, (*path, key))

    visit(schema, ())
    # The root keeps apiVersion/kind/metadata/spec/status only.
    schema["additionalProperties"] = False
    schema["properties"].setdefault("status", {"type": "object"})
    return schema


@functools.cache
def vendored_crd_schema(file_name: str, version: str) -> dict[str, Any]:
    crd = yaml.safe_load((SCHEMA_DIR / file_name).read_text(encoding="utf-8"))
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            return _strict(entry["schema"]["openAPIV3Schema"])
    raise KeyError(f"{file_name} has no version {version}")


def _inference_pool_rules(manifest: Manifest) -> list[str]:
    """The InferencePool CRD's x-kubernetes-validations (CEL), written out."""
    spec = manifest.get("spec", {})
    problems = []
    picker = spec.get("endpointPickerRef", {})
    if picker.get("kind", "Service") == "Service" and "port" not in picker:
        problems.append("spec.endpointPickerRef: port is required when kind is 'Service'")
    numbers = [port.get("number") for port in spec.get("targetPorts", [])]
    if len(numbers) != len(set(numbers)):
        problems.append("spec.targetPorts: port number must be unique")
    return problems


VendoredCheck = tuple[str, str, Callable[[Manifest], list[str]]]
VENDORED: dict[tuple[str, str], VendoredCheck] = {
    ("inference.networking.k8s.io/v1", "InferencePool"): (
        "inference.networking.k8s.io_inferencepools.yaml",
        "v1",
        _inference_pool_rules,
    ),
    ("gateway.envoyproxy.io/v1alpha1", "EnvoyPatchPolicy"): (
        "gateway.envoyproxy.io_envoypatchpolicies.yaml",
        "v1alpha1",
        lambda manifest: [],
    ),
}


def vendored_errors(manifest: Manifest) -> list[str]:
    key = (str(manifest.get("apiVersion")), str(manifest.get("kind")))
    file_name, version, rules = VENDORED[key]
    validator = jsonschema.Draft7Validator(vendored_crd_schema(file_name, version))
    problems = [
        f"{label(manifest)}: {'.'.join(str(p) for p in error.absolute_path) or '(root)'}: "
        f"{error.message}"
        for error in validator.iter_errors(manifest)
    ]
    return problems + [f"{label(manifest)}: {problem}" for problem in rules(manifest)]


def validate_all(manifests: Iterable[Manifest]) -> tuple[list[str], list[str]]:
    """(problems, unvalidated kinds) over a mixed set of manifests, each by the right checker."""
    problems: list[str] = []
    unvalidated: list[str] = []
    for_node: list[Manifest] = []
    for manifest in manifests:
        key = (str(manifest.get("apiVersion")), str(manifest.get("kind")))
        if key in VENDORED:
            problems += vendored_errors(manifest)
        elif group_of(manifest) in NODE_GROUPS:
            for_node.append(manifest)
        else:
            known, error = core_errors(manifest)
            if error:
                problems.append(error)
            elif not known:
                unvalidated.append(label(manifest))
    if for_node:
        for manifest, result in zip(for_node, node_results(for_node), strict=True):
            if result["status"] == "invalid":
                problems.append(f"{label(manifest)}: {result['error']}")
            elif result["status"] != "valid":
                unvalidated.append(label(manifest))
    return problems, unvalidated
