"""pipeline-graph-view: a run's whole stage tree and all its steps, in two requests.

Its paths moved with the plugin's releases; each generation is a row of GRAPH_VIEW_PATHS
(agent/jenkins/endpoints.py). The plugin version says which one a controller serves; without
one, the first run to need it tries them newest first.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from agent.jenkins.client import JenkinsClient, JenkinsNotFound
from agent.jenkins.endpoints import GraphViewPaths, graph_steps, graph_tree, graph_view_paths
from agent.jenkins.reading import as_list, dicts, opt_text
from agent.jenkins.stages.base import (
    Absent,
    StageSource,
    Unreadable,
    as_stage,
    build_exists,
    millis,
    start_time,
    with_ids,
)
from agent.jenkins.types import Job, StageNode, StepNode

log = logging.getLogger(__name__)

# A step's text is its command or arguments, which can run to kilobytes (a whole shell script);
# SEI shortens names to 50 characters anyway.
MAX_STEP_TEXT = 1000

# pipeline-graph-view state -> (result, state), as the Blue Ocean mapping turns its own words:
# a result SEI does not know (UNKNOWN, or none while a node runs) becomes NOT_BUILT.
_STATES = {
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


@dataclass(frozen=True)
class GraphViewAnswers:
    """`data.stages` of the run's tree answer (the top-level stages) and `data.steps` of its
    allSteps answer (every step of the run, each naming its stage by `stageId`)."""

    stages: list[Any]
    steps: list[Any] = field(default_factory=list)


class GraphView(StageSource[GraphViewAnswers]):
    name = "graphview"
    title = "pipeline-graph-view"
    plugin = "pipeline-graph-view"

    def __init__(
        self, client: JenkinsClient, *, steps: bool, version: str | None, listed: bool
    ) -> None:
        super().__init__(client, steps=steps, version=version, listed=listed)
        self._paths = graph_view_paths(self.version)
        self._probing = threading.Lock()  # the runs behind the probing one wait for its answer

    def fetch(self, job: Job, number: int) -> GraphViewAnswers:
        """The run's stage tree and, unless steps are off, all its steps: two requests.

        Until a controller's path generation is known (no plugin version), the first run to
        get here tries them newest first and the others wait for the one that answers. A
        plugin none of whose paths answers for a run that exists is not there.
        """
        paths = self._paths
        if len(paths) != 1:
            with self._probing:
                paths = self._paths
                if not paths:
                    raise Absent("none of its paths answers")
                if len(paths) > 1:
                    return self._probe(job, number)
        tree = self._get(graph_tree(job.names, number, paths[0]), kind="stages")
        return self._with_steps(job, number, paths[0], tree)

    def _probe(self, job: Job, number: int) -> GraphViewAnswers:
        for paths in self._paths:
            try:
                tree = self._get(graph_tree(job.names, number, paths), kind="stages")
            except JenkinsNotFound:
                continue
            self._paths = (paths,)
            log.info("pipeline-graph-view serves %s and %s", paths.tree, paths.steps)
            return self._with_steps(job, number, paths, tree)
        if not build_exists(self.client, job, number):
            raise JenkinsNotFound(f"{job.full_name} #{number} is gone")
        self._paths = ()
        raise Absent(f"none of its paths answers for {job.full_name} #{number}")

    def _get(self, path: str, *, kind: str) -> Any:
        """Any JSON: a body of the wrong shape is for `_data` to judge, not an error."""
        return self.client.get_json(path, kind=kind, shape=object)

    def _with_steps(
        self, job: Job, number: int, paths: GraphViewPaths, tree: Any
    ) -> GraphViewAnswers:
        stages = _data(tree, "stages", paths.tree)
        steps: list[Any] = []
        if self.steps:
            answer = self._get(graph_steps(job.names, number, paths), kind="steps")
            steps = _data(answer, "steps", paths.steps)
        return GraphViewAnswers(stages=stages, steps=steps)

    @staticmethod
    def normalize(answers: GraphViewAnswers) -> tuple[StageNode, ...]:
        steps: dict[str, list[dict[str, Any]]] = {}
        for step in dicts(answers.steps):
            stage_id = step.get("stageId")
            if isinstance(stage_id, str | int) and not isinstance(stage_id, bool):
                steps.setdefault(str(stage_id), []).append(step)
        return tuple(
            as_stage(
                _node(key, node, opt_text(node.get("name"))),
                (_step(k, step) for k, step in with_ids(steps.get(key, []))),
            )
            for key, node in with_ids(_tree(dicts(answers.stages)))
        )


def _data(answer: Any, key: str, path: str) -> list[Any]:
    """`data[key]` of a pipeline-graph-view answer, `{"status": "ok", "data": {key: [...]}}`.

    The plugin's own front-end API, not a versioned one: anything else (an error envelope, a
    renamed field) is unreadable, and the run goes to the next source rather than being sent
    with what could be guessed from it. What is inside the list is read defensively.
    """
    data = answer.get("data") if isinstance(answer, dict) else None
    found = data.get(key) if isinstance(data, dict) else None
    if not isinstance(found, list) or answer.get("status") != "ok":
        shown = json.dumps(answer)[:100]
        raise Unreadable(f"pipeline-graph-view answered {path} with {shown}, no {key} list")
    return found


def _tree(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def _node(key: str, node: dict[str, Any], name: str | None) -> StepNode:
    result, state = _STATES.get(str(node.get("state")).lower(), ("NOT_BUILT", "NOT_BUILT"))
    return StepNode(
        id=key,
        name=name or key,
        description=None,
        result=result,
        state=state,
        start_time=start_time(node.get("startTimeMillis")),
        duration_ms=millis(node.get("totalDurationMillis")),  # null or absent while it runs
    )


def _step(key: str, step: dict[str, Any]) -> StepNode:
    """A step whose `name` is its command or arguments (`sh 'make'` gives "make"), its label,
    or for a step without arguments its kind; `title` is the kind ("Git") when `name` holds
    arguments, except that releases since 448 leave it empty for Shell Script and Print
    Message. The kind is the name SEI shows, as with Blue Ocean; the text is the description.
    """
    text = opt_text(step.get("name"))
    title = opt_text(step.get("title"))
    text = text[:MAX_STEP_TEXT] if text else None
    return replace(_node(key, step, title[:MAX_STEP_TEXT] if title else text), description=text)
