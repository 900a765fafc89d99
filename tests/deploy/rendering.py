"""Where the deploy files and the offline tools are, and how the chart is rendered and loaded.

The tools are installed by ``make deploy-tools`` (scripts/deploy_tools.sh); a missing tool fails the
test with that instruction rather than skipping it, so a half-installed machine cannot pass quietly.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "vsr"
ISTIO_DIR = REPO / "deploy" / "kubernetes" / "istio"
AIBRIX_DIR = REPO / "deploy" / "kubernetes" / "aibrix"
DOCKER_DIR = REPO / "deploy" / "docker"
DEFAULT_CONFIG = REPO / "config" / "default.yaml"

HELM = REPO / ".tools" / "bin" / "helm"
HADOLINT = REPO / ".tools" / "bin" / "hadolint"
ENVOY = REPO / ".venv-envoy" / "bin" / "envoy"
NODE_MODELS = REPO / "tests" / "deploy" / "js" / "node_modules"

# The release the guides install: envoyfilter.yaml, destinationrule.yaml and envoypatchpolicy.yaml
# name its Services, so the tests render the chart under the same name.
RELEASE = "vsr"
NAMESPACE = "vsr-system"
KUBERNETES_VERSION = "1.35"

Manifest = dict[str, Any]


def require(tool: Path) -> Path:
    if not tool.exists():
        pytest.fail(f"{tool.relative_to(REPO)} is missing: run `make deploy-tools`", pytrace=False)
    return tool


def run_tool(
    command: list[str | Path], timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


@dataclass(frozen=True)
class ValueSet:
    """A named way of installing the chart: extra values files and --set flags."""

    name: str
    files: tuple[Path, ...] = ()
    overrides: tuple[str, ...] = ()

    def helm_args(self) -> list[str]:
        args: list[str] = []
        for path in self.files:
            args += ["-f", str(path)]
        for override in self.overrides:
            args += ["--set", override]
        return args


VALUE_SETS = (
    ValueSet("default"),
    ValueSet("istio", (ISTIO_DIR / "values.yaml",)),
    ValueSet("aibrix", (AIBRIX_DIR / "values.yaml",)),
    # The semantic cache per backend (the shared stores' credentials from Secrets).
    ValueSet("cache-memory", (CHART / "values-cache-memory.yaml",)),
    ValueSet("cache-milvus", (CHART / "values-cache-milvus.yaml",)),
    ValueSet("cache-pgvector", (CHART / "values-cache-pgvector.yaml",)),
    # Every optional object on at once, on the GPU image: the widest render.
    ValueSet(
        "gpu-everything",
        (CHART / "values-gpu.yaml",),
        (
            "autoscaling.enabled=true",
            "metrics.serviceMonitor.enabled=true",
            "metrics.prometheusRule.enabled=true",
            "metrics.grafanaDashboard.enabled=true",
            "config.rolloutOnChange=true",
            "server.api.tokenSecret.name=vsr-api-token",
            "models.volume.persistentVolumeClaim.claimName=vsr-models",
        ),
    ),
)


def helm_template(value_set: ValueSet) -> list[Manifest]:
    result = run_tool(
        [
            require(HELM),
            "template",
            RELEASE,
            CHART,
            "--namespace",
            NAMESPACE,
            *value_set.helm_args(),
        ]
    )
    if result.returncode != 0:
        pytest.fail(f"helm template ({value_set.name}) failed:\n{result.stderr}", pytrace=False)
    return load_documents(result.stdout)


def load_documents(text: str) -> list[Manifest]:
    return [document for document in yaml.safe_load_all(text) if document]


def load_manifest_dir(directory: Path) -> dict[str, list[Manifest]]:
    """Every manifest in a directory, by file name (values.yaml is chart input, not a manifest)."""
    return {
        path.name: load_documents(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.yaml"))
        if path.name != "values.yaml"
    }


def find(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    matches = [
        manifest
        for manifest in manifests
        if manifest.get("kind") == kind and (name is None or manifest["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def router_config_text(manifests: list[Manifest]) -> str:
    config_map = find(manifests, "ConfigMap", f"{RELEASE}-config")
    text = config_map["data"]["config.yaml"]
    assert isinstance(text, str)
    return text
