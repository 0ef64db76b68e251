"""Prometheus metrics of `run`, in a registry of their own so nothing else leaks into /metrics.

Every name of the agent's own starts with `jenkins_sei_agent_`; the standard `process_*` and
`python_*` series are there too, as every Python exporter has them. Labelled counters exist at
zero from the start, so a rate over them works before the first event. Jenkins requests are
read from the client's own counter at scrape time rather than counted twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

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
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from agent import __version__

PREFIX = "jenkins_sei_agent_"
RESULTS = ("SUCCESS", "UNSTABLE", "FAILURE", "ABORTED", "NOT_BUILT")
OUTCOMES = ("ok", "failed", "interrupted")

disable_created_metrics()  # `_created` series double every counter and say nothing useful here

# SEI answers in tens of milliseconds to a few seconds; timeouts default to 30 s.
_SEI_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# An idle cycle is one request; a first sync of a large controller can take many minutes.
_CYCLE_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


class _JenkinsRequests(Collector):
    """`jenkins_sei_agent_jenkins_requests_total{kind}` from JenkinsClient.requests."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            PREFIX + "jenkins_requests",
            "Requests sent to Jenkins, by kind (discover, builds, ...), retries included",
            labels=["kind"],
        )
        for kind, count in sorted(dict(self._counts()).items()):
            family.add_metric([kind], count)
        yield family


class Metrics:
    """The agent's metrics; `render()` is the body of /metrics."""

    def __init__(self, jenkins_requests: Callable[[], Mapping[str, int]]) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.builds_sent = Counter(
            PREFIX + "builds_sent",
            "Builds SEI accepted, by Jenkins result",
            ["result"],
            registry=reg,
        )
        self.builds_failed = Counter(
            PREFIX + "builds_failed",
            "Builds not delivered because SEI kept failing (sent on a later cycle), by result",
            ["result"],
            registry=reg,
        )
        self.builds_dead_lettered = Counter(
            PREFIX + "builds_dead_lettered",
            "Builds SEI refused (4xx) or that could not be mapped, kept as dead letters, by result",
            ["result"],
            registry=reg,
        )
        self.sei_request_seconds = Histogram(
            PREFIX + "sei_request_duration_seconds",
            "Latency of each request to SEI, by HTTP status ('error' when there was no answer)",
            ["status"],
            buckets=_SEI_BUCKETS,
            registry=reg,
        )
        self.cycles = Counter(
            PREFIX + "cycles",
            "Sync cycles, by outcome: ok, failed, interrupted",
            ["outcome"],
            registry=reg,
        )
        self.cycle_seconds = Histogram(
            PREFIX + "cycle_duration_seconds",
            "Duration of each sync cycle",
            buckets=_CYCLE_BUCKETS,
            registry=reg,
        )
        self.last_success = Gauge(
            PREFIX + "last_success_timestamp_seconds",
            "When the last successful cycle ended (Unix time); 0 before the first",
            registry=reg,
        )
        self.jobs_tracked = Gauge(
            PREFIX + "jobs_tracked", "Jobs recorded in the state file", registry=reg
        )
        self.running_builds = Gauge(
            PREFIX + "running_builds_pending",
            "Builds still running at the last cycle, to be sent when they finish",
            registry=reg,
        )
        self.dead_letters = Gauge(
            PREFIX + "dead_letters", "Dead letters kept in the state file", registry=reg
        )
        reg.register(_JenkinsRequests(jenkins_requests))
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            reg.register(standard)
        Info(PREFIX + "build", "The agent's version", registry=reg).info({"version": __version__})
        for result in RESULTS:
            self.builds_sent.labels(result)
            self.builds_failed.labels(result)
        for result in (*RESULTS, "UNKNOWN"):
            self.builds_dead_lettered.labels(result)
        for outcome in OUTCOMES:
            self.cycles.labels(outcome)

    def observe_sei(self, status: str, seconds: float) -> None:
        """SeiClient's on_request hook."""
        self.sei_request_seconds.labels(status).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
