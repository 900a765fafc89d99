"""What routing one request produced: the decision, the model, the block, the signals and the edits.

``RoutingResult`` is the contract between the routing engine and whoever carries its answer to the
wire: the ext_proc server (which turns it into Envoy header/body mutations or an immediate
response), the offline API (``vsr.Router.route``) and the CLI (``vsr route``). It is plain data,
frozen, built once per request; nothing here touches Envoy types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from vsr.routing import json_codec
from vsr.signals.result import SignalResult
from vsr.wire import (
    HEADER_SELECTED_MODEL,
    HEADER_VSR_CATEGORY,
    HEADER_VSR_DECISION,
    HEADER_VSR_JAILBREAK_BLOCKED,
    HEADER_VSR_JAILBREAK_CONFIDENCE,
    HEADER_VSR_JAILBREAK_TYPE,
    HEADER_VSR_MODEL,
    HEADER_VSR_PII_TYPES,
    HEADER_VSR_PII_VIOLATION,
    HEADER_VSR_REASONING,
    HEADER_VSR_SYSTEM_PROMPT,
)

# Re-exported: callers that build header edits or read signal results find them here too.
__all__ = ["HEADER_SELECTED_MODEL", "SignalResult"]

BlockKind = Literal["jailbreak", "pii"]


@dataclass(frozen=True, slots=True)
class BlockReason:
    """Why a request is refused instead of forwarded.

    - ``kind``: ``jailbreak`` or ``pii``.
    - ``signal``: the name of the signal that fired.
    - ``detail``: a human-readable sentence for logs and the refusal message.
    - ``score``: the jailbreak probability, or the highest score among the blocked PII entities.
    - ``label``: the jailbreak classifier's label (e.g. ``jailbreak``), None for PII.
    - ``entity_types``: PII only: the entity types that are not allowed, sorted.
    - ``unavailable``: the screening could not run (its model failed) and the plugin's
      ``on_error`` is ``block``: answered as a 503, not a content filter.
    """

    kind: BlockKind
    signal: str
    detail: str
    score: float
    label: str | None = None
    entity_types: tuple[str, ...] = ()
    unavailable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "signal": self.signal,
            "detail": self.detail,
            "score": round(self.score, 6),
            "label": self.label,
            "entity_types": list(self.entity_types),
            "unavailable": self.unavailable,
        }


@dataclass(frozen=True, slots=True)
class Reasoning:
    """The reasoning choice for the selected model.

    - ``enabled``: the decision's ``use_reasoning`` (what ``x-vsr-selected-reasoning`` reports).
    - ``effort``: the effort level when enabled (the model ref's, else the config's
      ``default_reasoning_effort``).
    - ``family``: the model's reasoning family name, None when the model has none; then the body's
      reasoning fields are left as they are and ``applied`` is False.
    - ``applied``: whether the body was edited to carry this choice.
    """

    enabled: bool
    effort: str | None = None
    family: str | None = None
    applied: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "effort": self.effort,
            "family": self.family,
            "applied": self.applied,
        }


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """The decision's ``semantic_cache`` plugin settings, handed to the cache layer as written."""

    enabled: bool
    similarity_threshold: float | None
    ttl_seconds: int | None


@dataclass(frozen=True, slots=True)
class HeaderEdits:
    """Request headers to change before the request goes upstream.

    - ``set``: overwrite (or create) these headers; always holds ``x-selected-model``.
    - ``add``: append these values (a header may then carry several values).
    - ``remove``: delete these headers.
    """

    set: Mapping[str, str] = field(default_factory=dict)
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "set": dict(self.set),
            "add": [list(pair) for pair in self.add],
            "remove": list(self.remove),
        }


