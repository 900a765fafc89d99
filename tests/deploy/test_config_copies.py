"""The configs shipped beside ``config/default.yaml`` (the chart's cache values, the AIBrix values,
the semantic-cache example) each carry their own copy of its keyword signals; a fix to one
pattern (the arithmetic keyword once matched dates and phone numbers) must reach every copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.deploy.rendering import AIBRIX_DIR, CHART, DEFAULT_CONFIG, REPO

COPIES = [
    *sorted(CHART.glob("values-cache-*.yaml")),
    AIBRIX_DIR / "values.yaml",
    REPO / "config" / "examples" / "semantic-cache.yaml",
]


def keyword_signals(document: Any) -> dict[str, dict[str, Any]]:
    """The ``{type: keyword}`` entries of every ``signals:`` list in a YAML document, by name,
    wherever the config is nested (decisions' conditions name signals too: not those)."""
    found: dict[str, dict[str, Any]] = {}
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "signals" and isinstance(value, list):
                found |= {s["name"]: s for s in value if s.get("type") == "keyword"}
            else:
                found |= keyword_signals(value)
    elif isinstance(document, list):
        for value in document:
            found |= keyword_signals(value)
    return found


def test_there_are_copies_to_check() -> None:
    assert len(COPIES) >= 5 and all(path.is_file() for path in COPIES)


@pytest.mark.parametrize("path", COPIES, ids=lambda path: str(path.relative_to(REPO)))
def test_keyword_signals_match_the_default_config(path: Path) -> None:
    default = keyword_signals(yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8")))
    copy = keyword_signals(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert default, "config/default.yaml has no keyword signal"
    shared = sorted(set(default) & set(copy))
    assert shared, f"{path.name} carries none of the default config's keyword signals"
    for name in shared:
        assert copy[name] == default[name], f"{path.name}: keyword signal {name!r} differs"
