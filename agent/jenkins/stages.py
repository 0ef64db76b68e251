"""Stages and steps of pipeline runs, from whichever source the controller has.

pipeline-graph-view first (two requests a run), then Blue Ocean, then pipeline-stage-view
(wfapi), else none. The sources are detected once per controller (the plugin list, else a probe)
and stated in the logs; a run a source has no answer for falls back to the next source, for
that run and the job's older ones only.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from agent.jenkins.client import JenkinsClient, JenkinsNotFound, JenkinsRefused
from agent.jenkins.endpoints import (
    BLUE_ORGANIZATION,
    GRAPH_VIEW_PATHS,
    PLUGIN_FIELDS,
    PLUGINS,
    GraphViewPaths,
    api_json,
    blue_nodes,
    blue_run,
    blue_steps,
    build_path,
    graph_steps,
    graph_tree,
    graph_view_paths,
    wfapi_node,
    wfapi_run,
)
from agent.jenkins.reading import dicts
from agent.jenkins.types import Job, StageData
from agent.jenkins.wfapi import wfapi_branches

log = logging.getLogger(__name__)

# Stage sources in order of preference, each with the plugin that serves it and its name in logs.
SOURCES = ("graphview", "blueocean", "wfapi")

SOURCE_PLUGINS = {
    "graphview": "pipeline-graph-view",
    "blueocean": "blueocean-rest",
    "wfapi": "pipeline-stage-view",
}

SOURCE_NAMES = {
    "graphview": "pipeline-graph-view",
    "blueocean": "Blue Ocean",
    "wfapi": "pipeline-stage-view (wfapi)",
}


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

    sources: tuple[str, ...]
    how: str
    versions: dict[str, str] = field(default_factory=dict)
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

    def _named(self, source: str) -> str:
        version = self.versions.get(source)
        return f"{SOURCE_NAMES[source]} {version}" if version else SOURCE_NAMES[source]


def detect(client: JenkinsClient, forced: str = "auto") -> Detection:
    """The stage sources of the controller `client` reads, from one request at most.

    The plugin list needs Overall/SystemRead: a user without it gets 401/403 (404 behind some
    proxies), which must not stop the run, so then every source is a candidate to probe.
    """
    if forced != "auto":
        return Detection(sources=() if forced == "none" else (forced,), how="forced")
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
    found = [s for s in SOURCES if SOURCE_PLUGINS[s] in active]
    versions = {s: active[SOURCE_PLUGINS[s]] for s in found if active[SOURCE_PLUGINS[s]]}
    return Detection(sources=tuple(found), how="plugins", versions=versions, plugins=active)


class _Unreadable(Exception):
    """A source answered with a body that is not what it serves: the run tries the next one."""


class _NotThere(Exception):
    """The controller turned out not to have the source: no run asks it again."""


class StageReader:
    """Reads a run's stages from the controller's best source; thread-safe."""

    def __init__(self, client: JenkinsClient, *, steps: bool, stage_source: str = "auto") -> None:
        self.client = client
        self.steps = steps
        self.stage_source = stage_source
        self._sources: tuple[str, ...] | None = None
        # Controller-wide questions (which sources, which paths) are answered once, by the
        # first run that needs the answer; runs on other threads wait for it.
        self._probing = threading.Lock()
        self._lock = threading.Lock()
        self._ask_blue_ocean = False  # the plugin list could not say: ask on first use
        self._graph_paths: tuple[GraphViewPaths, ...] = GRAPH_VIEW_PATHS
        # (job, source) -> the newest build the source had no answer for: the job's builds up
        # to it predate the source's plugin and are not asked again; newer ones are.
        self._no_answer: dict[tuple[str, str], int] = {}

    def _controller_sources(self) -> tuple[str, ...]:
        if self._sources is None:
            with self._probing:
                if self._sources is None:
                    detection = detect(self.client, self.stage_source)
                    log.info("stage source: %s", detection.describe())
                    self._ask_blue_ocean = detection.how == "probe"
                    self._graph_paths = graph_view_paths(detection.versions.get("graphview"))
                    self._sources = detection.sources
        return self._sources

    def _drop(self, source: str, why: str) -> None:
        with self._lock:
            self._sources = tuple(s for s in self._sources or () if s != source)
        remaining = ", ".join(SOURCE_NAMES[s] for s in self._sources or ()) or "none"
        log.info("no %s: %s; stage sources left: %s", SOURCE_NAMES[source], why, remaining)

    def read(self, job: Job, number: int) -> StageData | None:
        """The first source that answers for the run; None when none has stages for it.

        A 404 from a source says nothing until the build is known to exist (another source
        answered, or a last check): a build rotated away in the meantime is gone, not older
        than a plugin.
        """
        missed: list[str] = []
        for source in self._controller_sources():
            if number <= self._no_answer.get((job.full_name, source), 0):
                continue
            if source == "blueocean" and not self._has_blue_ocean():
                continue
            try:
                data = self._read(source, job, number)
            except _NotThere:
                continue
            except JenkinsNotFound:
                missed.append(source)
                continue
            except _Unreadable as exc:
                log.warning("%s #%d: %s; trying the next source", job.full_name, number, exc)
                continue
            self._predating(job, number, missed)
            return data
        if missed and not self._exists(job, number):
            raise JenkinsNotFound(f"{job.full_name} #{number} is gone")
        self._predating(job, number, missed)
        return None

    def _predating(self, job: Job, number: int, sources: list[str]) -> None:
        """Remember that the job's builds up to `number` have no answer from `sources`."""
        for source in sources:
            key = (job.full_name, source)
            with self._lock:
                first = key not in self._no_answer
                self._no_answer[key] = max(number, self._no_answer.get(key, 0))
            (log.info if first else log.debug)(
                "%s: no %s answer for #%d and older; newer builds are still asked",
                job.full_name,
                SOURCE_NAMES[source],
                number,
            )

    def _read(self, source: str, job: Job, number: int) -> StageData:
        if source == "graphview":
            return self._graph_view(job, number)
        if source == "blueocean":
            return self._blue(job, number)
        return self._wfapi(job, number)

    def _exists(self, job: Job, number: int) -> bool:
        try:
            self.client.get_json(
                api_json(build_path(job.names, number, job.path_containers)),
                "number",
                kind="exists",
            )
        except JenkinsNotFound:
            return False
        return True

    def _has_blue_ocean(self) -> bool:
        """Asked once, of the organization, when the plugin list could not say."""
        if self._ask_blue_ocean:
            with self._probing:
                if self._ask_blue_ocean:
                    try:
                        self.client.get_json(BLUE_ORGANIZATION, kind="detect")
                    except JenkinsNotFound:
                        self._drop("blueocean", "its organization answers 404")
                    self._ask_blue_ocean = False
        return "blueocean" in (self._sources or ())

    def _graph_view(self, job: Job, number: int) -> StageData:
        """The run's stage tree and, unless steps are off, all its steps: two requests.

        Until a controller's path generation is known (no plugin version), the first run to
        get here tries them newest first and the others wait for the one that answers. A
        plugin none of whose paths answers for a run that exists is not there.
        """
        paths = self._graph_paths
        if len(paths) != 1:
            with self._probing:
                paths = self._graph_paths
                if not paths:
                    raise _NotThere
                if len(paths) > 1:
                    return self._graph_view_probe(job, number)
        tree = self._get(graph_tree(job.names, number, paths[0]), kind="stages")
        return self._graph_view_steps(job, number, paths[0], tree)

    def _graph_view_probe(self, job: Job, number: int) -> StageData:
        for paths in self._graph_paths:
            try:
                tree = self._get(graph_tree(job.names, number, paths), kind="stages")
            except JenkinsNotFound:
                continue
            self._graph_paths = (paths,)
            log.info("pipeline-graph-view serves %s and %s", paths.tree, paths.steps)
            return self._graph_view_steps(job, number, paths, tree)
        if not self._exists(job, number):
            raise JenkinsNotFound(f"{job.full_name} #{number} is gone")
        self._graph_paths = ()
        self._drop("graphview", f"none of its paths answers for {job.full_name} #{number}")
        raise _NotThere

    def _get(self, path: str, *, kind: str) -> Any:
        """Any JSON: a body of the wrong shape is for `_graph_data` to judge, not an error."""
        return self.client.get_json(path, kind=kind, shape=object)

    def _graph_view_steps(
        self, job: Job, number: int, paths: GraphViewPaths, tree: Any
    ) -> StageData:
        stages = _graph_data(tree, "stages", paths.tree)
        steps: list[Any] = []
        if self.steps:
            answer = self._get(graph_steps(job.names, number, paths), kind="steps")
            steps = _graph_data(answer, "steps", paths.steps)
        return StageData(source="graphview", nodes=stages, steps=steps)

    def _blue(self, job: Job, number: int) -> StageData:
        run = blue_run(job.names, number, job.is_branch)
        nodes = [
            n
            for n in self.client.get_json(blue_nodes(run), kind="stages", shape=list)
            if isinstance(n, dict)
        ]
        children = {}
        if self.steps:
            for node in nodes:
                node_id = str(node.get("id"))
                if node.get("state") is None and node.get("startTime") is None:
                    continue  # never started: it has no steps to read
                children[node_id] = self.client.get_json(
                    blue_steps(run, node_id), kind="steps", shape=list
                )
        return StageData(source="blueocean", nodes=nodes, children=children)

    def _wfapi(self, job: Job, number: int) -> StageData:
        describe = self.client.get_json(wfapi_run(job.names, number), kind="stages")
        stages = dicts(describe.get("stages"))  # `"stages": 5` is none
        children: dict[str, Any] = {}
        if self.steps:
            for stage in stages:
                if stage.get("status") == "NOT_EXECUTED":
                    continue
                stage_id = str(stage.get("id"))
                node = self.client.get_json(wfapi_node(job.names, number, stage_id), kind="steps")
                children[stage_id] = node
                for branch in wfapi_branches(node):
                    children[branch] = self.client.get_json(
                        wfapi_node(job.names, number, branch), kind="steps"
                    )
        return StageData(source="wfapi", nodes=stages, children=children)


def _graph_data(answer: Any, key: str, path: str) -> list[Any]:
    """`data[key]` of a pipeline-graph-view answer, `{"status": "ok", "data": {key: [...]}}`.

    The plugin's own front-end API, not a versioned one: anything else (an error envelope, a
    renamed field) is unreadable, and the run goes to the next source rather than being sent
    with what could be guessed from it. What is inside the list the mapping reads defensively.
    """
    data = answer.get("data") if isinstance(answer, dict) else None
    found = data.get(key) if isinstance(data, dict) else None
    if not isinstance(found, list) or answer.get("status") != "ok":
        shown = json.dumps(answer)[:100]
        raise _Unreadable(f"pipeline-graph-view answered {path} with {shown}, no {key} list")
    return found
