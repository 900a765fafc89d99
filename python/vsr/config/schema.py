"""The root of a router config: models, reasoning families, signals, decisions, global plugins.

Field names follow vLLM Semantic Router where it has them (``default_model``,
``reasoning_families``, ``default_reasoning_effort``, ``modelRefs``, ``use_reasoning``) so its users
recognise a config; the layout is signals -> decisions -> plugins.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from vsr.config.base import StrictModel
from vsr.config.decisions import Decision, PluginConfig, ReasoningEffort
from vsr.config.signals import SignalConfig, TextSelection

__all__ = ["TextSelection"]
from vsr.config.batching import BatchingConfig
from vsr.config.cache import CacheConfig
from vsr.config.observability import ObservabilityConfig


class ChatTemplateKwargsFamily(StrictModel):
    """Reasoning switched by ``chat_template_kwargs.<parameter>`` (Qwen3: ``enable_thinking``,
    DeepSeek: ``thinking``); vsr writes an explicit ``false`` when reasoning is off."""

    type: Literal["chat_template_kwargs"]
    parameter: str = Field(min_length=1)


class ReasoningEffortFamily(StrictModel):
    """Reasoning set by a top-level effort field (OpenAI-style ``reasoning_effort``)."""

    type: Literal["reasoning_effort"]
    parameter: str = Field(default="reasoning_effort", min_length=1)


ReasoningFamily = Annotated[
    ChatTemplateKwargsFamily | ReasoningEffortFamily, Field(discriminator="type")
]


class Pricing(StrictModel):
    """Price per one million tokens."""

    prompt_per_1m: Annotated[float, Field(ge=0.0)] = 0.0
    completion_per_1m: Annotated[float, Field(ge=0.0)] = 0.0
    currency: str = "USD"


class LoraAdapter(StrictModel):
    name: str = Field(min_length=1)
    description: str = ""


class ModelConfig(StrictModel):
    """A model vsr may route to; ``name`` is what upstream routes on (``x-selected-model``)."""

    name: str = Field(min_length=1)
    description: str = ""
    reasoning_family: str | None = None
    pricing: Pricing | None = None
    loras: tuple[LoraAdapter, ...] = ()


class RouterConfig(StrictModel):
    """A whole routing policy, as one YAML document."""

    models: tuple[ModelConfig, ...] = Field(min_length=1)
    default_model: str = Field(min_length=1)
    auto_model_names: tuple[Annotated[str, Field(min_length=1)], ...] = Field(
        default=("auto", "MoM"), min_length=1
    )
    reasoning_families: dict[str, ReasoningFamily] = Field(default_factory=dict)
    default_reasoning_effort: ReasoningEffort = "medium"
    unknown_models: Literal["reject", "passthrough"] = Field(
        default="reject",
        description="A request naming a model that is neither configured nor an auto name: "
        "'reject' answers 404 model_not_found; 'passthrough' forwards it (for gateways that "
        "route more models than vsr knows).",
    )
    strategy: Literal["priority", "confidence"] = "priority"
    device: str = "cpu"
    dtypes: dict[str, Literal["float32", "float16", "bfloat16", "int8"]] = Field(
        default_factory=dict,
        description="Per model (its name or path as the signals write it): the dtype it runs "
        "in. Unset: float32 on a CPU, bfloat16 on a GPU. 'int8' (CPU only) quantizes an "
        "encoder's layers: ~2x faster, embeddings at cosine ~0.999 to float32; 'bfloat16' on a "
        "CPU runs the layers' products in bf16: ~1.5x faster, cosine ~0.99999 "
        "(benches/README.md).",
    )
    batching: BatchingConfig = Field(
        default_factory=BatchingConfig,
        description="How concurrent requests to one encoder share a forward pass.",
    )
    text: TextSelection = TextSelection()
    observability: ObservabilityConfig = Field(
        default_factory=ObservabilityConfig,
        description="Response accounting, debug headers and tracing.",
    )
    semantic_cache: CacheConfig = Field(
        default_factory=CacheConfig,
        description="Where the semantic cache keeps entries and what it may cache "
        "(the semantic_cache plugin turns it on per decision).",
    )
    signals: tuple[SignalConfig, ...] = ()
    decisions: tuple[Decision, ...] = ()
    plugins: tuple[PluginConfig, ...] = Field(
        default=(),
        description=(
            "Applied to every request; a matched decision's plugin of the same type replaces one."
        ),
    )

    def model(self, name: str) -> ModelConfig | None:
        for model in self.models:
            if model.name == name:
                return model
        return None

    def is_auto_name(self, name: str | None) -> bool:
        """No model, or one of the auto names (compared case-insensitively: ``AUTO`` is auto)."""
        if not name:
            return True
        return name.casefold() in {auto.casefold() for auto in self.auto_model_names}

    def served_names(self) -> frozenset[str]:
        """The names a client may ask for explicitly: the models and their LoRA adapters."""
        names = {model.name for model in self.models}
        names |= {lora.name for model in self.models for lora in model.loras}
        return frozenset(names)
