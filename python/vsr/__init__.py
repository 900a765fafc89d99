"""vsr: a semantic router for LLM inference traffic.

The public API (loaded lazily, so ``import vsr`` stays cheap and pure-Python parts such as the
config loader do not pull in the native core):

- ``vsr.models``: BERT-family encoders run by the native core (``Embedder``, ``SequenceClassifier``,
  ``TokenClassifier`` and ``EncoderBundle`` for several heads on one encoder pass).
- ``vsr.errors``: the exception hierarchy rooted at ``VsrError``.
"""

from __future__ import annotations

import importlib
from typing import Any

from vsr.observability.logging import log_through_stdlib

__version__ = "0.1.0"

# A library prints nothing unless the application configures logging (see log_through_stdlib);
# the server and the CLI configure their own structured output.
log_through_stdlib()

# public name -> the module that defines it
_EXPORTS = {
    "Embedder": "vsr.models",
    "EncoderBundle": "vsr.models",
    "Entity": "vsr.models",
    "SequenceClassifier": "vsr.models",
    "TokenClassifier": "vsr.models",
    "ConfigError": "vsr.errors",
    "DeviceError": "vsr.errors",
    "InferenceError": "vsr.errors",
    "ModelLoadError": "vsr.errors",
    "VsrError": "vsr.errors",
    "Router": "vsr.router",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vsr' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
