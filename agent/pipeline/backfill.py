"""`backfill`: send the history between two dates, skipping what was already sent.

A lister thread reads each job's first page of builds while the job before it is handled, so
the calling thread keeps applying answers instead of waiting for a listing.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from agent.jenkins.builds import read_builds
from agent.jenkins.types import Job, Window
from agent.pipeline.ledger import JobRun
from agent.pipeline.plan import identified
from agent.pipeline.report import Report
from agent.pipeline.runner import BoundedRunner
from agent.state import JobState

if TYPE_CHECKING:
    from agent.pipeline.collector import Collector

log = logging.getLogger(__name__)

PROGRESS_LOG_SECONDS = 30.0


def backfill(
    collector: Collector, since_ms: int, until_ms: int, extra_globs: list[str] | None
) -> Report:
    jobs = collector.jobs(extra_globs)
    report = collector.report
    interactive = sys.stderr.isatty()
    bar = tqdm(total=len(jobs), unit="job", disable=not interactive, file=sys.stderr)
    last_log = time.monotonic()
    window = Window(since_ms=since_ms)
    try:
        with (
            collector.runner() as runner,
            ThreadPoolExecutor(1, thread_name_prefix="list") as lister,
        ):
            for done, (job, listing) in enumerate(_ahead(collector, lister, jobs, window), 1):
                if collector.worker.halted():
                    break
                state = collector.tracked.setdefault(job.full_name, JobState())
                collector.guarded(
                    _backfill_job, job, collector, runner, state, listing, since_ms, until_ms
                )
                bar.update(1)
                bar.set_postfix(sent=report.sent, refused=report.dead)
                if not interactive and time.monotonic() - last_log >= PROGRESS_LOG_SECONDS:
                    last_log = time.monotonic()
                    log.info("backfill: %d/%d jobs, %d builds sent", done, len(jobs), report.sent)
    finally:
        bar.close()
    return collector.finished()


def _ahead(
    collector: Collector, lister: ThreadPoolExecutor, jobs: list[Job], window: Window
) -> Iterator[tuple[Job, Future[Iterator[dict[str, Any]]]]]:
    """Each job with its listing, whose first page is read while the job before it is
    handled: the main thread would otherwise stop collecting answers during every read."""
    pending: deque[tuple[Job, Future[Iterator[dict[str, Any]]]]] = deque()
    for job in jobs:
        pending.append((job, lister.submit(_start_listing, collector, job, window)))
        if len(pending) > 1:
            yield pending.popleft()
    yield from pending


def _start_listing(collector: Collector, job: Job, window: Window) -> Iterator[dict[str, Any]]:
    """Make a listing's first request; its further pages are read as they are consumed."""
    builds = read_builds(collector.jenkins, job, window, collector.settings.jenkins.page_size)
    first = next(builds, None)
    return builds if first is None else chain([first], builds)


def _backfill_job(
    job: Job,
    collector: Collector,
    runner: BoundedRunner[Any],
    state: JobState,
    listing: Future[Iterator[dict[str, Any]]],
    since_ms: int,
    until_ms: int,
) -> None:
    run = JobRun(job, state)
    for build in listing.result():
        if not identified(build):
            log.warning(
                "%s: a build without a number or start time was listed; skipped", job.full_name
            )
        elif build["timestamp"] <= until_ms:
            collector.handle(runner, run, build, since_ms, keep_new=False)
    collector.ledger.submitted_all(run)
