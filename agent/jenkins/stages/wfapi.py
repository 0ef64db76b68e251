"""pipeline-stage-view (wfapi): a run's stages, then each executed stage's flow nodes, and each
parallel branch's (one request each).

A parallel stage's branches are stages of their own, as Blue Ocean sends them, each with the
steps whose chain leads back to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.jenkins.endpoints import wfapi_node, wfapi_run
from agent.jenkins.reading import as_list, dicts, opt_text
from agent.jenkins.stages.base import StageSource, as_stage, millis, node_id, start_time, with_ids
from agent.jenkins.types import Job, StageNode, StepNode

# wfapi status -> (result, state) in Blue Ocean's words.
_STATUS = {
    "SUCCESS": ("SUCCESS", "FINISHED"),
    "FAILED": ("FAILURE", "FINISHED"),
    "FAILURE": ("FAILURE", "FINISHED"),
    "ABORTED": ("ABORTED", "FINISHED"),
    "UNSTABLE": ("UNSTABLE", "FINISHED"),
    "NOT_EXECUTED": ("NOT_BUILT", "NOT_BUILT"),
    "SKIPPED": ("NOT_BUILT", "SKIPPED"),
}


@dataclass(frozen=True)
class WfapiAnswers:
    """The run's `wfapi/describe` stages, and a flow node id -> that node's `wfapi/describe`
    (a stage's steps, or a parallel branch with its steps)."""

    stages: list[Any]
    describes: dict[str, Any] = field(default_factory=dict)


class Wfapi(StageSource[WfapiAnswers]):
    name = "wfapi"
    title = "pipeline-stage-view (wfapi)"
    plugin = "pipeline-stage-view"

    def fetch(self, job: Job, number: int) -> WfapiAnswers:
        describe = self.client.get_json(wfapi_run(job.names, number), kind="stages")
        stages = dicts(describe.get("stages"))  # `"stages": 5` is none
        describes: dict[str, Any] = {}
        if self.steps:
            for stage in stages:
                if stage.get("status") == "NOT_EXECUTED":
                    continue
                stage_id = str(stage.get("id"))
                node = self.client.get_json(wfapi_node(job.names, number, stage_id), kind="steps")
                describes[stage_id] = node
                for branch in branches(node):
                    describes[branch] = self.client.get_json(
                        wfapi_node(job.names, number, branch), kind="steps"
                    )
        return WfapiAnswers(stages=stages, describes=describes)

    @staticmethod
    def normalize(answers: WfapiAnswers) -> tuple[StageNode, ...]:
        return tuple(
            stage
            for _, node in with_ids(dicts(answers.stages))
            for stage in _stages(node, answers.describes)
        )


def _stages(stage: dict[str, Any], describes: dict[str, Any]) -> list[StageNode]:
    """A wfapi stage, and its parallel branches as stages of their own (with their node ids)."""
    describe = describes.get(str(stage.get("id")))
    if not isinstance(describe, dict):
        return [as_stage(_node(stage, None))]
    found = [b for b in branches(describe) if isinstance(describes.get(b), dict)]
    found = [b for b in found if node_id(describes[b])]
    if not found:
        return [as_stage(_node(stage, None), _steps(describe))]
    return [as_stage(_node(stage, None))] + [
        as_stage(_node(describes[branch], None), _steps(describe, branch)) for branch in found
    ]


def _steps(describe: dict[str, Any], branch: str | None = None) -> list[StepNode]:
    roots = _chain_roots(describe)
    return [
        _node(n, "parameterDescription")
        for key, n in with_ids(dicts(describe.get("stageFlowNodes")))
        if branch is None or roots.get(key) == branch
    ]


def _node(node: dict[str, Any], description_key: str | None) -> StepNode:
    """Only nodes with a usable id come here (`with_ids`, or a branch checked for one)."""
    key = node_id(node)
    assert key is not None
    result, state = _STATUS.get(str(node.get("status")), ("NOT_BUILT", "NOT_BUILT"))
    description = node.get(description_key) if description_key else None
    return StepNode(
        id=key,
        name=str(node.get("name") or key),
        description=opt_text(description),
        result=result,
        state=state,
        start_time=start_time(node.get("startTimeMillis")),
        duration_ms=millis(node.get("durationMillis")),
    )


def _chain_roots(describe: dict[str, Any]) -> dict[str, str]:
    """Flow node id -> the node its chain of steps leads back to (outside the node list)."""
    nodes = dicts(describe.get("stageFlowNodes"))
    parent = {str(n.get("id")): str((as_list(n.get("parentNodes")) or [""])[0]) for n in nodes}
    roots = {}
    for start in parent:
        node, seen = start, {start}
        while parent[node] in parent and parent[node] not in seen:
            node = parent[node]
            seen.add(node)
        roots[start] = parent[node]
    return roots


def branches(stage_describe: dict[str, Any]) -> list[str]:
    """Ids of the parallel branches inside a stage, from its flow nodes' parents.

    Each chain of steps leads back to the node that opened it: the stage itself (or its body)
    for ordinary steps, one branch node per branch in a parallel stage. One root: no branches.
    """
    roots = list(dict.fromkeys(r for r in _chain_roots(stage_describe).values() if r))
    return roots if len(roots) > 1 else []
