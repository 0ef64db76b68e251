"""The pipeline's parts on their own: the pure plan, the bounded runner, the ledger, the worker;
then what they guarantee together against the simulator (clock skew, a failing build)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from conftest import JENKINS_TOKEN, JENKINS_USER, Agent, now_ms, sent
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

from agent.config import Settings
from agent.jenkins.types import Job, Window
from agent.pipeline.ledger import JobRun, Ledger
from agent.pipeline.plan import Disposition, Read, Skip, disposition, plan_sync
from agent.pipeline.report import Outcome, Report, Result
from agent.pipeline.runner import BoundedRunner, Prepared, running
from agent.state import JobState

DAY = 86_400_000
HOUR = 3_600_000


def job(newest: int | None, started: int | None = None) -> Job:
    return Job(names=("j",), last_build=newest, last_build_ts=started)


# -- plan ------------------------------------------------------------------------------------


def test_plan_reads_only_what_changed_down_to_what_is_not_settled() -> None:
    state = JobState(floor_ms=1000, anchor=(7, 5000))
    assert plan_sync(job(7, 5000), state) is None  # nothing new: no request
    assert plan_sync(job(9, 9000), state) == Read(Window(down_to=7, expected=3))
    state.open = {5}  # still running, two builds below the newest
    assert plan_sync(job(7, 5000), state) == Read(None, (5,))
    assert plan_sync(job(9, 9000), state) == Read(Window(down_to=7, expected=3), (5,))
    state.open = {7}
    assert plan_sync(job(7, 5000), state) == Read(None, (7,))
    state.open = set(range(1, 7))  # many open: paging down to them is cheaper
    assert plan_sync(job(7, 5000), state) == Read(Window(down_to=1, expected=7))


def test_plan_of_a_job_first_seen_and_of_a_recreated_one() -> None:
    assert plan_sync(job(3, 500), JobState(floor_ms=1000)) == Skip(anchor=(3, 500))
    assert plan_sync(job(3, 2000), JobState(floor_ms=1000)) == Read(Window(since_ms=1000))
    assert plan_sync(job(None), JobState(floor_ms=1000, anchor=(4, 10))) == Skip(anchor=None)
    recreated = JobState(floor_ms=1000, anchor=(40, 9000))
    assert plan_sync(job(2, 9500), recreated) == Read(Window(since_ms=1000))


def test_a_tracked_job_reads_new_builds_whatever_their_start_time() -> None:
    """Jenkins' clock behind the agent's: the new build 'started' before the lookback floor."""
    state = JobState(floor_ms=10 * DAY, anchor=(4, 5 * DAY))
    assert plan_sync(job(5, 6 * DAY), state) == Read(Window(down_to=4, expected=2))
    build = {"number": 5, "timestamp": 6 * DAY, "building": False}
    assert disposition(build, state, 10 * DAY) is Disposition.DELIVER
    older = {"number": 3, "timestamp": 4 * DAY, "building": False}
    assert disposition(older, state, 10 * DAY) is Disposition.IGNORE
    assert disposition(build, state, 10 * DAY, keep_new=False) is Disposition.IGNORE  # backfill


def test_dispositions() -> None:
    state = JobState(floor_ms=0)
    state.sent.add(1, 100)
    assert disposition({"number": 1, "timestamp": 100}, state, 0) is Disposition.SETTLED
    # another #1: a recreated job's, whose number SEI holds for the old #1
    assert disposition({"number": 1, "timestamp": 999}, state, 0) is Disposition.TAKEN
    state.taken.add(1, 999)
    assert disposition({"number": 1, "timestamp": 999}, state, 0) is Disposition.SETTLED
    assert disposition({"number": 4, "timestamp": 999}, state, 0) is Disposition.DELIVER
    assert disposition({"number": 2, "timestamp": 200, "building": True}, state, 0) is (
        Disposition.RUNNING
    )
    assert disposition({"number": 3}, state, 0) is Disposition.IGNORE
    assert disposition({"number": True, "timestamp": 1}, state, 0) is Disposition.IGNORE


# -- runner ----------------------------------------------------------------------------------


def test_runner_sends_senders_at_once_ahead_of_reads_and_keeps_twice_that_at_risk() -> None:
    """At most 4 sends in flight; sends started but not yet on disk never exceed 8, even with
    a slow disk; every result is applied on the caller's thread and the last save holds all."""
    caller = threading.current_thread()
    applied: list[int] = []
    saved = [0]  # how many results the newest completed write records
    lock = threading.Lock()
    counts = {"sending": 0, "started": 0, "peak_sending": 0, "peak_risk": 0}

    def write(text: str) -> None:
        time.sleep(0.003)  # a slow disk: sends wait for permits rather than pile up unsaved
        with lock:
            saved[0] = int(text)

    runner: BoundedRunner[int] = BoundedRunner(
        4, readers=2, snapshot=lambda: str(len(applied)), write=write
    )

    def then(value: int) -> None:
        assert threading.current_thread() is caller
        applied.append(value)

    def send(value: int) -> int:
        with lock:
            counts["sending"] += 1
            counts["started"] += 1
            counts["peak_sending"] = max(counts["peak_sending"], counts["sending"])
            counts["peak_risk"] = max(counts["peak_risk"], counts["started"] - saved[0])
        time.sleep(0.001)
        with lock:
            counts["sending"] -= 1
        return value

    def prepare(value: int) -> Prepared[int]:
        return Prepared(send=functools.partial(send, value))

    with running(runner):
        for n in range(60):
            runner.submit(functools.partial(prepare, n), then)
    assert sorted(applied) == list(range(60))
    assert counts["peak_sending"] <= 4 and counts["peak_risk"] <= 8
    assert counts["peak_sending"] >= 2  # the senders did work side by side
    assert saved[0] == 60  # the last save holds every result


