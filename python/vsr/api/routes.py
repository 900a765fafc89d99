"""The classification API's paths: ``/api/v1/classify/*``, ``/api/v1/route``, embeddings,
similarity, and ``/info/*`` (same paths and fields as vLLM Semantic Router's API)."""

from __future__ import annotations

import asyncio
import platform
import time
from collections import Counter
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, Request

import vsr
from vsr.api.classification import Classifiers, HeadRef, elapsed_ms
from vsr.api.errors import ApiError
from vsr.api.route_view import explain
from vsr.api.schemas import (
    BatchRequest,
    BatchResponse,
    BatchStatistics,
    ClassifierInfoResponse,
    CombinedRequest,
    CombinedResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingResult,
    ErrorResponse,
    IntentRequest,
    IntentResponse,
    ModelInfo,
    ModelsInfoResponse,
    PiiOptions,
    PiiRequest,
    PiiResponse,
    RouteRequest,
    RouteResponse,
    SecurityRequest,
    SecurityResponse,
    SimilarityRequest,
    SimilarityResponse,
)
from vsr.api.state import ApiState, api_state
from vsr.errors import VsrError
from vsr.pii.entities import CANONICAL_TYPES
from vsr.routing.request import RequestError

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 413, 503)
}
router = APIRouter(responses=_ERRORS)
T = TypeVar("T")
State = Annotated[ApiState, Depends(api_state)]


def _classifiers(state: ApiState) -> Classifiers:
    return state.classifiers()


@router.post("/api/v1/classify/intent", tags=["classify"])
async def classify_intent(body: IntentRequest, state: State) -> IntentResponse:
    """The domain category of a text, and where vsr routes a request with it as the prompt."""
    return await _guarded(_classifiers(state).intent(body.text, body.options))


@router.post("/api/v1/classify/pii", tags=["classify"])
async def classify_pii(body: PiiRequest, state: State) -> PiiResponse:
    """Personal information in a text, as the config's pii signal finds it."""
    return (await _guarded(_classifiers(state).pii([body.text], body.options)))[0]


@router.post("/api/v1/classify/security", tags=["classify"])
async def classify_security(body: SecurityRequest, state: State) -> SecurityResponse:
    """The jailbreak score of a text against the config's jailbreak threshold."""
    return (await _guarded(_classifiers(state).security([body.text])))[0]


@router.post("/api/v1/classify/combined", tags=["classify"])
async def classify_combined(body: CombinedRequest, state: State) -> CombinedResponse:
    """Intent, PII and security together; domain and jailbreak heads share one encoder pass."""
    started = time.perf_counter()
    tasks = _classifiers(state)
    wanted = [
        (tasks.domain_ref, [body.text]),
        (tasks.jailbreak_ref, tasks.jailbreak_windows(body.text)),
    ]
    (domain, jailbreak), pii = await _guarded(
        asyncio.gather(tasks.run_each(wanted), tasks.pii([body.text], body.pii))
    )
    return CombinedResponse(
        intent=tasks.intent_result(domain[0], body.intent, started),
        pii=pii[0],
        security=tasks.security_result(jailbreak, started),
        processing_time_ms=elapsed_ms(started),
    )


