"""The watch: between a controller's cycles, one cheap request asks what its executors run; a
build seen running and held by none at the next look has ended, and is delivered then, seconds
after it finished rather than at the next cycle (agent/jenkins/executors.py).

A build that starts and ends between two looks is found by the next cycle, as without the
watch. A token that may not read `/computer` (403) turns the watch off for that controller,
said once; any other failure of a look is forgotten at the next one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from agent.jenkins.client import JenkinsClient, JenkinsError, JenkinsRefused
from agent.jenkins.executors import PERMISSION, Running, running_builds
from agent.jenkins.types import Job
from agent.mapping import MapContext
from agent.pipeline.finished import deliver_finished
from agent.pipeline.run import Run

log = logging.getLogger("agent.service")


class Watch:
    """One controller's watch. `busy` is its lane's lock: a look never runs beside a cycle,
    since both record in the same part of the state."""

    def __init__(self, label: str, busy: threading.Lock) -> None:
        self.label = label
        self.busy = busy
        self.on = True
        self.running: set[Running] = set()  # what the last look saw running
        self.jobs: dict[str, Job] = {}  # the last cycle's jobs, by path
        self.context: MapContext | None = None  # the last cycle's map context
        self.last: datetime | None = None
        self.delivered = 0

    def learn(self, run: Run) -> None:
        """What a cycle found: the jobs a running build may belong to, and how to map it; a
        build the cycle settled is forgotten, so that the next look does not read it again."""
        if run.selected:
            self.jobs = {job.path: job for job in run.selected}
            self.context = run.context
        self.running = {
            (path, number)
            for path, number in self.running
            if path not in self.jobs or not run.settled(self.jobs[path], number)
        }

    def look(
        self, jenkins: JenkinsClient, start_run: Callable[[MapContext], Run], now: datetime
    ) -> int:
        """One look; returns the builds it delivered. Skipped while the lane's cycle runs. A
        run is started only when a build ended: an idle look is the one request and no more."""
        if not self.on or not self.busy.acquire(blocking=False):
            return 0
        try:
            return self._look(jenkins, start_run, now)
        finally:
            self.busy.release()

    def _look(
        self, jenkins: JenkinsClient, start_run: Callable[[MapContext], Run], now: datetime
    ) -> int:
        if self.context is None:
            return 0  # no cycle has discovered the jobs yet
        try:
            seen = running_builds(jenkins)
        except JenkinsRefused as exc:
            self.on = False
            log.warning(
                "%s: the watch is off: Jenkins refused what its executors run (%s); the token "
                "needs %s. Builds are found at each cycle instead",
                self.label,
                exc,
                PERMISSION,
            )
            return 0
        except JenkinsError as exc:
            log.debug("%s: the watch could not look (%s); it looks again", self.label, exc)
            return 0
        self.last = now
        ended = [(self.jobs[path], n) for path, n in self.running - seen if path in self.jobs]
        self.running = seen
        if not ended:
            return 0
        report, building = deliver_finished(start_run(self.context), ended)
        self.running |= {(job.path, number) for job, number in building}
        self.delivered += report.sent
        return report.sent
