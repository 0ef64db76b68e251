"""The parts of `run` that need no subprocess: health rules, schedules, metrics, stopping."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from agent_process import wait_until
from apscheduler.triggers.interval import IntervalTrigger
from conftest import SEI_KEY, bare_payload, sent
from jenkins_sim import JenkinsSim
from live_controller import LiveController
from prometheus_client.parser import text_string_to_metric_families
from sei_standin import SeiStandIn

from agent import __version__
from agent.app import Controller
from agent.config import AgentSettings, ConfigError, SeiSettings, Settings, load_settings
from agent.jenkins.endpoints import EXECUTOR_FIELDS
from agent.pipeline import Delivered, Outcome, Report
from agent.sei.client import SeiClient, SeiUnavailable
from agent.service.health import Cycle, evaluate_health
from agent.service.loop import Lane, Service
from agent.service.metrics import PREFIX, Metrics
from agent.service.schedule import Schedule, start_scheduler
from agent.state import StateFile
from agent.stopping import stop_on_signals

T0 = datetime(2026, 1, 5, 10, 0, 30, tzinfo=UTC)
EVERY_MINUTE = Schedule.from_settings(AgentSettings(interval=60))


def cycle(outcome: str, ended: datetime, error: str | None = None) -> Cycle:
    return Cycle(ended - timedelta(seconds=2), ended, outcome, Report(), error)


def health(at: float, **kwargs: Any) -> tuple[bool, str]:
    """Health `at` seconds after T0, the start; kwargs as evaluate_health's."""
    values: dict[str, Any] = {
        "last": None,
        "last_success": None,
        "running_since": None,
        "last_accepted": None,
        **kwargs,
    }
    healthy, body = evaluate_health(
        now=T0 + timedelta(seconds=at), started=T0, schedule=EVERY_MINUTE, **values
    )
    return healthy, body["status"]


def test_health_follows_the_last_cycle_within_two_intervals() -> None:
    assert health(30) == (True, "starting")
    assert health(121) == (False, "stale")  # no cycle finished within the grace (2 x 60 s)
    ok = cycle("ok", T0 + timedelta(seconds=5))
    assert health(100, last=ok, last_success=ok.ended) == (True, "ok")
    assert health(126, last=ok, last_success=ok.ended) == (False, "stale")
    failed = cycle("failed", T0 + timedelta(seconds=65), "SEI answered HTTP 503")
    assert health(66, last=failed, last_success=ok.ended) == (False, "failing")
    # a long cycle that keeps delivering stays healthy, however old the last success
    running = T0 + timedelta(seconds=70)
    delivering = {"running_since": running, "last_accepted": T0 + timedelta(seconds=300)}
    assert health(330, last=failed, last_success=ok.ended, **delivering) == (True, "ok")
    assert health(430, last=failed, last_success=ok.ended, **delivering) == (False, "failing")
    assert health(30, stopping=True) == (False, "stopping")


def test_failing_health_names_the_error() -> None:
    failed = cycle("failed", T0, "SEI answered HTTP 503 on http://sei/v1/custom-cicd")
    healthy, body = evaluate_health(
        now=T0,
        started=T0,
        schedule=EVERY_MINUTE,
        last=failed,
        last_success=None,
        running_since=None,
        last_accepted=None,
    )
    assert not healthy
    assert "HTTP 503" in body["reason"]
    assert body["last_cycle"]["outcome"] == "failed"


def test_cron_schedule_deadline_is_two_fire_times_later() -> None:
    schedule = Schedule.from_settings(AgentSettings(cron="*/5 * * * *", interval=1))
    assert schedule.description == "on cron '*/5 * * * *'"
    since = datetime(2026, 1, 5, 10, 1, tzinfo=UTC)
    assert schedule.deadline(since) == datetime(2026, 1, 5, 10, 10, tzinfo=UTC)
    assert EVERY_MINUTE.deadline(since) == since + timedelta(minutes=2)


@pytest.mark.parametrize("line", ["61 * * * *", "* * *", "@hourly", "0 0 31 2 *"])
def test_bad_cron_is_a_config_error_naming_agent_cron(line: str) -> None:
    with pytest.raises(ConfigError, match="AGENT_CRON"):
        Schedule.from_settings(AgentSettings(cron=line))


