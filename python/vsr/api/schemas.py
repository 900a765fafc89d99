"""Request and response models of the classification API (the OpenAPI document is built from them).

Paths and field names follow vLLM Semantic Router's classification API (``/api/v1/classify/*``,
``/info/*``), so its clients and smoke scripts work against vsr; ``/api/v1/route`` is vsr's own.
Requests reject unknown fields, so a misspelt option is an error rather than silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vsr.wire import replace_lone_surrogates

TaskType = Literal["intent", "pii", "security"]


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("text must not be empty")
    # JSON may spell a lone surrogate, which no model's tokenizer accepts: U+FFFD, as on the
    # chat path.
    return replace_lone_surrogates(text)


def _texts_not_blank(texts: list[str]) -> list[str]:
    if not texts:
        raise ValueError("texts must not be empty")
    for index, text in enumerate(texts):
        if not text.strip():
            raise ValueError(f"texts[{index}] must not be empty")
    return [replace_lone_surrogates(text) for text in texts]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class IntentOptions(Request):
    return_probabilities: bool = Field(
        default=True, description="Include the probability of every category."
    )
    confidence_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Leave categories below this out of `probabilities`.",
    )
    include_explanation: bool = Field(
        default=False, description="Accepted for compatibility; unused."
    )


class TextRequest(Request):
    text: str = Field(description="The text to classify (a prompt).", examples=["What is 2+2?"])

    _text_not_blank = field_validator("text")(_not_blank)


class IntentRequest(TextRequest):
    options: IntentOptions = IntentOptions()


class IntentClassification(Response):
    category: str = Field(description="The domain classifier's top category.")
    confidence: float = Field(description="Its probability.")
    processing_time_ms: float


class IntentResponse(Response):
    classification: IntentClassification
    probabilities: dict[str, float] | None = Field(
        default=None, description="Every category's probability, highest first."
    )
    recommended_model: str | None = Field(
        default=None,
        description="The model vsr routes this text to when the request asks for `auto`.",
    )
    routing_decision: str | None = Field(
        default=None,
        description="The decision that chose it (null: none matched, the default model).",
    )


class PiiOptions(Request):
    entity_types: tuple[str, ...] = Field(
        default=(), description="Report only these types (`ALL` or empty: every type)."
    )
    confidence_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Minimum model score (default: the config's pii signal).",
    )
    return_positions: bool = True
    mask_entities: bool = False


class PiiRequest(TextRequest):
    options: PiiOptions = PiiOptions()


class PiiEntityOut(Response):
    type: str = Field(description="Canonical type: PERSON, EMAIL_ADDRESS, US_SSN, ...")
    value: str
    confidence: float
    start_position: int | None = None
    end_position: int | None = None
    masked_value: str
    source: Literal["model", "pattern"]


class PiiResponse(Response):
    has_pii: bool
    entities: list[PiiEntityOut]
    masked_text: str | None = Field(
        default=None, description="With `mask_entities`: `[TYPE]` in place."
    )
    processing_time_ms: float


class SecurityOptions(Request):
    detection_types: tuple[str, ...] = Field(
        default=(), description="Accepted for compatibility; unused."
    )
    sensitivity: str | None = Field(default=None, description="Accepted for compatibility; unused.")
    include_reasoning: bool = False


class SecurityRequest(TextRequest):
    options: SecurityOptions = SecurityOptions()


class SecurityResponse(Response):
    is_jailbreak: bool = Field(description="risk_score reached the config's jailbreak threshold.")
    risk_score: float = Field(description="The probability of the non-benign labels.")
    detection_types: list[str] = Field(description="The strongest attack label, when flagged.")
    confidence: float = Field(description="risk_score when flagged, else 1 - risk_score.")
    recommendation: Literal["block", "allow"]
    threshold: float
    processing_time_ms: float


class CombinedRequest(TextRequest):
    intent: IntentOptions = IntentOptions()
    pii: PiiOptions = PiiOptions()


class CombinedResponse(Response):
    intent: IntentResponse
    pii: PiiResponse
    security: SecurityResponse
    processing_time_ms: float


class BatchRequest(Request):
    texts: list[str] = Field(description="Texts to classify (at most the server's batch limit).")
    task_type: TaskType = "intent"
    options: IntentOptions = IntentOptions()

    _texts = field_validator("texts")(_texts_not_blank)


class BatchStatistics(Response):
    category_distribution: dict[str, int]
    avg_confidence: float
    low_confidence_count: int


class BatchResponse(Response):
    results: list[dict[str, Any]] = Field(
        description="One result per text, in order: the intent classification (category, "
        "confidence, probabilities), a security or a pii response."
    )
    total_count: int
    processing_time_ms: float
    statistics: BatchStatistics


class EmbeddingRequest(Request):
    texts: list[str]
    model: str = Field(
        default="auto", description="`auto` (the config's embedding model) or its name."
    )
    dimension: int | None = Field(default=None, description="Must be the model's own when given.")
    quality_priority: float | None = Field(default=None, description="Accepted for compatibility.")
    latency_priority: float | None = Field(default=None, description="Accepted for compatibility.")

    _texts = field_validator("texts")(_texts_not_blank)


class EmbeddingResult(Response):
    text: str
    embedding: list[float]
    dimension: int
    model_used: str
    processing_time_ms: float


class EmbeddingResponse(Response):
    embeddings: list[EmbeddingResult]
    total_count: int
    total_processing_time_ms: float
    avg_processing_time_ms: float


class SimilarityRequest(Request):
    text1: str
    text2: str
    model: str = "auto"
    dimension: int | None = None

    _not_blank = field_validator("text1", "text2")(_not_blank)


class SimilarityResponse(Response):
    model_used: str
    similarity: float = Field(description="Cosine similarity of the two embeddings.")
    processing_time_ms: float


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: Any = None


class RouteRequest(BaseModel):
    """A chat-completions request body, as a client would send it (unknown fields are kept)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(default="auto", examples=["auto"])
    messages: Annotated[list[ChatMessage], Field(min_length=1)]


class SignalOut(Response):
    type: str
    name: str
    matched: bool
    score: float
    threshold: float | None = Field(
        default=None, description="The config's threshold, where it has one."
    )
    label: str | None = None
    entity_types: list[str] | None = None


class RouteResponse(Response):
    """What ``vsr route --signals`` prints, plus thresholds and the matched rule tree."""

    decision: str | None
    category: str | None
    model: str
    served_model: str
    requested_model: str | None
    auto: bool
    reasoning: dict[str, Any]
    blocked: dict[str, Any] | None
    signals: list[SignalOut]
    headers: dict[str, str]
    system_prompt_injected: bool
    body_changed: bool
    body: dict[str, Any]
    elapsed_ms: float
    rules: dict[str, Any] | None = Field(
        default=None,
        description="The chosen decision's rules, evaluated: leaves `{type, name, matched}`, "
        "groups `{operator, matched, conditions}`.",
    )


class ModelInfo(Response):
    name: str
    type: str
    loaded: bool
    model_path: str
    categories: list[str] | None = None
    metadata: dict[str, Any] = {}


class ModelsInfoResponse(Response):
    models: list[ModelInfo]
    system: dict[str, Any]


class ClassifierInfoResponse(Response):
    status: Literal["active", "loading"]
    capabilities: list[str]
    categories: list[dict[str, Any]]
    pii_types: list[str]
    security: dict[str, Any]
    configuration: dict[str, Any]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
