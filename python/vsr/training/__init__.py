"""Tooling: training vsr's default classifiers, generating their data, writing their model cards.

Not serving code. The request path, the HTTP API, ``vsr.Router`` and the offline commands
(``vsr classify``, ``vsr eval``, ``vsr route``) never import this package; what they share with it
(predictors, the decision rule, metrics, JSONL records) lives in ``vsr.tasks``, which this package
imports from. ``tests/unit/test_layers.py`` and ``tests/unit/test_serving_imports.py`` check both.

The package ships in the wheel (it is small, pure Python), but what it needs beyond the serving
dependencies comes with the ``train`` extra: ``pip install 'vsr[train]'`` (scikit-learn, Faker,
time-machine, tokenizers, safetensors). Those imports sit inside the functions that use them, so
importing a training module never fails; ``vsr train`` checks ``TRAIN_REQUIREMENTS`` first and names
the extra. ``vsr train tasks`` (fine-tuning) also needs PyTorch, which no extra installs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

TRAIN_EXTRA = "pip install 'vsr[train]'"

# What each ``vsr train`` target imports beyond the serving dependencies: module -> distribution.
TRAIN_REQUIREMENTS: dict[str, dict[str, str]] = {
    "domain": {"sklearn": "scikit-learn"},
    "jailbreak": {"sklearn": "scikit-learn"},
    "pii": {"faker": "Faker", "time_machine": "time-machine"},
    "tasks": {"torch": "torch", "tokenizers": "tokenizers", "safetensors": "safetensors"},
}


def importable(module: str) -> bool:
    """Whether ``module`` can be found, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_for(target: str) -> list[str]:
    """Distributions ``vsr train TARGET`` needs that are not installed (empty: ready to train)."""
    requirements = TRAIN_REQUIREMENTS.get(target, {})
    return [package for module, package in requirements.items() if not importable(module)]


def install_hint(missing: Iterable[str]) -> str:
    """How to install ``missing``: the extra, plus torch where it is needed (no extra has it)."""
    hint = TRAIN_EXTRA
    if "torch" in missing:
        hint += " and PyTorch (pip install torch; see pytorch.org for a CUDA build)"
    return hint
