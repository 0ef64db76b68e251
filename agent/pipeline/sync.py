"""`sync`: send every finished build not sent yet; a job never seen, within the lookback,
counted back from the controller's clock, which its build times are on.

A job is read only when discovery shows something new since its last complete read, and only
down to its oldest build not yet settled, so an idle cycle costs one request whatever the number
of jobs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import closing
from typing import Any

from agent.jenkins.types import Job, Window
from agent.pipeline.ledger import JobRun
from agent.pipeline.plan import Read, Skip, identified, newest_of, plan_sync, recreated
from agent.pipeline.report import Report
from agent.pipeline.run import Run
from agent.pipeline.runner import BoundedRunner
from agent.state import JobState

log = logging.getLogger(__name__)


def sync(run: Run, extra_globs: list[str] | None = None) -> Report:
    planned = _planned(run, run.jobs(extra_globs))
    with (
        run.runner() as runner,
        closing(run.ahead(planned, functools.partial(_list, run))) as listings,
    ):
        for (job, plan), listed in listings:  # a halt closes the listings at once
            if run.halted():
                break
            run.guarded(_sync_job, job, run, runner, run.state_of(job), plan, listed)
    report = run.finished()
    if report.older:
        seconds = run.options.lookback_ms // 1000
        since = f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds // 3600}h"
        if seconds % 3600:
            since = f"{seconds // 60}m"
        log.info(
            "up to %d older builds of %d jobs seen for the first time started before the "
            "lookback (AGENT_LOOKBACK, %s); `jenkins-sei-agent backfill --since YYYY-MM-DD` "
            "sends them",
            report.older,
            report.older_jobs,
            since,
        )
    return report


def _planned(run: Run, jobs: list[Job]) -> Iterator[tuple[Job, Read]]:
    """The jobs to read, with what to read of each (on the calling thread: it reads the state).
    A job with nothing to read is settled here."""
    for job in jobs:
        state = run.state_of(job)
        if state.floor_ms is None:
            state.floor_ms = run.jenkins_now() - run.options.lookback_ms
            state.changed()
        plan = plan_sync(job, state)
        if isinstance(plan, Skip):
            if plan.anchor and state.anchor is None and not state.sent.runs:
                _left_to_backfill(run, plan.anchor[0])
            state.anchor = plan.anchor
            state.changed()
        elif plan is not None:
            yield job, plan


def _list(run: Run, planned: tuple[Job, Read]) -> list[dict[str, Any]]:
    """What the plan reads of the job, on a lister thread."""
    job, plan = planned
    listed = list(run.read_builds(job, plan.window)) if plan.window else []
    return listed + list(filter(None, (run.read_build(job, n) for n in plan.one_by_one)))


def _sync_job(
    job: Job,
    run: Run,
    runner: BoundedRunner[Any],
    state: JobState,
    plan: Read,
    listing: Future[list[dict[str, Any]]],
) -> None:
    first = state.anchor is None and not state.sent.runs
    if recreated(state.anchor, newest_of(job)):
        log.info("%s was recreated (build numbers restarted); reading it afresh", job.full_name)
    floor = state.floor_ms or 0
    listed = listing.result()
    builds = {b["number"]: b for b in listed if identified(b)}
    anchor = state.anchor
    if anchor and anchor[0] in builds and builds[anchor[0]].get("timestamp") != anchor[1]:
        log.info(
            "%s was recreated (build #%d changed); reading it afresh", job.full_name, anchor[0]
        )
        again = list(run.read_builds(job, Window(since_ms=floor)))
        listed += again
        builds.update((b["number"], b) for b in again if identified(b))
    # An entry without a number or start time may be a build not sent yet: the read is
    # incomplete, so the anchor stays where it was and the job is read again next run.
    skipped = sum(not identified(b) for b in listed)
    if skipped:
        log.warning(
            "%s: %d listed builds without a number or start time skipped; the job is read "
            "again next run",
            job.full_name,
            skipped,
        )
    read = JobRun(job, state, failed=skipped > 0)

    def finish() -> None:
        state.open &= builds.keys()  # builds listed earlier and now gone were rotated away
        if plan.window is not None:  # it reached the newest build: the anchor moves there
            newest_read = max(builds, default=None)
            state.anchor = (newest_read, builds[newest_read]["timestamp"]) if newest_read else None
        state.changed()

    read.finish = finish
    if first and plan.window and builds:
        inside = [n for n, b in builds.items() if b["timestamp"] >= floor]
        older = min(inside, default=max(builds) + 1) - 1
        if older > 0 and len(inside) < len(builds):  # the listing reached below the lookback
            _left_to_backfill(run, older)
    for number in sorted(builds):
        run.handle(runner, read, builds[number], floor)
    run.submitted_all(runner, read)


def _left_to_backfill(run: Run, builds: int) -> None:
    """A job seen for the first time has up to `builds` finished builds older than the
    lookback: counted, and said once at the end of the run."""
    run.report.older += builds
    run.report.older_jobs += 1
