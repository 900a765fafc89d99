"""The config's per-model dtypes reach the loader, and each dtype is its own loaded model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vsr.inference.registry import ModelRegistry


def test_dtypes_reach_the_loader_per_model() -> None:
    calls: list[tuple[Any, ...]] = []

    def load(*args: Any) -> object:
        calls.append(args)
        return object()

    registry = ModelRegistry(resolver=Path, loader=load, dtypes={"quick": "int8"})
    quick, plain = registry.key("quick"), registry.key("plain")
    assert (quick.dtype, plain.dtype) == ("int8", None)
    registry.get(quick)
    registry.get(plain)
    assert calls == [(Path("quick"), "cpu", "int8"), (Path("plain"), "cpu")]
    registry.dtypes = {}
    assert registry.key("quick") != quick  # a reload without the dtype loads it afresh
