"""`run`: the agent as a long-running service, the way it is deployed beside Jenkins.

Each cycle is exactly what `sync` does. The state file stays locked and the clients open for the
life of the process, so a second agent on the same file exits at once. Cycles never overlap, and a
late one runs once rather than in a burst. SIGTERM or SIGINT lets the build in flight finish, saves
the state and exits 0; /healthz, /metrics and /status tell an orchestrator how it is going.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from agent import __version__
from agent.config import SeiSettings, Settings
from agent.deliver import Refusal, SeiClient, SeiRefused, SeiUnavailable
from agent.jenkins_client import JenkinsClient, JenkinsError
from agent.logs import redact, secrets_of
from agent.pipeline import Collector
from agent.pipeline.worker import CUSTOM_CICD
from agent.service.health import KEPT_CYCLES, Cycle, evaluate_health, iso, summarize
from agent.service.metrics import Metrics
from agent.service.schedule import Schedule, start_scheduler, utcnow
from agent.service.web import StatusServer
from agent.state import StateError, StateFile
from agent.stopping import stop_on_signals
from agent.transport import Answer

log = logging.getLogger("agent.service")


class MeteredSeiClient(SeiClient):
    """Counts each build's fate by Jenkins result where it is decided: SEI's answer."""

    def __init__(self, settings: SeiSettings, metrics: Metrics, stop: threading.Event) -> None:
        super().__init__(settings, stop=stop, on_request=metrics.observe_sei)
        self.metrics = metrics
        self.last_accepted: datetime | None = None

    def post(self, path: str, body: dict[str, Any]) -> Refusal | Answer:
        if path != CUSTOM_CICD:  # other requests (an artifact push) are not builds
            return super().post(path, body)
        result = str(body.get("result") or "UNKNOWN")
        try:
            outcome = super().post(path, body)
        except (SeiUnavailable, SeiRefused):
            self.metrics.builds_failed.labels(result).inc()
            raise
        if isinstance(outcome, Refusal):
            self.metrics.builds_dead_lettered.labels(result).inc()
        else:
            self.last_accepted = utcnow()
            self.metrics.builds_sent.labels(result).inc()
        return outcome


class Service:
    """The scheduler, the cycles and what the HTTP endpoints report about them."""

    def __init__(
        self,
        settings: Settings,
        schedule: Schedule,
        jenkins: JenkinsClient,
        sei: MeteredSeiClient,
        state: StateFile,
        metrics: Metrics,
        stop: threading.Event,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        assert settings.sei.instance_guid
        self.settings = settings
        self.schedule = schedule
        self.jenkins = jenkins
        self.sei = sei
        self.state = state
        self.metrics = metrics
        self.stop = stop
        self.clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self._cycles: deque[Cycle] = deque(maxlen=KEPT_CYCLES)
        self._running_since: datetime | None = None
        self._last_success: datetime | None = None
        self._summary = summarize(state.jobs(settings.sei.instance_guid, settings.jenkins_base))
        self._scheduler: BackgroundScheduler | None = None
        self._set_state_gauges(self._summary)

    # -- the loop --------------------------------------------------------------------------

    def serve(self) -> None:
        """Cycle until `stop` is set, then let the cycle in flight end and save the state."""
        agent = self.settings.agent
        server = StatusServer(agent.http_port, self, agent.http_host)
        log.info(
            "running: a sync cycle %s; /healthz, /metrics and /status on port %d",
            self.schedule.description,
            server.port,
            extra={"fields": {"port": server.port, "schedule": self.schedule.description}},
        )
        try:
            self._scheduler = start_scheduler(self.schedule, self.cycle, first=self.clock())
            try:
                self.stop.wait()
                log.info("stopping: the build in flight finishes, then the state is saved")
            finally:
                self._scheduler.shutdown(wait=True)
        finally:
            server.close()
            self.state.save()

    def cycle(self) -> None:
        """One sync; never raises, so one bad cycle cannot end the service."""
        if self.stop.is_set():
            return
        started = self.clock()
        clock_start = time.monotonic()
        with self._lock:
            self._running_since = started
        jenkins_before = sum(self.jenkins.requests.values())
        sei_before = self.sei.requests
        collector = Collector(self.settings, self.jenkins, self.sei, self.state, stop=self.stop)
        error: str | None = None
        try:
            collector.sync()
        except (JenkinsError, SeiRefused, StateError) as exc:
            error = str(exc)
        except Exception as exc:
            log.exception("the cycle failed unexpectedly")
            error = f"{type(exc).__name__}: {exc}"
        report = collector.report
        if self.stop.is_set():
            outcome = "interrupted"
        elif error is not None or report.sei_down is not None:
            outcome, error = "failed", error or str(report.sei_down)
        else:
            outcome = "ok"
        if error is not None:  # /healthz and /status show it, and they pass no log filter
            error = redact(error, secrets_of(self.settings))
        ended = self.clock()
        duration = time.monotonic() - clock_start
        if report.unmappable:  # the SEI client counts refusals by result; these never got there
            self.metrics.builds_dead_lettered.labels("UNKNOWN").inc(report.unmappable)
        summary = summarize(collector.tracked)
        self.metrics.cycles.labels(outcome).inc()
        self.metrics.cycle_seconds.observe(duration)
        self.metrics.running_builds.set(report.running)
        self._set_state_gauges(summary)
        if outcome == "ok":
            self.metrics.last_success.set(ended.timestamp())
        with self._lock:
            self._cycles.append(Cycle(started, ended, outcome, report, error))
            self._running_since = None
            self._summary = summary
            if outcome == "ok":
                self._last_success = ended
        fields = {
            "outcome": outcome,
            "duration_s": round(duration, 3),
            "jobs": report.jobs,
            "sent": report.sent,
            "dead_lettered": report.dead,
            "unsent": report.unsent,
            "running": report.running,
            "jobs_unreadable": report.failed_jobs,
            "jenkins_requests": sum(self.jenkins.requests.values()) - jenkins_before,
            "sei_requests": self.sei.requests - sei_before,
        }
        level = logging.WARNING if outcome == "failed" else logging.INFO
        why = f": {error}" if outcome == "failed" else ""
        log.log(
            level,
            "cycle %s in %.2fs%s; %s",
            outcome,
            duration,
            why,
            report.summary(),
            extra={"fields": {**fields, "error": error} if error else fields},
        )

    def _set_state_gauges(self, summary: dict[str, int]) -> None:
        self.metrics.jobs_tracked.set(summary["jobs_tracked"])
        self.metrics.dead_letters.set(summary["dead_letters"])

    # -- what the endpoints show -----------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            last = self._cycles[-1] if self._cycles else None
            last_success, running_since = self._last_success, self._running_since
        return evaluate_health(
            now=self.clock(),
            started=self.started,
            schedule=self.schedule,
            last=last,
            last_success=last_success,
            running_since=running_since,
            last_accepted=self.sei.last_accepted,
            stopping=self.stop.is_set(),
        )

    def metrics_text(self) -> bytes:
        return self.metrics.render()

    def status(self) -> dict[str, Any]:
        healthy, health = self.health()
        with self._lock:
            cycles = [c.to_json() for c in reversed(self._cycles)]
            summary = dict(self._summary)
            running_since = self._running_since
        job = self._scheduler.get_job("sync") if self._scheduler else None
        return {
            "version": __version__,
            "started": iso(self.started),
            "schedule": self.schedule.description,
            "next_cycle": iso(job.next_run_time) if job else None,
            "cycle_running_since": iso(running_since),
            "healthy": healthy,
            "health": health,
            "cycles": cycles,
            "state": {"file": str(self.state.path), **summary},
            "jenkins_requests": dict(self.jenkins.requests),
            "sei_requests": self.sei.requests,
        }


def run(settings: Settings) -> int:
    """`jenkins-sei-agent run`. ConfigError and StateError (exit 2) reach the caller."""
    settings.require(
        "jenkins.url", "sei.base_url", "sei.api_key", "sei.instance_guid", "sei.instance_name"
    )
    schedule = Schedule.from_settings(settings.agent)
    with stop_on_signals() as stop, StateFile(settings.agent.state_file) as state:
        jenkins = JenkinsClient(settings.jenkins)
        metrics = Metrics(lambda: jenkins.requests)
        sei = MeteredSeiClient(settings.sei, metrics, stop)
        try:
            Service(settings, schedule, jenkins, sei, state, metrics, stop).serve()
        finally:
            jenkins.close()
            sei.close()
    log.info("stopped on %s; state saved to %s", stop.signal, settings.agent.state_file)
    return 0
