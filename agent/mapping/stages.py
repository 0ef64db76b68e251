"""A run's stages and steps as SEI's `job_run`, from whichever source the controller has:
pipeline-graph-view, Blue Ocean or pipeline-stage-view (wfapi), each in its own words.

Every stage and step is sent under its Jenkins flow-node id: SEI keys stages on (run, id) and
steps on (stage, id), and abandons every stage of a run when one lacks it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.jenkins.reading import as_list, dicts, is_int, opt_text
from agent.jenkins.types import StageData
from agent.jenkins.wfapi import chain_roots, wfapi_branches
from agent.sei.payload import JobRun, Stage, Step

_RESULTS = {"SUCCESS", "FAILURE", "UNSTABLE", "ABORTED", "NOT_BUILT"}


_STATES = {"FINISHED", "SKIPPED", "NOT_BUILT", "RUNNING", "QUEUED", "PAUSED"}


# wfapi status -> (result, state) in Blue Ocean's words.
_WFAPI_STATUS = {
    "SUCCESS": ("SUCCESS", "FINISHED"),
    "FAILED": ("FAILURE", "FINISHED"),
    "FAILURE": ("FAILURE", "FINISHED"),
    "ABORTED": ("ABORTED", "FINISHED"),
    "UNSTABLE": ("UNSTABLE", "FINISHED"),
    "NOT_EXECUTED": ("NOT_BUILT", "NOT_BUILT"),
    "SKIPPED": ("NOT_BUILT", "SKIPPED"),
}


# pipeline-graph-view state -> (result, state), as the Blue Ocean mapping turns its own words:
# a result SEI does not know (UNKNOWN, or none while a node runs) becomes NOT_BUILT.
_GRAPH_STATES = {
    "success": ("SUCCESS", "FINISHED"),
    "failure": ("FAILURE", "FINISHED"),
    "unstable": ("UNSTABLE", "FINISHED"),
    "aborted": ("ABORTED", "FINISHED"),
    "not_built": ("NOT_BUILT", "NOT_BUILT"),
    "skipped": ("NOT_BUILT", "SKIPPED"),
    "unknown": ("NOT_BUILT", "FINISHED"),
    "finished": ("NOT_BUILT", "FINISHED"),
    "running": ("NOT_BUILT", "RUNNING"),
    "queued": ("NOT_BUILT", "QUEUED"),
    "paused": ("NOT_BUILT", "PAUSED"),
}


def map_job_run(data: StageData) -> JobRun:
    """Stages with their steps, each under its flow-node id, whatever the source.

    SEI stores a stage only under an id unique within the run and a step under one unique
    within its stage: a node without a usable id, or repeating one, is left out.
    """
    if data.source == "blueocean":
        stages = [
            _blue_stage(node, data.children.get(node_id))
            for node_id, node in _with_ids(dicts(data.nodes))
        ]
    elif data.source == "graphview":
        stages = _graph_view_stages(data)
    else:
        stages = [s for _, node in _with_ids(dicts(data.nodes)) for s in _wfapi_stages(node, data)]
    return JobRun(stages=_unique(stages))


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


def _with_ids(nodes: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The nodes that have a usable id, each id once (the first node that has it)."""
    seen: dict[str, dict[str, Any]] = {}
    for node in nodes:
        key = node_id(node)
        if key is not None and key not in seen:
            seen[key] = node
    return list(seen.items())


def _unique(stages: list[Stage]) -> list[Stage]:
    """Each stage id once within the run (a parallel branch repeating a stage's id is dropped)."""
    seen: dict[str, Stage] = {}
    for stage in stages:
        seen.setdefault(stage.id, stage)
    return list(seen.values())


def _blue_fields(node_key: str, node: dict[str, Any]) -> dict[str, Any]:
    result = node.get("result")
    state = node.get("state")
    duration = node.get("durationInMillis")
    return {
        "id": node_key,
        "displayName": str(node.get("displayName") or node_key),
        "displayDescription": opt_text(node.get("displayDescription")),
        "result": result if isinstance(result, str) and result in _RESULTS else "NOT_BUILT",
        "state": state if isinstance(state, str) and state in _STATES else "NOT_BUILT",
        "durationInMillis": max(duration, 0) if is_int(duration) else 0,
        "startTime": node.get("startTime") if isinstance(node.get("startTime"), str) else None,
    }


def _blue_stage(node: dict[str, Any], steps: Any) -> Stage:
    key = node_id(node)
    assert key is not None  # map_job_run passes only nodes with ids
    return Stage(
        **_blue_fields(key, node),
        steps=[Step(**_blue_fields(k, step)) for k, step in _with_ids(dicts(steps))],
    )


def _wfapi_fields(node: dict[str, Any], description_key: str | None) -> dict[str, Any]:
    result, state = _WFAPI_STATUS.get(str(node.get("status")), ("NOT_BUILT", "NOT_BUILT"))
    duration = node.get("durationMillis")
    start = node.get("startTimeMillis")
    description = node.get(description_key) if description_key else None
    key = node_id(node)
    return {
        "id": key,
        "displayName": str(node.get("name") or key),
        "displayDescription": opt_text(description),
        "result": result,
        "state": state,
        "durationInMillis": max(duration, 0) if is_int(duration) else 0,
        "startTime": _iso(start) if is_int(start) and start > 0 else None,
    }