@dataclass(frozen=True, slots=True)
class RoutingResult:
    """The outcome of routing one chat-completions request.

    Identity of the choice:

    - ``decision``: the matched decision's name; None when no decision matched (then ``model`` is
      ``default_model``) or when the request named an explicit model and no decision matched.
    - ``category``: the domain category behind the choice: the top category of the domain signal
      the winning decision matched on, else the top category of any evaluated domain signal, else
      None.
    - ``model``: the configured model selected (for an explicit request: the model the client
      named, unchanged).
    - ``served_model``: what upstream sees in ``"model"`` and ``x-selected-model``: the LoRA adapter
      name when the model ref names one, else ``model``.
    - ``requested_model``: the body's ``"model"`` as the client sent it (None if absent).
    - ``auto``: True when vsr chose the model (the request asked for an auto name such as ``auto``
      or ``MoM``); False for an explicit model, whose body is never changed.
    - ``reasoning``: see ``Reasoning``.
    - ``blocked``: None, or why the request must be refused (the server answers it with a
      ``content_filter`` completion; the body edits below are then empty).
    - ``signals``: every signal evaluated for this request, in config order.

    Edits (already applied):

    - ``body``: the request JSON object, edited in place (the same dict the caller passed), so every
      field vsr does not own survives with its value.
    - ``body_changed``: whether ``body`` differs from what was received (the server then replaces
      the body and sets ``content-length``).
    - ``headers``: request header edits; see ``HeaderEdits``.
    - ``system_prompt_injected``: whether a system prompt was inserted or replaced.
    - ``cache``: the winning decision's semantic cache policy, None when it has none.
    - ``text``: the text that was classified (for the cache key and DEBUG logs; never log above it).
    - ``elapsed_s``: time spent routing, seconds.
    - ``confidence``: the matched decision's confidence (mean score of the signals its rule held
      on), None when no decision matched.
    - ``cache_embedding``: the classified text's vector from the cache's embedding head, computed
      in the same encoder pass as the signals; None unless ``cache`` is enabled (or it failed).
    - ``body_plain``: ``ChatRequest.plain`` of the request (``body_bytes`` may use orjson).
    """

    decision: str | None
    category: str | None
    model: str
    served_model: str
    requested_model: str | None
    auto: bool
    reasoning: Reasoning
    blocked: BlockReason | None
    signals: tuple[SignalResult, ...]
    body: dict[str, Any]
    body_changed: bool
    headers: HeaderEdits
    system_prompt_injected: bool
    cache: CachePolicy | None
    text: str
    elapsed_s: float
    confidence: float | None = None
    cache_embedding: Any = None
    body_plain: bool = False

    def signal(self, type_: str, name: str) -> SignalResult | None:
        """The evaluated signal ``(type, name)``, or None if it was not evaluated."""
        for result in self.signals:
            if result.type == type_ and result.name == name:
                return result
        return None

    @property
    def failed_signals(self) -> tuple[SignalResult, ...]:
        """Signals whose model failed for this request."""
        return tuple(result for result in self.signals if result.error is not None)

    @property
    def fail_open(self) -> bool:
        """Forwarded although a signal could not be evaluated (decided without it)."""
        return self.blocked is None and bool(self.failed_signals)

    def matched_signal_names(self, type_: str) -> tuple[str, ...]:
        """Names of the signals of family ``type_`` that fired (debug headers, traces)."""
        return tuple(r.name for r in self.signals if r.type == type_ and r.matched)

    def body_bytes(self) -> bytes:
        """The edited body as compact UTF-8 JSON (what goes upstream when ``body_changed``)."""
        return json_codec.dumps(self.body, plain=self.body_plain)

    def response_headers(self) -> dict[str, str]:
        """The ``x-vsr-*`` headers for the client's response.

        For a forwarded request (the server adds them on 2xx, non-cache responses): selected model,
        category, decision, reasoning (``on``/``off``) and injected system prompt (``true``/
        ``false``); empty category/decision are left out. For a blocked request: the block headers.
        """
        if self.blocked is not None:
            return {} if self.blocked.unavailable else block_headers(self.blocked)
        headers = {
            HEADER_VSR_MODEL: self.served_model,
            HEADER_VSR_REASONING: "on" if self.reasoning.enabled else "off",
            HEADER_VSR_SYSTEM_PROMPT: "true" if self.system_prompt_injected else "false",
        }
        if self.category:
            headers[HEADER_VSR_CATEGORY] = self.category
        if self.decision:
            headers[HEADER_VSR_DECISION] = self.decision
        return headers

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``vsr route`` prints)."""
        return {
            "decision": self.decision,
            "category": self.category,
            "model": self.model,
            "served_model": self.served_model,
            "requested_model": self.requested_model,
            "auto": self.auto,
            "reasoning": self.reasoning.to_dict(),
            "blocked": None if self.blocked is None else self.blocked.to_dict(),
            "signals": [signal.to_dict() for signal in self.signals],
            "headers": self.headers.to_dict(),
            "response_headers": self.response_headers(),
            "system_prompt_injected": self.system_prompt_injected,
            "fail_open": self.fail_open,
            "body_changed": self.body_changed,
            "body": self.body,
            "elapsed_ms": round(self.elapsed_s * 1000, 3),
        }


def block_headers(block: BlockReason) -> dict[str, str]:
    """The response headers that report a block."""
    if block.kind == "jailbreak":
        return {
            HEADER_VSR_JAILBREAK_BLOCKED: "true",
            HEADER_VSR_JAILBREAK_TYPE: block.label or "jailbreak",
            HEADER_VSR_JAILBREAK_CONFIDENCE: f"{block.score:.3f}",
        }
    return {
        HEADER_VSR_PII_VIOLATION: "true",
        HEADER_VSR_PII_TYPES: ",".join(block.entity_types),
    }
