"""`backfill`: send the history between two dates, skipping what was already sent.

Lister threads read the next jobs' first pages of builds while a job is handled
(`Run.ahead`), so the calling thread keeps applying answers instead of waiting for a listing.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, closing, nullcontext
from itertools import chain
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from agent.jenkins.types import Job, Window
from agent.pipeline.ledger import JobRun
from agent.pipeline.plan import identified
from agent.pipeline.report import Report
from agent.pipeline.run import Run
from agent.pipeline.runner import BoundedRunner
from agent.state import JobState

log = logging.getLogger(__name__)

PROGRESS_LOG_SECONDS = 30.0


class Progress:
    """Builds examined and sent, and jobs done: a bar on a terminal, else a log line every
    PROGRESS_LOG_SECONDS, even inside one job of 100,000 builds."""

    def __init__(self, jobs: int, report: Report) -> None:
        self.jobs, self.report, self.done, self.examined = jobs, report, 0, 0
        self.selected = 0  # builds between the dates
        # No bar at all off a terminal: even a disabled one starts a monitor thread and a lock.
        self.bar = tqdm(unit="build", file=sys.stderr) if sys.stderr.isatty() else None
        self.last_log = time.monotonic()

    def build(self) -> None:
        self.examined += 1
        if self.bar is not None:
            self.bar.update(1)
            return
        if time.monotonic() - self.last_log >= PROGRESS_LOG_SECONDS:
            self.last_log = time.monotonic()
            log.info(
                "backfill: %d builds examined, %d sent; %d/%d jobs done",
                self.examined,
                self.report.sent,
                self.done,
                self.jobs,
            )

    def job_done(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix(jobs=f"{self.done}/{self.jobs}", sent=self.report.sent)

    def logging(self) -> AbstractContextManager[object]:
        """Log lines above the bar, never through it."""
        return logging_redirect_tqdm() if self.bar is not None else nullcontext()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def backfill(run: Run, since_ms: int, until_ms: int, extra_globs: list[str] | None) -> Report:
    jobs = run.jobs(extra_globs)
    window = Window(since_ms=since_ms)
    progress = Progress(len(jobs), run.report)
    try:
        listed = functools.partial(_start_listing, run, window)
        with (
            progress.logging(),
            run.runner() as runner,
            closing(run.ahead(jobs, listed)) as listings,  # a halt stops the listing at once
        ):
            for job, listing in listings:
                if run.halted():
                    break
                state = run.state_of(job)
                run.guarded(
                    _backfill_job,
                    job,
                    run,
                    runner,
                    state,
                    listing,
                    (since_ms, until_ms),
                    progress,
                )
                progress.job_done()
    finally:
        progress.close()
    report = run.finished()
    if jobs and not progress.selected and not run.halted():
        log.warning(
            "no build of the %d selected jobs started between --since and --until", len(jobs)
        )
    return report


def _start_listing(run: Run, window: Window, job: Job) -> Iterator[dict[str, Any]]:
    """Make a listing's first request; its further pages are read as they are consumed."""
    builds = run.read_builds(job, window)
    first = next(builds, None)
    return builds if first is None else chain([first], builds)


def _backfill_job(
    job: Job,
    run: Run,
    runner: BoundedRunner[Any],
    state: JobState,
    listing: Future[Iterator[dict[str, Any]]],
    dates: tuple[int, int],
    progress: Progress,
) -> None:
    since_ms, until_ms = dates
    read = JobRun(job, state)
    for build in listing.result():
        if run.halted():
            run.ledger.postponed(read)
            break
        progress.build()
        if not identified(build):
            log.warning(
                "%s: a build without a number or start time was listed; skipped", job.full_name
            )
        elif since_ms <= build["timestamp"] <= until_ms:
            progress.selected += 1
            run.handle(runner, read, build, since_ms, keep_new=False)
    run.submitted_all(runner, read)
