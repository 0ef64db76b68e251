"""What every stage source is: its requests, and the pure reading of their answers into the
one shape the rest of the agent takes (`StageNode`, agent/jenkins/types.py).

A source is told what the controller's detection found (its plugin's version, or that the
plugin list could not say), and answers for one run at a time; the chain
(agent/jenkins/stages/chain.py) decides which source is asked and what a failure means.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from agent.jenkins.client import JenkinsClient, JenkinsNotFound
from agent.jenkins.endpoints import api_json, build_path
from agent.jenkins.reading import is_int
from agent.jenkins.types import Job, StageNode, StepNode

Answers = TypeVar("Answers")


class Unreadable(Exception):
    """A source answered with a body that is not what it serves: the run tries the next one."""


class Absent(Exception):
    """The controller turned out not to have the source: no run asks it again."""


class StageSource(ABC, Generic[Answers]):
    """One place a controller's stages come from, like a Singer stream: `fetch` makes the
    requests, `normalize` (pure) turns their answers into stages; thread-safe.

    `fetch` raises JenkinsNotFound when the source has no answer for the run, `Unreadable`
    when its answer is not one it serves, `Absent` when the controller lacks the source.
    """

    name: ClassVar[str]  # as JENKINS_STAGE_SOURCE names it
    title: ClassVar[str]  # as the logs name it
    plugin: ClassVar[str]  # the plugin that serves it, as the plugin list names it

    def __init__(
        self, client: JenkinsClient, *, steps: bool, version: str | None, listed: bool
    ) -> None:
        """`version`: the plugin's, when the plugin list gave it; `listed`: False when the
        plugin list could not say whether the plugin is there (then it is found out on use)."""
        self.client = client
        self.steps = steps
        self.version = version
        self.listed = listed

    @abstractmethod
    def fetch(self, job: Job, number: int) -> Answers:
        """The run's answers, as few requests as the source allows."""

    @staticmethod
    @abstractmethod
    def normalize(answers: Answers) -> tuple[StageNode, ...]:
        """The run's stages, read defensively: junk in any field is taken for absent."""

    def read(self, job: Job, number: int) -> tuple[StageNode, ...]:
        return self.normalize(self.fetch(job, number))


def build_exists(client: JenkinsClient, job: Job, number: int) -> bool:
    """Whether the build is still there: a 404 from a source says nothing until it is known."""
    try:
        client.get_json(
            api_json(build_path(job.names, number, job.path_containers)), "number", kind="exists"
        )
    except JenkinsNotFound:
        return False
    return True


# The longest id SEI stores (its column is 50 characters).
MAX_NODE_ID = 50


def node_id(node: dict[str, Any]) -> str | None:
    """A flow node's id as SEI keys it: a non-empty string of at most 50 characters."""
    value = node.get("id")
    if is_int(value):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NODE_ID:
        return None
    return value


def with_ids(nodes: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The nodes that have a usable id, each id once (the first node that has it)."""
    seen: dict[str, dict[str, Any]] = {}
    for node in nodes:
        key = node_id(node)
        if key is not None and key not in seen:
            seen[key] = node
    return list(seen.items())


def as_stage(node: StepNode, steps: Iterable[StepNode] = ()) -> StageNode:
    return StageNode(
        id=node.id,
        name=node.name,
        description=node.description,
        result=node.result,
        state=node.state,
        start_time=node.start_time,
        duration_ms=node.duration_ms,
        steps=tuple(steps),
    )


def millis(value: Any) -> int:
    """A duration: junk and negatives are 0, never null (null crashes SEI's processing)."""
    return max(value, 0) if is_int(value) else 0


def start_time(ms: Any) -> str | None:
    """Epoch ms in Blue Ocean's format, so every source gives the same startTime; None for no
    time, or one no calendar holds (a junk 10^20 ms)."""
    if not is_int(ms) or ms <= 0:
        return None
    try:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"
