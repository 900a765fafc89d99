"""Decision configs: rules over signals, the models a decision routes to, and its plugins."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from vsr.config.base import StrictModel
from vsr.config.signals import Probability, SignalName

ReasoningEffort = Literal["low", "medium", "high"]
# What a screening plugin does when its classifier fails: ``block`` answers 503 and forwards
# nothing (the default: no request reaches a model unscreened); ``allow`` forwards it, marked
# ``x-vsr-fail-open: true``. Pattern matches found without the model still block either way.
OnError = Literal["block", "allow"]


class Condition(StrictModel):
    """A leaf of a rule: true when the signal ``(type, name)`` fired."""

    type: str
    name: SignalName


class RuleGroup(StrictModel):
    """``AND``: every condition holds; ``OR``: at least one; ``NOT``: none of them holds."""

    operator: Literal["AND", "OR", "NOT"]
    conditions: tuple[RuleNode, ...] = Field(min_length=1)


def _rule_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "group" if "operator" in value or "conditions" in value else "condition"
    return "group" if isinstance(value, RuleGroup) else "condition"


# Tag names never reach users: the loader drops them from error paths.
RULE_TAGS = ("group", "condition")
RuleNode = Annotated[
    Annotated[RuleGroup, Tag("group")] | Annotated[Condition, Tag("condition")],
    Discriminator(_rule_kind),
]
RuleGroup.model_rebuild()


class ModelRef(StrictModel):
    """A model the decision routes to, with the reasoning choice for it."""

    model: str = Field(min_length=1)
    lora_name: str | None = None
    use_reasoning: bool = False
    reasoning_effort: ReasoningEffort | None = None


class SystemPromptPlugin(StrictModel):
    """``replace``: the first system message's content becomes ``prompt`` (one is added at the
    front if there is none); ``insert``: ``prompt`` goes before the existing system content."""

    type: Literal["system_prompt"]
    enabled: bool = True
    prompt: str = Field(min_length=1)
    mode: Literal["replace", "insert"] = "replace"


class JailbreakPlugin(StrictModel):
    """Block the request when the jailbreak signal's score reaches ``threshold`` (default: the
    signal's own threshold). ``signal`` may be left out when exactly one jailbreak signal exists.
    ``on_error``: see ``OnError``."""

    type: Literal["jailbreak"]
    enabled: bool = True
    signal: SignalName | None = None
    threshold: Probability | None = None
    on_error: OnError = "block"


class PiiPlugin(StrictModel):
    """Block the request when the PII signal finds entity types outside ``allowed_types``
    (compared case-insensitively; the signal's own threshold decides what counts as found).
    ``on_error``: see ``OnError``."""

    type: Literal["pii"]
    enabled: bool = True
    signal: SignalName | None = None
    allowed_types: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    on_error: OnError = "block"


class HeaderValue(StrictModel):
    name: str = Field(min_length=1, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
    value: str


class HeaderMutationPlugin(StrictModel):
    """Request header edits: ``add`` appends a value, ``update`` overwrites, ``delete`` removes."""

    type: Literal["header_mutation"]
    enabled: bool = True
    add: tuple[HeaderValue, ...] = ()
    update: tuple[HeaderValue, ...] = ()
    delete: tuple[Annotated[str, Field(min_length=1)], ...] = ()

    @model_validator(mode="after")
    def _not_our_headers(self) -> HeaderMutationPlugin:
        names = [h.name for h in (*self.add, *self.update)] + list(self.delete)
        for name in names:
            if name.lower() == "x-selected-model":
                raise ValueError("x-selected-model is set by vsr; a header_mutation cannot edit it")
        return self


class SemanticCachePlugin(StrictModel):
    """Settings for the semantic cache (used by the cache layer)."""

    type: Literal["semantic_cache"]
    enabled: bool = True
    similarity_threshold: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    ttl_seconds: Annotated[int, Field(ge=0)] | None = None


PluginConfig = Annotated[
    SystemPromptPlugin | JailbreakPlugin | PiiPlugin | HeaderMutationPlugin | SemanticCachePlugin,
    Field(discriminator="type"),
]


class Decision(StrictModel):
    """A named routing decision.

    ``rules`` left out means the decision always matches (a catch-all, usually at the lowest
    priority). Higher ``priority`` wins under the ``priority`` strategy.
    """

    name: SignalName
    description: str = ""
    priority: int = 0
    rules: RuleNode | None = None
    model_refs: tuple[ModelRef, ...] = Field(alias="modelRefs", min_length=1)
    plugins: tuple[PluginConfig, ...] = ()

    @model_validator(mode="after")
    def _one_plugin_per_type(self) -> Decision:
        seen: set[str] = set()
        for plugin in self.plugins:
            if plugin.type in seen:
                raise ValueError(f"plugin type {plugin.type!r} appears twice; merge them")
            seen.add(plugin.type)
        return self

    def plugin(self, type_: str) -> PluginConfig | None:
        for plugin in self.plugins:
            if plugin.type == type_ and plugin.enabled:
                return plugin
        return None


def iter_conditions(node: RuleNode | None) -> list[tuple[Condition, tuple[str | int, ...]]]:
    """Every leaf condition with its path below the node, e.g. ``("conditions", 0)``."""
    if node is None:
        return []
    if isinstance(node, Condition):
        return [(node, ())]
    found: list[tuple[Condition, tuple[str | int, ...]]] = []
    for index, child in enumerate(node.conditions):
        for condition, path in iter_conditions(child):
            found.append((condition, ("conditions", index, *path)))
    return found