def test_cycles_missed_while_the_process_could_not_run_become_one() -> None:
    calls: list[float] = []
    ten_missed = datetime.now(UTC) - timedelta(minutes=10, seconds=30)
    scheduler = start_scheduler(EVERY_MINUTE, lambda: calls.append(time.monotonic()), ten_missed)
    try:
        wait_until(lambda: calls, 5, "the late cycle")
        time.sleep(0.3)  # time enough for a burst of the other ten, were there one
    finally:
        scheduler.shutdown(wait=True)
    assert len(calls) == 1


def test_cycles_never_overlap() -> None:
    running, overlaps, calls = threading.Lock(), [], []

    def slow_cycle() -> None:
        if not running.acquire(blocking=False):
            overlaps.append(1)
            return
        calls.append(1)
        time.sleep(0.25)
        running.release()

    every_50ms = Schedule(IntervalTrigger(seconds=0.05), "test", timedelta(seconds=0.05))
    scheduler = start_scheduler(every_50ms, slow_cycle, datetime.now(UTC))
    try:
        wait_until(lambda: len(calls) >= 3, 5, "three cycles")
    finally:
        scheduler.shutdown(wait=True)
    assert overlaps == []


def test_every_own_metric_is_prefixed_and_jenkins_requests_are_read_live() -> None:
    requests: Counter[str] = Counter({"discover": 3})
    metrics = Metrics({"ci": lambda: requests})
    metrics.builds_sent.labels("ci", "SUCCESS").inc()
    metrics.sei_observer("ci")("202", 0.02)
    requests["builds"] += 2
    families = list(text_string_to_metric_families(metrics.render().decode()))
    names = {f.name for f in families}
    assert all(name.startswith((PREFIX, "process_", "python_")) for name in names)
    assert {"process_resident_memory_bytes", "python_gc_objects_collected"} <= names
    samples = {(s.name, tuple(s.labels.values())): s.value for f in families for s in f.samples}
    assert samples[(PREFIX + "jenkins_requests_total", ("ci", "builds"))] == 2
    assert samples[(PREFIX + "jenkins_requests_total", ("ci", "discover"))] == 3
    assert samples[(PREFIX + "builds_sent_total", ("ci", "SUCCESS"))] == 1
    assert samples[(PREFIX + "sei_request_duration_seconds_count", ("ci", "202"))] == 1
    assert samples[(PREFIX + "build_info", (__version__,))] == 1
    assert samples[(PREFIX + "builds_failed_total", ("ci", "ABORTED"))] == 0  # from the start
    assert samples[(PREFIX + "cycles_total", ("ci", "interrupted"))] == 0
    assert not any(name.endswith("_created") for name, _ in samples)


def test_stop_cuts_sei_retry_waits_short(sei: SeiStandIn) -> None:
    settings = SeiSettings(
        base_url=sei.url, api_key=SEI_KEY, retries=5, retry_wait=30, retry_max_wait=30
    )
    seen: list[str] = []
    stop = threading.Event()
    sei.fail_always(503)

    def observe(status: str, _: float) -> None:
        seen.append(status)
        if len(seen) == 1:  # the stop arrives while the client waits 30 s to retry
            threading.Timer(0.05, stop.set).start()

    client = SeiClient(settings, stop=stop, on_request=observe)
    started = time.monotonic()
    with pytest.raises(SeiUnavailable):
        client.send_build(bare_payload(result="SUCCESS"))
    assert time.monotonic() - started < 5  # not the 30 s wait
    assert seen == ["503"]  # no try after the stop: the build waits for the next run


