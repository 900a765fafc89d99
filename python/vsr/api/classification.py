"""The classification API's work: intent (domain), security (jailbreak), PII and embeddings.

Everything runs on the current generation's router: its config says which model and head each
task reads (the first ``domain``, ``jailbreak``, ``pii`` and ``embedding`` signal, else the
built-in defaults) and with which threshold, and its inference pool runs the encoders, so API
requests share dynamic batching with ext_proc traffic and answer exactly as routing would: the
same probabilities, the same jailbreak score and threshold, the same PII rules and windows.
Heads on one encoder are read from one pass (``combined``: domain + jailbreak together).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vsr.api.errors import ApiError
from vsr.api.schemas import (
    IntentClassification,
    IntentOptions,
    IntentResponse,
    PiiEntityOut,
    PiiOptions,
    PiiResponse,
    SecurityResponse,
)
from vsr.config.signals import (
    DEFAULT_CLASSIFIER_BUNDLE,
    DomainSignal,
    EmbeddingSignal,
    JailbreakSignal,
    PiiSignal,
)
from vsr.errors import VsrError
from vsr.inference import EncoderKey, HeadDescription, InferencePool
from vsr.pii.detector import plan_windows, spans_over_windows
from vsr.pii.entities import CANONICAL_TYPES, PiiEntity, detect_pii
from vsr.router import Router
from vsr.signals.jailbreak import jailbreak_windows
from vsr.signals.pii import normalise_entity_type

# Names clients of the reference router use for vsr's canonical PII types.
PII_TYPE_ALIASES = {
    "EMAIL": "EMAIL_ADDRESS",
    "PHONE": "PHONE_NUMBER",
    "SSN": "US_SSN",
    "ADDRESS": "STREET_ADDRESS",
    "IP": "IP_ADDRESS",
    "DOB": "DATE_OF_BIRTH",
}


@dataclass(frozen=True)
class HeadRef:
    model: str
    head: str


def _first(signals: Sequence[Any], kind: type[Any], default: Any) -> Any:
    return next((signal for signal in signals if isinstance(signal, kind)), default)


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


class Classifiers:
    """The classification tasks of one router (one config generation)."""

    def __init__(self, router: Router) -> None:
        config = router.config
        self.router = router
        self.pool: InferencePool = router.pool
        signals = config.signals
        self.domain: DomainSignal = _first(
            signals, DomainSignal, DomainSignal(type="domain", name="domain")
        )
        self.jailbreak: JailbreakSignal = _first(
            signals, JailbreakSignal, JailbreakSignal(type="jailbreak", name="jailbreak")
        )
        self.pii_signal: PiiSignal = _first(signals, PiiSignal, PiiSignal(type="pii", name="pii"))
        embedding = _first(signals, EmbeddingSignal, None)
        self.embedding = (
            HeadRef(embedding.model, embedding.head)
            if embedding is not None
            else HeadRef(DEFAULT_CLASSIFIER_BUNDLE, "embedding")
        )

    # -- plumbing ---------------------------------------------------------------------------

    def key(self, model: str) -> EncoderKey:
        try:
            return self.pool.registry.key(model)
        except VsrError as error:
            message = f"model {model!r} is not available: {error}"
            raise ApiError(503, "model_unavailable", message) from None

    def head(self, ref: HeadRef) -> HeadDescription:
        try:
            return self.pool.registry.resolve_head(self.key(ref.model), ref.head)
        except (KeyError, VsrError) as error:
            raise ApiError(503, "model_unavailable", f"{ref.model}: {error}") from None

    async def run(self, texts: Sequence[str], refs: Sequence[HeadRef]) -> dict[HeadRef, Any]:
        """Each ref's output for ``texts``: one pool call (one encoder pass) per encoder."""
        outputs = await self.run_each([(ref, texts) for ref in refs])
        return dict(zip(refs, outputs, strict=True))

    async def run_each(self, wanted: Sequence[tuple[HeadRef, Sequence[str]]]) -> list[list[Any]]:
        """Per ``(ref, texts)``: the head's outputs for those texts. Each encoder runs once, on
        the distinct texts all its refs need (so domain on a prompt and jailbreak on its windows
        share one pass when the windows are the prompt itself)."""
        distinct: dict[EncoderKey, dict[str, int]] = {}
        heads: dict[EncoderKey, set[str]] = {}
        keys = [self.key(ref.model) for ref, _ in wanted]
        for key, (ref, texts) in zip(keys, wanted, strict=True):
            seen = distinct.setdefault(key, {})
            for text in texts:
                seen.setdefault(text, len(seen))
            heads.setdefault(key, set()).add(ref.head)
        order = list(distinct)
        results = await asyncio.gather(
            *(self.pool.run(key, list(distinct[key]), sorted(heads[key])) for key in order)
        )
        by_key = dict(zip(order, results, strict=True))
        return [
            [by_key[key][ref.head][distinct[key][text]] for text in texts]
            for key, (ref, texts) in zip(keys, wanted, strict=True)
        ]

    @property
    def domain_ref(self) -> HeadRef:
        return HeadRef(self.domain.model, self.domain.head)

    @property
    def jailbreak_ref(self) -> HeadRef:
        return HeadRef(self.jailbreak.model, self.jailbreak.head)

    # -- intent -----------------------------------------------------------------------------

    def intent_result(
        self, row: np.ndarray, options: IntentOptions, started: float
    ) -> IntentResponse:
        labels = self.head(self.domain_ref).labels
        row = np.asarray(row, dtype=np.float64)
        top = int(row.argmax())
        probabilities = None
        if options.return_probabilities:
            floor = options.confidence_threshold or 0.0
            ranked = sorted(zip(labels, row.tolist(), strict=True), key=lambda item: -item[1])
            probabilities = {label: p for label, p in ranked if p >= floor}
        classification = IntentClassification(
            category=labels[top], confidence=float(row[top]), processing_time_ms=elapsed_ms(started)
        )
        return IntentResponse(
            classification=classification,
            probabilities=probabilities,
            recommended_model=None,
            routing_decision=None,
        )

    async def intent(self, text: str, options: IntentOptions) -> IntentResponse:
        """The domain head's answer, and the model a request with this prompt is routed to."""
        started = time.perf_counter()
        config = self.router.config
        body = {
            "model": config.auto_model_names[0],
            "messages": [{"role": "user", "content": text}],
        }
        outputs, routed = await asyncio.gather(
            self.run([text], [self.domain_ref]), self.router.aroute(body)
        )
        result = self.intent_result(outputs[self.domain_ref][0], options, started)
        result.recommended_model = routed.model
        result.routing_decision = routed.decision
        return result

    # -- security ---------------------------------------------------------------------------

    def jailbreak_windows(self, text: str) -> list[str]:
        """The pieces the jailbreak signal reads a message in (one for a short message)."""
        return [text[start:end] for start, end in jailbreak_windows(text)] or [text]

    def security_result(self, rows: Sequence[np.ndarray], started: float) -> SecurityResponse:
        """As the jailbreak signal scores a message: the mass on the non-benign labels, in the
        riskiest of its windows."""
        labels = self.head(self.jailbreak_ref).labels
        matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        benign = set(self.jailbreak.benign_labels)
        attack_columns = [i for i, label in enumerate(labels) if label not in benign]
        if not attack_columns:
            raise ApiError(503, "model_unavailable", "the jailbreak head has no attack label")
        attack = matrix[:, attack_columns].sum(axis=1)
        riskiest = int(attack.argmax())
        risk = min(float(attack[riskiest]), 1.0)
        flagged = risk >= self.jailbreak.threshold
        strongest = max(attack_columns, key=lambda column: float(matrix[riskiest, column]))
        return SecurityResponse(
            is_jailbreak=flagged,
            risk_score=risk,
            detection_types=[labels[strongest]] if flagged else [],
            confidence=risk if flagged else 1.0 - risk,
            recommendation="block" if flagged else "allow",
            threshold=self.jailbreak.threshold,
            processing_time_ms=elapsed_ms(started),
        )

    async def security(self, texts: Sequence[str]) -> list[SecurityResponse]:
        started = time.perf_counter()
        windows = [self.jailbreak_windows(text) for text in texts]
        flat = [piece for pieces in windows for piece in pieces]
        (rows,) = await self.run_each([(self.jailbreak_ref, flat)])
        results, offset = [], 0
        for pieces in windows:
            results.append(self.security_result(rows[offset : offset + len(pieces)], started))
            offset += len(pieces)
        return results

    # -- PII --------------------------------------------------------------------------------

    def pii_types(self, requested: Sequence[str]) -> set[str]:
        """The types to report: the request's (aliases allowed), else the config signal's."""
        if not requested:
            return {normalise_entity_type(t) for t in self.pii_signal.entity_types}
        wanted: set[str] = set()
        for name in requested:
            canonical = normalise_entity_type(name)
            canonical = PII_TYPE_ALIASES.get(canonical, canonical)
            if canonical == "ALL":
                return set()
            if canonical not in CANONICAL_TYPES:
                raise ApiError(
                    400,
                    "unknown_entity_type",
                    f"unknown PII entity type {name!r}; known: {', '.join(CANONICAL_TYPES)}",
                    "options.entity_types",
                )
            wanted.add(canonical)
        return wanted

    async def pii(self, texts: Sequence[str], options: PiiOptions) -> list[PiiResponse]:
        """PII as the pii signal finds it: the token model over windows, then span rules and
        validated patterns; ``confidence_threshold`` overrides the signal's ``threshold``."""
        started = time.perf_counter()
        wanted = self.pii_types(options.entity_types)
        ref = HeadRef(self.pii_signal.model, self.pii_signal.head)
        pieces: list[str] = []
        owners: list[tuple[int, int]] = []
        for index, text in enumerate(texts):
            for start, end in plan_windows(text):
                pieces.append(text[start:end])
                owners.append((index, start))
        spans = (await self.run(pieces, [ref]))[ref]
        windows: list[list[tuple[int, Any]]] = [[] for _ in texts]
        for (index, offset), found in zip(owners, spans, strict=True):
            windows[index].append((offset, found))
        threshold = options.confidence_threshold
        if threshold is None:
            threshold = self.pii_signal.threshold
        results = []
        for text, text_windows in zip(texts, windows, strict=True):
            entities = detect_pii(
                text,
                spans_over_windows(text_windows),
                min_score=threshold,
                use_patterns=self.pii_signal.use_patterns,
            )
            kept = [e for e in entities if not wanted or normalise_entity_type(e.label) in wanted]
            results.append(_pii_response(text, kept, options, started))
        return results


def _pii_response(
    text: str, entities: list[PiiEntity], options: PiiOptions, started: float
) -> PiiResponse:
    out = []
    for entity in entities:
        label = normalise_entity_type(entity.label)
        out.append(
            PiiEntityOut(
                type=label,
                value=entity.text,
                confidence=float(entity.score),
                start_position=entity.start if options.return_positions else None,
                end_position=entity.end if options.return_positions else None,
                masked_value=f"[{label}]",
                source="pattern" if entity.source == "pattern" else "model",
            )
        )
    masked = None
    if options.mask_entities:
        masked = text
        for entity in sorted(entities, key=lambda e: e.start, reverse=True):
            label = normalise_entity_type(entity.label)
            masked = masked[: entity.start] + f"[{label}]" + masked[entity.end :]
    return PiiResponse(
        has_pii=bool(out), entities=out, masked_text=masked, processing_time_ms=elapsed_ms(started)
    )