def test_a_gated_send_holds_no_sender_and_starts_when_its_gate_opens() -> None:
    """The newest build's POST waits behind its olders without taking a sender: with a single
    sender, a later task still goes through while the gated one waits."""
    order: list[str] = []

    class Gate:
        def __init__(self) -> None:
            self.action: Callable[[], None] | None = None

        def when_open(self, action: Callable[[], None]) -> None:
            self.action = action

    def send(name: str) -> str:
        order.append(name)
        return name

    gate = Gate()
    runner: BoundedRunner[str] = BoundedRunner(1, readers=1)
    with running(runner):
        runner.submit(lambda: Prepared(send=lambda: send("newest"), gate=gate), lambda _: None)
        runner.submit(lambda: Prepared(send=lambda: send("older")), lambda _: None)
        runner.submit(lambda: Prepared(result="nothing to send"), lambda _: None)
        while not order:
            runner._collect()
        assert order == ["older"] and gate.action is not None
        gate.action()
    assert order == ["older", "newest"]


def test_a_failed_save_ends_the_run_and_lets_go_of_senders_waiting_for_the_disk() -> None:
    """Senders wait for a save before they start (the at-risk bound); when saving fails the
    error surfaces and the waiting senders are let go without sending, rather than hanging."""
    sent: list[int] = []

    def write(text: str) -> None:
        raise OSError(28, "No space left on device")

    def send(value: int) -> int:
        sent.append(value)
        return value

    def prepare(value: int) -> Prepared[int]:
        return Prepared(send=functools.partial(send, value))

    runner: BoundedRunner[int] = BoundedRunner(1, readers=2, snapshot=lambda: "", write=write)
    with pytest.raises(OSError, match="No space"), running(runner):
        for n in range(30):
            runner.submit(functools.partial(prepare, n), lambda _: None)
    assert 1 <= len(sent) <= 4  # what was in flight or answered, never the rest


def test_one_failing_result_loses_no_other() -> None:
    """A result whose application fails still lets every other finish and be applied."""
    applied: list[int] = []

    def then(value: int) -> None:
        if value == 3:
            raise RuntimeError("disk full")
        applied.append(value)

    def prepare(value: int) -> Prepared[int]:
        return Prepared(send=lambda: value)

    runner: BoundedRunner[int] = BoundedRunner(4)
    submitted: list[int] = []
    with pytest.raises(RuntimeError, match="disk full"), running(runner):
        for n in range(20):
            runner.submit(functools.partial(prepare, n), then)  # raises once 3's result is applied
            submitted.append(n)
    assert 3 in submitted and len(submitted) < 20  # the run stopped submitting
    assert sorted(applied) == [n for n in submitted if n != 3]  # every other result applied
    assert len(runner._pending) == 0


# -- ledger ----------------------------------------------------------------------------------


