"""Step 2b of the flow: what a build's listing does not carry, read only when it is needed.

- Stages and steps of pipeline runs (agent/jenkins/stages/).
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

from agent.jenkins.causes import start_causes, upstream_of
from agent.jenkins.client import (
    JenkinsClient,
    JenkinsNotFound,
    JenkinsStorageError,
    JenkinsTooLarge,
)
from agent.jenkins.endpoints import (
    CAUSE_FIELDS,
    api_json,
    artifact_path,
    build_path,
    manifest_paths,
)
from agent.jenkins.names import JobNaming
from agent.jenkins.reading import dicts
from agent.jenkins.stages.chain import StageReader, is_pipeline_run
from agent.jenkins.types import BuildDetails, Job

log = logging.getLogger(__name__)

UPSTREAM_CACHE_SIZE = 2048
# What a manifest may weigh: one with thousands of artifacts is well under; anything larger is
# not downloaded (a 400 MB manifest once took 440 MB of memory, over the pod's limit).
MANIFEST_MAX_MIB = 10


class DetailReader:
    """Everything a build's payload needs beyond its listing; thread-safe."""

    def __init__(
        self,
        client: JenkinsClient,
        *,
        steps: bool,
        upstream_depth: int,
        stage_source: str = "auto",
        naming: JobNaming | None = None,
    ) -> None:
        self.client = client
        self.stages = StageReader(client, steps=steps, stage_source=stage_source)
        self.upstream_depth = upstream_depth
        self.naming = naming or JobNaming()  # where upstream jobs live (Maven modules differ)
        self._upstream: OrderedDict[tuple[str, int], dict[str, Any] | None] = OrderedDict()
        # Reads run on several threads: one lock for the cache, one per upstream build being
        # read, so a fan-out of downstream builds waits for a single read of their upstream.
        self._lock = threading.Lock()
        self._reading: dict[tuple[str, Any], threading.Lock] = {}

    def read(self, job: Job, build: dict[str, Any]) -> BuildDetails:
        return BuildDetails(
            stages=self.stages.read(job, build["number"]) if is_pipeline_run(job, build) else None,
            upstream=self._upstream_causes(start_causes(build)),
            manifests=self._manifests(job, build),
        )

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
            following: list[tuple[str, int]] = []
            for key in level:
                if key in found:
                    continue
                upstream = self._upstream_build(key)
                if upstream is None:
                    continue
                found[key] = dicts(upstream.get("actions"))
                following.extend(k for k in map(upstream_of, start_causes(upstream)) if k)
            level = following
        return found

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
            build: dict[str, Any] | None
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

    def _manifests(self, job: Job, build: dict[str, Any]) -> tuple[Any, ...]:
        """The JSON of every manifest the build archived; one that is gone, too large, not JSON
        or unreadable at the storage Jenkins redirects it to (S3 and its kin, whose failures
        a retry next run would not mend) is left out with a warning naming the build."""
        found = []
        number = build["number"]
        for relative in manifest_paths(build):
            path = artifact_path(job.names, number, relative, job.path_containers)
            problem = None
            try:
                raw = self.client.get_bytes(path, kind="artifact", limit=MANIFEST_MAX_MIB << 20)
                found.append(json.loads(raw))
            except JenkinsNotFound:
                continue
            except JenkinsStorageError as exc:
                problem = f"cannot be read where Jenkins keeps it ({exc})"
            except JenkinsTooLarge:
                problem = f"is too large (over {MANIFEST_MAX_MIB} MiB)"
            except RecursionError:
                problem = "is nested too deep to be read"
            except (ValueError, UnicodeDecodeError):
                problem = "is not JSON"
            if problem:
                log.warning("%s #%s: %s %s; ignored", job.full_name, number, relative, problem)
        return tuple(found)
