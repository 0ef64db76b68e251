"""Plain data the Jenkins side hands to the rest of the agent: no I/O here, so the mapping can
use them without loading an HTTP client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.jenkins.endpoints import job_path
from agent.jenkins.names import decode_name, is_module_set, is_multibranch


@dataclass(frozen=True)
class Job:
    """A buildable item, named as Jenkins names it.

    `containers` holds the class of the container each name lives in, aligned with `names`
    from the right (the last entry is the parent's class; missing entries are unknown).
    """

    names: tuple[str, ...]
    cls: str | None = None
    containers: tuple[str | None, ...] = ()
    last_build: int | None = None
    last_build_ts: int | None = None

    @property
    def full_name(self) -> str:
        """Jenkins `fullName`: item names joined by '/', branch names still encoded.

        The state file and every job glob use this name, whatever SEI is sent.
        """
        return "/".join(self.names)

    @property
    def path_containers(self) -> tuple[str | None, ...]:
        """One container class per name (None at the top level and where unknown)."""
        known = self.containers[-len(self.names) :] if self.names else ()
        return (None,) * (len(self.names) - len(known)) + tuple(known)

    @property
    def parent_cls(self) -> str | None:
        return self.path_containers[-1] if self.names else None

    @property
    def name(self) -> str:
        return self.names[-1]

    @property
    def path(self) -> str:
        return job_path(self.names, self.path_containers)

    @property
    def is_branch(self) -> bool:
        """A branch job of a multibranch project (its parent's class says so)."""
        return is_multibranch(self.parent_cls)

    @property
    def is_module(self) -> bool:
        """A module of a Maven project: its builds are sent with a `module_name`."""
        return is_module_set(self.parent_cls)

    @property
    def pipeline(self) -> str:
        """SEI's pipeline name: the job, or the multibranch or Maven project it belongs to."""
        if (self.is_branch or self.is_module) and len(self.names) > 1:
            return self.names[-2]
        return self.name

    @property
    def branch(self) -> str | None:
        """The real branch of a branch job: `feature%2Flogin` -> `feature/login`."""
        return decode_name(self.name) if self.is_branch else None

    @property
    def module(self) -> str | None:
        """A Maven module's name (`groupId$artifactId`, its directory too)."""
        return self.name if self.is_module else None


@dataclass(frozen=True)
class StepNode:
    """A step of a pipeline run as every stage source hands it on, in Blue Ocean's words (the
    ones SEI reads), whatever the source said it in.

    `id` is the flow node's id as a key: a non-empty string of at most 50 characters
    (agent/jenkins/stages/base.py, `node_id`). `result` is one of Blue Ocean's results and
    `state` one of its states; `start_time` is in Blue Ocean's format (a source giving epoch
    ms is converted), None when unknown; `duration_ms` is never negative.
    """

    id: str
    name: str
    description: str | None
    result: str
    state: str
    start_time: str | None
    duration_ms: int


@dataclass(frozen=True)
class StageNode(StepNode):
    """A stage (or a parallel branch, which SEI takes as a stage) with its steps."""

    steps: tuple[StepNode, ...] = ()


@dataclass(frozen=True)
class BuildDetails:
    """What a build's listing does not carry, read separately by agent/jenkins/details.py."""

    stages: tuple[StageNode, ...] | None = None  # None: not a pipeline run, or no source had it
    upstream: Mapping[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    manifests: tuple[Any, ...] = ()  # each archived manifest's JSON, in MANIFEST_NAMES order


@dataclass(frozen=True)
class Window:
    """Which builds the caller needs: numbers down to `down_to`, start times from `since_ms`."""

    down_to: int | None = None
    since_ms: int | None = None
    expected: int | None = None

    def exhausted_by(self, page: list[dict[str, Any]]) -> bool:
        """True once a page reaches below the window (builds are numbered in start order)."""
        oldest = page[-1]
        if self.down_to is not None and _number(oldest.get("number")) <= self.down_to:
            return True
        return self.since_ms is not None and _number(oldest.get("timestamp")) < self.since_ms


def _number(value: Any) -> int:
    return value if isinstance(value, int) else 0
