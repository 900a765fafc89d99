"""The errors vsr raises, as one hierarchy you can catch.

``VsrError`` is the root. The native core raises ``ModelLoadError`` (a model directory that
cannot be loaded: the message names the file and what was expected), ``DeviceError`` (a device
that is not available or not compiled in) and ``InferenceError`` (a forward pass that failed).
They are defined here, in pure Python, and raised from Rust (``vsr._core`` re-exports the same
classes), so ``except vsr.errors.VsrError`` catches Python and native errors alike and modules
such as the config loader work without the native core.
"""

from __future__ import annotations


class VsrError(Exception):
    """Base class of every vsr error."""


class ModelLoadError(VsrError):
    """A model directory or file that cannot be loaded."""


class DeviceError(VsrError):
    """A device that is unavailable or not compiled in."""


class InferenceError(VsrError):
    """Tokenization or a forward pass failed."""


class ConfigError(VsrError):
    """A router configuration that does not validate; the message names the YAML path."""


class ListenError(VsrError):
    """A port a server cannot listen on (taken, not its to take, or out of range)."""


__all__ = [
    "ConfigError",
    "DeviceError",
    "InferenceError",
    "ListenError",
    "ModelLoadError",
    "VsrError",
]
