"""Stages and steps from pipeline-graph-view: the mapping of its JSON, then the agent against
the simulator, with the exact requests it costs."""

from __future__ import annotations

from typing import Any

import pytest

from agent.mapping import MAX_STEP_TEXT, StageData, map_job_run


def job_run(nodes: list[Any], steps: list[Any] | None = None) -> list[dict[str, Any]]:
    data = StageData(source="graphview", nodes=nodes, steps=steps or [])
    return map_job_run(data).model_dump(mode="json", exclude_none=True)["stages"]


def node(node_id: Any, name: str, state: str = "success", **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "name": name, "state": state, "type": "STAGE", **fields}


# ---- mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "result", "sei_state"),
    [
        ("success", "SUCCESS", "FINISHED"),
        ("failure", "FAILURE", "FINISHED"),
        ("unstable", "UNSTABLE", "FINISHED"),
        ("aborted", "ABORTED", "FINISHED"),
        ("not_built", "NOT_BUILT", "NOT_BUILT"),
        ("skipped", "NOT_BUILT", "SKIPPED"),  # a `when` that was false is no failure
        ("unknown", "NOT_BUILT", "FINISHED"),  # as Blue Ocean's UNKNOWN result is mapped
        ("running", "NOT_BUILT", "RUNNING"),
        ("paused", "NOT_BUILT", "PAUSED"),
        ("SUCCESS", "SUCCESS", "FINISHED"),  # pre-release front ends spelled them upper case
        ("exploded", "NOT_BUILT", "NOT_BUILT"),
        (None, "NOT_BUILT", "NOT_BUILT"),
    ],
)
def test_state_words(state: Any, result: str, sei_state: str) -> None:
    [stage] = job_run([node("6", "Build", state)])
    assert (stage["result"], stage["state"]) == (result, sei_state)


def test_timing_and_never_null_duration() -> None:
    stages = job_run(
        [
            node("6", "Build", startTimeMillis=1_776_716_866_804, totalDurationMillis=105),
            node("7", "Test", "running", startTimeMillis=1_776_716_866_900),  # null: left out
            node("8", "Ship", "not_built", startTimeMillis=0, totalDurationMillis=0),
            node("9", "Odd", startTimeMillis="soon", totalDurationMillis=-5),
        ]
    )
    assert [(s["durationInMillis"], s.get("startTime")) for s in stages] == [
        (105, "2026-04-20T20:27:46.804+0000"),  # Blue Ocean's format, as the other sources
        (0, "2026-04-20T20:27:46.900+0000"),
        (0, None),
        (0, None),
    ]


def test_every_stage_of_the_graph_with_its_own_id() -> None:
    """Branches of a parallel, stages nested in them (`children`) and sequential stages after
    them (`nextSibling`) are stages of their own, in the order the graph draws them."""
    nested = node("26", "Nested 1", nextSibling=node("42", "Nested 2"))
    tree = [
        node("6", "Build"),
        node(
            "12",
            "Checks",
            "failure",
            children=[
                node("16", "unit", type="PARALLEL"),
                node("18", "lint", "failure", type="PARALLEL", children=[nested]),
            ],
        ),
        node("54", "Docs", "skipped"),
    ]
    stages = job_run(tree)
    assert [(s["id"], s["displayName"]) for s in stages] == [
        ("6", "Build"),
        ("12", "Checks"),
        ("16", "unit"),
        ("18", "lint"),
        ("26", "Nested 1"),
        ("42", "Nested 2"),
        ("54", "Docs"),
    ]


def test_a_parallel_block_left_in_the_graph_is_a_stage() -> None:
    """The plugin keeps a PARALLEL_BLOCK node where a `parallel` is not the only thing in its
    stage: the parallel step's own flow node, drawn as "Parallel", sent like Blue Ocean's."""
    block = node(
        "7",
        "Parallel",
        type="PARALLEL_BLOCK",
        children=[node("9", "branch 1.1", type="PARALLEL"), node("10", "b", type="PARALLEL")],
    )
    stages = job_run([node("6", "1", children=[block])])
    assert [(s["id"], s["displayName"]) for s in stages] == [
        ("6", "1"),
        ("7", "Parallel"),
        ("9", "branch 1.1"),
        ("10", "b"),
    ]


def test_synthetic_and_placeholder_nodes_are_not_stages() -> None:
    tree = [
        node("3", "Checkout SCM", synthetic=True),
        node("6", "Build", synthetic=False, placeholder=False),
        node("20", "Post Actions", synthetic=True, children=[node("21", "inside")]),
        node("2", "No stage", type="PIPELINE_START", synthetic=True, placeholder=True),
    ]
    assert [s["id"] for s in job_run(tree)] == ["6", "21"]


def test_junk_is_left_out_and_ids_are_unique() -> None:
    """Unknown fields are ignored and missing ones tolerated; a node without a usable id, or
    repeating one, is no stage (SEI keys stages on their id)."""
    tree: list[Any] = [
        "not a node",
        {"name": "no id", "state": "success"},
        node("x" * 51, "id too long"),
        node(6, "integer id", extra={"future": "field"}, children="not a list"),
        node("6", "repeated id"),
        {"id": "7"},
        node("8", "", nextSibling="not a node"),
    ]
    stages = job_run(tree)
    assert [(s["id"], s["displayName"], s["result"]) for s in stages] == [
        ("6", "integer id", "SUCCESS"),
        ("7", "7", "NOT_BUILT"),
        ("8", "8", "SUCCESS"),
    ]


def test_steps_join_their_stage_by_stage_id() -> None:
    steps: list[Any] = [
        {"id": "7", "name": "make", "title": "", "state": "success", "stageId": "6"},
        {"id": "8", "name": "https://git.example.com/app.git", "title": "Git", "stageId": "6"},
        {"id": "13", "name": "pytest", "title": "", "state": "failure", "stageId": 12},
        {"id": "7", "name": "same id again", "stageId": "6"},
        {"id": "30", "name": "checkout", "stageId": "3"},  # in a synthetic stage: not sent
        {"id": "31", "name": "no stage"},
        "junk",
    ]
    stages = job_run([node("6", "Build"), node("12", "Test", "failure")], steps)
    assert [
        [(t["id"], t["displayName"], t.get("displayDescription"), t["result"]) for t in s["steps"]]
        for s in stages
    ] == [
        [
            ("7", "make", "make", "SUCCESS"),  # a shell step: no title since release 448
            ("8", "Git", "https://git.example.com/app.git", "NOT_BUILT"),
        ],
        [("13", "pytest", "pytest", "FAILURE")],
    ]


def test_a_long_command_is_cut() -> None:
    script = "echo " + "x" * 5000
    steps = [{"id": "7", "name": script, "title": "", "stageId": "6", "state": "success"}]
    [step] = job_run([node("6", "Build")], steps)[0]["steps"]
    assert step["displayDescription"] == script[:MAX_STEP_TEXT]
    assert step["displayName"] == script[:MAX_STEP_TEXT]
