"""The routing engine: signals -> decision -> model -> plugins -> edits, for one request.

Built once per config: it keeps only the signals that decisions and plugins reference, checks
them against their models, and groups their heads by encoder so a request's text is encoded once
per encoder. ``route`` (blocking) and ``aroute`` (inference off the event loop) share everything
except how the encoders are called.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from vsr.config.decisions import iter_conditions
from vsr.config.schema import RouterConfig
from vsr.inference import EncoderKey, InferencePool
from vsr.routing import decision as decisions
from vsr.routing import edits, plugins
from vsr.routing.request import check_body, classified_text
from vsr.routing.result import (
    HEADER_SELECTED_MODEL,
    HeaderEdits,
    Reasoning,
    RoutingResult,
    SignalResult,
)
from vsr.routing.selection import choose_model
from vsr.signals import SIGNAL_FAMILIES, Signal

log = structlog.get_logger(__name__)


@dataclass
class _EncoderOutputs:
    """What the encoders produced for one text; implements ``SignalInputs``."""

    keys: Mapping[str, EncoderKey]
    heads: dict[EncoderKey, dict[str, Any]] = field(default_factory=dict)
    token_counts: dict[EncoderKey, int] = field(default_factory=dict)
    # Character offset of each text an encoder read, when it read the request in windows.
    window_offsets: dict[EncoderKey, list[int]] = field(default_factory=dict)

    def head(self, model: str, head: str) -> Any:
        output = self.heads[self.keys[model]][head]
        return output[0]

    def head_windows(self, model: str, head: str) -> list[tuple[int, Any]]:
        key = self.keys[model]
        output = self.heads[key][head]
        return list(zip(self.window_offsets.get(key, [0]), output, strict=True))

    def token_count(self, model: str) -> int:
        return self.token_counts[self.keys[model]]


class RoutingEngine:
    def __init__(self, config: RouterConfig, pool: InferencePool) -> None:
        self.config = config
        self.pool = pool
        wanted = {
            (condition.type, condition.name)
            for decision in config.decisions
            for condition, _ in iter_conditions(decision.rules)
        }
        wanted |= plugins.referenced_signals(config, config.decisions)
        self.signals: list[Signal[Any]] = []
        for index, signal_config in enumerate(config.signals):
            if (signal_config.type, signal_config.name) in wanted:
                family = SIGNAL_FAMILIES[signal_config.type]
                self.signals.append(family(signal_config, f"signals[{index}]"))
        for signal in self.signals:
            signal.prepare(pool)
        self._keys: dict[str, EncoderKey] = {}
        self._encoder_heads: dict[EncoderKey, set[str]] = {}
        self._token_encoders: set[EncoderKey] = set()
        for signal in self.signals:
            for need in signal.head_needs():
                key = self._key(need.model)
                self._encoder_heads.setdefault(key, set()).add(need.head)
            for model in signal.token_count_models():
                self._token_encoders.add(self._key(model))

    def _key(self, model: str) -> EncoderKey:
        if model not in self._keys:
            self._keys[model] = self.pool.registry.key(model)
        return self._keys[model]

    def _encoder_texts(self, key: EncoderKey, text: str, outputs: _EncoderOutputs) -> list[str]:
        """The text, or the windows of it that a signal reading this encoder asked for."""
        for signal in self.signals:
            for need in signal.head_needs():
                if self._keys[need.model] != key:
                    continue
                windows = signal.text_windows(need.model, text)
                if windows is not None and len(windows) > 1:
                    outputs.window_offsets[key] = [start for start, _ in windows]
                    return [text[start:end] for start, end in windows]
        return [text]

    @property
    def encoders(self) -> dict[EncoderKey, tuple[str, ...]]:
        """The encoders a request runs, with the heads read from each."""
        return {key: tuple(sorted(heads)) for key, heads in self._encoder_heads.items()}

    def route(
        self, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> RoutingResult:
        started = time.perf_counter()
        text = classified_text(check_body(body), self.config.text)
        outputs = _EncoderOutputs(self._keys)
        if text:
            for key, heads in self._encoder_heads.items():
                texts = self._encoder_texts(key, text, outputs)
                outputs.heads[key] = self.pool.run_sync(key, texts, sorted(heads))
            for key in self._token_encoders:
                outputs.token_counts[key] = self.pool.count_tokens_sync(key, [text])[0]
        return self._finish(body, text, outputs, started, headers)

    async def aroute(
        self, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> RoutingResult:
        started = time.perf_counter()
        text = classified_text(check_body(body), self.config.text)
        outputs = _EncoderOutputs(self._keys)
        if text:
            encoders = list(self._encoder_heads.items())
            counted = list(self._token_encoders)
            results = await asyncio.gather(
                *(
                    self.pool.run(key, self._encoder_texts(key, text, outputs), sorted(heads))
                    for key, heads in encoders
                ),
                *(self.pool.count_tokens(key, [text]) for key in counted),
            )
            for (key, _), head_outputs in zip(encoders, results[: len(encoders)], strict=True):
                outputs.heads[key] = head_outputs
            for key, counts in zip(counted, results[len(encoders) :], strict=True):
                outputs.token_counts[key] = counts[0]
        return self._finish(body, text, outputs, started, headers)

    def _evaluate_signals(self, text: str, outputs: _EncoderOutputs) -> list[SignalResult]:
        results = []
        for signal in self.signals:
            needs_model = bool(signal.head_needs() or signal.token_count_models())
            if needs_model and not text:
                results.append(signal.not_evaluated())
            else:
                results.append(signal.evaluate(text, outputs))
        return results

    def _finish(
        self,
        body: dict[str, Any],
        text: str,
        outputs: _EncoderOutputs,
        started: float,
        headers: Mapping[str, str] | None,
    ) -> RoutingResult:
        config = self.config
        signal_results = self._evaluate_signals(text, outputs)
        index = {(result.type, result.name): result for result in signal_results}
        matched = decisions.matching_decisions(config.decisions, index)
        chosen = decisions.choose_decision(matched, config.strategy)
        decision = chosen.decision if chosen is not None else None
        in_force = plugins.plugins_in_force(config, decision)
        block = plugins.find_block(config, in_force, index)
        category = _category(chosen, signal_results)

        requested = body.get("model")
        auto = not requested or requested in config.auto_model_names
        choice = choose_model(config, decision)
        body_changed = False
        system_prompt_injected = False
        reasoning = Reasoning(enabled=False)
        if not auto:
            # An explicit model is the client's choice: only the routing header is set.
            model = served = str(requested)
            header_edits = HeaderEdits(set={HEADER_SELECTED_MODEL: served})
        else:
            model, served = choice.model, choice.served_model
            reasoning = Reasoning(
                enabled=choice.use_reasoning,
                effort=choice.reasoning_effort,
                family=choice.family_name,
            )
            header_edits = plugins.header_edits(in_force, served)
        if block is not None:
            header_edits = HeaderEdits()
        elif auto:
            body_changed = edits.set_model(body, served)
            if choice.family is not None:
                body_changed |= edits.apply_reasoning(
                    body, choice.family, choice.use_reasoning, choice.reasoning_effort
                )
                reasoning = Reasoning(
                    reasoning.enabled, reasoning.effort, reasoning.family, applied=True
                )
            prompt = plugins.system_prompt(in_force)
            if prompt is not None:
                system_prompt_injected = edits.apply_system_prompt(body, prompt.prompt, prompt.mode)
                body_changed |= system_prompt_injected
        elapsed = time.perf_counter() - started
        # DEBUG: the server logs each request once itself; this line is for offline tracing.
        log.debug(
            "route_blocked" if block is not None else "route_selected",
            request_id=(headers or {}).get("x-request-id"),
            decision=decision.name if decision else None,
            category=category,
            model=served,
            auto=auto,
            blocked=block.kind if block else None,
            latency_ms=round(elapsed * 1000, 3),
        )
        return RoutingResult(
            decision=decision.name if decision else None,
            category=category,
            model=model,
            served_model=served,
            requested_model=requested if isinstance(requested, str) else None,
            auto=auto,
            reasoning=reasoning,
            blocked=block,
            signals=tuple(signal_results),
            body=body,
            body_changed=body_changed,
            headers=header_edits,
            system_prompt_injected=system_prompt_injected,
            cache=plugins.cache_policy(in_force),
            text=text,
            elapsed_s=elapsed,
        )


def _category(chosen: decisions.MatchedDecision | None, results: list[SignalResult]) -> str | None:
    """The domain category behind the choice (see ``RoutingResult.category``)."""
    if chosen is not None:
        for result in chosen.evidence:
            if result.type == "domain" and result.label:
                return result.label
    domain = [r for r in results if r.type == "domain" and r.label]
    if not domain:
        return None
    return max(domain, key=lambda r: r.score).label
