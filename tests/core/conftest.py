"""Fixtures for the native-core tests: the committed tiny models and their reference outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODELS = FIXTURES / "models"
REFERENCE = FIXTURES / "reference"

# fp32 on CPU against Hugging Face transformers (see tests/fixtures/README.md).
TOLERANCE = 1e-4


def reference(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REFERENCE / f"{name}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture
def models_dir() -> Path:
    return MODELS
