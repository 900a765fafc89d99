"""The errors vsr raises, as one hierarchy you can catch.

``VsrError`` is the root. The native core raises ``ModelLoadError`` (a model directory that
cannot be loaded: the message names the file and what was expected), ``DeviceError`` (a device
that is not available or not compiled in) and ``InferenceError`` (a forward pass that failed).
They are defined in Rust and re-exported here, so ``except vsr.errors.VsrError`` catches Python
and native errors alike.
"""

from __future__ import annotations

from vsr._core import DeviceError, InferenceError, ModelLoadError, VsrError


class ConfigError(VsrError):
    """A router configuration that does not validate; the message names the YAML path."""


__all__ = ["ConfigError", "DeviceError", "InferenceError", "ModelLoadError", "VsrError"]
