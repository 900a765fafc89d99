"""From a decision (or the default) to the model that serves the request and its reasoning."""

from __future__ import annotations

from dataclasses import dataclass

from vsr.config.decisions import Decision, ModelRef
from vsr.config.schema import ReasoningFamily, RouterConfig


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """``model`` is the configured model; ``served_model`` is what upstream sees (the LoRA
    adapter's name when one is chosen)."""

    model: str
    served_model: str
    use_reasoning: bool
    reasoning_effort: str | None
    family_name: str | None
    family: ReasoningFamily | None


def choose_model(config: RouterConfig, decision: Decision | None) -> ModelChoice:
    """The decision's first model ref (the others are its alternatives, in order of preference);
    without a decision, ``default_model`` with reasoning off."""
    ref = decision.model_refs[0] if decision is not None else ModelRef(model=config.default_model)
    return resolve_model_ref(config, ref)


def resolve_model_ref(config: RouterConfig, ref: ModelRef) -> ModelChoice:
    model = config.model(ref.model)
    if model is None:  # the loader checked every reference; this is a programming error
        raise LookupError(f"model {ref.model!r} is not configured")
    family_name = model.reasoning_family
    family = config.reasoning_families.get(family_name) if family_name else None
    effort = None
    if ref.use_reasoning:
        effort = ref.reasoning_effort or config.default_reasoning_effort
    return ModelChoice(
        model=model.name,
        served_model=ref.lora_name or model.name,
        use_reasoning=ref.use_reasoning,
        reasoning_effort=effort,
        family_name=family_name,
        family=family,
    )
