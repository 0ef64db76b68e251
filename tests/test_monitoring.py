"""deploy/monitoring/: the Grafana dashboard and the alert rules query only series the agent
exports (the names in a real /metrics body), so neither shows an empty panel nor an alert that
can never fire. promtool checks and unit-tests the rules themselves in CI (.ci/run)."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from conftest import ROOT
from prometheus_client.parser import text_string_to_metric_families

from agent.service.metrics import Metrics

MONITORING = ROOT / "deploy" / "monitoring"
SERIES = re.compile(r"\b(?:jenkins_sei_agent|process|python)_[a-z_]+\b")


def exported() -> set[str]:
    """Every sample name of a /metrics body after a cycle and an SEI request."""
    metrics = Metrics({"ci": lambda: {"discover": 1}})
    metrics.sei_observer("ci")("202", 0.05)
    metrics.cycle_seconds.labels("ci").observe(1.5)
    body = metrics.render().decode()
    return {s.name for family in text_string_to_metric_families(body) for s in family.samples}


def queries(dashboard: dict[str, Any]) -> list[str]:
    found = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return found + [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]


def test_every_dashboard_query_names_series_the_agent_exports() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    names = exported()
    used: set[str] = set()
    for expr in queries(dashboard):
        series = set(SERIES.findall(expr))
        assert series, f"names no series of the agent: {expr}"
        assert series <= names, f"{expr}: {series - names} not exported"
        used |= series
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] == "jenkins-sei-agent"
    own = {n for n in names if n.startswith("jenkins_sei_agent_") and not n.endswith("_created")}
    histograms = {n for n in own if n.endswith(("_sum", "_count", "_bucket"))}
    assert own - histograms - used == set(), "every metric of the agent's own has a panel"


def test_every_alert_names_series_the_agent_exports() -> None:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"][0]["rules"]
    names = exported() | {"up"}
    for rule in rules:
        series = set(SERIES.findall(rule["expr"])) | ({"up"} if "up{" in rule["expr"] else set())
        assert series and series <= names, rule["alert"]
    assert {rule["alert"] for rule in rules} == {
        "JenkinsSeiAgentDown",
        "JenkinsSeiAgentAbsent",
        "JenkinsSeiAgentNoSuccessfulCycle",
        "JenkinsSeiAgentSeiRefusingBuilds",
        "JenkinsSeiAgentDeadLettersGrowing",
        "JenkinsSeiAgentDeliveryDelayHigh",
    }
    tested = yaml.safe_load((MONITORING / "alerts.test.yml").read_text())["tests"]
    fired = {t["alertname"] for test in tested for t in test["alert_rule_test"] if t["exp_alerts"]}
    assert fired == {rule["alert"] for rule in rules}  # promtool sees each one fire
