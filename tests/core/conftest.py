"""Fixtures for the native-core tests: the committed tiny models and their reference outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODELS = FIXTURES / "models"
REFERENCE = FIXTURES / "reference"

# fp32 on CPU against Hugging Face transformers (see tests/fixtures/README.md); the same bound
# holds on a GPU in fp32.
TOLERANCE = 1e-4

# The device the core tests run on: "cpu" here and in CI, "cuda:0" on the GPU machine
# (scripts/gpu_check.sh). Parity is checked in float32 everywhere (a GPU defaults to bfloat16).
DEVICE = os.environ.get("VSR_TEST_DEVICE", "cpu")
ON_DEVICE: dict[str, str] = {"device": DEVICE, "dtype": "float32"}


def reference(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REFERENCE / f"{name}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture
def models_dir() -> Path:
    return MODELS


def write_bundle(directory: Path, heads: dict[str, Any], encoder: str = "bert-seq") -> Path:
    """A ``bundle.json`` in ``directory`` (created) over the fixture model ``encoder``."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"format": "vsr-bundle/1", "encoder": str(MODELS / encoder), "heads": heads}
    (directory / "bundle.json").write_text(json.dumps(manifest))
    return directory
