"""A run's stages and steps as SEI's `job_run`, whichever source they were read from.

Every stage and step is sent under its Jenkins flow-node id: SEI keys stages on (run, id) and
steps on (stage, id), and abandons every stage of a run when one lacks it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from agent.jenkins.types import StageNode, StepNode
from agent.sei.payload import JobRun, Stage, Step

Node = TypeVar("Node", bound=Step)


def map_job_run(stages: Iterable[StageNode]) -> JobRun:
    """Stages with their steps, each under its flow-node id.

    SEI stores a stage only under an id unique within the run and a step under one unique
    within its stage: a node repeating one (a parallel branch repeating a stage's id, say) is
    left out.
    """
    return JobRun(
        stages=_unique(
            Stage(**_fields(stage), steps=_unique(Step(**_fields(s)) for s in stage.steps))
            for stage in stages
        )
    )


def _fields(node: StepNode) -> dict[str, Any]:
    return {
        "id": node.id,
        "displayName": node.name,
        "displayDescription": node.description,
        "result": node.result,
        "state": node.state,
        "durationInMillis": node.duration_ms,
        "startTime": node.start_time,
    }


def _unique(nodes: Iterable[Node]) -> list[Node]:
    """Each id once (the first node that has it)."""
    seen: dict[str, Node] = {}
    for node in nodes:
        seen.setdefault(node.id, node)
    return list(seen.values())
