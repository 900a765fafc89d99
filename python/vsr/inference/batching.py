"""Dynamic batching: which queued requests for one encoder run together, and when.

Pure data and policy, no threads or event loop, so the rules are tested directly:

- ``BatchingConfig``: the limits (texts and estimated tokens per batch, how long a request may
  wait for company, how many batches of one encoder run at once).
- ``BatchQueue``: requests waiting for one encoder; ``take`` cuts the next batch.

A batch is the oldest waiting request plus the requests nearest to it in length, up to the limits:
the oldest always goes next (no request starves behind shorter ones), and texts of similar length
share a batch, so little compute is spent on padding. Token counts are estimated from characters
(exact counts would cost a tokenizer pass per request); the core still cuts each call into
length-sorted chunks of bounded padded size, so the estimate only steers grouping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Typical for WordPiece and BPE vocabularies on English; CJK runs nearer one character per token,
# which makes the estimate low, never the batch wrong.
CHARACTERS_PER_TOKEN = 4
# [CLS] and [SEP] (or <s> and </s>) around every text.
SPECIAL_TOKENS = 2


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

    @property
    def max_wait_s(self) -> float:
        return self.max_wait_ms / 1000.0


def estimate_tokens(texts: Sequence[str]) -> int:
    """Tokens a request's texts will take, from their length in characters."""
    return sum(math.ceil(len(text) / CHARACTERS_PER_TOKEN) + SPECIAL_TOKENS for text in texts)


@dataclass(eq=False)
class PendingRequest:
    """One caller's texts and heads, waiting for a batch. ``result`` is the caller's future."""

    texts: tuple[str, ...]
    heads: tuple[str, ...]
    result: Any
    sequence: int
    tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = estimate_tokens(self.texts)

    @property
    def longest(self) -> int:
        return max((len(text) for text in self.texts), default=0)


@dataclass
class BatchQueue:
    """Requests waiting for one encoder, in arrival order."""

    config: BatchingConfig
    waiting: list[PendingRequest] = field(default_factory=list)
    _next_sequence: int = 0

    def add(self, texts: Sequence[str], heads: Sequence[str], result: Any) -> PendingRequest:
        request = PendingRequest(tuple(texts), tuple(heads), result, self._next_sequence)
        self._next_sequence += 1
        self.waiting.append(request)
        return request

    def __len__(self) -> int:
        return len(self.waiting)

    def drop(self, request: PendingRequest) -> None:
        """Forget a request whose caller gave up (cancelled) before it ran."""
        if request in self.waiting:
            self.waiting.remove(request)

    def full(self) -> bool:
        """Whether the waiting requests already fill a batch, so waiting for more gains nothing."""
        texts = sum(len(r.texts) for r in self.waiting)
        tokens = sum(r.tokens for r in self.waiting)
        return texts >= self.config.max_batch_texts or tokens >= self.config.max_batch_tokens

    def take(self) -> list[PendingRequest]:
        """Remove and return the next batch: the oldest request and its nearest in length.

        A request larger than the limits on its own still runs, alone: limits bound grouping,
        never what one caller may ask.
        """
        if not self.waiting:
            return []
        oldest = self.waiting[0]
        batch = [oldest]
        texts, tokens = len(oldest.texts), oldest.tokens
        # Nearest in length first; arrival order breaks ties, so equal lengths stay FIFO.
        candidates = sorted(
            self.waiting[1:], key=lambda r: (abs(r.longest - oldest.longest), r.sequence)
        )
        for request in candidates:
            if texts + len(request.texts) > self.config.max_batch_texts:
                continue
            if tokens + request.tokens > self.config.max_batch_tokens:
                continue
            batch.append(request)
            texts += len(request.texts)
            tokens += request.tokens
        chosen = set(map(id, batch))
        self.waiting = [r for r in self.waiting if id(r) not in chosen]
        return sorted(batch, key=lambda r: r.sequence)


def split_outputs(outputs: dict[str, Any], batch: Sequence[PendingRequest]) -> list[dict[str, Any]]:
    """Cut a batch's outputs (per head: rows in batch order) back into each request's share."""
    shares: list[dict[str, Any]] = []
    start = 0
    for request in batch:
        end = start + len(request.texts)
        shares.append({head: outputs[head][start:end] for head in request.heads})
        start = end
    return shares


def union_heads(batch: Sequence[PendingRequest]) -> list[str]:
    """Every head some request of the batch asked for (heads are cheap next to the encoder)."""
    return sorted({head for request in batch for head in request.heads})
