"""Checks across the config that one field's validator cannot make: names that must exist elsewhere.

Each problem is reported as ``(path, message)`` with the YAML path of the offending field and the
values that would be accepted.
"""

from __future__ import annotations

from collections.abc import Iterable

from vsr.config.decisions import JailbreakPlugin, PiiPlugin, PluginConfig, iter_conditions
from vsr.config.schema import RouterConfig
from vsr.config.signals import (
    DEFAULT_CLASSIFIER_BUNDLE,
    MMLU_PRO_CATEGORIES,
    SIGNAL_TYPES,
    DomainSignal,
)

Problem = tuple[str, str]


def format_path(parts: Iterable[str | int]) -> str:
    """``("decisions", 2, "rules", "name")`` -> ``decisions[2].rules.name``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _choices(values: Iterable[str]) -> str:
    listed = sorted(set(values))
    return ", ".join(repr(v) for v in listed) if listed else "(none defined)"


def _check_unique(names: list[str], path: str, what: str) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for index, name in enumerate(names):
        if name in seen:
            problems.append((f"{path}[{index}].name", f"duplicate {what} name {name!r}"))
        seen.add(name)
    return problems


def _check_plugin_signal(config: RouterConfig, plugin: PluginConfig, path: str) -> list[Problem]:
    if not isinstance(plugin, JailbreakPlugin | PiiPlugin):
        return []
    defined = [s.name for s in config.signals if s.type == plugin.type]
    if plugin.signal is None:
        if len(defined) != 1:
            return [
                (
                    f"{path}.signal",
                    f"name the {plugin.type} signal to use; defined {plugin.type} signals: "
                    f"{_choices(defined)}",
                )
            ]
    elif plugin.signal not in defined:
        return [
            (
                f"{path}.signal",
                f"no {plugin.type} signal named {plugin.signal!r}; allowed: {_choices(defined)}",
            )
        ]
    return []


def check_references(config: RouterConfig) -> list[Problem]:
    problems: list[Problem] = []
    model_names = [m.name for m in config.models]
    problems += _check_unique(model_names, "models", "model")
    problems += _check_unique([d.name for d in config.decisions], "decisions", "decision")
    for type_ in SIGNAL_TYPES:
        names = [s.name for s in config.signals if s.type == type_]
        if len(names) != len(set(names)):
            for index, signal in enumerate(config.signals):
                if signal.type == type_ and names.count(signal.name) > 1:
                    problems.append(
                        (f"signals[{index}].name", f"duplicate {type_} signal name {signal.name!r}")
                    )

    if config.default_model not in model_names:
        problems.append(
            (
                "default_model",
                f"unknown model {config.default_model!r}; allowed: {_choices(model_names)}",
            )
        )
    for index, model in enumerate(config.models):
        family = model.reasoning_family
        if family is not None and family not in config.reasoning_families:
            problems.append(
                (
                    f"models[{index}].reasoning_family",
                    f"unknown reasoning family {family!r}; "
                    f"allowed: {_choices(config.reasoning_families)}",
                )
            )
        if model.name in config.auto_model_names:
            problems.append(
                (
                    f"models[{index}].name",
                    f"{model.name!r} is an auto model name "
                    f"(auto_model_names); a real model cannot use it",
                )
            )

    for index, signal in enumerate(config.signals):
        if isinstance(signal, DomainSignal) and signal.model == DEFAULT_CLASSIFIER_BUNDLE:
            for position, category in enumerate(signal.category_set):
                if category not in MMLU_PRO_CATEGORIES:
                    where = (
                        f"signals[{index}].categories[{position}]"
                        if signal.categories
                        else f"signals[{index}].name"
                    )
                    problems.append(
                        (
                            where,
                            f"{category!r} is not a category of {DEFAULT_CLASSIFIER_BUNDLE}; "
                            f"allowed: {_choices(MMLU_PRO_CATEGORIES)}",
                        )
                    )

    for d_index, decision in enumerate(config.decisions):
        base = f"decisions[{d_index}]"
        for condition, below in iter_conditions(decision.rules):
            where = format_path(("rules", *below))
            where = f"{base}.{where}"
            if condition.type not in SIGNAL_TYPES:
                problems.append(
                    (
                        f"{where}.type",
                        f"unknown signal type {condition.type!r}; allowed: "
                        f"{_choices(SIGNAL_TYPES)}",
                    )
                )
                continue
            defined = [s.name for s in config.signals if s.type == condition.type]
            if condition.name not in defined:
                problems.append(
                    (
                        f"{where}.name",
                        f"no {condition.type} signal named {condition.name!r}; "
                        f"allowed: {_choices(defined)}",
                    )
                )
        for r_index, ref in enumerate(decision.model_refs):
            where = f"{base}.modelRefs[{r_index}]"
            target = config.model(ref.model)
            if target is None:
                problems.append(
                    (
                        f"{where}.model",
                        f"unknown model {ref.model!r}; allowed: {_choices(model_names)}",
                    )
                )
                continue
            adapters = [lora.name for lora in target.loras]
            if ref.lora_name is not None and ref.lora_name not in adapters:
                problems.append(
                    (
                        f"{where}.lora_name",
                        f"model {ref.model!r} has no LoRA adapter {ref.lora_name!r}; "
                        f"allowed: {_choices(adapters)}",
                    )
                )
        for p_index, plugin in enumerate(decision.plugins):
            problems += _check_plugin_signal(config, plugin, f"{base}.plugins[{p_index}]")
    for p_index, plugin in enumerate(config.plugins):
        problems += _check_plugin_signal(config, plugin, f"plugins[{p_index}]")
    return problems
