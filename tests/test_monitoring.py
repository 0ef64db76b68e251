"""deploy/monitoring/: the Grafana dashboard and the alert rules query only series the agent
exports (the names in a real /metrics body), so neither shows an empty panel nor an alert that
can never fire. promtool checks and unit-tests the rules themselves in CI (.ci/run)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from conftest import ROOT, Cli
from jenkins_sim import JenkinsSim
from prometheus_client.parser import text_string_to_metric_families
from sei_standin import SeiStandIn

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


def samples_of(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a metrics file, by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }


def test_sync_and_backfill_write_their_metrics_for_the_textfile_collector(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, tmp_path: Path
) -> None:
    """AGENT_METRICS_FILE: a cron sync exports what `run` would (builds by result, the delay
    from a build's end to SEI's acceptance, the cycle and its outcome, Jenkins requests), the
    figures of that run alone, rewritten whole by the next, except the last success, which a
    failed run carries over; a path it cannot write is exit 2."""
    jenkins.add_job("app")
    for result in ("SUCCESS", "FAILURE", "SUCCESS"):
        jenkins.add_build("app", result=result)
    file = tmp_path / "textfile" / "jenkins-sei-agent.prom"
    file.parent.mkdir()
    cli.env["AGENT_METRICS_FILE"] = str(file)
    assert cli("sync").code == 0
    first = samples_of(file)
    ci = (("controller", "ci-main"),)
    assert first[("jenkins_sei_agent_builds_sent_total", (*ci, ("result", "SUCCESS")))] == 2
    assert first[("jenkins_sei_agent_builds_sent_total", (*ci, ("result", "FAILURE")))] == 1
    assert first[("jenkins_sei_agent_delivery_delay_seconds_count", ci)] == 3
    assert first[("jenkins_sei_agent_cycles_total", (*ci, ("outcome", "ok")))] == 1
    assert first[("jenkins_sei_agent_last_success_timestamp_seconds", ci)] > 0
    requests = ("jenkins_sei_agent_jenkins_requests_total", (*ci, ("kind", "discover")))
    assert first[requests] == 1
    assert not [name for name, _ in first if not name.startswith("jenkins_sei_agent_")]
    assert not [name for name, _ in first if "watch" in name or "sei_request" in name]
    assert list(file.parent.iterdir()) == [file]  # written by a rename: no temporary left
    assert cli("backfill", "--since", "2000-01-01").code == 0  # everything was sent already
    again = samples_of(file)
    assert again[("jenkins_sei_agent_builds_sent_total", (*ci, ("result", "SUCCESS")))] == 0
    assert again[("jenkins_sei_agent_cycles_total", (*ci, ("outcome", "ok")))] == 1
    sei.fail_always(503)
    jenkins.add_build("app")
    cli.env["SEI_RETRIES"] = "0"
    assert cli("sync").code != 0
    down = samples_of(file)
    assert down[("jenkins_sei_agent_cycles_total", (*ci, ("outcome", "failed")))] == 1
    assert down[("jenkins_sei_agent_builds_failed_total", (*ci, ("result", "SUCCESS")))] == 1
    success = ("jenkins_sei_agent_last_success_timestamp_seconds", ci)
    assert down[success] == again[success] > 0  # a failed run keeps the last success's time
    sei.fail_always(None)
    cli.env["AGENT_METRICS_FILE"] = str(tmp_path / "missing" / "agent.prom")
    refused = cli("sync")
    assert refused.code == 2 and "AGENT_METRICS_FILE" in refused.stderr
    assert "Traceback" not in refused.stderr
