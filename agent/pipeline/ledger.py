"""The ledger: the only place where what became of a build changes the state and the report.

It runs on the caller's thread (the runner hands it each result there), so the state needs no
lock. A job's anchor, the newest build of its last complete read, moves only once every build
of that read was settled, so that a build that failed this time is listed again next time.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from agent.jenkins.types import Job
from agent.pipeline.report import Delivered, Observer, Outcome, Report, Result
from agent.state import JobState

log = logging.getLogger(__name__)


class Olders:
    """How many of a job's older builds of this read are still being delivered: a gate the
    newest build's POST waits behind (agent/pipeline/runner.py `Gate`).

    SEI's job row takes the repository and branch of whichever payload of the job arrived last,
    so the newest build of a read is posted only once every older one was answered. Counted on
    the threads where the answers arrive, so the POST starts with the last answer, and no
    thread is held waiting meanwhile.
    """

    def __init__(self) -> None:
        self._left = 0
        self._lock = threading.Lock()
        self._waiting: list[Callable[[], None]] = []

    def add(self) -> None:
        with self._lock:
            self._left += 1

    def done(self) -> None:
        with self._lock:
            self._left -= 1
            ready, self._waiting = (self._waiting, []) if self._left == 0 else ([], self._waiting)
        for action in ready:
            action()

    def when_open(self, action: Callable[[], None]) -> None:
        """Run `action` once every older build was answered: now, or with the last answer."""
        with self._lock:
            if self._left:
                self._waiting.append(action)
                return
        action()


@dataclass
class JobRun:
    """One job's builds in flight this run; `finish` moves its anchor once all of them settled.

    `newest` is the newest build of the read to deliver, held back until the read was
    submitted whole and then posted after every older one (`olders`).
    """

    job: Job
    state: JobState
    pending: int = 0
    submitted_all: bool = False
    failed: bool = False
    finish: Callable[[], None] | None = None
    taken: list[int] = field(default_factory=list)  # numbers SEI holds for earlier builds
    newest: dict[str, Any] | None = None
    olders: Olders = field(default_factory=Olders)


class Ledger:
    """Applies results to the state and the report, and tells its observers; `dry_run` records
    nothing as sent."""

    def __init__(
        self,
        report: Report,
        *,
        dry_run: bool,
        output: TextIO | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.report = report
        self.dry_run = dry_run
        self.output = output
        self.observers = tuple(observers)
        self.fatal: Exception | None = None  # the first error that ended the run
        self._unreadable: set[str] = set()

    def running(self, run: JobRun, number: int) -> None:
        """A build still building: remembered, and listed again until it finished."""
        run.state.open.add(number)
        run.state.changed()
        self.report.running += 1

    def settled(self, run: JobRun, number: int) -> None:
        """A build already sent or dead-lettered: no longer open."""
        if number in run.state.open:
            run.state.open.discard(number)
            run.state.changed()

    def taken(self, run: JobRun, number: int, timestamp: int) -> None:
        """A build of a recreated job whose number SEI holds for the deleted job's build: SEI
        would keep the old run and put this build's stages and artifacts into it. Recorded
        (never sent, never tried again), counted, and said once per job at the end of its read.
        """
        run.state.taken.add(number, timestamp)
        run.state.open.discard(number)
        run.state.changed()
        run.taken.append(number)
        self.report.taken += 1
        self._tell(Delivered(run.job.full_name, number, None, Outcome.TAKEN))

    def postponed(self, run: JobRun) -> None:
        """A build not started because the run is stopping: the job is read again next run."""
        run.failed = True

    def started(self, run: JobRun) -> None:
        run.pending += 1

    def record(self, run: JobRun, build: dict[str, Any], result: Result) -> None:
        """What became of one delivered build."""
        state, job = run.state, run.job
        number, timestamp = build["number"], build["timestamp"]
        state.changed()
        run.pending -= 1
        outcome = result.outcome
        if outcome is Outcome.SENT:
            assert result.payload is not None
            if not self.dry_run:
                state.sent.add(number, timestamp)
                state.open.discard(number)
            self._emit(result.payload)
            self.report.sent += 1
            log.debug("sent %s #%d", job.full_name, number)
        elif outcome in (Outcome.REFUSED, Outcome.UNMAPPABLE):
            self._dead_letter(run, number, timestamp, result)
        elif outcome is Outcome.GONE:
            log.info("%s #%d disappeared while it was read; skipped", job.full_name, number)
        else:
            run.failed = True  # the anchor stays put: the build is listed again next run
            if outcome is Outcome.UNSENT:
                state.open.add(number)
                self.report.unsent += 1
                if self.report.sei_down is None:
                    log.error("%s; the rest waits for the next run", result.error)
                    self.report.sei_down = result.error  # type: ignore[assignment]
            elif outcome is Outcome.FAILED:
                state.open.add(number)
                self.report.failed += 1
            elif outcome is Outcome.UNREADABLE:
                assert result.error is not None
                self.job_unreadable(job, result.error)
            elif outcome is Outcome.FATAL and self.fatal is None:
                self.fatal = result.error
        said, duration = build.get("result"), build.get("duration")
        self._tell(
            Delivered(
                job.full_name,
                number,
                said if isinstance(said, str) else None,
                outcome,
                result.error,
                timestamp + duration if isinstance(duration, int) else None,
            )
        )
        self.settle(run)

    def submitted_all(self, run: JobRun) -> None:
        run.submitted_all = True
        if run.taken:
            taken = sorted(run.taken)
            numbers = ", ".join(f"#{n}" for n in taken)
            if len(taken) > 10:
                numbers = f"#{taken[0]} to #{taken[-1]}"
            log.warning(
                "%s: %d builds not sent (%s): SEI already holds these numbers for the builds of "
                "a job of the same name that was deleted, and would mix them into those runs. "
                "Rename the new job to send its builds under a new name, or accept the gap; "
                "builds numbered past the old ones are sent as usual",
                run.job.full_name,
                len(taken),
                numbers,
            )
        self.settle(run)

    def settle(self, run: JobRun) -> None:
        if run.submitted_all and run.pending == 0 and not run.failed and run.finish:
            run.finish()

    def finished(self) -> Report:
        """The run is over (its runner drained and saved): observers get the report; what
        ended the run is raised, else the report returned."""
        self._tell(self.report)
        if self.fatal is not None:
            raise self.fatal
        return self.report

    def _tell(self, event: Delivered | Report) -> None:
        for observer in self.observers:
            observer(event)

    def job_unreadable(self, job: Job, exc: Exception) -> None:
        """Jenkins could not serve one job now: counted once, read again next run."""
        if job.full_name not in self._unreadable:
            self._unreadable.add(job.full_name)
            self.report.failed_jobs += 1
            log.warning("%s: %s; it is read again next run", job.full_name, exc)

    def _dead_letter(self, run: JobRun, number: int, timestamp: int, result: Result) -> None:
        run.state.dead[number] = {
            "start_time": timestamp,
            "status": result.status,
            "message": result.message,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        run.state.open.discard(number)
        if result.outcome is Outcome.REFUSED:
            self.report.refused += 1
        else:
            self.report.unmappable += 1
        log.warning(
            "%s #%d refused (%s): %s",
            run.job.full_name,
            number,
            result.status or "agent",
            result.message,
        )

    def _emit(self, payload: dict[str, Any]) -> None:
        if self.output is not None:
            self.output.write(json.dumps(payload, sort_keys=True) + "\n")
            self.output.flush()
