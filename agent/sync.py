"""The whole flow: discover jobs -> read builds -> map -> deliver -> record.

`sync` sends what finished since the last run (or within the lookback for a job never seen);
`backfill` walks history between two dates. Both record a build only after SEI answered 2xx,
so a crash at any point can cause a resend, never a loss.

Reading a build's details, mapping it and posting it happen on `sei.concurrency` worker
threads; the state is changed and saved only by the calling thread, as answers come back. No
more builds are in flight than workers, so a crash resends at most that many. In a backfill, a
lister thread reads each job's first page of builds while the job before it is handled.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import chain
from typing import Any, Literal, TextIO

from tqdm import tqdm

from agent.config import Settings
from agent.deliver import Refusal, SeiClient, SeiRefused, SeiUnavailable
from agent.jenkins.builds import Window, read_builds
from agent.jenkins.details import DetailReader
from agent.jenkins.discover import discover, matches
from agent.jenkins.names import JobNaming
from agent.jenkins.types import Job
from agent.jenkins_client import (
    JenkinsClient,
    JenkinsError,
    JenkinsNotFound,
    JenkinsUnavailable,
)
from agent.mapping import MapContext, Unmappable, map_build, parse_manifests
from agent.sei.payload import push_artifacts_body
from agent.state import JobState, StateFile

log = logging.getLogger(__name__)

CUSTOM_CICD = "/v1/custom-cicd"
PUSH_ARTIFACTS = "/v1/cicd/push_artifacts"
PROGRESS_LOG_SECONDS = 30.0


@dataclass
class Report:
    """What one run did; its exit code is the CLI's."""

    jobs: int = 0
    sent: int = 0
    dead: int = 0
    unsent: int = 0
    running: int = 0
    failed_jobs: int = 0
    sei_down: SeiUnavailable | None = None

    @property
    def exit_code(self) -> int:
        if self.sei_down is not None and self.sei_down.unreachable:
            return 3
        return 1 if (self.dead or self.unsent or self.failed_jobs or self.sei_down) else 0

    def summary(self) -> str:
        return (
            f"{self.jobs} jobs, {self.sent} builds sent, {self.dead} refused by SEI, "
            f"{self.unsent} left for the next run, {self.running} still running, "
            f"{self.failed_jobs} jobs unreadable"
        )


@dataclass
class _JobRun:
    """One job's builds in flight: its anchor moves only when every one of them succeeded."""

    job: Job
    state: JobState
    pending: int = 0
    submitted_all: bool = False
    failed: bool = False
    finish: Callable[[], None] | None = None


@dataclass
class _Outcome:
    """What became of one build on a worker thread, applied to the state by the caller."""

    kind: Literal["sent", "dead", "unmappable", "unsent", "unreadable", "gone", "skipped", "fatal"]
    payload: dict[str, Any] | None = None
    status: int | None = None
    message: str = ""
    error: Exception | None = None


def now_ms() -> int:
    return int(time.time() * 1000)


