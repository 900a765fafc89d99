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
from pathlib import Path
from typing import Any

import structlog

from vsr.config.decisions import iter_conditions
from vsr.config.schema import RouterConfig
from vsr.inference import EncoderKey, InferencePool, QueueFull
from vsr.observability import tracing
from vsr.observability.logging import DEBUG, enabled_for
from vsr.routing import decision as decisions
from vsr.routing import edits, plugins
from vsr.routing.prepared import PreparedChoices
from vsr.routing.reading import (
    EncoderRun,
    SignalPlan,
    SignalReading,
    evaluate_signals,
    routing_text,
    within_budget,
)
from vsr.routing.request import ChatRequest, RequestError
from vsr.routing.result import (
    HEADER_SELECTED_MODEL,
    HeaderEdits,
    Reasoning,
    RoutingResult,
)
from vsr.signals import SIGNAL_FAMILIES, Signal

log = structlog.get_logger(__name__)

# Texts longer than this (all signals' together) are judged on a worker thread, so the event
# loop keeps serving other streams meanwhile.
OFF_LOOP_CHARS = 32_768


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
        # What is fixed per config is worked out once, not per request.
        self._plans = [SignalPlan(signal, config.text) for signal in self.signals]
        self._needs_model = [
            bool(signal.head_needs() or signal.token_count_models()) for signal in self.signals
        ]
        self._choices = PreparedChoices(config)
        self._keys: dict[str, EncoderKey] = {}
        self._encoder_heads: dict[EncoderKey, set[str]] = {}
        self._token_encoders: set[EncoderKey] = set()
        for signal in self.signals:
            for need in signal.head_needs():
                key = self._key(need.model)
                self._encoder_heads.setdefault(key, set()).add(need.head)
            for model in signal.token_count_models():
                self._token_encoders.add(self._key(model))
        # The semantic cache's vector: one more head on an encoder the request may run anyway.
        self._cache_key: EncoderKey | None = None
        if plugins.cache_wanted(config):
            self._cache_key = self._key(config.semantic_cache.model)
            heads = self._encoder_heads.setdefault(self._cache_key, set())
            heads.add(config.semantic_cache.head)
        self._head_keys = [
            tuple(self._keys[need.model] for need in signal.head_needs()) for signal in self.signals
        ]
        self._sorted_heads = {key: sorted(heads) for key, heads in self._encoder_heads.items()}
        # No signal reads a model and the cache is off: routing never waits for anything.
        self.model_free = not self._encoder_heads and not self._token_encoders

    def _key(self, model: str) -> EncoderKey:
        if model not in self._keys:
            self._keys[model] = self.pool.registry.key(model)
        return self._keys[model]

    @property
    def encoders(self) -> dict[EncoderKey, tuple[str, ...]]:
        """The encoders a request runs, with the heads read from each."""
        return {key: tuple(sorted(heads)) for key, heads in self._encoder_heads.items()}

    def route(
        self, request: ChatRequest | dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> RoutingResult:
        started = time.perf_counter()
        request = self._checked(request)
        readings, runs, texts = self._plan(request)
        counts: dict[tuple[EncoderKey, str], int | BaseException] = {}
        for key, run in runs.items():
            if run.texts:
                try:
                    run.heads = self.pool.run_sync(key, run.texts, self._sorted_heads[key])
                except Exception as error:  # each signal reading it decides what a failure means
                    run.error = error
        for key, text in self._token_texts(readings):
            try:
                counts[(key, text)] = self.pool.count_tokens_sync(key, [text])[0]
            except Exception as error:
                counts[(key, text)] = error
        return self._finish(request, readings, runs, counts, texts, started, headers)

    def route_inline(
        self, request: ChatRequest | dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> RoutingResult | None:
        """``aroute``'s result when it would never wait (no model to run, a text short enough for
        the event loop), else None: the caller then awaits ``aroute``. Saves a coroutine, and the
        caller's deadline, on the model-free path."""
        if not self.model_free:
            return None
        started = time.perf_counter()
        request = self._checked(request)
        readings, runs, texts = self._plan(request)
        if sum(len(reading.text) for reading in readings) > OFF_LOOP_CHARS:
            return None
        return self._finish(request, readings, runs, {}, texts, started, headers)

    async def aroute(
        self, request: ChatRequest | dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> RoutingResult:
        started = time.perf_counter()
        request = self._checked(request)
        readings, runs, texts = self._plan(request)
        active = [(key, run) for key, run in runs.items() if run.texts]
        counted = self._token_texts(readings)
        if not active and not counted:
            results: list[Any] = []
        else:
            results = await asyncio.gather(
                *(self._run_encoder(key, run.texts) for key, run in active),
                *(self.pool.count_tokens(key, [text]) for key, text in counted),
                return_exceptions=True,
            )
        for outcome in results:
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, QueueFull):
                raise RequestError(
                    "vsr is at capacity; retry shortly",
                    status=503,
                    code="server_overloaded",
                    reason="overloaded",
                ) from outcome
        for (_, run), outcome in zip(active, results[: len(active)], strict=True):
            if isinstance(outcome, BaseException):
                run.error = outcome
            else:
                run.heads = outcome
        counts: dict[tuple[EncoderKey, str], int | BaseException] = {}
        for (key, text), outcome in zip(counted, results[len(active) :], strict=True):
            counts[(key, text)] = outcome if isinstance(outcome, BaseException) else outcome[0]
        if sum(len(reading.text) for reading in readings) > OFF_LOOP_CHARS:
            # Pattern signals over a long text take milliseconds per 10 kB: off the event loop.
            return await asyncio.to_thread(
                self._finish, request, readings, runs, counts, texts, started, headers
            )
        return self._finish(request, readings, runs, counts, texts, started, headers)

    async def _run_encoder(self, key: EncoderKey, texts: list[str]) -> Any:
        heads = self._sorted_heads[key]
        started = time.perf_counter()
        try:
            return await self.pool.run(key, texts, heads)
        finally:
            # A span per encoder pass when tracing (a no-op otherwise).
            tracing.note_encoder_run(
                Path(key.path).name, key.device, started, len(texts), tuple(heads)
            )

    def _checked(self, request: ChatRequest | dict[str, Any]) -> ChatRequest:
        """The request, checked, with a model the config allows (else RequestError)."""
        if not isinstance(request, ChatRequest):
            request = ChatRequest.from_body(request)
        requested = request.model
        config = self.config
        if (
            config.unknown_models == "reject"
            and not self._choices.is_auto_name(requested)
            and requested not in self._choices.served_names
        ):
            raise RequestError(
                f"The model {requested!r} does not exist; vsr serves "
                f"{', '.join(sorted(config.served_names()))} and the auto names "
                f"{', '.join(config.auto_model_names)}",
                status=404,
                code="model_not_found",
                reason="model_not_found",
                param="model",
            )
        return request

    def _plan(
        self, request: ChatRequest
    ) -> tuple[list[SignalReading], dict[EncoderKey, EncoderRun], dict[int, str]]:
        """Each signal's reading, per encoder the distinct texts to run it on, and the routing
        texts worked out on the way (by selection)."""
        texts: dict[int, str] = {}
        readings = [plan.read(request, texts) for plan in self._plans]
        if not self._encoder_heads:
            return readings, {}, texts
        runs = {key: EncoderRun() for key in self._encoder_heads}
        for keys, reading in zip(self._head_keys, readings, strict=True):
            if not reading.text or not keys:
                continue
            windows = reading.window_texts()
            for key in keys:
                run = runs[key]
                for window in windows:
                    run.add(window)
        if self._cache_key is not None:
            runs[self._cache_key].add(self._cache_text(request, texts))
        return readings, runs, texts

    def _cache_text(self, request: ChatRequest, texts: dict[int, str]) -> str:
        text = routing_text(request, self.config.text, texts)
        return within_budget(text, self.config.text.max_chars)

    def _cache_embedding(
        self,
        request: ChatRequest,
        runs: dict[EncoderKey, EncoderRun],
        texts: dict[int, str],
        enabled: bool,
    ) -> Any:
        """The classified text's cache vector (None when the cache is off or its encoder failed:
        the request is then neither answered from nor written to the cache)."""
        key = self._cache_key
        if key is None or not enabled:
            return None
        run = runs[key]
        text = self._cache_text(request, texts)
        if run.error is not None or text not in run.rows:
            return None
        return run.heads[self.config.semantic_cache.head][run.rows[text]]

    def _token_texts(self, readings: list[SignalReading]) -> list[tuple[EncoderKey, str]]:
        if not self._token_encoders:
            return []
        wanted: dict[tuple[EncoderKey, str], None] = {}
        for signal, reading in zip(self.signals, readings, strict=True):
            if reading.text:
                for model in signal.token_count_models():
                    wanted[(self._keys[model], reading.text)] = None
        return list(wanted)

    def _finish(
        self,
        request: ChatRequest,
        readings: list[SignalReading],
        runs: dict[EncoderKey, EncoderRun],
        counts: dict[tuple[EncoderKey, str], int | BaseException],
        texts: dict[int, str],
        started: float,
        headers: Mapping[str, str] | None,
    ) -> RoutingResult:
        config = self.config
        body = request.body
        signal_results = evaluate_signals(
            self.signals, self._needs_model, readings, self._keys, runs, counts
        )
        index = {(result.type, result.name): result for result in signal_results}
        matched = decisions.matching_decisions(config.decisions, index)
        chosen = decisions.choose_decision(matched, config.strategy)
        decision = chosen.decision if chosen is not None else None
        plan = self._choices.plan(chosen.order if chosen is not None else None)
        in_force = plan.in_force
        block = plugins.find_block(config, in_force, index) if in_force else None
        category = decisions.category_of(chosen, signal_results)

        requested = request.model
        auto = self._choices.is_auto_name(requested)
        choice = plan.choice
        body_changed = False
        system_prompt_injected = False
        if not auto:
            # An explicit model is the client's choice: only the routing header is set.
            model = served = str(requested)
            header_edits = HeaderEdits(set={HEADER_SELECTED_MODEL: served})
            reasoning = _NO_REASONING
        else:
            model, served = choice.model, choice.served_model
            reasoning = Reasoning(
                enabled=choice.use_reasoning,
                effort=choice.reasoning_effort,
                family=choice.family_name,
            )
            header_edits = plan.auto_header_edits()
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
            prompt = plan.system_prompt
            if prompt is not None:
                system_prompt_injected = edits.apply_system_prompt(body, prompt.prompt, prompt.mode)
                body_changed |= system_prompt_injected
        cache = plan.cache
        cache_enabled = cache is not None and cache.enabled and block is None
        cache_embedding = self._cache_embedding(request, runs, texts, cache_enabled)
        elapsed = time.perf_counter() - started
        # DEBUG: the server logs each request once itself; this line is for offline tracing.
        if enabled_for(log, DEBUG):
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
            cache=cache,
            text=routing_text(request, config.text, texts),
            elapsed_s=elapsed,
            confidence=chosen.confidence if chosen is not None else None,
            cache_embedding=cache_embedding,
            body_plain=request.plain,
        )


_NO_REASONING = Reasoning(enabled=False)