def test_a_run_stops_between_builds_and_the_next_run_sends_the_rest(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    for name in ("a", "b"):
        jenkins.add_job(name)
        for _ in range(3):
            jenkins.add_build(name)
    stop = threading.Event()

    def stop_after_first(event: Delivered | Report) -> None:  # as SIGTERM would
        if isinstance(event, Delivered) and event.outcome is Outcome.SENT:
            stop.set()

    one_at_a_time = settings.sei.model_copy(update={"concurrency": 1})  # one POST in flight
    settings = settings.model_copy(update={"sei": one_at_a_time})
    with Controller(settings, stop=stop) as controller:
        with StateFile(settings.agent.state_file) as state:
            first = controller.sync(state, observers=[stop_after_first])
        # the POST that was in flight when the stop came is finished, and no other starts
        assert first.sent in (1, 2) and len(sei.accepted) == first.sent
        stop.clear()
        with StateFile(settings.agent.state_file) as state:
            rest = controller.sync(state)
    assert rest.sent == 6 - first.sent
    delivered = sorted((p["job_full_name"], p["build_number"]) for p in sei.accepted)
    assert delivered == [(job, n) for job in ("a", "b") for n in (1, 2, 3)]


def test_a_failed_cycle_shows_on_healthz_without_the_credentials(
    settings: Settings, tmp_path: Path
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    data = settings.model_dump()
    data["jenkins"]["url"] = f"http://127.0.0.1:{port}/"
    data["jenkins"]["api_token"] = settings.jenkins.api_token
    data["sei"]["api_key"] = settings.sei.api_key
    broken = load_settings(overrides=data)
    stop = threading.Event()
    parts = Controller(broken, stop=stop)
    metrics = Metrics({"ci": lambda: parts.jenkins.requests})
    with StateFile(tmp_path / "state.json") as state:
        service = Service([Lane(parts, "ci", metrics)], EVERY_MINUTE, state, metrics, stop)
        service.cycle()
    parts.close()
    healthy, body = service.health()
    assert not healthy and body["status"] == "failing"
    token = settings.jenkins.api_token.get_secret_value()  # type: ignore[union-attr]
    assert "cannot be reached" in body["reason"] and token not in body["reason"]
    assert token not in json.dumps(service.status())
    failed = {"controller": "ci", "outcome": "failed"}
    assert metrics.registry.get_sample_value(PREFIX + "cycles_total", failed) == 1


def test_a_recreated_jobs_taken_numbers_show_on_metrics_and_status(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("svc")
    jenkins.add_build("svc")
    jenkins.add_build("svc")
    stop = threading.Event()
    parts = Controller(settings, stop=stop)
    metrics = Metrics({"ci": lambda: parts.jenkins.requests})
    try:
        with StateFile(settings.agent.state_file) as state:
            service = Service([Lane(parts, "ci", metrics)], EVERY_MINUTE, state, metrics, stop)
            service.cycle()
            jenkins.delete_job("svc")
            jenkins.add_job("svc")
            for _ in range(3):
                jenkins.add_build("svc")
            service.cycle()
    finally:
        parts.close()
    assert sorted(p["build_number"] for p in sei.accepted) == [1, 2, 3]
    taken = metrics.registry.get_sample_value(
        PREFIX + "builds_number_taken_total", {"controller": "ci"}
    )
    assert taken == 2
    status = service.status()
    assert status["controllers"][0]["state"]["builds_number_taken"] == 2
    assert status["controllers"][0]["cycles"][0]["number_taken"] == 2


def test_a_signal_the_kernel_hands_another_thread_still_ends_the_wait_for_a_stop() -> None:
    """What made `run` miss a SIGINT now and then (test_run_e2e): Python runs the handler on the
    main thread only when that thread runs Python code, and an endless wait never does."""
    other = threading.Thread(target=time.sleep, args=(3,), daemon=True)
    other.start()
    with stop_on_signals() as stop:
        assert other.ident is not None
        threading.Timer(0.1, signal.pthread_kill, (other.ident, signal.SIGTERM)).start()
        guard = threading.Timer(5, stop.set)  # the wait would otherwise never end
        guard.start()
        started = time.monotonic()
        stop.wait()
        guard.cancel()
    assert time.monotonic() - started < 1
    assert stop.signal == "SIGTERM"


@contextmanager
def watched(settings: Settings) -> Iterator[tuple[Service, Lane, Metrics]]:
    """A service of one controller, `ci`, whose cycles and looks a test calls itself."""
    stop = threading.Event()
    parts = Controller(settings, stop=stop)
    metrics = Metrics({"ci": lambda: parts.jenkins.requests})
    lane = Lane(parts, "ci", metrics)
    try:
        with StateFile(settings.agent.state_file) as state:
            yield Service([lane], EVERY_MINUTE, state, metrics, stop), lane, metrics
    finally:
        parts.close()


def shown_once(sei: SeiStandIn, job: str, number: int) -> dict[str, Any]:
    """What SEI keeps of a run POSTed exactly once (a second POST would be a resend)."""
    posts = sei.posts_for(job, number)
    assert len(posts) == 1, f"{job} #{number} posted {len(posts)} times"
    return sei.kept(job, number)


def test_the_watch_delivers_a_build_moments_after_it_ends_and_the_cycle_not_again(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("app", "pipeline")
    jenkins.add_build("app")
    jenkins.add_job("tools/lint")  # freestyle, on a numbered executor
    with watched(settings) as (service, lane, metrics):
        service.cycle()  # discovers the jobs; #1 sent
        jenkins.add_build("app", building=True)
        jenkins.add_build("tools/lint", building=True)
        jenkins.reset_requests()
        service.look(lane)  # sees #2 and lint #1 running
        service.look(lane)  # idle: nothing ended
        assert [path for _, path, _ in jenkins.requests] == ["/computer/api/json"] * 2
        jenkins.finish_build("app", 2, result="FAILURE", duration=42_000)
        jenkins.finish_build("tools/lint", 1, result="UNSTABLE")
        jenkins.reset_requests()
        service.look(lane)
        assert sent(sei) == [("app", 1), ("app", 2), ("tools/jobs/lint", 1)]
        # one look, and each ended build read by itself: no listing, no discovery
        assert jenkins.count(r"^/computer/api/json$") == 1
        assert jenkins.count(r"^/api/json") == 0
        assert jenkins.count(r"^/job/app/2/api/json$") == 1
        jenkins.reset_requests()
        service.cycle()  # finds both settled: nothing sent twice
        assert lane.cycles[-1].report.sent == 0
        # app's anchor followed #2, which continued it: only lint, never read whole, is listed
        assert jenkins.count(r"^/job/app/api/json$") == 0
        assert jenkins.count(r"^/job/tools/job/lint/api/json$") == 1
        service.look(lane)
    assert sent(sei) == [("app", 1), ("app", 2), ("tools/jobs/lint", 1)]
    app = shown_once(sei, "app", 2)
    assert (app["result"], app["duration"]) == ("FAILURE", 42_000)
    assert shown_once(sei, "tools/jobs/lint", 1)["result"] == "UNSTABLE"
    assert lane.watch.delivered == 2
    watched_ci = {"controller": "ci"}
    delivered = metrics.registry.get_sample_value(
        PREFIX + "watch_builds_delivered_total", watched_ci
    )
    assert delivered == 2
    delay = metrics.registry.get_sample_value(PREFIX + "delivery_delay_seconds_count", watched_ci)
    assert delay == 3
    assert service.status()["controllers"][0]["watch"]["builds_delivered"] == 2


def test_a_token_that_may_not_read_the_executors_turns_the_watch_off_once(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    jenkins.add_job("app", "pipeline")
    jenkins.add_build("app")
    jenkins.computer_denied = True
    with watched(settings) as (service, lane, _), caplog.at_level("WARNING"):
        service.cycle()
        jenkins.reset_requests()
        for _ in range(3):
            service.look(lane)
    assert jenkins.count(r"^/computer/") == 1  # asked once, then off
    [warning] = [r.getMessage() for r in caplog.records if "watch is off" in r.getMessage()]
    assert "Overall/Read" in warning
    assert service.status()["controllers"][0]["watch"]["on"] is False
    assert service.health()[0]  # the cycles go on, healthy


def test_a_build_the_cycle_delivered_is_not_sent_again_when_the_watch_sees_it_gone(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("app", "pipeline")
    jenkins.add_job("tools/lint")
    with watched(settings) as (service, lane, _):
        service.cycle()  # discovers the jobs
        jenkins.add_build("app", building=True)
        jenkins.add_build("tools/lint", building=True)
        service.look(lane)  # sees both running
        jenkins.finish_build("app", 1, result="FAILURE", duration=42_000)
        jenkins.finish_build("tools/lint", 1)
        service.cycle()  # comes first: sends both
        assert lane.cycles[-1].report.sent == 2
        jenkins.reset_requests()
        service.look(lane)  # the cycle settled both: the watch forgot them, nothing is read
        assert [path for _, path, _ in jenkins.requests] == ["/computer/api/json"]
    assert lane.watch.delivered == 0
    assert sent(sei) == [("app", 1), ("tools/jobs/lint", 1)]
    app = shown_once(sei, "app", 1)
    assert (app["result"], app["duration"]) == ("FAILURE", 42_000)
    assert shown_once(sei, "tools/jobs/lint", 1)["result"] == "SUCCESS"


def test_a_build_that_starts_and_ends_between_two_looks_is_found_by_the_next_cycle(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("app", "pipeline")
    with watched(settings) as (service, lane, _):
        service.cycle()
        service.look(lane)  # nothing runs
        jenkins.add_build("app", building=True)
        jenkins.finish_build("app", 1, result="ABORTED", duration=3_000)
        jenkins.reset_requests()
        service.look(lane)  # nothing runs again: the look cannot know
        assert [path for _, path, _ in jenkins.requests] == ["/computer/api/json"]
        assert sent(sei) == []
        service.cycle()
        assert lane.cycles[-1].report.sent == 1
    assert lane.watch.delivered == 0
    assert shown_once(sei, "app", 1)["result"] == "ABORTED"


def test_the_anchor_never_jumps_a_build_the_watch_did_not_see(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    """#2 starts and ends between two looks, #3 is seen running and delivered by the watch:
    the anchor stays at #1 (the watch's #3 does not continue it), so the next cycle lists the
    job, sends #2 and not #3 again; then the anchor is at #3 and an idle cycle lists nothing."""
    jenkins.add_job("app", "pipeline")
    jenkins.add_build("app")
    with watched(settings) as (service, lane, _):
        service.cycle()  # #1 sent, the anchor at #1
        jenkins.add_build("app", building=True)
        jenkins.finish_build("app", 2, duration=2_000)
        jenkins.add_build("app", building=True)
        service.look(lane)  # sees #3 only
        jenkins.finish_build("app", 3, duration=20_000)
        service.look(lane)
        assert lane.watch.delivered == 1 and sent(sei) == [("app", 1), ("app", 3)]
        jenkins.reset_requests()
        service.cycle()
        assert lane.cycles[-1].report.sent == 1 and jenkins.count(r"^/job/app/api/json$") == 1
        jenkins.reset_requests()
        service.cycle()
        assert [path for _, path, _ in jenkins.requests] == ["/api/json"]
    assert sent(sei) == [("app", 1), ("app", 2), ("app", 3)]
    for number in (1, 2, 3):
        shown_once(sei, "app", number)


def test_an_idle_controller_costs_the_watch_one_request_a_look(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    live = LiveController(jenkins, jobs=4, seed=3)
    live.advance(0)  # every job starts a build
    with watched(settings) as (service, lane, _):
        service.cycle()  # discovers the jobs, all four running
        service.look(lane)
        live.stop_starting()
        live.advance(61)  # the longest build is 60 s: all have ended
        assert live.idle()
        service.look(lane)
        assert lane.watch.delivered == 4
        jenkins.reset_requests()
        for _ in range(6):  # a minute of looks at the default AGENT_WATCH_INTERVAL (10 s)
            service.look(lane)
        assert [(method, path) for method, path, _ in jenkins.requests] == [
            ("GET", "/computer/api/json")
        ] * 6
        [tree] = {parse_qs(query)["tree"][0] for _, _, query in jenkins.requests}
        assert tree == EXECUTOR_FIELDS  # narrow: the job list is never asked between cycles
        jenkins.reset_requests()
        service.cycle()  # the full listing, at AGENT_INTERVAL: one request when idle
        assert [path for _, path, _ in jenkins.requests] == ["/api/json"]
        assert lane.cycles[-1].report.sent == 0
    assert len(sei.accepted) == 4


def test_every_build_of_a_live_controller_reaches_sei_once_by_the_watch_or_the_cycle(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    """Four jobs for four minutes, a look every 10 s and a cycle every minute: a build some
    look saw running is delivered by the look that sees it gone, any other by the next cycle,
    and SEI keeps each once, with its result, start and duration."""
    live = LiveController(jenkins, jobs=4, seed=7, short_share=0.3)
    looks: list[int] = []
    with watched(settings) as (service, lane, _):
        live.advance(0)
        service.cycle()
        for step in range(60):  # four minutes, then 60 s for what runs to end
            if step == 24:
                live.stop_starting()
            if step:
                live.advance(10)
            looks.append(live.now_ms)
            service.look(lane)
            if step % 6 == 0:
                service.cycle()
        assert live.idle()
        cycles_sent = sum(cycle.report.sent for cycle in lane.cycles)
    names = {job: job.replace("team/", "team/jobs/") for job in live.jobs}
    assert sent(sei) == sorted((names[b.job], b.number) for b in live.finished)
    for build in live.finished:
        kept = shown_once(sei, names[build.job], build.number)
        assert (kept["result"], kept["start_time"], kept["duration"]) == (
            build.result,
            build.start_ms,
            build.duration_ms,
        )
    seen = [b for b in live.finished if any(b.start_ms <= at < b.end_ms for at in looks)]
    unseen = len(live.finished) - len(seen)
    assert unseen >= 2 and {b.result for b in live.finished} > {"SUCCESS"}  # the seed's world
    assert lane.watch.delivered == len(seen)
    assert cycles_sent == unseen