class Collector:
    def __init__(
        self,
        settings: Settings,
        jenkins: JenkinsClient,
        sei: SeiClient | None,
        state: StateFile,
        *,
        output: TextIO | None = None,
        dry_run: bool = False,
        clock: Callable[[], int] = now_ms,
        stop: threading.Event | None = None,
    ) -> None:
        assert settings.sei.instance_guid and settings.sei.instance_name
        self.settings = settings
        self.jenkins = jenkins
        self.sei = sei
        self.state = state
        self.output = output
        self.dry_run = dry_run
        self.clock = clock
        self.stop = stop
        self.context = MapContext(
            instance_guid=settings.sei.instance_guid,
            instance_name=settings.sei.instance_name,
            instance_url=settings.sei.instance_url or settings.jenkins_base,
            naming=JobNaming(settings.agent.job_names),
            cd_jobs=tuple(settings.agent.cd_jobs),
            ci_jobs=tuple(settings.agent.ci_jobs),
            library_repos=tuple(settings.agent.library_repos),
            project_name=settings.agent.project_name,
            rules=tuple(settings.agent.rules),
            max_artifacts=settings.agent.max_artifacts,
        )
        self.details = DetailReader(
            jenkins,
            steps=settings.jenkins.steps,
            upstream_depth=settings.jenkins.upstream_depth,
            stage_source=settings.jenkins.stage_source,
        )
        self._said_url = False
        self.tracked = state.jobs(settings.sei.instance_guid, settings.jenkins_base)
        self.report = Report()
        self._workers = settings.sei.concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: dict[Future[_Outcome], tuple[_JobRun, dict[str, Any]]] = {}
        self._done: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()  # finished futures
        self._unsaved = 0  # answers applied to the state since it was last saved
        self._writer: ThreadPoolExecutor | None = None
        self._writing: Future[None] | None = None  # a save on the writer thread
        self._writing_count = 0  # the answers that save records
        self._halt = threading.Event()  # SEI down or refusing: no new deliveries this run
        self._fatal: Exception | None = None
        self._unreadable: set[str] = set()

    # -- discovery -------------------------------------------------------------------------

    def jobs(self, extra_globs: list[str] | None = None) -> list[Job]:
        """The selected jobs; what discovery saw also names upstream jobs and the instance URL."""
        cfg = self.settings.jenkins
        inventory = discover(self.jenkins, cfg.folder_depth)
        naming = JobNaming.of(
            self.settings.agent.job_names, ((j.names, j.path_containers) for j in inventory.jobs)
        )
        self.details.naming = naming
        self.context = replace(
            self.context, naming=naming, instance_url=self._instance_url(inventory.root_url)
        )
        found = [
            job
            for job in inventory.jobs
            if matches(job.full_name, cfg.include, cfg.exclude)
            and matches(job.full_name, extra_globs or [], [])
        ]
        self.report.jobs = len(found)
        return found

    def _instance_url(self, reported: str | None) -> str:
        """SEI_INSTANCE_URL, else the root URL Jenkins reports (the one users click; SEI builds
        every link from it), else the configured address, which is what Jenkins itself reports
        when no root URL is set."""
        configured = self.settings.sei.instance_url
        if configured:
            return configured.rstrip("/") + "/"
        if reported and reported != self.context.instance_url and not self._said_url:
            self._said_url = True
            log.info(
                "Jenkins reports its URL as %s: SEI links to it (SEI_INSTANCE_URL overrides)",
                reported,
            )
        return reported or self.settings.jenkins_base

    # -- sync ------------------------------------------------------------------------------

    def sync(self, extra_globs: list[str] | None = None) -> Report:
        lookback_ms = int(self.settings.agent.lookback.total_seconds() * 1000)
        with self._deliveries():
            for job in self.jobs(extra_globs):
                if self._halted():
                    break
                state = self.tracked.get(job.full_name)
                if state is None:
                    state = self.tracked[job.full_name] = JobState()
                if state.floor_ms is None:
                    state.floor_ms = self.clock() - lookback_ms
                    state.changed()
                self._guarded(self._sync_job, job, state)
        return self._finished()

    def _sync_job(self, job: Job, state: JobState) -> None:
        newest = (job.last_build, job.last_build_ts) if job.last_build is not None else None
        if newest == state.anchor and not state.open:
            return  # nothing started or finished since the last complete read
        floor = state.floor_ms or 0
        if newest is None or (newest[1] is not None and newest[1] < floor and not state.open):
            state.anchor = newest  # no build inside the lookback window
            state.changed()
            return
        recreated = _recreated(state.anchor, newest)
        if recreated:
            log.info("%s was recreated (build numbers restarted); reading it afresh", job.full_name)
        if state.anchor is None or recreated:
            window = Window(since_ms=floor)
        else:
            down_to = min(state.open | {state.anchor[0]})
            window = Window(down_to=down_to, since_ms=floor, expected=newest[0] - down_to + 1)
        builds = {b["number"]: b for b in self._read(job, window)}
        anchor = state.anchor
        if anchor and anchor[0] in builds and builds[anchor[0]].get("timestamp") != anchor[1]:
            log.info(
                "%s was recreated (build #%d changed); reading it afresh", job.full_name, anchor[0]
            )
            builds.update({b["number"]: b for b in self._read(job, Window(since_ms=floor))})
        run = _JobRun(job, state)

        def finish() -> None:
            state.open &= builds.keys()  # builds listed earlier and now gone were rotated away
            newest_read = max(builds, default=None)
            state.anchor = (newest_read, builds[newest_read]["timestamp"]) if newest_read else None
            state.changed()

        run.finish = finish
        for number in sorted(builds):
            self._handle(run, builds[number], floor)
        self._submitted_all(run)

    def _read(self, job: Job, window: Window) -> Iterable[dict[str, Any]]:
        pages = read_builds(self.jenkins, job, window, self.settings.jenkins.page_size)
        return [b for b in pages if _identified(job, b)]

    # -- backfill --------------------------------------------------------------------------

    def backfill(self, since_ms: int, until_ms: int, extra_globs: list[str] | None) -> Report:
        jobs = self.jobs(extra_globs)
        interactive = sys.stderr.isatty()
        bar = tqdm(total=len(jobs), unit="job", disable=not interactive, file=sys.stderr)
        last_log = time.monotonic()
        window = Window(since_ms=since_ms)
        try:
            with self._deliveries(), ThreadPoolExecutor(1, thread_name_prefix="list") as lister:
                for done, (job, listing) in enumerate(self._ahead(lister, jobs, window), 1):
                    if self._halted():
                        break
                    state = self.tracked.setdefault(job.full_name, JobState())
                    self._guarded(self._backfill_job, job, state, listing, since_ms, until_ms)
                    bar.update(1)
                    bar.set_postfix(sent=self.report.sent, refused=self.report.dead)
                    if not interactive and time.monotonic() - last_log >= PROGRESS_LOG_SECONDS:
                        last_log = time.monotonic()
                        log.info(
                            "backfill: %d/%d jobs, %d builds sent",
                            done,
                            len(jobs),
                            self.report.sent,
                        )
        finally:
            bar.close()
        return self._finished()

    def _ahead(
        self, lister: ThreadPoolExecutor, jobs: list[Job], window: Window
    ) -> Iterator[tuple[Job, Future[Iterator[dict[str, Any]]]]]:
        """Each job with its listing, whose first page is read while the job before it is
        handled: the main thread would otherwise stop collecting answers during every read."""
        pending: deque[tuple[Job, Future[Iterator[dict[str, Any]]]]] = deque()
        for job in jobs:
            pending.append((job, lister.submit(self._start_listing, job, window)))
            if len(pending) > 1:
                yield pending.popleft()
        yield from pending

    def _start_listing(self, job: Job, window: Window) -> Iterator[dict[str, Any]]:
        """Make a listing's first request; its further pages are read as they are consumed."""
        builds = read_builds(self.jenkins, job, window, self.settings.jenkins.page_size)
        first = next(builds, None)
        return builds if first is None else chain([first], builds)

    def _backfill_job(
        self,
        job: Job,
        state: JobState,
        listing: Future[Iterator[dict[str, Any]]],
        since_ms: int,
        until_ms: int,
    ) -> None:
        run = _JobRun(job, state)
        for build in listing.result():
            if _identified(job, build) and build["timestamp"] <= until_ms:
                self._handle(run, build, since_ms)
        self._submitted_all(run)

    # -- deliveries ------------------------------------------------------------------------

    @contextmanager
    def _deliveries(self) -> Iterator[None]:
        """Worker threads for the run; leaving waits for every build in flight."""
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="deliver")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="state")
        try:
            yield
        finally:
            while self._inflight:
                self._collect()
            self._save()
            self._pool.shutdown()
            self._writer.shutdown()
            self._pool = self._writer = None

    def _finished(self) -> Report:
        """After `_deliveries`, which drained the workers and saved the state."""
        if self._fatal is not None:
            raise self._fatal
        return self.report

    def _halted(self) -> bool:
        return self._halt.is_set() or (self.stop is not None and self.stop.is_set())

    def _guarded(self, work: Callable[..., None], job: Job, *args: Any) -> None:
        """Run one job's reading; a job Jenkins cannot serve now is read again next run."""
        try:
            work(job, *args)
        except JenkinsNotFound:
            log.info("%s disappeared while it was read; skipped", job.full_name)
        except JenkinsUnavailable:
            raise
        except JenkinsError as exc:
            self._job_unreadable(job, exc)

    def _job_unreadable(self, job: Job, exc: Exception) -> None:
        if job.full_name not in self._unreadable:
            self._unreadable.add(job.full_name)
            self.report.failed_jobs += 1
            log.warning("%s: %s; it is read again next run", job.full_name, exc)

    def _handle(self, run: _JobRun, build: dict[str, Any], floor_ms: int) -> None:
        state = run.state
        number, timestamp = build.get("number"), build.get("timestamp")
        if not isinstance(number, int) or not isinstance(timestamp, int) or timestamp < floor_ms:
            return
        if build.get("building"):
            state.open.add(number)
            state.changed()
            self.report.running += 1
            return
        if state.sent.contains(number, timestamp) or state.is_dead(number, timestamp):
            if number in state.open:
                state.open.discard(number)
                state.changed()
            return
        if self._halted():
            run.failed = True  # the anchor stays put, so this build is read again next run
            return
        self._make_room()
        assert self._pool is not None
        future = self._pool.submit(self._deliver, run.job, build)
        self._inflight[future] = (run, build)
        future.add_done_callback(self._done.put)
        run.pending += 1

    def _submitted_all(self, run: _JobRun) -> None:
        run.submitted_all = True
        self._settle(run)

    def _settle(self, run: _JobRun) -> None:
        if run.submitted_all and run.pending == 0 and not run.failed and run.finish:
            run.finish()

    def _make_room(self) -> None:
        """Wait until one more build may be in flight.

        A build SEI accepted but the state file does not hold yet would be sent again after a
        crash, just like a build in flight, so both count against `sei.concurrency`. The file
        is saved (on the writer thread) once a quarter of them are such builds: a save every
        few builds, not every build, and never a wait for the disk on this thread.
        """
        while len(self._inflight) + self._unsaved + self._writing_count >= self._workers:
            if self._writing is not None and self._writing.done():
                self._written()
            elif self._writing is None and (
                self._unsaved * 4 >= self._workers or not self._inflight
            ):
                self._save_in_background()
            else:
                self._collect()

    def _save_in_background(self) -> None:
        """Snapshot the state here, write it on the writer thread while deliveries go on.

        The builds it records keep counting against `sei.concurrency` until it is on disk.
        """
        assert self._writer is not None
        if self.dry_run:
            self._unsaved = 0
            return
        self._writing = self._writer.submit(self.state.write, self.state.snapshot(reuse=True))
        self._writing.add_done_callback(self._done.put)
        self._writing_count, self._unsaved = self._unsaved, 0

    def _written(self) -> None:
        assert self._writing is not None
        self._writing.result()  # a StateError stops the run like a failed save would
        self._writing, self._writing_count = None, 0

    def _collect(self) -> None:
        """Apply every answer that came back, waiting for at least one (or for the save).

        Finished futures arrive on a queue (a done-callback each): cheaper at thousands of
        builds than `concurrent.futures.wait` over everything in flight every time.
        """
        done = [self._done.get()]
        with suppress(queue.Empty):
            while True:
                done.append(self._done.get_nowait())
        for future in done:
            if future not in self._inflight:
                if future is self._writing:
                    self._written()
                continue  # a save that `_make_room` already saw finish
            run, build = self._inflight.pop(future)
            self._apply(run, build, future.result())
            self._unsaved += 1
            run.pending -= 1
            self._settle(run)

    def _deliver(self, job: Job, build: dict[str, Any]) -> _Outcome:
        """On a worker thread: read the build's details, map it and post it. No state here."""
        if self._halted():
            return _Outcome("skipped")
        number = build["number"]
        try:
            details = self.details.read(job, build)
        except JenkinsNotFound:
            return _Outcome("gone")
        except JenkinsUnavailable as exc:
            self._halt.set()
            return _Outcome("fatal", error=exc)
        except JenkinsError as exc:
            return _Outcome("unreadable", error=exc)
        for problem in parse_manifests(details.manifests)[1]:
            log.warning("%s #%d: artifact manifest %s; skipped", job.full_name, number, problem)
        try:
            payload = map_build(build, job, self.context, details).to_json()
        except (Unmappable, ValueError) as exc:
            return _Outcome("unmappable", message=f"cannot be mapped: {exc}")
        if self.dry_run:
            return _Outcome("sent", payload)
        assert self.sei is not None
        try:
            answer = self.sei.post(CUSTOM_CICD, payload)
            push = self._artifact_push(payload)
            if push and not isinstance(answer, Refusal):
                answer = self.sei.post(PUSH_ARTIFACTS, push)
        except SeiUnavailable as exc:
            self._halt.set()
            return _Outcome("unsent", error=exc)
        except SeiRefused as exc:
            self._halt.set()
            return _Outcome("fatal", error=exc)
        if isinstance(answer, Refusal):
            return _Outcome("dead", status=answer.status, message=answer.message)
        return _Outcome("sent", payload)

    def _apply(self, run: _JobRun, build: dict[str, Any], outcome: _Outcome) -> None:
        """Record what became of one build: the only place deliveries change the state."""
        state, job = run.state, run.job
        number, timestamp = build["number"], build["timestamp"]
        state.changed()
        if outcome.kind == "sent":
            assert outcome.payload is not None
            if not self.dry_run:
                state.sent.add(number, timestamp)
                state.open.discard(number)
            self._emit(outcome.payload)
            self.report.sent += 1
            log.debug("sent %s #%d", job.full_name, number)
        elif outcome.kind in ("dead", "unmappable"):
            self._dead_letter(job, state, number, timestamp, outcome.status, outcome.message)
        elif outcome.kind == "gone":
            log.info("%s #%d disappeared while it was read; skipped", job.full_name, number)
        else:
            run.failed = True
            if outcome.kind == "unsent":
                state.open.add(number)
                self.report.unsent += 1
                if self.report.sei_down is None:
                    log.error("%s; the rest waits for the next run", outcome.error)
                self.report.sei_down = outcome.error  # type: ignore[assignment]
            elif outcome.kind == "unreadable":
                assert outcome.error is not None
                self._job_unreadable(job, outcome.error)
            elif outcome.kind == "fatal" and self._fatal is None:
                self._fatal = outcome.error

    def _artifact_push(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        sei = self.settings.sei
        if not sei.push_artifacts or not sei.integration_id:
            return None
        return push_artifacts_body(payload, sei.integration_id)

    def _dead_letter(
        self, job: Job, state: JobState, number: int, timestamp: int, status: int | None, why: str
    ) -> None:
        state.dead[number] = {
            "start_time": timestamp,
            "status": status,
            "message": why,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        state.open.discard(number)
        self.report.dead += 1
        log.warning("%s #%d refused (%s): %s", job.full_name, number, status or "agent", why)

    def _emit(self, payload: dict[str, Any]) -> None:
        if self.output is not None:
            self.output.write(json.dumps(payload, sort_keys=True) + "\n")
            self.output.flush()

    def _save(self) -> None:
        if self._writing is not None:
            self._written()
        if not self.dry_run:
            self.state.save()
        self._unsaved = 0


def _recreated(anchor: tuple[int, int] | None, newest: tuple[int, int | None] | None) -> bool:
    """Numbers went backwards, or the same number started at another time."""
    if anchor is None or newest is None:
        return False
    return newest[0] < anchor[0] or (newest[0] == anchor[0] and newest[1] != anchor[1])


def _identified(job: Job, build: dict[str, Any]) -> bool:
    """A build is known by its number and start time; one lacking either cannot be tracked."""
    number, started = build.get("number"), build.get("timestamp")
    if isinstance(number, int) and isinstance(started, int) and not isinstance(started, bool):
        return True
    log.warning("%s: a build without a number or start time was listed; skipped", job.full_name)
    return False