@router.post("/api/v1/classify/batch", tags=["classify"])
async def classify_batch(body: BatchRequest, state: State) -> BatchResponse:
    """One task over many texts, in one batched model call."""
    state.check_batch(len(body.texts))
    started = time.perf_counter()
    tasks = _classifiers(state)
    results: list[dict[str, Any]]
    if body.task_type == "intent":
        rows = (await _guarded(tasks.run(body.texts, [tasks.domain_ref])))[tasks.domain_ref]
        intents = [tasks.intent_result(row, body.options, started) for row in rows]
        results = [
            {**i.classification.model_dump(), "probabilities": i.probabilities} for i in intents
        ]
        labels = [i.classification.category for i in intents]
        confidences = [i.classification.confidence for i in intents]
    elif body.task_type == "security":
        security = await _guarded(tasks.security(body.texts))
        results = [s.model_dump() for s in security]
        labels = [s.recommendation for s in security]
        confidences = [s.confidence for s in security]
    else:
        pii = await _guarded(tasks.pii(body.texts, PiiOptions()))
        results = [p.model_dump() for p in pii]
        labels = [entity.type for p in pii for entity in p.entities] or []
        confidences = [max((e.confidence for e in p.entities), default=1.0) for p in pii]
    floor = body.options.confidence_threshold
    return BatchResponse(
        results=results,
        total_count=len(results),
        processing_time_ms=elapsed_ms(started),
        statistics=BatchStatistics(
            category_distribution=dict(Counter(labels)),
            avg_confidence=float(np.mean(confidences)) if confidences else 0.0,
            low_confidence_count=sum(c < floor for c in confidences) if floor else 0,
        ),
    )


@router.post("/api/v1/route", tags=["route"])
async def route(body: RouteRequest, request: Request, state: State) -> RouteResponse:
    """Route a whole chat-completions request as ext_proc would and explain it: every signal
    with score and threshold, the decision and its evaluated rules, the model, the body edits
    and the block (the fields ``vsr route --signals`` prints)."""
    router_ = state.router()
    raw: dict[str, Any] = await request.json()  # the body as sent, unknown fields and all
    try:
        result = await router_.aroute(raw)
    except VsrError as error:
        raise _request_error(error) from None
    return RouteResponse.model_validate(explain(result, router_.config))


@router.post("/api/v1/embeddings", tags=["embeddings"])
async def embeddings(body: EmbeddingRequest, state: State) -> EmbeddingResponse:
    """Embedding vectors of texts from the config's embedding model (L2-normalised)."""
    state.check_batch(len(body.texts))
    started = time.perf_counter()
    tasks = _classifiers(state)
    ref = _embedding_ref(tasks, body.model)
    vectors = await _vectors(tasks, ref, body.texts, body.dimension)
    total = elapsed_ms(started)
    each = round(total / len(body.texts), 3)
    return EmbeddingResponse(
        embeddings=[
            EmbeddingResult(
                text=text,
                embedding=vector.tolist(),
                dimension=len(vector),
                model_used=ref.model,
                processing_time_ms=each,
            )
            for text, vector in zip(body.texts, vectors, strict=True)
        ],
        total_count=len(body.texts),
        total_processing_time_ms=total,
        avg_processing_time_ms=each,
    )


@router.post("/api/v1/similarity", tags=["embeddings"])
async def similarity(body: SimilarityRequest, state: State) -> SimilarityResponse:
    """Cosine similarity of two texts' embeddings (what embedding signals compare)."""
    started = time.perf_counter()
    tasks = _classifiers(state)
    ref = _embedding_ref(tasks, body.model)
    first, second = await _vectors(tasks, ref, [body.text1, body.text2], body.dimension)
    return SimilarityResponse(
        model_used=ref.model,
        similarity=float(np.dot(first, second)),
        processing_time_ms=elapsed_ms(started),
    )


