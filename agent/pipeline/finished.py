"""The builds the watch saw end (agent/service/watch.py), delivered as a cycle would: each read
with one narrow request, then details, map, POST and the state, exactly once, a job's newest
last. The job's anchor follows them only where they continue it without a gap; the next
cycle's listing settles the rest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from agent.jenkins.types import Job
from agent.pipeline.ledger import JobRun
from agent.pipeline.report import Report
from agent.pipeline.run import Run
from agent.pipeline.runner import BoundedRunner
from agent.state import JobState

Ended = tuple[Job, int]


def deliver_finished(run: Run, ended: Sequence[Ended]) -> tuple[Report, list[Ended]]:
    """Deliver the builds in `ended`; returns the report and those still building (a node
    block's executor freed before its run ended), for the next watch to look at again.

    A job no cycle has read yet is left to the cycle: its lookback decides what is sent.
    """
    numbers: dict[str, list[int]] = defaultdict(list)
    jobs: dict[str, Job] = {}
    for job, number in ended:
        numbers[job.full_name].append(number)
        jobs[job.full_name] = job
    building: list[Ended] = []
    with run.runner() as runner:
        for name, wanted in numbers.items():
            if run.halted():
                break
            state = run.tracked.get(name)
            if state is not None and state.floor_ms is not None:
                run.guarded(_deliver_job, jobs[name], run, runner, sorted(wanted), building)
    return run.finished(), building


def _deliver_job(
    job: Job, run: Run, runner: BoundedRunner[Any], wanted: list[int], building: list[Ended]
) -> None:
    state = run.state_of(job)
    read = JobRun(job, state)
    ended: dict[int, int] = {}  # number -> start time of the builds read as finished
    for number in wanted:
        build = run.read_build(job, number)
        if build is None:
            continue  # deleted meanwhile
        if build.get("building"):
            building.append((job, number))
            continue
        ended[number] = build["timestamp"]
        run.handle(runner, read, build, state.floor_ms or 0)
    read.finish = lambda: _follow(state, ended)
    run.submitted_all(runner, read)


def _follow(state: JobState, ended: dict[int, int]) -> None:
    """Once every build the watch read of the job settled: the anchor follows them while they
    continue it without a gap (none open), so that the next cycle has nothing to list for
    them and an idle controller's cycle stays one request."""
    if state.anchor is None:
        return
    number, started = state.anchor
    while number + 1 in ended and number + 1 not in state.open:
        number += 1
        started = ended[number]
    if number != state.anchor[0]:
        state.anchor = (number, started)
        state.changed()
