"""`run`: the agent as a long-running service, the way it is deployed beside Jenkins.

Each cycle is exactly what `sync` does, for one controller (a satellite.yml may list several):
each controller has a lane of its own, its own cycles on its own thread with its own clients and
worker budget, so a slow, failing or hostile controller never delays another's cycles or its
health. The state file stays
locked and the clients open for the life of the process, so a second agent on the same file
exits at once. Cycles never overlap, and a late one runs once rather than in a burst. SIGTERM
or SIGINT lets the builds in flight finish, saves the state and exits 143 or 130; /healthz,
/metrics and /status tell an orchestrator how it is going, controller by controller.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from agent import __version__
from agent.app import Controller
from agent.config import Settings
from agent.jenkins.client import JenkinsError
from agent.logs import redact
from agent.mapping import MapContext
from agent.pipeline import Run
from agent.pipeline.sync import sync
from agent.sei.client import SeiRefused
from agent.service.health import KEPT_CYCLES, Cycle, evaluate_health, iso, summarize
from agent.service.metrics import Deliveries, Metrics, label_of
from agent.service.schedule import Schedule, lane_id, start_scheduler, utcnow
from agent.service.watch import Watch
from agent.service.web import StatusServer
from agent.state import StateError, StateFile
from agent.stopping import stop_on_signals

log = logging.getLogger("agent.service")


class Lane:
    """One controller `run` serves: its parts (kept across cycles, so its stage source is
    detected, and said, once), what its builds became (`deliveries`, the metrics' observer),
    and what its cycles did."""

    def __init__(self, parts: Controller, label: str, metrics: Metrics) -> None:
        self.parts = parts
        self.settings = parts.settings
        self.jenkins = parts.jenkins
        self.label = label
        self.deliveries = Deliveries(metrics, label)
        self.busy = threading.Lock()  # a cycle or a look of the watch, never both at once
        self.watch = Watch(label, self.busy)
        self.cycles: deque[Cycle] = deque(maxlen=KEPT_CYCLES)
        self.running_since: datetime | None = None
        self.last_success: datetime | None = None
        self.summary: dict[str, int] = {}

    @property
    def sei_requests(self) -> int:
        return self.parts.sei.requests if self.parts.sei is not None else 0

    def close(self) -> None:
        self.parts.close()


class Service:
    """The scheduler, the cycles of every controller, and what the HTTP endpoints report."""

    def __init__(
        self,
        controllers: list[Lane],
        schedule: Schedule,
        state: StateFile,
        metrics: Metrics,
        stop: threading.Event,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.controllers = controllers
        self.settings = controllers[0].settings  # what the controllers share (agent.*)
        self.schedule = schedule
        self.state = state
        self.metrics = metrics
        self.stop = stop
        self.clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None
        for controller in controllers:
            guid = controller.settings.sei.instance_guid or ""
            controller.summary = summarize(state.jobs(guid, controller.settings.jenkins_base))
            self._set_state_gauges(controller)

    # -- the loop --------------------------------------------------------------------------

    def serve(self) -> None:
        """Cycle until `stop` is set, then let the cycle in flight end and save the state."""
        agent = self.settings.agent
        server = StatusServer(agent.http_port, self, agent.http_host)
        log.info(
            "running: a sync cycle %s for %d controller%s; /healthz, /metrics and /status on "
            "port %d",
            self.schedule.description,
            len(self.controllers),
            "" if len(self.controllers) == 1 else "s",
            server.port,
            extra={"fields": {"port": server.port, "schedule": self.schedule.description}},
        )
        try:
            lanes = [functools.partial(self._lane, c) for c in self.controllers]
            every = agent.watch_interval
            watches = [functools.partial(self.look, c) for c in self.controllers] if every else []
            self._scheduler = start_scheduler(
                self.schedule, lanes, first=self.clock(), watches=watches, watch_every=every
            )
            try:
                self.stop.wait()
                log.info("stopping: the builds in flight finish, then the state is saved")
            finally:
                self._scheduler.shutdown(wait=True)
        finally:
            server.close()
            self.state.save()

    def cycle(self) -> None:
        """One sync of every controller in turn (tests; `serve` gives each its own lane)."""
        for controller in self.controllers:
            self._lane(controller)

    def _lane(self, controller: Lane) -> None:
        """One cycle of one controller's lane; its failure is its own, and nothing raised here
        ends the service."""
        if not self.stop.is_set():
            with controller.busy:
                self._cycle(controller)

    def look(self, controller: Lane) -> None:
        """One look of a controller's watch; nothing raised here stops a cycle or the service."""
        if self.stop.is_set():
            return

        def start_run(context: MapContext) -> Run:
            return controller.parts.start_run(
                self.state, observers=[controller.deliveries], context=context
            )

        try:
            delivered = controller.watch.look(controller.jenkins, start_run, self.clock())
        except Exception as exc:  # the next cycle reads what this look could not deliver
            log.warning(
                "%s: the watch failed (%s); the next cycle sends what it missed",
                controller.label,
                redact(str(exc), controller.settings.secrets()),
            )
            return
        if controller.watch.last is not None:
            self.metrics.last_watch.labels(controller.label).set(controller.watch.last.timestamp())
        if delivered:
            self.metrics.watch_delivered.labels(controller.label).inc(delivered)
            log.info(
                "%s: the watch delivered %d builds that had just ended", controller.label, delivered
            )

    def _cycle(self, controller: Lane) -> None:
        started = self.clock()
        clock_start = time.monotonic()
        with self._lock:
            controller.running_since = started
        jenkins_before = sum(controller.jenkins.requests.values())
        sei_before = controller.sei_requests
        run = controller.parts.start_run(self.state, observers=[controller.deliveries])
        error: str | None = None
        try:
            sync(run)
            controller.watch.learn(run)
        except (JenkinsError, SeiRefused, StateError) as exc:
            error = str(exc)
        except Exception as exc:
            log.exception("%s: the cycle failed unexpectedly", controller.label)
            error = f"{type(exc).__name__}: {exc}"
        report = run.report
        if self.stop.is_set():
            outcome = "interrupted"
        elif error is not None or report.sei_down is not None:
            outcome, error = "failed", error or str(report.sei_down)
        else:
            outcome = "ok"
        if error is not None:  # /healthz and /status show it, and they pass no log filter
            error = redact(error, controller.settings.secrets())
        ended = self.clock()
        duration = time.monotonic() - clock_start
        label = controller.label
        self.metrics.cycle_ended(label, outcome, duration, report, ended)
        with self._lock:
            controller.cycles.append(Cycle(started, ended, outcome, report, error))
            controller.running_since = None
            controller.summary = summarize(run.tracked)
            if outcome == "ok":
                controller.last_success = ended
        self._set_state_gauges(controller)
        fields = {
            "controller": label,
            "outcome": outcome,
            "duration_s": round(duration, 3),
            "jobs": report.jobs,
            "sent": report.sent,
            "dead_lettered": report.dead,
            "unsent": report.unsent,
            "running": report.running,
            "number_taken": report.taken,
            "jobs_unreadable": report.failed_jobs,
            "jenkins_requests": sum(controller.jenkins.requests.values()) - jenkins_before,
            "sei_requests": controller.sei_requests - sei_before,
        }
        level = logging.WARNING if outcome == "failed" else logging.INFO
        why = f": {error}" if outcome == "failed" else ""
        who = f"{label}: " if len(self.controllers) > 1 else ""
        log.log(
            level,
            "%scycle %s in %.2fs%s; %s",
            who,
            outcome,
            duration,
            why,
            report.summary(),
            extra={"fields": {**fields, "error": error} if error else fields},
        )

    def _set_state_gauges(self, controller: Lane) -> None:
        self.metrics.jobs_tracked.labels(controller.label).set(controller.summary["jobs_tracked"])
        self.metrics.dead_letters.labels(controller.label).set(controller.summary["dead_letters"])

    # -- what the endpoints show -----------------------------------------------------------

    def _health_of(self, controller: Lane) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            last = controller.cycles[-1] if controller.cycles else None
            last_success, running_since = controller.last_success, controller.running_since
        return evaluate_health(
            now=self.clock(),
            started=self.started,
            schedule=self.schedule,
            last=last,
            last_success=last_success,
            running_since=running_since,
            last_accepted=controller.deliveries.last_accepted,
            stopping=self.stop.is_set(),
        )

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while every controller is; with several, each one's verdict is listed."""
        verdicts = [(c, *self._health_of(c)) for c in self.controllers]
        if len(verdicts) == 1:
            return verdicts[0][1], verdicts[0][2]
        failing = [(c, body) for c, healthy, body in verdicts if not healthy]
        body: dict[str, Any] = {
            "status": failing[0][1]["status"] if failing else "ok",
            "reason": "; ".join(f"{c.label}: {b['reason']}" for c, b in failing)
            or "every controller is healthy",
            "controllers": {c.label: b for c, _, b in verdicts},
        }
        return not failing, body

    def metrics_text(self) -> bytes:
        return self.metrics.render()

    def status(self) -> dict[str, Any]:
        healthy, health = self.health()
        lanes = [
            self._scheduler.get_job(lane_id(i)) if self._scheduler else None
            for i in range(len(self.controllers))
        ]
        job = lanes[0]
        with self._lock:
            controllers: list[dict[str, Any]] = [
                {
                    "controller": c.label,
                    "url": c.settings.jenkins.url,
                    "instance_guid": c.settings.sei.instance_guid,
                    "next_cycle": iso(lane.next_run_time) if lane else None,
                    "cycle_running_since": iso(c.running_since),
                    "cycles": [cycle.to_json() for cycle in reversed(c.cycles)],
                    "state": dict(c.summary),
                    "jenkins_requests": dict(c.jenkins.requests),
                    "sei_requests": c.sei_requests,
                    "watch": {
                        "on": c.watch.on and self.settings.agent.watch_interval > 0,
                        "every_s": self.settings.agent.watch_interval,
                        "last": iso(c.watch.last),
                        "builds_delivered": c.watch.delivered,
                        "running_seen": len(c.watch.running),
                    },
                }
                for c, lane in zip(self.controllers, lanes, strict=True)
            ]
        body: dict[str, Any] = {
            "version": __version__,
            "started": iso(self.started),
            "schedule": self.schedule.description,
            "next_cycle": iso(job.next_run_time) if job else None,
            "healthy": healthy,
            "health": health,
            "state_file": str(self.state.path),
            "controllers": controllers,
        }
        if len(controllers) == 1:  # one controller: its figures at the top, as before
            one = controllers[0]
            body.update(
                cycle_running_since=one["cycle_running_since"],
                cycles=one["cycles"],
                state={"file": str(self.state.path), **one["state"]},
                jenkins_requests=one["jenkins_requests"],
                sei_requests=one["sei_requests"],
            )
        return body


def run(controllers: list[Settings]) -> int:
    """`jenkins-sei-agent run`: every controller on one schedule, in one process. ConfigError
    and StateError (exit 2) reach the caller."""
    for settings in controllers:
        settings.require(
            "jenkins.url", "sei.base_url", "sei.api_key", "sei.instance_guid", "sei.instance_name"
        )
    labels = [label_of(s) for s in controllers]
    if len(set(labels)) != len(labels):
        labels = [
            f"{label} ({s.jenkins.url})" for label, s in zip(labels, controllers, strict=True)
        ]
    shared = controllers[0].agent
    schedule = Schedule.from_settings(shared)
    with stop_on_signals() as stop, StateFile(shared.state_file) as state:
        parts: list[Controller] = []
        metrics = Metrics(
            {
                lb: functools.partial(lambda i: parts[i].jenkins.request_counts(), i)
                for i, lb in enumerate(labels)
            }
        )
        for settings, label in zip(controllers, labels, strict=True):
            hook = metrics.sei_observer(label)
            parts.append(Controller(settings, stop=stop, on_sei_request=hook))
        served = [Lane(p, label, metrics) for p, label in zip(parts, labels, strict=True)]
        try:
            Service(served, schedule, state, metrics, stop).serve()
        finally:
            for controller in served:
                controller.close()
    log.info(
        "stopped on %s: the builds in flight were finished and the state saved to %s; the next "
        "start sends the rest",
        stop.signal,
        shared.state_file,
    )
    return stop.exit_code or 0
