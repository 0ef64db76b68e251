"""Step 2b of the flow: what a build's listing does not carry, read only when it is needed.

- Stages and steps of pipeline runs, from Blue Ocean when the controller has it, else from
  pipeline-stage-view (wfapi), else none. The source is detected once per controller and
  stated in the logs; a job that 404s on it falls back to the next source, for that job only.
- The causes of upstream builds, recursively, cached so that a fan-out of downstream builds
  reads each upstream build once.
- The archived artifact manifests (both, when a build archived both).

A transient failure here fails the build's delivery for this run rather than sending it
without the missing part: SEI keeps the first write of a run, so a partial payload could never
be completed later.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from typing import Any

from agent.discover import Job
from agent.jenkins_client import JenkinsClient, JenkinsNotFound
from agent.jobnames import JobNaming
from agent.mapping import (
    BuildDetails,
    StageData,
    manifest_paths,
    start_causes,
    upstream_of,
    wfapi_branches,
)
from agent.queries import (
    BLUE_ORGANIZATION,
    CAUSE_FIELDS,
    api_json,
    artifact_path,
    blue_nodes,
    blue_run,
    blue_steps,
    build_path,
    wfapi_node,
    wfapi_run,
)

log = logging.getLogger(__name__)

SOURCES = ("blueocean", "wfapi")
UPSTREAM_CACHE_SIZE = 2048
MANIFEST_MAX_BYTES = 1_000_000


def is_pipeline_run(job: Job, build: dict[str, Any]) -> bool:
    """Only pipeline runs have stages; freestyle, maven and matrix builds do not."""
    cls = str(build.get("_class") or job.cls or "")
    return cls.endswith(("WorkflowRun", "WorkflowJob"))


class DetailReader:
    def __init__(
        self,
        client: JenkinsClient,
        *,
        steps: bool,
        upstream_depth: int,
        naming: JobNaming | None = None,
    ) -> None:
        self.client = client
        self.steps = steps
        self.upstream_depth = upstream_depth
        self.naming = naming or JobNaming()  # where upstream jobs live (Maven modules differ)
        self._controller_sources: tuple[str, ...] | None = None
        self._job_sources: dict[str, tuple[str, ...]] = {}
        self._upstream: OrderedDict[tuple[str, int], dict[str, Any] | None] = OrderedDict()
        # Reads run on several threads: one lock for the caches, one per upstream build being
        # read, so a fan-out of downstream builds waits for a single read of their upstream.
        self._lock = threading.Lock()
        self._reading: dict[tuple[str, Any], threading.Lock] = {}

    def read(self, job: Job, build: dict[str, Any]) -> BuildDetails:
        return BuildDetails(
            stages=self._stages(job, build) if is_pipeline_run(job, build) else None,
            upstream=self._upstream_causes(start_causes(build)),
            manifests=self._manifests(job, build),
        )

    # -- stages ----------------------------------------------------------------------------

    def _sources(self) -> tuple[str, ...]:
        with self._lock:
            if self._controller_sources is None:
                try:
                    self.client.get_json(BLUE_ORGANIZATION, kind="detect")
                    self._controller_sources = SOURCES
                    log.info("stages and steps come from Blue Ocean")
                except JenkinsNotFound:
                    self._controller_sources = SOURCES[1:]
                    log.info(
                        "no Blue Ocean: stages and steps come from pipeline-stage-view (wfapi)"
                    )
            return self._controller_sources

    def _stages(self, job: Job, build: dict[str, Any]) -> StageData | None:
        known = self._job_sources.get(job.full_name)
        if known is None:
            # The job's first pipeline run finds which source answers for it; the job's other
            # builds, on other threads, wait for that rather than each probing for themselves,
            # then read their own stages side by side, outside the lock.
            with self._lock:
                probing = self._reading.setdefault(("stages", job.full_name), threading.Lock())
            with probing:
                known = self._job_sources.get(job.full_name)
                if known is None:
                    return self._stages_from(job, build["number"], self._sources())
        return self._stages_from(job, build["number"], known)

    def _stages_from(self, job: Job, number: int, sources: tuple[str, ...]) -> StageData | None:
        for index, source in enumerate(sources):
            try:
                data = (
                    self._blue(job, number) if source == "blueocean" else self._wfapi(job, number)
                )
            except JenkinsNotFound:
                if not self._exists(job, number):
                    raise  # the build itself was rotated away: that says nothing of the source
                remaining = sources[index + 1 :]
                log.info(
                    "%s: no %s answer; %s",
                    job.full_name,
                    source,
                    f"trying {remaining[0]}" if remaining else "its builds are sent without stages",
                )
                self._job_sources[job.full_name] = remaining
                continue
            self._job_sources[job.full_name] = sources[index:]
            return data
        return None

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
        stages = [s for s in describe.get("stages") or [] if isinstance(s, dict)]
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

    # -- upstream causes -------------------------------------------------------------------

    def _upstream_causes(
        self, causes: list[dict[str, Any]]
    ) -> dict[tuple[str, int], list[dict[str, Any]]]:
        """Causes of every upstream build up the chain, `upstream_depth` levels deep.

        Each upstream build is read once, whatever the number of paths leading to it, so a
        cycle of builds causing each other ends.
        """
        found: dict[tuple[str, int], list[dict[str, Any]]] = {}
        level = [key for key in map(upstream_of, causes) if key]
        for _ in range(self.upstream_depth):
            following = []
            for key in level:
                if key in found:
                    continue
                upstream = self._upstream_build(key)
                if upstream is None:
                    continue
                found[key] = upstream
                following.extend(k for k in map(upstream_of, start_causes(upstream)) if k)
            level = following
        return {key: upstream.get("actions") or [] for key, upstream in found.items()}

    def _upstream_build(self, key: tuple[str, int]) -> dict[str, Any] | None:
        with self._lock:
            reading = self._reading.setdefault(key, threading.Lock())
        with reading:
            with self._lock:
                if key in self._upstream:
                    self._upstream.move_to_end(key)
                    return self._upstream[key]
            project, number = key
            names = tuple(project.split("/"))
            path = api_json(build_path(names, number, self.naming.containers_of(names)))
            try:
                build = self.client.get_json(path, CAUSE_FIELDS, kind="upstream")
            except JenkinsNotFound:
                build = None  # deleted or rotated away: the chain stops there
            with self._lock:
                self._upstream[key] = build
                if len(self._upstream) > UPSTREAM_CACHE_SIZE:
                    self._upstream.popitem(last=False)
                self._reading.pop(key, None)
            return build

    # -- artifacts -------------------------------------------------------------------------

    def _manifests(self, job: Job, build: dict[str, Any]) -> tuple[Any, ...]:
        """The JSON of every manifest the build archived; one that is gone or not JSON is left
        out with a warning naming the build."""
        found = []
        for relative in manifest_paths(build):
            path = artifact_path(job.names, build["number"], relative, job.path_containers)
            try:
                raw = self.client.get_bytes(path, kind="artifact")
            except JenkinsNotFound:
                continue
            try:
                found.append(json.loads(raw[:MANIFEST_MAX_BYTES]))
            except (ValueError, UnicodeDecodeError, RecursionError):
                log.warning(
                    "%s #%s: %s is not JSON; ignored", job.full_name, build["number"], relative
                )
        return tuple(found)
