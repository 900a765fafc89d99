"""What routing works out from the config alone, once per config instead of once per request: per
decision (and for no decision) the plugins in force, the model choice, the header edits of an
auto-routed request, the system prompt and the cache policy; the auto and served model names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vsr.config.decisions import Decision, PluginConfig, SystemPromptPlugin
from vsr.config.schema import RouterConfig
from vsr.routing import plugins
from vsr.routing.result import CachePolicy, HeaderEdits
from vsr.routing.selection import ModelChoice, choose_model


@dataclass(frozen=True, slots=True)
class DecisionPlan:
    """What follows from one decision (or from none): see the module docstring."""

    in_force: Mapping[str, PluginConfig]
    choice: ModelChoice
    header_edits: HeaderEdits
    system_prompt: SystemPromptPlugin | None
    cache: CachePolicy | None

    def auto_header_edits(self) -> HeaderEdits:
        """The header edits of an auto-routed request (a copy: results are handed out)."""
        edits = self.header_edits
        return HeaderEdits(set=dict(edits.set), add=edits.add, remove=edits.remove)


def _plan(config: RouterConfig, decision: Decision | None) -> DecisionPlan:
    in_force = plugins.plugins_in_force(config, decision)
    choice = choose_model(config, decision)
    return DecisionPlan(
        in_force=in_force,
        choice=choice,
        header_edits=plugins.header_edits(in_force, choice.served_model),
        system_prompt=plugins.system_prompt(in_force),
        cache=plugins.cache_policy(in_force),
    )


class PreparedChoices:
    """A config's decision plans, by the decision's position in ``config.decisions``."""

    def __init__(self, config: RouterConfig) -> None:
        self._by_order = [_plan(config, decision) for decision in config.decisions]
        self._none = _plan(config, None)
        self._auto = frozenset(name.casefold() for name in config.auto_model_names)
        self.served_names = config.served_names()

    def plan(self, order: int | None) -> DecisionPlan:
        """The plan of the decision at ``order`` (None: no decision matched)."""
        return self._none if order is None else self._by_order[order]

    def is_auto_name(self, name: str | None) -> bool:
        """``RouterConfig.is_auto_name``, from a set built once."""
        return not name or name.casefold() in self._auto
