"""Decision plugins: blocking (jailbreak, PII), system prompt, header edits, cache policy.

The plugins in force for a request are the config's global ``plugins`` with the matched decision's
plugins of the same type in their place; a disabled plugin in a decision switches the global one
off for that decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from vsr.config.decisions import (
    Decision,
    HeaderMutationPlugin,
    JailbreakPlugin,
    PiiPlugin,
    PluginConfig,
    SemanticCachePlugin,
    SystemPromptPlugin,
)
from vsr.config.schema import RouterConfig
from vsr.routing.result import (
    HEADER_SELECTED_MODEL,
    BlockReason,
    CachePolicy,
    HeaderEdits,
    SignalResult,
)
from vsr.signals.pii import normalise_entity_type

SignalIndex = Mapping[tuple[str, str], SignalResult]


def plugins_in_force(config: RouterConfig, decision: Decision | None) -> dict[str, PluginConfig]:
    """Plugin type -> the enabled plugin that applies."""
    chosen: dict[str, PluginConfig] = {plugin.type: plugin for plugin in config.plugins}
    if decision is not None:
        chosen.update({plugin.type: plugin for plugin in decision.plugins})
    return {type_: plugin for type_, plugin in chosen.items() if plugin.enabled}


def plugin_signal(config: RouterConfig, plugin: PluginConfig) -> tuple[str, str] | None:
    """The ``(type, name)`` of the signal a blocking plugin reads (the loader made it exist)."""
    if not isinstance(plugin, JailbreakPlugin | PiiPlugin):
        return None
    if plugin.signal is not None:
        return plugin.type, plugin.signal
    names = [signal.name for signal in config.signals if signal.type == plugin.type]
    return plugin.type, names[0]


def find_block(
    config: RouterConfig, plugins: Mapping[str, PluginConfig], signals: SignalIndex
) -> BlockReason | None:
    """Jailbreak first (an attack is refused whatever it contains), then PII; a block that fired
    always wins over a screening that could not run (``on_error``)."""
    jailbreak = plugins.get("jailbreak")
    pii = plugins.get("pii")
    unavailable: list[BlockReason] = []
    if isinstance(jailbreak, JailbreakPlugin):
        block = _jailbreak_block(config, jailbreak, signals)
        if block is not None and not block.unavailable:
            return block
        unavailable += [block] if block is not None else []
    if isinstance(pii, PiiPlugin):
        block = _pii_block(config, pii, signals)
        if block is not None and not block.unavailable:
            return block
        unavailable += [block] if block is not None else []
    return unavailable[0] if unavailable else None


def _unavailable(
    kind: Literal["jailbreak", "pii"], result: SignalResult, on_error: str
) -> BlockReason | None:
    if on_error != "block":
        return None
    return BlockReason(
        kind=kind,
        signal=result.name,
        detail=f"{kind} screening could not run ({result.error})",
        score=0.0,
        unavailable=True,
    )


def _plugin_result(
    config: RouterConfig, plugin: PluginConfig, signals: SignalIndex
) -> SignalResult | None:
    key = plugin_signal(config, plugin)
    return signals.get(key) if key else None


def _jailbreak_block(
    config: RouterConfig, plugin: JailbreakPlugin, signals: SignalIndex
) -> BlockReason | None:
    result = _plugin_result(config, plugin, signals)
    if result is None:
        return None
    if result.error is not None:
        return _unavailable("jailbreak", result, plugin.on_error)
    fired = result.matched if plugin.threshold is None else result.score >= plugin.threshold
    if not fired:
        return None
    return BlockReason(
        kind="jailbreak",
        signal=result.name,
        detail=f"jailbreak attempt detected ({result.label or 'jailbreak'}, "
        f"confidence {result.score:.3f})",
        score=result.score,
        label=result.label,
    )


def _pii_block(config: RouterConfig, plugin: PiiPlugin, signals: SignalIndex) -> BlockReason | None:
    result = _plugin_result(config, plugin, signals)
    if result is None:
        return None
    allowed = {normalise_entity_type(t) for t in plugin.allowed_types}
    denied = tuple(t for t in result.entity_types if t not in allowed)
    if denied:
        # Also when the model failed: what the patterns found is blocked whatever on_error says.
        return BlockReason(
            kind="pii",
            signal=result.name,
            detail=f"request contains personal information that is not allowed: "
            f"{', '.join(denied)}",
            score=result.score,
            entity_types=denied,
        )
    if result.error is not None:
        return _unavailable("pii", result, plugin.on_error)
    return None


def header_edits(plugins: Mapping[str, PluginConfig], served_model: str) -> HeaderEdits:
    """``x-selected-model`` always, then the header_mutation plugin's edits."""
    set_headers = {HEADER_SELECTED_MODEL: served_model}
    add: list[tuple[str, str]] = []
    remove: list[str] = []
    mutation = plugins.get("header_mutation")
    if isinstance(mutation, HeaderMutationPlugin):
        add = [(header.name.lower(), header.value) for header in mutation.add]
        set_headers.update({header.name.lower(): header.value for header in mutation.update})
        remove = [name.lower() for name in mutation.delete]
    return HeaderEdits(set=set_headers, add=tuple(add), remove=tuple(remove))


def system_prompt(plugins: Mapping[str, PluginConfig]) -> SystemPromptPlugin | None:
    plugin = plugins.get("system_prompt")
    return plugin if isinstance(plugin, SystemPromptPlugin) else None


def cache_policy(plugins: Mapping[str, PluginConfig]) -> CachePolicy | None:
    plugin = plugins.get("semantic_cache")
    if not isinstance(plugin, SemanticCachePlugin):
        return None
    return CachePolicy(
        enabled=plugin.enabled,
        similarity_threshold=plugin.similarity_threshold,
        ttl_seconds=plugin.ttl_seconds,
    )


def cache_wanted(config: RouterConfig) -> bool:
    """Whether any request may use the semantic cache (a global or decision plugin enables it)."""
    every = [*config.plugins, *(p for d in config.decisions for p in d.plugins)]
    return any(isinstance(p, SemanticCachePlugin) and p.enabled for p in every)


def referenced_signals(config: RouterConfig, decisions: Sequence[Decision]) -> set[tuple[str, str]]:
    """Signals read by blocking plugins, global or in any decision."""
    found: set[tuple[str, str]] = set()
    for plugin in [*config.plugins, *(p for d in decisions for p in d.plugins)]:
        if plugin.enabled:
            key = plugin_signal(config, plugin)
            if key is not None:
                found.add(key)
    return found
