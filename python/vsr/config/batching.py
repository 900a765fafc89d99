"""How the inference pool groups concurrent requests to one encoder (the config's ``batching``).

The policy that reads these limits lives in ``vsr.inference.batching``; the settings live here so
a config can be loaded and validated without the inference layer.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BatchingConfig(BaseModel):
    """How the inference pool groups concurrent requests to one encoder.

    A request reaching an idle encoder runs at once. While a batch is running, new requests
    queue; a free worker then takes them together, waiting at most ``max_wait_ms`` for more
    company unless a batch is already full. ``max_wait_ms: 0`` never waits (batches form only
    from requests that queued behind a running batch). ``enabled: false`` runs every request on
    its own.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    max_batch_texts: int = Field(default=32, ge=1, le=4096)
    max_batch_tokens: int = Field(default=8192, ge=1)
    max_wait_ms: float = Field(default=0.5, ge=0, le=100)
    max_concurrent_batches: int = Field(
        default=2, ge=1, le=64, description="batches of one encoder in flight at once"
    )
    max_queued_texts: int = Field(
        default=2048,
        ge=1,
        description="texts waiting for one encoder beyond which new requests are refused (503)",
    )
    ms_per_1k_tokens: float | None = Field(
        default=None,
        ge=0,
        description="fair scheduling: a request's place in line is its arrival time plus this "
        "much per 1,000 estimated tokens, so a short prompt goes ahead of long ones that "
        "arrived up to that much earlier, and no request waits forever (0: arrival order; "
        "unset: the encoder's own measured cost per token, so the weight fits the device)",
    )

    @property
    def max_wait_s(self) -> float:
        return self.max_wait_ms / 1000.0
