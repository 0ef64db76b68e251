"""Which stage source answers for a run: detection, probing and per-run fallback.

pipeline-graph-view first (two requests a run), then Blue Ocean, then pipeline-stage-view
(wfapi), else none. The sources are detected once per controller (the plugin list, else a probe)
and stated in the logs; a run a source has no answer for falls back to the next source, for
that run and the job's older ones only. The chain knows the sources only as StageSource.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from agent.jenkins.client import JenkinsClient, JenkinsNotFound, JenkinsRefused
from agent.jenkins.endpoints import PLUGIN_FIELDS, PLUGINS
from agent.jenkins.stages.base import Absent, StageSource, Unreadable, build_exists
from agent.jenkins.stages.blueocean import BlueOcean
from agent.jenkins.stages.graphview import GraphView
from agent.jenkins.stages.wfapi import Wfapi
from agent.jenkins.types import Job, StageNode

log = logging.getLogger(__name__)

Source = type[StageSource[Any]]

# The stage sources, in order of preference.
SOURCES: tuple[Source, ...] = (GraphView, BlueOcean, Wfapi)

# The plugins that give stages, in the same order.
STAGE_PLUGINS = tuple(source.plugin for source in SOURCES)


def is_pipeline_run(job: Job, build: dict[str, Any]) -> bool:
    """Only pipeline runs have stages; freestyle, maven and matrix builds do not."""
    cls = str(build.get("_class") or job.cls or "")
    return cls.endswith(("WorkflowRun", "WorkflowJob"))


@dataclass(frozen=True)
class Detection:
    """Where a controller's stages and steps come from, in order of preference.

    `how`: "forced" (JENKINS_STAGE_SOURCE), "plugins" (the plugin list said), or "probe" (the
    plugin list was refused: each source is tried on the first pipeline run that needs it).
    """

    sources: tuple[Source, ...]
    how: str
    versions: dict[Source, str] = field(default_factory=dict)
    refused: str = ""
    plugins: dict[str, str] = field(default_factory=dict)  # every active plugin's version

    def describe(self) -> str:
        """One line for the logs and for `check`."""
        if not self.sources:
            reason = "JENKINS_STAGE_SOURCE=none" if self.how == "forced" else "no stage plugin"
            return f"none ({reason}): builds are sent without stages"
        first, *rest = self.sources
        text = self._named(first)
        if rest:
            text += f", then {', '.join(map(self._named, rest))} for runs it has no answer for"
        if self.how == "forced":
            return f"{text} (JENKINS_STAGE_SOURCE)"
        if self.how == "probe":
            return f"{text}, each tried on the first run that needs it ({self.refused})"
        return text

    def _named(self, source: Source) -> str:
        version = self.versions.get(source)
        return f"{source.title} {version}" if version else source.title

    def readers(self, client: JenkinsClient, *, steps: bool) -> tuple[StageSource[Any], ...]:
        """The detected sources, each told what the detection knows of it."""
        listed = self.how != "probe"
        return tuple(
            source(client, steps=steps, version=self.versions.get(source), listed=listed)
            for source in self.sources
        )


def detect(client: JenkinsClient, forced: str = "auto") -> Detection:
    """The stage sources of the controller `client` reads, from one request at most.

    The plugin list needs Overall/SystemRead: a user without it gets 401/403 (404 behind some
    proxies), which must not stop the run, so then every source is a candidate to probe.
    """
    if forced != "auto":  # a source's name, or "none", which names no source
        return Detection(sources=tuple(s for s in SOURCES if s.name == forced), how="forced")
    try:
        answer = client.get_json(PLUGINS, PLUGIN_FIELDS, kind="detect")
    except JenkinsRefused as exc:
        status = re.search(r"HTTP \d{3}", str(exc))
        refused = f"the plugin list is refused ({status.group() if status else exc})"
        return Detection(sources=SOURCES, how="probe", refused=refused)
    except JenkinsNotFound:
        return Detection(sources=SOURCES, how="probe", refused="no plugin list (HTTP 404)")
    plugins = answer.get("plugins")
    if not isinstance(plugins, list):  # a proxy's answer, say: it says nothing of the plugins
        return Detection(sources=SOURCES, how="probe", refused="no plugins in the plugin list")
    active = {
        str(p.get("shortName")): str(p.get("version") or "")
        for p in plugins
        if isinstance(p, dict) and p.get("active") is True
    }
    found = tuple(s for s in SOURCES if s.plugin in active)
    versions = {s: active[s.plugin] for s in found if active[s.plugin]}
    return Detection(sources=found, how="plugins", versions=versions, plugins=active)


class StageReader:
    """Reads a run's stages from the controller's best source; thread-safe."""

    def __init__(self, client: JenkinsClient, *, steps: bool, stage_source: str = "auto") -> None:
        self.client = client
        self.steps = steps
        self.stage_source = stage_source
        self._sources: tuple[StageSource[Any], ...] | None = None
        # The controller's sources are detected once, by the first run that needs them; runs
        # on other threads wait for the answer.
        self._probing = threading.Lock()
        self._lock = threading.Lock()
        # (job, source) -> the newest build the source had no answer for: the job's builds up
        # to it predate the source's plugin and are not asked again; newer ones are.
        self._no_answer: dict[tuple[str, str], int] = {}

    def _controller_sources(self) -> tuple[StageSource[Any], ...]:
        if self._sources is None:
            with self._probing:
                if self._sources is None:
                    detection = detect(self.client, self.stage_source)
                    log.info("stage source: %s", detection.describe())
                    self._sources = detection.readers(self.client, steps=self.steps)
        return self._sources

    def _drop(self, source: StageSource[Any], why: str) -> None:
        """No run asks `source` again; said once, by the run that found out."""
        with self._lock:
            sources = self._sources or ()
            if source not in sources:
                return
            self._sources = tuple(s for s in sources if s is not source)
            remaining = ", ".join(s.title for s in self._sources) or "none"
        log.info("no %s: %s; stage sources left: %s", source.title, why, remaining)

    def read(self, job: Job, number: int) -> tuple[StageNode, ...] | None:
        """The first source that answers for the run; None when none has stages for it.

        A 404 from a source says nothing until the build is known to exist (another source
        answered, or a last check): a build rotated away in the meantime is gone, not older
        than a plugin.
        """
        missed: list[StageSource[Any]] = []
        for source in self._controller_sources():
            if number <= self._no_answer.get((job.full_name, source.name), 0):
                continue
            try:
                stages = source.read(job, number)
            except Absent as exc:
                self._drop(source, str(exc))
                continue
            except JenkinsNotFound:
                missed.append(source)
                continue
            except Unreadable as exc:
                log.warning("%s #%d: %s; trying the next source", job.full_name, number, exc)
                continue
            self._predating(job, number, missed)
            return stages
        if missed and not build_exists(self.client, job, number):
            raise JenkinsNotFound(f"{job.full_name} #{number} is gone")
        self._predating(job, number, missed)
        return None

    def _predating(self, job: Job, number: int, sources: list[StageSource[Any]]) -> None:
        """Remember that the job's builds up to `number` have no answer from `sources`."""
        for source in sources:
            key = (job.full_name, source.name)
            with self._lock:
                first = key not in self._no_answer
                self._no_answer[key] = max(number, self._no_answer.get(key, 0))
            (log.info if first else log.debug)(
                "%s: no %s answer for #%d and older; newer builds are still asked",
                job.full_name,
                source.title,
                number,
            )
