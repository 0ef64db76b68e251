"""Blue Ocean: a run's nodes, then each started node's steps (one request each).

Its words are the ones SEI reads, so its answers are taken as they are, junk left out.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from agent.config import RESULTS
from agent.jenkins.client import JenkinsClient, JenkinsNotFound
from agent.jenkins.endpoints import BLUE_ORGANIZATION, blue_nodes, blue_run, blue_steps
from agent.jenkins.reading import dicts, opt_text
from agent.jenkins.stages.base import Absent, StageSource, as_stage, millis, with_ids
from agent.jenkins.types import Job, StageNode, StepNode

_STATES = {"FINISHED", "SKIPPED", "NOT_BUILT", "RUNNING", "QUEUED", "PAUSED"}


@dataclass(frozen=True)
class BlueOceanAnswers:
    """The run's `nodes/`, and a node id -> that node's `steps/` (when steps are read)."""

    nodes: list[Any]
    steps: dict[str, Any] = field(default_factory=dict)


class BlueOcean(StageSource[BlueOceanAnswers]):
    name = "blueocean"
    title = "Blue Ocean"
    plugin = "blueocean-rest"

    def __init__(
        self, client: JenkinsClient, *, steps: bool, version: str | None, listed: bool
    ) -> None:
        super().__init__(client, steps=steps, version=version, listed=listed)
        self._ask = not self.listed  # the plugin list could not say: ask the organization once
        self._absent = False
        self._probing = threading.Lock()

    def fetch(self, job: Job, number: int) -> BlueOceanAnswers:
        self._confirm()
        run = blue_run(job.names, number, job.is_branch)
        nodes = [
            n
            for n in self.client.get_json(blue_nodes(run), kind="stages", shape=list)
            if isinstance(n, dict)
        ]
        steps = {}
        if self.steps:
            for node in nodes:
                node_id = str(node.get("id"))
                if node.get("state") is None and node.get("startTime") is None:
                    continue  # never started: it has no steps to read
                steps[node_id] = self.client.get_json(
                    blue_steps(run, node_id), kind="steps", shape=list
                )
        return BlueOceanAnswers(nodes=nodes, steps=steps)

    def _confirm(self) -> None:
        """Asked once, of the organization, when the plugin list could not say."""
        if self._ask:
            with self._probing:
                if self._ask:
                    try:
                        self.client.get_json(BLUE_ORGANIZATION, kind="detect")
                    except JenkinsNotFound:
                        self._absent = True
                    self._ask = False
        if self._absent:
            raise Absent("its organization answers 404")

    @staticmethod
    def normalize(answers: BlueOceanAnswers) -> tuple[StageNode, ...]:
        return tuple(
            as_stage(
                _node(key, node),
                (_node(k, step) for k, step in with_ids(dicts(answers.steps.get(key)))),
            )
            for key, node in with_ids(dicts(answers.nodes))
        )


def _node(key: str, node: dict[str, Any]) -> StepNode:
    result = node.get("result")
    state = node.get("state")
    start = node.get("startTime")
    return StepNode(
        id=key,
        name=str(node.get("displayName") or key),
        description=opt_text(node.get("displayDescription")),
        result=result if isinstance(result, str) and result in RESULTS else "NOT_BUILT",
        state=state if isinstance(state, str) and state in _STATES else "NOT_BUILT",
        start_time=start if isinstance(start, str) else None,
        duration_ms=millis(node.get("durationInMillis")),
    )