@router.get("/info/models", tags=["info"])
async def info_models(state: State) -> ModelsInfoResponse:
    """The classification models of the config in force, and whether each is loaded."""
    tasks = _classifiers(state)
    loaded = set(tasks.pool.registry.loaded)
    described = [
        ("category_classifier", "intent_classification", tasks.domain_ref, tasks.domain.threshold),
        (
            "jailbreak_classifier",
            "security_detection",
            tasks.jailbreak_ref,
            tasks.jailbreak.threshold,
        ),
        (
            "pii_classifier",
            "pii_detection",
            HeadRef(tasks.pii_signal.model, tasks.pii_signal.head),
            tasks.pii_signal.threshold,
        ),
        ("embedding_model", "similarity", tasks.embedding, None),
    ]
    models = []
    for name, kind, ref, threshold in described:
        key = tasks.key(ref.model)
        head = tasks.head(ref) if key in loaded else None
        models.append(
            ModelInfo(
                name=name,
                type=kind,
                loaded=key in loaded,
                model_path=key.path,
                categories=list(head.labels) if head and kind == "intent_classification" else None,
                metadata={"model": ref.model, "head": ref.head, "threshold": threshold},
            )
        )
    generation = state.generation()
    system = {
        "vsr_version": vsr.__version__,
        "python_version": platform.python_version(),
        "architecture": platform.machine(),
        "os": platform.system().lower(),
        "device": tasks.router.config.device,
        "gpu_available": tasks.router.config.device.startswith("cuda"),
        "generation": generation.number,
        "config": str(generation.source) if generation.source else None,
    }
    return ModelsInfoResponse(models=models, system=system)


@router.get("/info/classifier", tags=["info"])
async def info_classifier(state: State) -> ClassifierInfoResponse:
    """What the classifiers can do and how the config in force sets them."""
    tasks = _classifiers(state)
    config = tasks.router.config
    domain_signals = [s for s in config.signals if s.type == "domain"]
    categories = []
    for label in tasks.head(tasks.domain_ref).labels:
        signals = [s for s in domain_signals if label in s.category_set]
        categories.append(
            {
                "name": label,
                "signals": [s.name for s in signals],
                "threshold": min((s.threshold for s in signals), default=None),
            }
        )
    return ClassifierInfoResponse(
        status="active",
        capabilities=[
            "intent_classification",
            "pii_detection",
            "security_detection",
            "similarity_matching",
        ],
        categories=categories,
        pii_types=list(CANONICAL_TYPES),
        security={
            "jailbreak_detection": any(s.type == "jailbreak" for s in config.signals),
            "threshold": tasks.jailbreak.threshold,
            "enabled": any(p.type == "jailbreak" for p in config.plugins),
        },
        configuration={
            "category_threshold": min((s.threshold for s in domain_signals), default=None),
            "pii_threshold": tasks.pii_signal.threshold,
            "jailbreak_threshold": tasks.jailbreak.threshold,
            "device": config.device,
            "batching": config.batching.model_dump(mode="json"),
            "max_batch_texts": state.options.max_batch_texts,
        },
    )


def _embedding_ref(tasks: Classifiers, model: str) -> HeadRef:
    if model in ("auto", "", tasks.embedding.model):
        return tasks.embedding
    raise ApiError(
        400,
        "unknown_model",
        f"model {model!r} is not an embedding model of this config; use 'auto' or "
        f"{tasks.embedding.model!r}",
        "model",
    )


async def _vectors(
    tasks: Classifiers, ref: HeadRef, texts: list[str], dimension: int | None
) -> np.ndarray:
    matrix = np.asarray((await _guarded(tasks.run(texts, [ref])))[ref], dtype=np.float32)
    if dimension is not None and dimension != matrix.shape[1]:
        raise ApiError(
            400,
            "invalid_dimension",
            f"dimension: {ref.model} gives {matrix.shape[1]}-dimensional vectors, not {dimension}",
            "dimension",
        )
    # Unit rows, so the dot product is the cosine similarity embedding signals compute.
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: np.ndarray = matrix / np.maximum(norms, 1e-12)
    return unit


async def _guarded(awaitable: Awaitable[T]) -> T:
    """Inference errors become a 503 in OpenAI form instead of a bare 500."""
    try:
        return await awaitable
    except ApiError:
        raise
    except VsrError as error:
        raise ApiError(503, "inference_failed", f"classification failed: {error}") from None


def _request_error(error: VsrError) -> ApiError:
    if not isinstance(error, RequestError):
        return ApiError(503, "inference_failed", f"routing failed: {error}")
    return ApiError(error.status, error.code, error.message, error.param)
