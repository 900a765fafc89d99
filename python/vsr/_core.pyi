# Hand-written stub of the native module (rust/src/python/mod.rs); checked by mypy.stubtest.
from typing import final

import numpy as np
import numpy.typing as npt

__all__ = [
    "DeviceError",
    "Encoder",
    "InferenceError",
    "ModelLoadError",
    "VsrError",
    "__version__",
    "cuda_available",
]

__version__: str

class VsrError(Exception): ...
class ModelLoadError(VsrError): ...
class DeviceError(VsrError): ...
class InferenceError(VsrError): ...

def cuda_available() -> bool: ...

@final
class Encoder:
    """An encoder with named heads, loaded from a Hugging Face model directory."""

    @staticmethod
    def load(
        model_dir: str,
        heads: str,
        device: str = "cpu",
        dtype: str | None = None,
        max_length: int | None = None,
        branches: str | None = None,
    ) -> Encoder: ...
    @property
    def device(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def max_length(self) -> int: ...
    @property
    def architecture(self) -> str: ...
    def heads(self) -> list[tuple[str, str]]: ...
    def count_tokens(self, texts: list[str]) -> list[int]: ...
    def run(
        self, texts: list[str], heads: list[str] | None = None
    ) -> dict[
        str,
        npt.NDArray[np.float32] | list[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]],
    ]: ...
    def __repr__(self) -> str: ...
