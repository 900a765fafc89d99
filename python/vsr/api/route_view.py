"""How one routing result is shown: what ``vsr route`` prints and ``POST /api/v1/route`` returns.

``route_summary`` is the one rendering both use, so the CLI and the API cannot drift apart. The
API adds what a person tuning a policy wants beside it (``explain``): each signal's threshold from
the config, and the chosen decision's rule tree with every leaf and group marked matched or not.
Pure Python, no web framework: the CLI imports it.
"""

from __future__ import annotations

from typing import Any

from vsr.config.decisions import Condition, RuleGroup, RuleNode
from vsr.config.schema import RouterConfig
from vsr.routing.result import RoutingResult


def route_summary(result: RoutingResult, with_signals: bool = True) -> dict[str, Any]:
    """``RoutingResult.to_dict`` with request and response headers in one ``headers`` map."""
    summary: dict[str, Any] = result.to_dict()
    summary["headers"] = {**summary["headers"]["set"], **summary.pop("response_headers")}
    if not with_signals:
        summary.pop("signals")
    return summary


def signal_threshold(config: RouterConfig, type_: str, name: str) -> float | None:
    """The threshold a signal's score is compared with (None for keyword/context signals)."""
    for signal in config.signals:
        if signal.type == type_ and signal.name == name:
            threshold = getattr(signal, "threshold", None)
            return None if threshold is None else float(threshold)
    return None


def evaluated_rules(node: RuleNode | None, matched: dict[tuple[str, str], bool]) -> Any:
    """The rule tree with ``matched`` on every node (AND: all, OR: any, NOT: none)."""
    if node is None:
        return None
    if isinstance(node, Condition):
        return {
            "type": node.type,
            "name": node.name,
            "matched": matched.get((node.type, node.name), False),
        }
    assert isinstance(node, RuleGroup)
    children = [evaluated_rules(child, matched) for child in node.conditions]
    states = [child["matched"] for child in children]
    holds = {"AND": all(states), "OR": any(states), "NOT": not any(states)}[node.operator]
    return {"operator": node.operator, "matched": holds, "conditions": children}


def explain(result: RoutingResult, config: RouterConfig) -> dict[str, Any]:
    """``route_summary`` plus signal thresholds and the chosen decision's evaluated rules."""
    summary = route_summary(result, with_signals=True)
    for signal in summary["signals"]:
        signal["threshold"] = signal_threshold(config, signal["type"], signal["name"])
    matched = {(s.type, s.name): s.matched for s in result.signals}
    decision = next((d for d in config.decisions if d.name == result.decision), None)
    summary["rules"] = evaluated_rules(decision.rules, matched) if decision else None
    return summary
