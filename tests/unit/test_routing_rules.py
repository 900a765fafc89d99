"""Decision rules (AND / OR / NOT, nested) and the priority and confidence strategies."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from vsr.config.decisions import Decision, RuleNode
from vsr.routing.decision import choose_decision, evaluate_rule, matching_decisions
from vsr.routing.result import SignalResult

RULE = TypeAdapter(RuleNode)


def signals(**scores: float) -> dict[tuple[str, str], SignalResult]:
    """keyword signals by name; a score above zero means the signal fired."""
    return {
        ("keyword", name): SignalResult("keyword", name, matched=score > 0, score=score)
        for name, score in scores.items()
    }


def holds(rule: object, **scores: float) -> bool:
    return evaluate_rule(RULE.validate_python(rule), signals(**scores)).matched


def leaf(name: str) -> dict[str, str]:
    return {"type": "keyword", "name": name}


def test_leaf_and_unknown_signal() -> None:
    assert holds(leaf("a"), a=1)
    assert not holds(leaf("a"), a=0)
    assert not holds(leaf("missing"), a=1)  # a signal that was not evaluated never fires


@pytest.mark.parametrize(
    ("a", "b", "and_", "or_", "not_"),
    [(1, 1, True, True, False), (1, 0, False, True, False), (0, 0, False, False, True)],
)
def test_operators(a: float, b: float, and_: bool, or_: bool, not_: bool) -> None:
    pair = [leaf("a"), leaf("b")]
    assert holds({"operator": "AND", "conditions": pair}, a=a, b=b) is and_
    assert holds({"operator": "OR", "conditions": pair}, a=a, b=b) is or_
    assert holds({"operator": "NOT", "conditions": pair}, a=a, b=b) is not_


def test_nesting() -> None:
    # (a AND NOT b) OR (c AND (d OR e))
    rule = {
        "operator": "OR",
        "conditions": [
            {
                "operator": "AND",
                "conditions": [leaf("a"), {"operator": "NOT", "conditions": [leaf("b")]}],
            },
            {
                "operator": "AND",
                "conditions": [leaf("c"), {"operator": "OR", "conditions": [leaf("d"), leaf("e")]}],
            },
        ],
    }
    assert holds(rule, a=1, b=0, c=0, d=0, e=0)
    assert not holds(rule, a=1, b=1, c=0, d=0, e=0)
    assert holds(rule, a=1, b=1, c=1, d=0, e=1)
    assert not holds(rule, a=0, b=0, c=1, d=0, e=0)


def test_evidence_collects_the_signals_a_rule_held_on() -> None:
    rule = RULE.validate_python({"operator": "OR", "conditions": [leaf("a"), leaf("b"), leaf("c")]})
    outcome = evaluate_rule(rule, signals(a=0.4, b=0, c=0.8))
    assert [result.name for result in outcome.evidence] == ["a", "c"]


def decision(name: str, priority: int, rule: object | None) -> Decision:
    return Decision.model_validate(
        {"name": name, "priority": priority, "rules": rule, "modelRefs": [{"model": "m"}]}
    )


DECISIONS = [
    decision("low_but_sure", 1, leaf("sure")),
    decision("high_but_weak", 10, leaf("weak")),
    decision("tie_first", 5, leaf("tie")),
    decision("tie_second", 5, leaf("tie")),
    decision("catch_all", -100, None),
]


def chosen(strategy: str, **scores: float) -> str | None:
    matched = matching_decisions(DECISIONS, signals(**scores))
    result = choose_decision(matched, strategy)  # type: ignore[arg-type]
    return None if result is None else result.decision.name


def test_priority_strategy() -> None:
    assert chosen("priority", sure=0.9, weak=0.2) == "high_but_weak"
    assert chosen("priority", tie=0.5) == "tie_first"  # ties go to the earlier decision
    assert chosen("priority") == "catch_all"  # a decision without rules always matches


def test_confidence_strategy() -> None:
    assert chosen("confidence", sure=0.9, weak=0.2) == "low_but_sure"
    assert chosen("confidence", sure=0.5, tie=0.5) == "tie_first"  # then priority, then order
    assert chosen("confidence") == "catch_all"


def test_no_match_means_no_decision() -> None:
    matched = matching_decisions(DECISIONS[:2], signals(sure=0, weak=0))
    assert choose_decision(matched, "priority") is None
