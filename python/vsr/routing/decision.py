"""Decision rules over signal results, and choosing among the decisions that matched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from vsr.config.decisions import Condition, Decision, RuleGroup, RuleNode
from vsr.routing.result import SignalResult

SignalIndex = Mapping[tuple[str, str], SignalResult]


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """Whether a rule holds, and the signal results that made it hold (for confidence and
    for the reported category)."""

    matched: bool
    evidence: tuple[SignalResult, ...] = ()


def evaluate_rule(node: RuleNode | None, signals: SignalIndex) -> RuleOutcome:
    """AND: all children hold; OR: any does; NOT: none does. No rule at all always holds."""
    if node is None:
        return RuleOutcome(True)
    if isinstance(node, Condition):
        result = signals.get((node.type, node.name))
        if result is None or not result.matched:
            return RuleOutcome(False)
        return RuleOutcome(True, (result,))
    return _evaluate_group(node, signals)


def _evaluate_group(node: RuleGroup, signals: SignalIndex) -> RuleOutcome:
    outcomes = [evaluate_rule(child, signals) for child in node.conditions]
    if node.operator == "AND":
        if all(outcome.matched for outcome in outcomes):
            return RuleOutcome(True, tuple(r for o in outcomes for r in o.evidence))
        return RuleOutcome(False)
    if node.operator == "OR":
        held = [outcome for outcome in outcomes if outcome.matched]
        return RuleOutcome(bool(held), tuple(r for o in held for r in o.evidence))
    # NOT holds on absence, which carries no evidence of its own.
    return RuleOutcome(not any(outcome.matched for outcome in outcomes))


@dataclass(frozen=True, slots=True)
class MatchedDecision:
    decision: Decision
    order: int  # position in the config, the last tie-breaker
    evidence: tuple[SignalResult, ...]

    @property
    def confidence(self) -> float:
        """The mean score of the signals the rule held on; 0 for a rule with no evidence."""
        if not self.evidence:
            return 0.0
        return sum(result.score for result in self.evidence) / len(self.evidence)


def matching_decisions(
    decisions: Sequence[Decision], signals: SignalIndex
) -> list[MatchedDecision]:
    matched = []
    for order, decision in enumerate(decisions):
        outcome = evaluate_rule(decision.rules, signals)
        if outcome.matched:
            matched.append(MatchedDecision(decision, order, outcome.evidence))
    return matched


def choose_decision(
    matched: Sequence[MatchedDecision], strategy: Literal["priority", "confidence"]
) -> MatchedDecision | None:
    """``priority``: the highest priority wins, ties go to the earlier decision. ``confidence``:
    the highest confidence wins, ties go to priority, then to the earlier decision."""
    if not matched:
        return None
    if strategy == "confidence":
        return min(matched, key=lambda m: (-m.confidence, -m.decision.priority, m.order))
    return min(matched, key=lambda m: (-m.decision.priority, m.order))


def category_of(chosen: MatchedDecision | None, results: Sequence[SignalResult]) -> str | None:
    """The domain category behind the choice (see ``RoutingResult.category``): the winning
    decision's domain evidence, else the top-scoring evaluated domain signal."""
    if chosen is not None:
        for result in chosen.evidence:
            if result.type == "domain" and result.label:
                return result.label
    domain = [r for r in results if r.type == "domain" and r.label]
    if not domain:
        return None
    return max(domain, key=lambda r: r.score).label
