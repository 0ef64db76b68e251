"""The pipeline wired for one controller: discover -> read -> map -> deliver -> record.

`Collector` holds the parts (the worker, the ledger, the runner, the state of this controller's
jobs) and what `sync` and `backfill` share: job discovery and what to do with each listed
build. The drivers themselves are agent/pipeline/sync.py and agent/pipeline/backfill.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TextIO

from agent.config import Settings
from agent.jenkins.client import JenkinsClient, JenkinsError, JenkinsNotFound, JenkinsUnavailable
from agent.jenkins.details import DetailReader
from agent.jenkins.discover import discover, matches
from agent.jenkins.names import JobNaming
from agent.jenkins.types import Job
from agent.mapping import MapContext
from agent.pipeline.ledger import JobRun, Ledger
from agent.pipeline.plan import Disposition, disposition
from agent.pipeline.report import Report
from agent.pipeline.runner import BoundedRunner, running
from agent.pipeline.worker import Worker
from agent.sei.client import SeiClient
from agent.state import StateFile

log = logging.getLogger(__name__)
# The most the lookback floor follows a controller's clock ahead of this machine's (its Date).
MAX_AHEAD_MS = 3_600_000


def now_ms() -> int:
    return int(time.time() * 1000)


class Collector:
    """One run for one controller. Only the calling thread touches the state; deliveries run on
    `sei.concurrency` worker threads, and no more builds are at risk than that (a crash resends
    at most that many)."""

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
        details: DetailReader | None = None,
    ) -> None:
        """`details`: a reader kept across runs (by `run`), so that the stage source is
        detected, and said, once per controller rather than every cycle."""
        guid, name = settings.sei.instance_guid, settings.sei.instance_name
        if guid is None or name is None:
            raise ValueError("a collector needs SEI_INSTANCE_GUID and SEI_INSTANCE_NAME")
        self.settings = settings
        self.jenkins = jenkins
        self.state = state
        self.dry_run = dry_run
        self.clock = clock
        self.context = MapContext(
            instance_guid=guid,
            instance_name=name,
            instance_url=settings.sei.instance_url or settings.jenkins_base,
            naming=JobNaming(settings.agent.job_names),
            cd_jobs=tuple(settings.agent.cd_jobs),
            ci_jobs=tuple(settings.agent.ci_jobs),
            library_repos=tuple(settings.agent.library_repos),
            project_name=settings.agent.project_name,
            rules=tuple(settings.agent.rules),
            max_artifacts=settings.agent.max_artifacts,
        )
        self.details = details or DetailReader(
            jenkins,
            steps=settings.jenkins.steps,
            upstream_depth=settings.jenkins.upstream_depth,
            stage_source=settings.jenkins.stage_source,
        )
        self.halt = threading.Event()  # SEI down or refusing: no new deliveries this run
        push = settings.sei.integration_id if settings.sei.push_artifacts else None
        self.worker = Worker(
            self.details,
            lambda: self.context,
            None if dry_run else sei,
            push_to=push,
            halt=self.halt,
            stop=stop,
        )
        self.report = Report()
        self.ledger = Ledger(self.report, dry_run=dry_run, output=output)
        self.tracked = state.jobs(guid, settings.jenkins_base)
        self._said_url = False
        self._said_skew = False
        self._skew_ms = 0  # the controller's clock minus the agent's, as discovery found it

    def sync(self, extra_globs: list[str] | None = None) -> Report:
        from agent.pipeline.sync import sync

        return sync(self, extra_globs)

    def backfill(self, since_ms: int, until_ms: int, extra_globs: list[str] | None) -> Report:
        from agent.pipeline.backfill import backfill

        return backfill(self, since_ms, until_ms, extra_globs)

    # -- what both drivers share -----------------------------------------------------------

    def jobs(self, extra_globs: list[str] | None = None) -> list[Job]:
        """The selected jobs; what discovery saw also names upstream jobs and the instance URL."""
        cfg = self.settings.jenkins
        inventory = discover(self.jenkins, cfg.folder_depth)
        naming = JobNaming.of(
            self.settings.agent.job_names, ((j.names, j.path_containers) for j in inventory.jobs)
        )
        self.details.naming = naming
        if inventory.clock_ms is not None:
            self._skew_ms = self._bounded_skew(inventory.clock_ms - self.clock())
        self.context = replace(
            self.context, naming=naming, instance_url=self._instance_url(inventory.root_url)
        )
        included = [j for j in inventory.jobs if matches(j.full_name, cfg.include, cfg.exclude)]
        found = [j for j in included if matches(j.full_name, extra_globs or [], [])]
        if extra_globs and not found:
            log.warning(
                "--jobs %s selects none of the %d jobs (globs on full names, such as "
                "'team/*'; see `check` for the jobs found)",
                " ".join(extra_globs),
                len(included),
            )
        self.report.jobs = len(found)
        return found

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

    def runner(self) -> Any:
        """The bounded runner of this run, as a context: leaving drains it and saves."""
        save = not self.dry_run
        runner: BoundedRunner[Any] = BoundedRunner(
            self.settings.sei.concurrency,
            snapshot=(
                lambda: self.state.snapshot(reuse=True, controller=self.context.instance_guid)
            )
            if save
            else None,
            write=self.state.write if save else None,
        )
        return running(runner)

    def finished(self) -> Report:
        """After the runner drained and saved: raise what ended the run, else the report."""
        if self.ledger.fatal is not None:
            raise self.ledger.fatal
        return self.report

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
        """One listed build: remember it, skip it, or deliver it on a worker."""
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
        elif self.worker.halted():
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
        if newest is not None and self.worker.halted():
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
            lambda: self.worker.deliver(
                run.job,
                build,
                after=run.olders if last else None,
                done=None if last else run.olders.done,
            ),
            lambda result: self.ledger.record(run, build, result),
        )
