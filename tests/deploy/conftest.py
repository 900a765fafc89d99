"""Session fixtures: each chart value set is rendered once, each manifest directory read once."""

from __future__ import annotations

import pytest
from tests.deploy.rendering import (
    AIBRIX_DIR,
    ISTIO_DIR,
    VALUE_SETS,
    Manifest,
    helm_template,
    load_manifest_dir,
)


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Manifest]]:
    """Chart value-set name -> the manifests `helm template` produces for it."""
    return {value_set.name: helm_template(value_set) for value_set in VALUE_SETS}


@pytest.fixture(scope="session")
def istio_manifests() -> dict[str, list[Manifest]]:
    return load_manifest_dir(ISTIO_DIR)


@pytest.fixture(scope="session")
def aibrix_manifests() -> dict[str, list[Manifest]]:
    return load_manifest_dir(AIBRIX_DIR)
