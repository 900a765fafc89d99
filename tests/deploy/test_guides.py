"""The deployment guides must match the files: every path they name exists, they apply (and clean
up) every manifest, install the release the manifests point at, and show only real names."""

from __future__ import annotations

import re

import pytest
import yaml
from tests.deploy.rendering import (
    AIBRIX_DIR,
    ISTIO_DIR,
    NAMESPACE,
    RELEASE,
    REPO,
    Manifest,
    router_config_text,
)

GUIDES = {
    "istio": (REPO / "docs" / "deploy-istio-gie.md", ISTIO_DIR),
    "aibrix": (REPO / "docs" / "deploy-aibrix.md", AIBRIX_DIR),
}
# A repository path: a top-level folder and at least a second level or a file name
# ("deploy/vsr" alone is kubectl's deployment/vsr, not a path).
REPO_PATH = re.compile(
    r"(?<![\w/.-])((?:deploy|config|docs|python|scripts)/[\w-]+(?:[./][\w./-]*\w)+)"
)


def _commands(text: str) -> list[str]:
    """Shell commands from the ```bash blocks, with continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    joined = re.sub(r"\\\n\s*", " ", "\n".join(blocks))
    return [line.strip() for line in joined.splitlines() if line.strip()]


def _applied(commands: list[str], verb: str) -> set[str]:
    return {
        match
        for command in commands
        if command.startswith(f"kubectl {verb} -f deploy/")
        for match in re.findall(r"-f (deploy/\S+)", command)
    }


@pytest.mark.parametrize("integration", sorted(GUIDES))
def test_every_path_in_the_guide_exists(integration: str) -> None:
    guide, _ = GUIDES[integration]
    missing = [path for path in REPO_PATH.findall(guide.read_text()) if not (REPO / path).exists()]
    assert missing == []


@pytest.mark.parametrize("integration", sorted(GUIDES))
def test_guide_applies_and_removes_every_manifest(integration: str) -> None:
    guide, directory = GUIDES[integration]
    commands = _commands(guide.read_text())
    files = [path for path in directory.glob("*.yaml") if path.name != "values.yaml"]
    manifests = {str(path.relative_to(REPO)) for path in files}
    assert _applied(commands, "apply") | _applied(commands, "create") == manifests
    # Deleting a namespace removes the files whose objects all live in it.
    deleted_namespaces = {
        command.split()[-1] for command in commands if command.startswith("kubectl delete ns ")
    }
    in_deleted_namespace = {
        str(path.relative_to(REPO))
        for path in files
        if {
            document.get("metadata", {}).get("namespace")
            for document in yaml.safe_load_all(path.read_text())
            if document
        }
        <= deleted_namespaces
    }
    assert _applied(commands, "delete") | in_deleted_namespace == manifests


@pytest.mark.parametrize("integration", sorted(GUIDES))
def test_guide_installs_the_release_the_manifests_expect(integration: str) -> None:
    guide, directory = GUIDES[integration]
    commands = _commands(guide.read_text())
    (install,) = [command for command in commands if command.startswith("helm upgrade -i")]
    assert install.split()[3:5] == [RELEASE, "deploy/helm/vsr"]
    assert f"--namespace {NAMESPACE}" in install
    assert f"-f {(directory / 'values.yaml').relative_to(REPO)}" in install
    assert f"helm uninstall {RELEASE} -n {NAMESPACE}" in commands


@pytest.mark.parametrize("integration", sorted(GUIDES))
def test_guide_names_real_models_and_headers(
    integration: str, rendered: dict[str, list[Manifest]]
) -> None:
    guide, _ = GUIDES[integration]
    text = guide.read_text()
    config = yaml.safe_load(router_config_text(rendered[integration]))
    models = {model["name"] for model in config["models"]}
    decisions = {decision["name"] for decision in config["decisions"]}
    requested = set(re.findall(r'"model": "([^"]+)"', text))
    assert requested, "the guide sends no request"
    assert requested <= models | set(config["auto_model_names"])
    assert set(re.findall(r"x-vsr-selected-model: ([\w.-]+)", text)) <= models
    assert set(re.findall(r"x-vsr-selected-decision: ([\w.-]+)", text)) <= decisions
    # Header names the guide promises must be ones vsr's code sets.
    source = "\n".join(path.read_text() for path in (REPO / "python" / "vsr").rglob("*.py"))
    for header in set(re.findall(r"\bx-vsr-[a-z-]+[a-z]", text)):
        assert header in source, f"{guide.name} mentions {header}, which vsr never sets"


def test_istio_guide_waits_for_objects_that_exist(
    istio_manifests: dict[str, list[Manifest]],
) -> None:
    commands = _commands(GUIDES["istio"][0].read_text())
    names = {
        f"{manifest['kind'].lower()}/{manifest['metadata']['name']}"
        for manifests in istio_manifests.values()
        for manifest in manifests
    }
    waited = {
        target.replace("deploy/", "deployment/")
        for command in commands
        if command.startswith("kubectl") and " wait " in command
        for target in re.findall(r"\b((?:deploy|gateway)/[\w-]+)", command)
    }
    waited.discard("deployment/vsr")  # the chart's Deployment (test_chart covers its name)
    assert waited and waited <= names
