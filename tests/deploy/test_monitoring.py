"""The Grafana dashboard and Prometheus alert rules: valid JSON/YAML, every query parses with
Prometheus's own PromQL grammar and selects only series vsr exports, with labels those series
have; the chart installs the same files (ConfigMap, PrometheusRule)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.deploy.rendering import CHART, NODE_MODELS, Manifest, find, require, run_tool

from vsr.observability import metrics

DASHBOARD = CHART / "files" / "grafana-dashboard.json"
RULES = CHART / "files" / "prometheus-rules.yaml"
PROMQL = Path(__file__).resolve().parent / "js" / "promql.mjs"
# Grafana's variables, replaced by values PromQL accepts before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$model": ".*"}


@cache
def exported() -> dict[str, frozenset[str]]:
    """Every series name vsr exports -> its label names (histograms: _bucket/_count/_sum)."""
    series: dict[str, frozenset[str]] = {}
    for collector in metrics.REGISTRY._collector_to_names:
        family = collector.describe()[0]  # type: ignore[attr-defined]
        labels = frozenset(getattr(collector, "_labelnames", ()))
        if family.type == "counter":
            series[family.name + "_total"] = labels
        elif family.type == "histogram":
            series[family.name + "_bucket"] = labels | {"le"}
            series[family.name + "_count"] = labels
            series[family.name + "_sum"] = labels
        else:  # gauges, and the exact-name counter
            series[family.name] = labels
    return series


def parse(expressions: list[str]) -> list[dict[str, Any]]:
    require(NODE_MODELS)
    result = run_tool(["node", PROMQL], stdin=json.dumps(expressions))
    assert result.returncode == 0, result.stderr
    parsed: list[dict[str, Any]] = json.loads(result.stdout)
    return parsed


def problems(expressions: list[str]) -> list[str]:
    found = []
    for item in parse(expressions):
        if item["errors"]:
            found.append(f"{item['expr']!r}: syntax error at {item['errors'][0]}")
        if not item["selectors"]:
            found.append(f"{item['expr']!r}: selects no series")
        for selector in item["selectors"]:
            labels = exported().get(selector["metric"])
            if labels is None:
                found.append(f"{item['expr']!r}: {selector['metric']} is not exported by vsr")
            elif not set(selector["labels"]) <= labels:
                missing = sorted(set(selector["labels"]) - labels)
                found.append(f"{item['expr']!r}: {selector['metric']} has no label {missing}")
    return found


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    expressions = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expression = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expression = expression.replace(variable, value)
            expressions.append(expression)
    return expressions


def test_dashboard_queries_parse_and_name_exported_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions = dashboard_expressions(dashboard)
    assert len(expressions) >= 25
    assert problems(expressions) == []
    # The model picker lists a series that carries a model label.
    (model,) = [v for v in dashboard["templating"]["list"] if v["name"] == "model"]
    metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", model["definition"]).groups()  # type: ignore[union-attr]
    assert label in exported()[metric]


def test_dashboard_panels_have_unique_ids_and_fit_the_grid() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_every_reference_series_the_issue_names_is_on_the_dashboard() -> None:
    text = DASHBOARD.read_text(encoding="utf-8")
    for name in (
        "llm_model_requests_total",
        "llm_request_errors_total",
        "llm_model_routing_modifications_total",
        "llm_model_routing_latency_seconds",
        "llm_model_completion_latency_seconds",
        "llm_model_ttft_seconds",
        "llm_model_tpot_seconds",
        "llm_model_prompt_tokens_total",
        "llm_model_completion_tokens_total",
        "llm_prompt_tokens_per_request",
        "llm_completion_tokens_per_request",
        "llm_model_cost_total",
        "llm_category_classifications_count",
        "llm_classifier_latency_seconds",
        "llm_pii_violations_total",
        "llm_reasoning_decisions_total",
        "llm_routing_reason_codes_total",
    ):
        assert name in text, name


def test_alert_rules_parse_and_name_exported_series() -> None:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 6
    for rule in rules:
        assert rule["alert"].startswith("Vsr") and rule["labels"]["severity"]
        assert rule["annotations"]["summary"]
    assert problems([rule["expr"] for rule in rules]) == []


def test_the_checks_catch_mistakes() -> None:
    assert problems(["sum(rate(llm_model_tokens_total[5m]) by"]) != []
    assert problems(["rate(llm_model_tokenz_total[5m])"]) != []
    assert problems(['rate(llm_model_tokens_total{reason="x"}[5m])']) != []


@pytest.fixture(scope="module")
def widest(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return rendered["gpu-everything"]


def test_chart_installs_the_same_rules_and_dashboard(
    rendered: dict[str, list[Manifest]], widest: list[Manifest]
) -> None:
    rule = find(widest, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    config_map = find(widest, "ConfigMap", "vsr-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["vsr-dashboard.json"]) == json.loads(
        DASHBOARD.read_text(encoding="utf-8")
    )
    kinds = {manifest["kind"] for manifest in rendered["default"]}
    assert "PrometheusRule" not in kinds  # off unless asked for