def _wfapi_steps(describe: dict[str, Any], branch: str | None = None) -> list[Step]:
    roots = chain_roots(describe)
    return [
        Step(**_wfapi_fields(n, "parameterDescription"))
        for key, n in _with_ids(dicts(describe.get("stageFlowNodes")))
        if branch is None or roots.get(key) == branch
    ]


def _wfapi_stages(stage: dict[str, Any], data: StageData) -> list[Stage]:
    """A wfapi stage, and its parallel branches as stages of their own (with their node ids)."""
    describe = data.children.get(str(stage.get("id")))
    if not isinstance(describe, dict):
        return [Stage(**_wfapi_fields(stage, None))]
    branches = [
        b
        for b in wfapi_branches(describe)
        if isinstance(data.children.get(b), dict) and node_id(data.children[b])
    ]
    if not branches:
        return [Stage(**_wfapi_fields(stage, None), steps=_wfapi_steps(describe))]
    stages = [Stage(**_wfapi_fields(stage, None))]
    for branch in branches:
        stages.append(
            Stage(
                **_wfapi_fields(data.children[branch], None), steps=_wfapi_steps(describe, branch)
            )
        )
    return stages


# A step's text is its command or arguments, which can run to kilobytes (a whole shell script);
# SEI shortens names to 50 characters anyway.
MAX_STEP_TEXT = 1000


def _graph_tree(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every stage of a pipeline-graph-view tree, in the order the graph draws them.

    A node, then its `children` (the branches of a parallel, or the stages nested in a stage or
    in a branch), then its `nextSibling` (a sequential stage after it in its branch), each with
    everything below it. Synthetic stages (Declarative's checkout and post actions) and the
    placeholder that stands for a run without stages are no stages of the run; stages below
    them still are.

    Parallel blocks: where a stage holds nothing but one `parallel`, the plugin folds the block
    into that stage (PipelineNodeGraphAdapter.getNodesToRemap), so the stage comes with its
    branches as children, as Blue Ocean and wfapi send a parallel stage and its branches. A
    PARALLEL_BLOCK node left in the tree (a `parallel` outside any stage, or beside other work
    in its stage) is the parallel step's own flow node, with its id, timing and state, drawn
    by the plugin as a stage named "Parallel" heading its branches: it is sent as a stage too,
    as Blue Ocean sends its "Parallel" node.
    """
    found = []
    pending = list(reversed(nodes))
    while pending:
        node = pending.pop()
        if not isinstance(node, dict):
            continue
        pending.append(node.get("nextSibling"))
        pending.extend(reversed(as_list(node.get("children"))))
        synthetic = node.get("synthetic") is True or node.get("placeholder") is True
        if not synthetic and node.get("type") != "PIPELINE_START":
            found.append(node)
    return found


def _graph_fields(key: str, node: dict[str, Any], name: str | None) -> dict[str, Any]:
    result, state = _GRAPH_STATES.get(str(node.get("state")).lower(), ("NOT_BUILT", "NOT_BUILT"))
    duration = node.get("totalDurationMillis")  # null or absent while the node runs
    start = node.get("startTimeMillis")
    return {
        "id": key,
        "displayName": name or key,
        "result": result,
        "state": state,
        "durationInMillis": max(duration, 0) if is_int(duration) else 0,
        "startTime": _iso(start) if is_int(start) and start > 0 else None,
    }


def _graph_step(key: str, step: dict[str, Any]) -> Step:
    """A step whose `name` is its command or arguments (`sh 'make'` gives "make"), its label,
    or for a step without arguments its kind; `title` is the kind ("Git") when `name` holds
    arguments, except that releases since 448 leave it empty for Shell Script and Print
    Message. The kind is the name SEI shows, as with Blue Ocean; the text is the description.
    """
    text = opt_text(step.get("name"))
    title = opt_text(step.get("title"))
    text = text[:MAX_STEP_TEXT] if text else None
    return Step(
        **_graph_fields(key, step, title[:MAX_STEP_TEXT] if title else text),
        displayDescription=text,
    )


def _graph_view_stages(data: StageData) -> list[Stage]:
    steps: dict[str, list[dict[str, Any]]] = {}
    for step in dicts(data.steps):
        stage_id = step.get("stageId")
        if isinstance(stage_id, str | int) and not isinstance(stage_id, bool):
            steps.setdefault(str(stage_id), []).append(step)
    return [
        Stage(
            **_graph_fields(key, node, opt_text(node.get("name"))),
            steps=[_graph_step(k, step) for k, step in _with_ids(steps.get(key, []))],
        )
        for key, node in _with_ids(_graph_tree(dicts(data.nodes)))
    ]


def _iso(ms: int) -> str | None:
    """Epoch ms in Blue Ocean's format, so both sources give the same startTime; None for a
    time no calendar holds (a junk 10^20 ms), which is no start time at all."""
    try:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"
