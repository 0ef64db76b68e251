"""The whole flow: discover jobs -> read builds -> map -> deliver -> record.

`sync` sends what finished since the last run (or within the lookback for a job never seen);
`backfill` walks history between two dates. Both record a build only after SEI answered 2xx,
so a crash at any point can cause a resend, never a loss.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from tqdm import tqdm

from agent.builds import Window, read_builds
from agent.config import Settings
from agent.deliver import Refusal, SeiClient, SeiUnavailable
from agent.discover import Job, discover_jobs, matches
from agent.jenkins_client import JenkinsClient, JenkinsError, JenkinsNotFound
from agent.mapping import MapContext, Unmappable, map_build
from agent.state import JobState, StateFile

log = logging.getLogger(__name__)

CUSTOM_CICD = "/v1/custom-cicd"
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


class _StopDelivery(Exception):
    """SEI is down: the rest waits for the next run."""


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
    ) -> None:
        assert settings.sei.instance_guid and settings.sei.instance_name
        self.settings = settings
        self.jenkins = jenkins
        self.sei = sei
        self.state = state
        self.output = output
        self.dry_run = dry_run
        self.clock = clock
        self.context = MapContext(
            instance_guid=settings.sei.instance_guid,
            instance_name=settings.sei.instance_name,
            instance_url=settings.jenkins_base,
            cd_jobs=tuple(settings.agent.cd_jobs),
            library_repos=tuple(settings.agent.library_repos),
            project_name=settings.agent.project_name,
        )
        self.tracked = state.jobs(settings.sei.instance_guid, settings.jenkins_base)
        self.report = Report()

    # -- discovery -------------------------------------------------------------------------

    def jobs(self, extra_globs: list[str] | None = None) -> list[Job]:
        cfg = self.settings.jenkins
        found = [
            job
            for job in discover_jobs(self.jenkins, cfg.folder_depth)
            if matches(job.full_name, cfg.include, cfg.exclude)
            and matches(job.full_name, extra_globs or [], [])
        ]
        self.report.jobs = len(found)
        return found

    # -- sync ------------------------------------------------------------------------------

    def sync(self, extra_globs: list[str] | None = None) -> Report:
        lookback_ms = int(self.settings.agent.lookback.total_seconds() * 1000)
        for job in self.jobs(extra_globs):
            state = self.tracked.get(job.full_name)
            if state is None:
                state = self.tracked[job.full_name] = JobState()
            if state.floor_ms is None:
                state.floor_ms = self.clock() - lookback_ms
            if not self._guarded(self._sync_job, job, state):
                break
        self._save()
        return self.report

    def _sync_job(self, job: Job, state: JobState) -> None:
        newest = (job.last_build, job.last_build_ts) if job.last_build is not None else None
        if newest == state.anchor and not state.open:
            return  # nothing started or finished since the last complete read
        floor = state.floor_ms or 0
        if newest is None or ((newest[1] or 0) < floor and not state.open):
            state.anchor = newest  # no build inside the lookback window
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
        for number in sorted(builds):
            self._handle(job, state, builds[number], floor)
        state.open &= builds.keys()  # builds listed earlier and now gone were log-rotated away
        newest_read = max(builds, default=None)
        state.anchor = (newest_read, builds[newest_read]["timestamp"]) if newest_read else None

    def _read(self, job: Job, window: Window) -> Iterable[dict[str, Any]]:
        pages = read_builds(self.jenkins, job, window, self.settings.jenkins.page_size)
        return [b for b in pages if isinstance(b.get("number"), int)]

    # -- backfill --------------------------------------------------------------------------

    def backfill(self, since_ms: int, until_ms: int, extra_globs: list[str] | None) -> Report:
        jobs = self.jobs(extra_globs)
        interactive = sys.stderr.isatty()
        bar = tqdm(total=len(jobs), unit="job", disable=not interactive, file=sys.stderr)
        last_log = time.monotonic()
        try:
            for done, job in enumerate(jobs, 1):
                state = self.tracked.setdefault(job.full_name, JobState())
                if not self._guarded(self._backfill_job, job, state, since_ms, until_ms):
                    break
                bar.update(1)
                bar.set_postfix(sent=self.report.sent, refused=self.report.dead)
                if not interactive and time.monotonic() - last_log >= PROGRESS_LOG_SECONDS:
                    last_log = time.monotonic()
                    log.info(
                        "backfill: %d/%d jobs, %d builds sent", done, len(jobs), self.report.sent
                    )
        finally:
            bar.close()
        self._save()
        return self.report

    def _backfill_job(self, job: Job, state: JobState, since_ms: int, until_ms: int) -> None:
        window = Window(since_ms=since_ms)
        for build in read_builds(self.jenkins, job, window, self.settings.jenkins.page_size):
            timestamp = build.get("timestamp")
            if isinstance(timestamp, int) and timestamp <= until_ms:
                self._handle(job, state, build, since_ms)

    # -- one build -------------------------------------------------------------------------

    def _guarded(self, work: Callable[..., None], job: Job, *args: Any) -> bool:
        """Run one job's work; False once SEI is down and the run must stop."""
        try:
            work(job, *args)
        except _StopDelivery:
            return False
        except JenkinsNotFound:
            log.info("%s disappeared while it was read; skipped", job.full_name)
        except JenkinsError as exc:
            self.report.failed_jobs += 1
            log.warning("%s: %s; it is read again next run", job.full_name, exc)
        return True

    def _handle(self, job: Job, state: JobState, build: dict[str, Any], floor_ms: int) -> None:
        number, timestamp = build.get("number"), build.get("timestamp")
        if not isinstance(number, int) or not isinstance(timestamp, int) or timestamp < floor_ms:
            return
        if build.get("building"):
            state.open.add(number)
            self.report.running += 1
            return
        if state.sent.contains(number, timestamp) or state.is_dead(number, timestamp):
            state.open.discard(number)
            return
        try:
            payload = map_build(build, job, self.context).to_json()
        except (Unmappable, ValueError) as exc:
            self._dead_letter(job, state, number, timestamp, None, f"cannot be mapped: {exc}")
            return
        if self.dry_run:
            self._emit(payload)
            self.report.sent += 1
            return
        assert self.sei is not None
        try:
            outcome = self.sei.post(CUSTOM_CICD, payload)
        except SeiUnavailable as exc:
            state.open.add(number)
            self.report.unsent += 1
            self.report.sei_down = exc
            log.error("%s; %s #%d and the rest wait for the next run", exc, job.full_name, number)
            raise _StopDelivery from None
        if isinstance(outcome, Refusal):
            self._dead_letter(job, state, number, timestamp, outcome.status, outcome.message)
            return
        state.sent.add(number, timestamp)
        state.open.discard(number)
        self._save()
        self._emit(payload)
        self.report.sent += 1
        log.debug("sent %s #%d", job.full_name, number)

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
        self._save()

    def _emit(self, payload: dict[str, Any]) -> None:
        if self.output is not None:
            self.output.write(json.dumps(payload, sort_keys=True) + "\n")
            self.output.flush()

    def _save(self) -> None:
        if not self.dry_run:
            self.state.save()


def _recreated(anchor: tuple[int, int] | None, newest: tuple[int, int | None] | None) -> bool:
    """Numbers went backwards, or the same number started at another time."""
    if anchor is None or newest is None:
        return False
    return newest[0] < anchor[0] or (newest[0] == anchor[0] and newest[1] != anchor[1])