def test_ledger_counts_refusals_and_unmappable_apart_and_moves_the_anchor_last() -> None:
    report = Report()
    ledger = Ledger(report, dry_run=False)
    state = JobState(anchor=(1, 10))
    run = JobRun(Job(names=("j",)), state, finish=lambda: setattr(state, "anchor", (4, 40)))
    builds = [{"number": n, "timestamp": n * 10} for n in (2, 3, 4)]
    for _ in builds:
        ledger.started(run)
    ledger.submitted_all(run)
    ledger.record(run, builds[0], Result(Outcome.SENT, {"x": 1}))
    ledger.record(run, builds[1], Result(Outcome.REFUSED, status=400, message="no"))
    assert state.anchor == (1, 10)  # one still in flight
    ledger.record(run, builds[2], Result(Outcome.UNMAPPABLE, message="bad"))
    assert state.anchor == (4, 40)
    assert (report.sent, report.refused, report.unmappable, report.dead) == (1, 1, 1, 2)
    assert state.sent.contains(2, 20) and set(state.dead) == {3, 4}


def test_ledger_keeps_a_failed_build_for_the_next_run() -> None:
    report = Report()
    ledger = Ledger(report, dry_run=False)
    state = JobState(anchor=(1, 10))
    run = JobRun(Job(names=("j",)), state, finish=lambda: setattr(state, "anchor", (2, 20)))
    ledger.started(run)
    ledger.submitted_all(run)
    ledger.record(run, {"number": 2, "timestamp": 20}, Result(Outcome.FAILED))
    assert state.anchor == (1, 10) and state.open == {2} and report.failed == 1
    assert report.exit_code == 1


# -- together --------------------------------------------------------------------------------


def test_jenkins_clock_days_behind_never_drops_a_later_build(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    """The controller's clock is 3 days behind the agent's and the lookback 24 h."""
    behind = jenkins.clock_ms - 3 * DAY
    jenkins.add_job("app")
    jenkins.add_build("app", timestamp=behind)
    agent = Agent(settings)
    assert agent.run().exit_code == 0  # first seen: its build looks older than the lookback
    for n in range(2, 5):
        jenkins.add_build("app", timestamp=behind + n * 60_000)
    assert agent.run().exit_code == 0
    assert sent(sei) == [("app", 2), ("app", 3), ("app", 4)]


def test_the_lookback_counts_on_the_controllers_clock(settings: Settings, sei: SeiStandIn) -> None:
    """Jenkins' clock 3 days behind the agent's, a 1-day lookback: a job first seen has its
    builds of the last hour sent, not taken for builds older than the lookback."""
    with JenkinsSim(
        user=JENKINS_USER, token=JENKINS_TOKEN, clock_ms=now_ms() - HOUR, skew_ms=-3 * DAY
    ) as jenkins:
        jenkins.add_job("app")
        for _ in range(3):
            jenkins.add_build("app")
        skewed = settings.model_copy(
            update={
                "jenkins": settings.jenkins.model_copy(update={"url": jenkins.url}),
                "agent": settings.agent.model_copy(update={"lookback": timedelta(days=1)}),
            }
        )
        report = Agent(skewed).run()
    assert report.exit_code == 0 and report.older == 0
    assert sent(sei) == [("app", 1), ("app", 2), ("app", 3)]


def test_an_unexpected_error_fails_one_build_which_is_sent_next_run(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.mapping import map_build as real  # the function the worker calls
    from agent.pipeline import worker

    jenkins.add_job("app")
    for _ in range(3):
        jenkins.add_build("app")

    def buggy(build: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if build["number"] == 2:
            raise ValueError("a bug, not the build's fault")
        return real(build, *args, **kwargs)

    monkeypatch.setattr(worker, "map_build", buggy)
    report = Agent(settings).run()
    assert (report.sent, report.failed, report.dead, report.exit_code) == (2, 1, 0, 1)
    monkeypatch.setattr(worker, "map_build", real)
    assert Agent(settings).run().exit_code == 0
    assert sent(sei) == [("app", 1), ("app", 2), ("app", 3)]


def test_a_build_stuck_in_building_costs_one_narrow_request_a_cycle(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    """Not a page through the job's history down to it, every cycle."""
    jenkins.add_job("big")
    for n in range(1, 301):  # paging down to #5 would cost 6 requests a cycle
        jenkins.add_build("big", building=n == 5)
    agent = Agent(settings)
    agent.run()
    for _ in range(2):
        jenkins.reset_requests()
        assert agent.run().running == 1
        assert jenkins.count() == 2  # discovery, then build #5 by itself
        assert jenkins.count(r"^/job/big/5/api/json$") == 1
    jenkins.finish_build("big", 5)
    assert agent.run().sent == 1
    jenkins.reset_requests()
    assert agent.run().sent == 0 and jenkins.count() == 1  # settled: idle again
