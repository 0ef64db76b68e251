"""Prometheus metrics of `run`, in a registry of their own so nothing else leaks into /metrics.

Every name of the agent's own starts with `jenkins_sei_agent_`; the standard `process_*` and
`python_*` series are there too, as every Python exporter has them. Labelled counters exist at
zero from the start, so a rate over them works before the first event. Jenkins requests are
read from the client's own counter at scrape time rather than counted twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
    write_to_textfile,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from agent import __version__
from agent.config import RESULTS, Settings
from agent.pipeline import Delivered, Outcome, Report
from agent.sei.client import SeiRefused

PREFIX = "jenkins_sei_agent_"
OUTCOMES = ("ok", "failed", "interrupted")

disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` series double every counter and say nothing useful here

# SEI answers in tens of milliseconds to a few seconds; timeouts default to 30 s.
_SEI_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The watch delivers within seconds of a build's end; a cycle within minutes; a backfill later.
_DELAY_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 150.0, 300.0, 900.0, 3600.0)
# An idle cycle is one request; a first sync of a large controller can take many minutes.
_CYCLE_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


def label_of(settings: Settings) -> str:
    """How metrics and /status name a controller: its SEI instance name, else its URL."""
    return settings.sei.instance_name or settings.jenkins.url or "jenkins"


class _JenkinsRequests(Collector):
    """`jenkins_sei_agent_jenkins_requests_total{controller,kind}` from each JenkinsClient's
    own counter."""

    def __init__(self, counts: Mapping[str, Callable[[], Mapping[str, int]]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            PREFIX + "jenkins_requests",
            "Requests sent to Jenkins, by controller and kind (discover, builds, ...), retries "
            "included",
            labels=["controller", "kind"],
        )
        for controller, counts in self._counts.items():
            for kind, count in sorted(dict(counts()).items()):
                family.add_metric([controller, kind], count)
        yield family


class Metrics:
    """The agent's metrics, every series of its own labelled by controller (the instance name);
    `render()` is the body of /metrics."""

    def __init__(
        self,
        jenkins_requests: Mapping[str, Callable[[], Mapping[str, int]]],
        *,
        process: bool = True,
    ) -> None:
        """`jenkins_requests`: each controller's label, and its Jenkins client's counter;
        `process`: the standard process, platform and GC series too."""
        self.registry = CollectorRegistry()
        reg = self.registry
        self.builds_sent = Counter(
            PREFIX + "builds_sent",
            "Builds SEI accepted, by controller and Jenkins result",
            ["controller", "result"],
            registry=reg,
        )
        self.builds_failed = Counter(
            PREFIX + "builds_failed",
            "Builds not delivered because SEI kept failing (sent on a later cycle), by result",
            ["controller", "result"],
            registry=reg,
        )
        self.builds_dead_lettered = Counter(
            PREFIX + "builds_dead_lettered",
            "Builds SEI refused (4xx) or that could not be mapped, kept as dead letters, by result",
            ["controller", "result"],
            registry=reg,
        )
        self.builds_taken = Counter(
            PREFIX + "builds_number_taken",
            "Builds of recreated jobs not sent: SEI holds their numbers for the deleted job's "
            "builds",
            ["controller"],
            registry=reg,
        )
        self.delivery_delay = Histogram(
            PREFIX + "delivery_delay_seconds",
            "From a build's end (start + duration) to SEI's acceptance of it",
            ["controller"],
            buckets=_DELAY_BUCKETS,
            registry=reg,
        )
        self.watch_delivered = Counter(
            PREFIX + "watch_builds_delivered",
            "Builds the watch delivered: seen running, then ended between two looks",
            ["controller"],
            registry=reg,
        )
        self.last_watch = Gauge(
            PREFIX + "last_watch_timestamp_seconds",
            "When the controller's executors were last looked at (Unix time); 0 before",
            ["controller"],
            registry=reg,
        )
        self.sei_request_seconds = Histogram(
            PREFIX + "sei_request_duration_seconds",
            "Latency of each request to SEI, by HTTP status ('error' when there was no answer)",
            ["controller", "status"],
            buckets=_SEI_BUCKETS,
            registry=reg,
        )
        self.cycles = Counter(
            PREFIX + "cycles",
            "Sync cycles, by controller and outcome: ok, failed, interrupted",
            ["controller", "outcome"],
            registry=reg,
        )
        self.cycle_seconds = Histogram(
            PREFIX + "cycle_duration_seconds",
            "Duration of each controller's sync cycle",
            ["controller"],
            buckets=_CYCLE_BUCKETS,
            registry=reg,
        )
        self.last_success = Gauge(
            PREFIX + "last_success_timestamp_seconds",
            "When the controller's last successful cycle ended (Unix time); 0 before the first",
            ["controller"],
            registry=reg,
        )
        self.jobs_tracked = Gauge(
            PREFIX + "jobs_tracked", "Jobs recorded in the state file", ["controller"], registry=reg
        )
        self.running_builds = Gauge(
            PREFIX + "running_builds_pending",
            "Builds still running at the last cycle, to be sent when they finish",
            ["controller"],
            registry=reg,
        )
        self.dead_letters = Gauge(
            PREFIX + "dead_letters",
            "Dead letters kept in the state file",
            ["controller"],
            registry=reg,
        )
        reg.register(_JenkinsRequests(jenkins_requests))
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR) if process else ():
            reg.register(standard)
        Info(PREFIX + "build", "The agent's version", registry=reg).info({"version": __version__})
        for controller in jenkins_requests:
            for result in RESULTS:
                self.builds_sent.labels(controller, result)
                self.builds_failed.labels(controller, result)
            for result in (*RESULTS, "UNKNOWN"):
                self.builds_dead_lettered.labels(controller, result)
            for outcome in OUTCOMES:
                self.cycles.labels(controller, outcome)
            for gauge in (self.last_success, self.jobs_tracked, self.running_builds):
                gauge.labels(controller)
            self.dead_letters.labels(controller)
            self.builds_taken.labels(controller)
            self.delivery_delay.labels(controller)
            self.watch_delivered.labels(controller)
            self.last_watch.labels(controller)
            self.cycle_seconds.labels(controller)

    def cycle_ended(
        self, controller: str, outcome: str, seconds: float, report: Report, ended: datetime
    ) -> None:
        """A cycle of `run`, or a whole `sync` or `backfill`, ended."""
        self.cycles.labels(controller, outcome).inc()
        self.cycle_seconds.labels(controller).observe(seconds)
        self.running_builds.labels(controller).set(report.running)
        if outcome == "ok":
            self.last_success.labels(controller).set(ended.timestamp())

    def sei_observer(self, controller: str) -> Callable[[str, float], None]:
        """The SeiClient on_request hook of one controller."""

        def observe(status: str, seconds: float) -> None:
            self.sei_request_seconds.labels(controller, status).observe(seconds)

        return observe

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Deliveries:
    """The metrics' observer of one controller's runs: each build's fate, by Jenkins result (a
    closed set of label values), as the ledger applies it; and when SEI last accepted one."""

    def __init__(self, metrics: Metrics, controller: str) -> None:
        self.metrics = metrics
        self.controller = controller
        self.last_accepted: datetime | None = None

    def __call__(self, event: Delivered | Report) -> None:
        if not isinstance(event, Delivered):
            return
        m, result = self.metrics, event.result if event.result in RESULTS else "UNKNOWN"
        if event.outcome is Outcome.SENT:
            self.last_accepted = datetime.now(UTC)
            m.builds_sent.labels(self.controller, result).inc()
            if event.ended_ms is not None:
                delay = self.last_accepted.timestamp() - event.ended_ms / 1000
                m.delivery_delay.labels(self.controller).observe(max(delay, 0.0))
        elif event.outcome is Outcome.REFUSED:
            m.builds_dead_lettered.labels(self.controller, result).inc()
        elif event.outcome is Outcome.UNMAPPABLE:  # never reached SEI: no result to trust
            m.builds_dead_lettered.labels(self.controller, "UNKNOWN").inc()
        elif event.outcome is Outcome.TAKEN:
            m.builds_taken.labels(self.controller).inc()
        elif event.outcome is Outcome.UNSENT or (
            event.outcome is Outcome.FATAL and isinstance(event.error, SeiRefused)
        ):
            m.builds_failed.labels(self.controller, result).inc()


# What a one-shot run writes to AGENT_METRICS_FILE: the families `run` serves that say what
# the run did (not the watch's, not SEI latencies, not the state's gauges).
_OF_A_RUN = tuple(
    PREFIX + name
    for name in (
        "builds_sent",
        "builds_failed",
        "builds_dead_lettered",
        "builds_number_taken",
        "delivery_delay_seconds",
        "jenkins_requests",
        "cycles",
        "cycle_duration_seconds",
        "last_success_timestamp_seconds",
        "running_builds_pending",
        "build",
    )
)


class MetricsFile(Collector):
    """The metrics of a `sync` or `backfill` (a cycle each controller), written whole to
    AGENT_METRICS_FILE at its end for node_exporter's textfile collector, under the names `run`
    serves. Each run rewrites the file: its counts and histogram are that run's alone, and
    only the last success carries over from the file a failed run found, so that an alert on
    its age sees the real one."""

    def __init__(self, path: Path, controllers: Sequence[str]) -> None:
        self.path = path
        self._requests: dict[str, Mapping[str, int]] = {}
        self.metrics = Metrics(
            {c: functools.partial(self._counts, c) for c in controllers},
            process=False,
        )
        self._succeeded = _last_successes(path)

    def _counts(self, controller: str) -> Mapping[str, int]:
        return self._requests.get(controller, {})

    def observer(self, controller: str) -> Deliveries:
        return Deliveries(self.metrics, controller)

    def ended(
        self,
        controller: str,
        report: Report | None,
        seconds: float,
        jenkins_requests: Mapping[str, int],
        *,
        stopped: bool,
    ) -> None:
        """One controller's run ended: with its report, or None when it failed before one;
        its outcome as `run` names a cycle's."""
        if stopped:
            outcome = "interrupted"
        elif report is None or report.sei_down is not None:
            outcome = "failed"
        else:
            outcome = "ok"
        self._requests[controller] = dict(jenkins_requests)
        self.metrics.cycle_ended(
            controller, outcome, seconds, report or Report(), datetime.now(UTC)
        )
        if outcome != "ok" and controller in self._succeeded:
            self.metrics.last_success.labels(controller).set(self._succeeded[controller])

    def collect(self) -> Iterator[Metric]:
        return (f for f in self.metrics.registry.collect() if f.name in _OF_A_RUN)

    def write(self) -> None:
        """Atomically (a temporary file renamed), as the textfile collector asks."""
        write_to_textfile(str(self.path), self)


def _last_successes(path: Path) -> dict[str, float]:
    """Each controller's last success in the file an earlier run wrote; nothing when there is
    none, or it cannot be read as Prometheus text (it is rewritten whole anyway)."""
    try:
        text = path.read_text(encoding="utf-8")
        families = list(text_string_to_metric_families(text))
    except (OSError, ValueError):
        return {}
    return {
        sample.labels["controller"]: sample.value
        for family in families
        if family.name == PREFIX + "last_success_timestamp_seconds"
        for sample in family.samples
        if "controller" in sample.labels and sample.value > 0
    }
