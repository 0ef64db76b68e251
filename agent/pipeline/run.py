"""One run of the pipeline for one controller: discover -> read -> map -> deliver -> record.

`Run` is what `sync` and `backfill` (agent/pipeline/sync.py, backfill.py) share: job discovery,
what to do with each listed build, the bounded runner and the report. It is handed its parts
ready-made by the one wiring module, agent/app.py, and knows nothing of settings.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from agent.jenkins.builds import read_build, read_builds
from agent.jenkins.client import JenkinsClient, JenkinsError, JenkinsNotFound, JenkinsUnavailable
from agent.jenkins.discover import discover, matches
from agent.jenkins.names import Scheme
from agent.jenkins.types import Job, Window
from agent.mapping import MapContext
from agent.pipeline.ledger import JobRun, Ledger
from agent.pipeline.plan import Disposition, disposition
from agent.pipeline.report import Report
from agent.pipeline.runner import BoundedRunner, running
from agent.pipeline.worker import Worker
from agent.state import JobState

log = logging.getLogger(__name__)
T = TypeVar("T")
U = TypeVar("U")
# The most the lookback floor follows a controller's clock ahead of this machine's (its Date).
MAX_AHEAD_MS = 3_600_000


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class RunOptions:
    """What a run takes from the settings, as plain values (agent/app.py fills them)."""

    lookback_ms: int
    page_size: int
    folder_depth: int
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    job_names: Scheme
    senders: int  # SEI_CONCURRENCY: POSTs in flight (and as many answered, unsaved)
    readers: int  # threads reading and mapping builds ahead of the POSTs
    listers: int  # threads listing jobs' builds ahead of the readers
    instance_url: str | None  # SEI_INSTANCE_URL
    jenkins_base: str  # the address the agent reaches Jenkins at


# Saving what the ledger applied: a snapshot on the caller's thread, a write on the writer's.
Saver = tuple[Callable[[], str], Callable[[str], None]]


class Run:
    """One run for one controller. Only the calling thread touches the state; builds are read
    and mapped on `options.readers` threads and posted on `options.senders`, and no more builds
    are at risk than twice that many senders (a crash resends at most that many:
    agent/pipeline/runner.py)."""

    def __init__(
        self,
        jenkins: JenkinsClient,
        worker: Worker,
        ledger: Ledger,
        context: MapContext,
        tracked: dict[str, JobState],
        options: RunOptions,
        *,
        save: Saver | None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        """`save` None: nothing is written (a dry run)."""
        self.jenkins = jenkins
        self.worker = worker
        self.ledger = ledger
        self.report = ledger.report
        self.context = context
        self.tracked = tracked
        self.options = options
        self._save = save
        self.clock = clock
        self._said_skew = False
        self._skew_ms = 0  # the controller's clock minus the agent's, as discovery found it
        self.selected: list[Job] = []  # the jobs of the last discovery, as selected

    # -- what both drivers share -----------------------------------------------------------

    def jobs(self, extra_globs: list[str] | None = None) -> list[Job]:
        """The selected jobs; what discovery saw also names upstream jobs and the instance URL."""
        opts = self.options
        inventory = discover(self.jenkins, opts.folder_depth)
        naming = inventory.naming(opts.job_names)
        self.worker.details.naming = naming
        if inventory.clock_ms is not None:
            self._skew_ms = self._bounded_skew(inventory.clock_ms - self.clock())
        url = inventory.instance_url(opts.instance_url, opts.jenkins_base)
        self.context = replace(self.context, naming=naming, instance_url=url)
        included = [j for j in inventory.jobs if matches(j.full_name, opts.include, opts.exclude)]
        found = [j for j in included if matches(j.full_name, extra_globs or [], [])]
        if extra_globs and not found:
            log.warning(
                "--jobs %s selects none of the %d jobs (globs on full names, such as "
                "'team/*'; see `check` for the jobs found)",
                " ".join(extra_globs),
                len(included),
            )
        self.report.jobs = len(found)
        self.selected = found
        return found

    def state_of(self, job: Job) -> JobState:
        """What the state knows of the job, a new entry for a job first seen."""
        return self.tracked.setdefault(job.full_name, JobState())

    def settled(self, job: Job, number: int) -> bool:
        """The job's last complete read reached the build and it is not open: sent, dead-lettered
        or taken, never to be read again."""
        state = self.tracked.get(job.full_name)
        return (
            state is not None
            and state.anchor is not None
            and number <= state.anchor[0]
            and number not in state.open
        )

    def read_builds(self, job: Job, window: Window) -> Iterator[dict[str, Any]]:
        return read_builds(self.jenkins, job, window, self.options.page_size)

    def read_build(self, job: Job, number: int) -> dict[str, Any] | None:
        return read_build(self.jenkins, job, number)

    def halted(self) -> bool:
        """SEI down, credentials refused, or a stop asked for: no new deliveries this run."""
        return self.worker.halted()

    def _bounded_skew(self, skew_ms: int) -> int:
        """How far the controller's clock is ahead, as its Date header says, at most
        MAX_AHEAD_MS: a proxy's Date two days ahead would lift a new job's lookback floor
        over its recent builds. Behind is taken as it is (a lower floor only reads more)."""
        if skew_ms <= MAX_AHEAD_MS:
            return skew_ms
        if not self._said_skew:
            self._said_skew = True
            log.warning(
                "Jenkins (or a proxy in between) dates its answers %.1f h ahead of this "
                "machine's clock; the lookback is taken at most %d h ahead of it",
                skew_ms / 3_600_000,
                MAX_AHEAD_MS // 3_600_000,
            )
        return MAX_AHEAD_MS

    def jenkins_now(self) -> int:
        """The controller's clock (ms), which its build times are on: the agent's, moved by
        how far apart the two were at discovery."""
        return self.clock() + self._skew_ms

    def ahead(
        self, items: Iterable[T], read: Callable[[T], U]
    ) -> Generator[tuple[T, Future[U]], None, None]:
        """Each item with its `read` (a listing), started up to `2 x options.listers` items
        ahead on lister threads: the calling thread applies answers and hands out builds
        while the next jobs are listed, and never waits for a listing it could have had. Close
        it to stop listing (a halt): what was not started yet is not read."""
        depth = 2 * self.options.listers
        pending: deque[tuple[T, Future[U]]] = deque()
        with ThreadPoolExecutor(self.options.listers, thread_name_prefix="list") as listers:
            try:
                for item in items:
                    pending.append((item, listers.submit(read, item)))
                    if len(pending) >= depth:
                        yield pending.popleft()
                while pending:
                    yield pending.popleft()
            finally:
                for _, listing in pending:
                    listing.cancel()  # the caller stopped early: nothing more is read

    def runner(self) -> AbstractContextManager[BoundedRunner[Any]]:
        """The bounded runner of this run, as a context: leaving drains it and saves."""
        snapshot, write = self._save if self._save else (None, None)
        opts = self.options
        return running(
            BoundedRunner(opts.senders, readers=opts.readers, snapshot=snapshot, write=write)
        )

    def finished(self) -> Report:
        """After the runner drained and saved: raise what ended the run, else the report."""
        return self.ledger.finished()

    def guarded(self, work: Callable[..., None], job: Job, *args: Any) -> None:
        """Run one job's reading; a job Jenkins cannot serve now is read again next run."""
        try:
            work(job, *args)
        except JenkinsNotFound:
            log.info("%s disappeared while it was read; skipped", job.full_name)
        except JenkinsUnavailable:
            raise
        except JenkinsError as exc:
            self.ledger.job_unreadable(job, exc)

    def handle(
        self,
        runner: BoundedRunner[Any],
        run: JobRun,
        build: dict[str, Any],
        floor_ms: int,
        *,
        keep_new: bool = True,
    ) -> None:
        """One listed build: remember it, skip it, or hand it to the runner (read, then post)."""
        what = disposition(build, run.state, floor_ms, keep_new=keep_new)
        if what is Disposition.IGNORE:
            return
        number = build["number"]
        if what is Disposition.RUNNING:
            self.ledger.running(run, number)
        elif what is Disposition.SETTLED:
            self.ledger.settled(run, number)
        elif what is Disposition.TAKEN:
            self.ledger.taken(run, number, build["timestamp"])
        elif self.halted():
            self.ledger.postponed(run)  # the anchor stays put: listed again next run
        elif run.newest is None or number > run.newest["number"]:
            older, run.newest = run.newest, build
            if older is not None:
                self._deliver(runner, run, older)
        else:
            self._deliver(runner, run, build)

    def submitted_all(self, runner: BoundedRunner[Any], run: JobRun) -> None:
        """The job's read was handled whole: its newest build goes now, and is posted once
        every older one was answered, so that SEI's job row ends on it (docs/sei-contract.md)."""
        newest, run.newest = run.newest, None
        if newest is not None and self.halted():
            self.ledger.postponed(run)
        elif newest is not None:
            self._deliver(runner, run, newest, last=True)
        self.ledger.submitted_all(run)

    def _deliver(
        self, runner: BoundedRunner[Any], run: JobRun, build: dict[str, Any], *, last: bool = False
    ) -> None:
        self.ledger.started(run)
        if not last:
            run.olders.add()
        runner.submit(
            lambda: self.worker.prepare(
                run.job,
                build,
                after=run.olders if last else None,
                done=None if last else run.olders.done,
            ),
            lambda result: self.ledger.record(run, build, result),
        )
