"""The pipeline's parts on their own: the pure plan, the bounded runner, the ledger, the worker;
then what they guarantee together against the simulator (clock skew, a failing build)."""

from __future__ import annotations

import functools
import threading
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
from agent.pipeline.runner import BoundedRunner, running
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


def test_runner_bounds_in_flight_and_unsaved_apart_and_applies_on_the_callers_thread() -> None:
    caller = threading.current_thread()
    applied: list[int] = []
    written: list[str] = []
    peak = {"risk": 0, "flight": 0}
    gate = threading.Semaphore(0)

    def snapshot() -> str:
        return str(len(applied))

    runner: BoundedRunner[int] = BoundedRunner(4, snapshot, written.append)

    def then(value: int) -> None:
        assert threading.current_thread() is caller
        applied.append(value)

    def task(value: int) -> int:
        gate.acquire()
        return value

    with running(runner):
        for n in range(40):
            gate.release()
            runner.submit(functools.partial(task, n), then)
            at_risk = len(runner._inflight) + runner._unsaved + runner._writing_count
            peak["risk"] = max(peak["risk"], at_risk)
            peak["flight"] = max(peak["flight"], len(runner._inflight))
    assert sorted(applied) == list(range(40))
    assert peak["flight"] <= 4 and peak["risk"] <= 8
    assert written and written[-1] == "40"  # the last save holds every result


def test_one_failing_result_loses_no_other() -> None:
    """A result whose application fails still lets every other finish and be applied."""
    applied: list[int] = []

    def then(value: int) -> None:
        if value == 3:
            raise RuntimeError("disk full")
        applied.append(value)

    def task(value: int) -> int:
        return value

    runner: BoundedRunner[int] = BoundedRunner(4)
    submitted: list[int] = []
    with pytest.raises(RuntimeError, match="disk full"), running(runner):
        for n in range(8):
            runner.submit(functools.partial(task, n), then)  # raises once 3's result is applied
            submitted.append(n)
    assert 3 in submitted and len(submitted) < 8  # the run stopped submitting
    assert sorted(applied) == [n for n in submitted if n != 3]  # every other result applied
    assert len(runner._inflight) == 0


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
