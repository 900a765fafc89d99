"""The inference layer: loaded encoders (``registry``) and the door requests go through (``pool``).

Only this package (and the cache) imports the native core; signals ask for heads by model name.
"""

from vsr.inference.batching import QueueFull
from vsr.inference.pool import InferencePool
from vsr.inference.registry import EncoderKey, EncoderModel, HeadDescription, ModelRegistry

__all__ = [
    "EncoderKey",
    "EncoderModel",
    "HeadDescription",
    "InferencePool",
    "ModelRegistry",
    "QueueFull",
]
