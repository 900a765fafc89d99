"""Dynamic batching: which queued requests for one encoder run together, and when.

Pure data and policy, no threads or event loop, so the rules are tested directly:

- ``BatchingConfig``: the limits (texts and estimated tokens per batch, how long a request may
  wait for company, how many batches of one encoder run at once).
- ``BatchQueue``: requests waiting for one encoder; ``take`` cuts the next batch.

A batch is one anchor request plus the waiting requests nearest to it in length, up to the limits,
so texts of similar length share a batch and little compute is spent on padding. The anchor is
the request with the earliest *fair time*: its arrival plus its estimated tokens times the
encoder's cost per token (earliest virtual deadline first). A short prompt therefore goes ahead
of long prompts that arrived up to about their cost earlier, and since every fair time is finite
and later arrivals get later ones, no request is starved. The cost per token is measured from
the encoder's own batches (``record``) unless the config fixes it (``ms_per_1k_tokens``): a fixed
CPU-sized weight (1 ms per token) on a GPU that runs a token in microseconds made a 150-token
prompt wait ~150 ms behind short ones under load (p99 143 ms against 11 ms measured, 128
clients on an H200; benches/README.md). The queue is bounded
(``max_queued_texts``): past it a request is refused at once (``QueueFull``), which the server
answers with a 503 and ``Retry-After`` instead of letting every client time out.

Token counts are estimated from characters (exact counts would cost a tokenizer pass per
request); the core still cuts each call into length-sorted chunks of bounded padded size, so the
estimate only steers grouping and order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vsr.config.batching import BatchingConfig

__all__ = ["BatchQueue", "BatchingConfig", "PendingRequest", "QueueFull"]

# Typical for WordPiece and BPE vocabularies on English; CJK runs nearer one character per token,
# which makes the estimate low, never the batch wrong.
CHARACTERS_PER_TOKEN = 4
# [CLS] and [SEP] (or <s> and </s>) around every text.
SPECIAL_TOKENS = 2


class QueueFull(Exception):
    """An encoder's queue holds ``max_queued_texts`` already: refuse now rather than time out."""

    def __init__(self, queued: int, limit: int) -> None:
        super().__init__(f"{queued} texts are waiting for this encoder (limit {limit})")
        self.queued = queued
        self.limit = limit


# A request estimated above this many tokens makes a batch large (the pool keeps a worker slot
# free of large batches): about four windows of 256 tokens, hundreds of milliseconds of a CPU.
LARGE_REQUEST_TOKENS = 1024

# How fast the measured cost per token follows new batches (weight of the newest batch in an
# exponential moving average): a slow outlier (a CUDA graph being recorded) moves it little.
COST_SMOOTHING = 0.2

# Encoders read at most this many tokens of a text (BERT-family limits are 512 or less; the core
# cuts longer texts), so a long text costs no more than this.
MAX_TOKENS_PER_TEXT = 512
# Texts group only with texts of a similar length: a short prompt must not wait for a long
# prompt's windows because they share a batch. Similar: the longer is at most twice the shorter
# plus this many characters.
SIMILAR_LENGTH_SLACK = 256


def estimate_tokens(texts: Sequence[str]) -> int:
    """Tokens a request's texts will take, from their length in characters."""
    return sum(
        min(math.ceil(len(text) / CHARACTERS_PER_TOKEN), MAX_TOKENS_PER_TEXT) + SPECIAL_TOKENS
        for text in texts
    )


def similar_length(a: int, b: int) -> bool:
    """Whether texts of ``a`` and ``b`` characters may share a batch."""
    return max(a, b) <= 2 * min(a, b) + SIMILAR_LENGTH_SLACK


@dataclass(eq=False)
class PendingRequest:
    """One caller's texts and heads, waiting for a batch. ``result`` is the caller's future."""

    texts: tuple[str, ...]
    heads: tuple[str, ...]
    result: Any
    sequence: int
    tokens: int = field(init=False)
    queued_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = estimate_tokens(self.texts)

    def fair_time(self, ms_per_1k_tokens: float) -> float:
        """When this request is due, for ordering: arrival plus the weight of its work."""
        return self.queued_at + self.tokens * ms_per_1k_tokens / 1e6

    @property
    def longest(self) -> int:
        return max((len(text) for text in self.texts), default=0)

    @property
    def large(self) -> bool:
        return self.tokens > LARGE_REQUEST_TOKENS


@dataclass
class BatchQueue:
    """Requests waiting for one encoder, in arrival order."""

    config: BatchingConfig
    waiting: list[PendingRequest] = field(default_factory=list)
    _next_sequence: int = 0
    # Wall seconds per estimated token of this encoder's batches (None until one has run).
    seconds_per_token: float | None = None

    def add(self, texts: Sequence[str], heads: Sequence[str], result: Any) -> PendingRequest:
        """Queue a request; ``QueueFull`` when the queue is at its bound (an empty queue always
        takes one request, however many texts it has)."""
        queued = sum(len(r.texts) for r in self.waiting)
        if self.waiting and queued + len(texts) > self.config.max_queued_texts:
            raise QueueFull(queued, self.config.max_queued_texts)
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

    def weight(self) -> float:
        """Milliseconds per 1,000 estimated tokens that order this queue: the config's, else
        the measured cost (arrival order until a batch has run)."""
        if self.config.ms_per_1k_tokens is not None:
            return self.config.ms_per_1k_tokens
        return 0.0 if self.seconds_per_token is None else self.seconds_per_token * 1e6

    def record(self, tokens: int, seconds: float) -> None:
        """Fold a finished batch's wall time over its estimated tokens into the measured cost."""
        sample = seconds / max(tokens, 1)
        known = self.seconds_per_token
        if known is not None:
            sample = known + COST_SMOOTHING * (sample - known)
        self.seconds_per_token = sample

    def anchor(self, small_only: bool = False) -> PendingRequest | None:
        """The request the next batch is built around: the earliest fair time (among requests
        that are not large, with ``small_only``). None: no such request waits."""
        weight = self.weight()
        eligible = [r for r in self.waiting if not (small_only and r.large)]
        return min(eligible, key=lambda r: (r.fair_time(weight), r.sequence), default=None)

    def take(self, small_only: bool = False) -> list[PendingRequest]:
        """Remove and return the next batch: the anchor and the requests nearest it in length
        (none of them large, with ``small_only``).

        A request larger than the limits on its own still runs, alone: limits bound grouping,
        never what one caller may ask.
        """
        first = self.anchor(small_only)
        if first is None:
            return []
        batch = [first]
        texts, tokens = len(first.texts), first.tokens
        # Nearest in length first; arrival order breaks ties, so equal lengths stay FIFO.
        candidates = sorted(
            (r for r in self.waiting if r is not first),
            key=lambda r: (abs(r.longest - first.longest), r.sequence),
        )
        for request in candidates:
            if small_only and request.large:
                continue
            if not similar_length(request.longest, first.longest):
                continue
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
