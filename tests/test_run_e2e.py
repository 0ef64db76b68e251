"""`run` end to end: the real command as a subprocess against the simulator and the SEI stand-in.

AGENT_INTERVAL=1, so "within two intervals" is two seconds; every wait is a bounded poll.
"""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest
from agent_process import AgentProcess, sample, wait_until
from conftest import GUID, JENKINS_TOKEN, SEI_KEY, Cli, sent
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

from agent import __version__

CI = "ci-main"  # SEI_INSTANCE_NAME: metrics name each controller by it
P = "jenkins_sei_agent_"


def sent_in_state(cli: Cli, job: str) -> int:
    runs = cli.state["controllers"][GUID]["jobs"][job]["sent"]
    return sum(last - first + 1 for first, last, *_ in runs)


def test_run_delivers_picks_up_new_builds_and_reports_them(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("app", "pipeline")
    jenkins.add_folder("team")
    jenkins.add_job("team/api", "freestyle")
    jenkins.add_build("app")
    jenkins.add_build("app")
    jenkins.add_build("app", result="FAILURE")
    jenkins.add_build("team/api")
    jenkins.add_build("team/api", building=True)
    started = time.time()
    with AgentProcess(cli.env, cli.cwd) as agent:
        wait_until(lambda: len(sei.accepted) == 4, 10, "the first cycle's 4 builds")
        wait_until(
            lambda: (h := agent.health()[1])["status"] == "ok" and h["last_cycle"] is not None,
            5,
            "a finished cycle",
        )
        status, health = agent.health()
        assert status == 200
        assert health["last_cycle"]["outcome"] == "ok"

        metrics = wait_until(
            lambda: (
                (m := agent.metrics())
                and sample(m, P + "running_builds_pending", controller=CI) == 1
                and m
            ),
            5,
            "the running build in the gauge",
        )
        assert sample(metrics, P + "builds_sent_total", result="SUCCESS", controller=CI) == 3
        assert sample(metrics, P + "builds_sent_total", result="FAILURE", controller=CI) == 1
        assert sample(metrics, P + "jobs_tracked", controller=CI) == 2
        assert sample(metrics, P + "jenkins_requests_total", kind="discover", controller=CI) >= 1
        assert sample(metrics, P + "jenkins_requests_total", kind="builds", controller=CI) >= 2
        assert (
            sample(metrics, P + "sei_request_duration_seconds_count", status="202", controller=CI)
            == 4
        )
        assert sample(metrics, P + "cycles_total", outcome="ok", controller=CI) >= 1
        assert sample(metrics, P + "cycle_duration_seconds_count", controller=CI) >= 1
        assert sample(metrics, P + "last_success_timestamp_seconds", controller=CI) >= started
        assert all(name.startswith((P, "process_", "python_")) for name, _ in metrics)
        assert sample(metrics, "process_resident_memory_bytes") > 0
        assert sample(metrics, P + "build_info", version=__version__) == 1
        # labelled counters exist at zero before their first event
        assert (P + "builds_dead_lettered_total", (("controller", CI), ("result", "ABORTED"))) in (
            metrics
        )
        assert (P + "cycles_total", (("controller", CI), ("outcome", "interrupted"))) in metrics

        # a new build, and the running one finishing, arrive within two intervals
        jenkins.add_build("app")
        jenkins.finish_build("team/api", 2, result="UNSTABLE")
        added = time.monotonic()
        wait_until(lambda: len(sei.accepted) == 6, 5, "the new and the finished build")
        assert time.monotonic() - added <= 2 * 1.0 + 0.5
        assert sent(sei) == [("app", n) for n in (1, 2, 3, 4)] + [
            ("team/jobs/api", 1),
            ("team/jobs/api", 2),
        ]
        metrics = wait_until(
            lambda: (
                (m := agent.metrics())
                and sample(m, P + "running_builds_pending", controller=CI) == 0
                and m
            ),
            5,
            "the gauge back to 0",
        )
        assert sample(metrics, P + "builds_sent_total", result="SUCCESS", controller=CI) == 4
        assert sample(metrics, P + "builds_sent_total", result="UNSTABLE", controller=CI) == 1

        status, body = agent.get("/status")
        assert status == 200
        report = json.loads(body)
        assert report["schedule"] == "every 1s"
        assert report["state"]["jobs_tracked"] == 2
        assert report["state"]["builds_sent"] == 6
        assert sum(c["sent"] for c in report["cycles"]) <= 6
        assert report["cycles"][0]["outcome"] == "ok"
        assert agent.get("/nope")[0] == 404

        took = agent.stop(signal.SIGTERM)
    assert agent.proc.returncode == 143, agent.stderr
    assert took < 5
    assert sent_in_state(cli, "app") == 4 and sent_in_state(cli, "team/api") == 2
    events = agent.events
    cycles = [e for e in events if e.get("outcome")]
    assert cycles and {"duration_s", "sent", "jobs", "jenkins_requests"} <= cycles[0].keys()
    assert any("stopped on SIGTERM" in e["message"] for e in events)
    assert SEI_KEY not in agent.stderr and JENKINS_TOKEN not in agent.stderr
    assert "Traceback" not in agent.stderr


@pytest.mark.parametrize("waiting", ["between retries", "on an answer that never comes"])
def test_sigterm_is_honoured_while_waiting_on_jenkins(
    cli: Cli, jenkins: JenkinsSim, waiting: str
) -> None:
    """A 30 s retry wait ends at once; a request in flight ends by its 1 s deadline."""
    jenkins.add_job("app")
    if waiting == "between retries":
        jenkins.inject_fault("api/json", status=503, times=100)
    else:
        jenkins.inject_fault("api/json", delay=30)
    cli.env.update(JENKINS_RETRY_WAIT="30", JENKINS_DEADLINE="1", JENKINS_TIMEOUT="30")
    with AgentProcess(cli.env, cli.cwd) as agent:
        wait_until(lambda: agent.port and jenkins.count("api/json"), 15, "the first discovery")
        took = agent.stop(signal.SIGTERM)
    assert agent.proc.returncode == 143, agent.stderr
    assert took < 2.5, took
    assert jenkins.count("api/json") == 1  # no attempt after the stop
    assert "Traceback" not in agent.stderr


def test_signal_mid_cycle_finishes_the_build_in_flight_and_loses_nothing(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("big")
    for _ in range(20):
        jenkins.add_build("big")
    sei.delay_next(20, 0.1)  # each delivery takes 0.1 s, two at once: a 1 s cycle to interrupt
    cli.env["SEI_CONCURRENCY"] = "2"
    with AgentProcess(cli.env, cli.cwd) as agent:
        wait_until(lambda: len(sei.accepted) >= 3, 10, "the first deliveries")
        took = agent.stop(signal.SIGINT)
    assert agent.proc.returncode == 130, agent.stderr
    assert took < 3
    delivered = len(sei.accepted)
    assert 3 <= delivered < 20
    assert sent_in_state(cli, "big") == delivered  # the build in flight was recorded too
    assert any("stopped on SIGINT" in e["message"] for e in agent.events)

    result = cli("sync")
    assert result.code == 0, result.stderr
    assert sent(sei) == [("big", n) for n in range(1, 21)]
    assert all(len(sei.posts_for("big", n)) == 1 for n in range(1, 21))  # none sent twice


def test_failing_sei_turns_healthz_to_503_and_back(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("x")
    jenkins.add_build("x")
    with AgentProcess(cli.env, cli.cwd) as agent:
        wait_until(lambda: sei.accepted and agent.health()[1]["status"] == "ok", 10, "a cycle")
        sei.fail_always(503)
        jenkins.add_build("x", result="FAILURE")
        _, health = wait_until(
            lambda: (h := agent.health())[0] == 503 and h, 5, "/healthz to turn 503"
        )
        assert health["status"] == "failing"
        assert "503" in health["reason"]
        assert health["last_cycle"]["outcome"] == "failed"
        failed = sample(agent.metrics(), P + "builds_failed_total", result="FAILURE", controller=CI)
        assert failed >= 1
        assert sample(agent.metrics(), P + "cycles_total", outcome="failed", controller=CI) >= 1

        sei.fail_always(None)
        wait_until(lambda: agent.health()[0] == 200, 5, "/healthz back to 200")
        wait_until(lambda: len(sei.accepted) == 2, 5, "the build held back by the outage")
        assert agent.stop() < 5
    assert agent.proc.returncode == 143, agent.stderr
    assert sent(sei) == [("x", 1), ("x", 2)]


def test_sigterm_during_a_long_sei_retry_wait_still_exits_at_once(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("x")
    jenkins.add_build("x")
    sei.fail_always(503)
    slow_retries = {"SEI_RETRIES": "5", "SEI_RETRY_WAIT": "30", "SEI_RETRY_MAX_WAIT": "30"}
    with AgentProcess({**cli.env, **slow_retries}, cli.cwd) as agent:
        wait_until(lambda: sei.posts_for("x", 1), 10, "the first try")
        took = agent.stop()
    assert agent.proc.returncode == 143, agent.stderr
    assert took < 3  # not the 30 s wait before the next retry
    assert len(sei.posts_for("x", 1)) <= 2  # the first try, at most one more on the way out
    assert cli.state["controllers"][GUID]["jobs"]["x"]["sent"] == []


def test_cron_schedule_runs_a_first_cycle_and_locks_out_a_second_agent(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("x")
    jenkins.add_build("x")
    with AgentProcess({**cli.env, "AGENT_CRON": "0 0 1 1 *"}, cli.cwd) as agent:
        wait_until(lambda: sei.accepted, 10, "the first cycle at start")
        status, body = agent.get("/status")
        assert status == 200
        assert json.loads(body)["schedule"] == "on cron '0 0 1 1 *'"
        assert agent.health()[0] == 200

        second = cli("run", timeout=10)
        assert second.code == 2
        assert "in use by another agent" in second.stderr
        assert agent.stop() < 5
    assert agent.proc.returncode == 143, agent.stderr


def test_bad_cron_and_busy_port_exit_2_naming_the_setting(cli: Cli) -> None:
    cli.env["AGENT_CRON"] = "61 * * * *"
    bad = cli("run", timeout=10)
    assert bad.code == 2
    assert "AGENT_CRON" in bad.stderr and "61" in bad.stderr
    assert "Traceback" not in bad.stderr

    del cli.env["AGENT_CRON"]
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        cli.env["AGENT_HTTP_PORT"] = str(taken.getsockname()[1])
        busy = cli("run", timeout=10)
    assert busy.code == 2
    assert "AGENT_HTTP_PORT" in busy.stderr
    assert "Traceback" not in busy.stderr
