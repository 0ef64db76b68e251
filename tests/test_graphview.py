"""Stages and steps from pipeline-graph-view: the mapping of its JSON, then the agent against
the simulator, with the exact requests it costs."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import JENKINS_TOKEN, JENKINS_USER, Agent, now_ms
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

from agent.config import Settings
from agent.jenkins.client import JenkinsClient, JenkinsNotFound
from agent.jenkins.details import DetailReader
from agent.jenkins.stages.graphview import MAX_STEP_TEXT, GraphView, GraphViewAnswers
from agent.jenkins.types import Job
from agent.mapping import map_job_run


def job_run(nodes: list[Any], steps: list[Any] | None = None) -> list[dict[str, Any]]:
    stages = GraphView.normalize(GraphViewAnswers(nodes, steps=steps or []))
    dumped = map_job_run(stages).model_dump(mode="json", exclude_none=True)
    mapped: list[dict[str, Any]] = dumped["stages"]
    return mapped


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


# ---- the agent against the simulator ------------------------------------------------------

# Build, then a parallel stage whose second branch holds two sequential stages (one never ran),
# a skipped stage (`when` false) and one that never started.
RUN: list[dict[str, Any]] = [
    {
        "id": "3",
        "name": "Build",
        "status": "SUCCESS",
        "start": 1_000,
        "duration": 500,
        "steps": [
            {"id": "4", "name": "Shell Script", "description": "make", "start": 1_001},
        ],
    },
    {"id": "6", "name": "Checks", "status": "FAILED", "start": 2_000, "duration": 700},
    {
        "id": "7",
        "name": "unit",
        "status": "SUCCESS",
        "parallel_of": "6",
        "start": 2_001,
        "duration": 300,
        "steps": [{"id": "8", "name": "Shell Script", "description": "pytest", "duration": 250}],
    },
    {"id": "9", "name": "lint", "status": "FAILED", "parallel_of": "6", "start": 2_001},
    {
        "id": "11",
        "name": "lint-a",
        "status": "FAILED",
        "nested_in": "9",
        "start": 2_010,
        "duration": 600,
        "steps": [
            {"id": "12", "name": "Git", "description": "https://git.example.com/lint.git"},
            {"id": "13", "name": "Shell Script", "description": "ruff check", "duration": 40},
        ],
    },
    {"id": "14", "name": "lint-b", "status": "NOT_EXECUTED", "nested_in": "9", "start": 0},
    {"id": "16", "name": "Docs", "status": "SKIPPED", "start": 2_800, "duration": 2},
    {"id": "18", "name": "Deploy", "status": "NOT_EXECUTED", "start": 0},
]
STAGE_REQUESTS = r"/(stages|pipeline-overview|pipeline-console|pipeline-graph)/(tree|allSteps)$"
WFAPI_OR_BLUE = r"wfapi|^/blue/"


def controller(**flags: Any) -> JenkinsSim:
    flags = {"blueocean": False, "wfapi": False, "graphview": True, **flags}
    return JenkinsSim(user=JENKINS_USER, token=JENKINS_TOKEN, clock_ms=now_ms(), **flags)


def with_url(settings: Settings, url: str, **jenkins: Any) -> Settings:
    return settings.model_copy(
        update={"jenkins": settings.jenkins.model_copy(update={"url": url, **jenkins})}
    )


def stored(payload: dict[str, Any]) -> list[tuple[str, str, str, str, int, list[str]]]:
    """What SEI keeps of the run's stages: keyed on an id of at most 50 characters, unique in
    the run, each step on an id unique in its stage; names cut to 50 characters."""
    stages = payload["job_run"]["stages"]
    ids = [s["id"] for s in stages]
    assert all(0 < len(i) <= 50 for i in ids) and len(set(ids)) == len(ids)
    for stage in stages:
        step_ids = [t["id"] for t in stage["steps"]]
        assert all(0 < len(i) <= 50 for i in step_ids) and len(set(step_ids)) == len(step_ids)
    return [
        (
            s["id"],
            s["displayName"][:50],
            s["result"],
            s["state"],
            s["durationInMillis"],
            [t["id"] for t in s["steps"]],
        )
        for s in stages
    ]


@pytest.mark.parametrize("paths", ["new", "overview", "old"])
def test_every_stage_and_step_from_two_requests(
    settings: Settings, sei: SeiStandIn, caplog: pytest.LogCaptureFixture, paths: str
) -> None:
    with controller(graphview_paths=paths) as sim:
        sim.add_job("app", "pipeline")
        sim.add_build("app", result="FAILURE", stages=RUN)
        agent = Agent(with_url(settings, sim.url))
        with caplog.at_level("INFO"):
            agent.run()
        stage_requests = sim.count(STAGE_REQUESTS)
        others = sim.count(WFAPI_OR_BLUE)
    [payload] = sei.accepted
    assert stored(payload) == [
        ("3", "Build", "SUCCESS", "FINISHED", 500, ["4"]),
        ("6", "Checks", "FAILURE", "FINISHED", 700, []),
        ("7", "unit", "SUCCESS", "FINISHED", 300, ["8"]),
        ("9", "lint", "FAILURE", "FINISHED", 0, []),
        ("11", "lint-a", "FAILURE", "FINISHED", 600, ["12", "13"]),
        ("14", "lint-b", "NOT_BUILT", "NOT_BUILT", 0, []),
        ("16", "Docs", "NOT_BUILT", "SKIPPED", 2, []),
        ("18", "Deploy", "NOT_BUILT", "NOT_BUILT", 0, []),
    ]
    lint_a = payload["job_run"]["stages"][4]
    assert lint_a["startTime"] == "1970-01-01T00:00:02.010+0000"
    assert [(t["displayName"], t["displayDescription"]) for t in lint_a["steps"]] == [
        ("Git", "https://git.example.com/lint.git"),
        ("ruff check", "ruff check"),
    ]
    assert "startTime" not in payload["job_run"]["stages"][7]  # never started
    assert (stage_requests, others) == (2, 0)
    assert agent.by_kind == {"discover": 1, "builds": 1, "detect": 1, "stages": 1, "steps": 1}
    assert "stage source: pipeline-graph-view" in caplog.text


def test_two_requests_a_run_whatever_its_stages(settings: Settings, sei: SeiStandIn) -> None:
    many = [
        {
            "id": str(10 * n),
            "name": f"stage {n}",
            "steps": [
                {"id": str(10 * n + k), "name": "Shell Script", "description": "true"}
                for k in range(1, 4)
            ],
        }
        for n in range(1, 41)
    ]
    with controller() as sim:
        sim.add_job("app", "pipeline")
        for _ in range(3):
            sim.add_build("app", stages=many)
        Agent(with_url(settings, sim.url)).run()
        stage_requests = sim.count(STAGE_REQUESTS)
    assert [len(p["job_run"]["stages"]) for p in sei.accepted] == [40, 40, 40]
    assert all(len(s["steps"]) == 3 for p in sei.accepted for s in p["job_run"]["stages"])
    assert stage_requests == 6  # with Blue Ocean or wfapi: 41 a run


@pytest.mark.parametrize(
    ("status", "result", "state"),
    [
        ("FAILED", "FAILURE", "FINISHED"),
        ("UNSTABLE", "UNSTABLE", "FINISHED"),
        ("ABORTED", "ABORTED", "FINISHED"),
        ("SKIPPED", "NOT_BUILT", "SKIPPED"),
        ("NOT_EXECUTED", "NOT_BUILT", "NOT_BUILT"),
    ],
)
def test_stage_results_as_blue_ocean_gives_them(
    settings: Settings, sei: SeiStandIn, status: str, result: str, state: str
) -> None:
    """The same run read from pipeline-graph-view and from Blue Ocean gives the same stages."""
    stages = [
        {"id": "5", "name": "Build", "start": 1_000, "duration": 900},
        {"id": "7", "name": "Test", "status": status, "start": 2_000, "duration": 40},
    ]
    for flags in ({}, {"graphview": False, "blueocean": True}):
        with controller(**flags) as sim:
            sim.add_job("app", "pipeline")
            sim.add_build("app", result="FAILURE", stages=stages)
            # one state file each: to one state, the second controller's #1 is a recreated job's
            own = settings.agent.state_file.with_suffix(f".{len(flags)}.json")
            agent = settings.agent.model_copy(update={"state_file": own})
            Agent(with_url(settings, sim.url).model_copy(update={"agent": agent})).run()
    graph_view, blue_ocean = (p["job_run"]["stages"] for p in sei.accepted)
    assert (graph_view[1]["result"], graph_view[1]["state"]) == (result, state)
    fields = ("id", "displayName", "result", "state", "durationInMillis", "startTime")
    assert [[s.get(f) for f in fields] for s in graph_view] == [
        [s.get(f) for f in fields] for s in blue_ocean
    ]


def test_graph_view_wins_over_blue_ocean_and_wfapi(
    settings: Settings, sei: SeiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    with controller(blueocean=True, wfapi=True) as sim:
        sim.add_job("app", "pipeline")
        sim.add_build("app", result="FAILURE", stages=RUN)
        sim.add_build("app", result="FAILURE", stages=RUN)
        agent = Agent(with_url(settings, sim.url))
        with caplog.at_level("INFO"):
            agent.run()
        counts = (sim.count(r"pluginManager"), sim.count(STAGE_REQUESTS), sim.count(WFAPI_OR_BLUE))
    assert counts == (1, 4, 0)
    assert all(len(p["job_run"]["stages"]) == 8 for p in sei.accepted)
    assert (
        "stage source: pipeline-graph-view 998.vc30deece0e36, then Blue Ocean 1.27.11, "
        "pipeline-stage-view (wfapi) 2.34 for runs it has no answer for"
    ) in caplog.text


def test_a_run_older_than_the_plugin_falls_back_to_the_next_source(
    settings: Settings, sei: SeiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    with controller(graphview=False, wfapi=True) as sim:
        sim.add_job("app", "pipeline")
        sim.add_build("app", result="FAILURE", stages=RUN)  # before the plugin was installed
        sim.graphview = True
        sim.add_build("app", result="FAILURE", stages=RUN)
        sim.add_build("app", result="FAILURE", stages=RUN)
        agent = Agent(with_url(settings, sim.url))
        with caplog.at_level("INFO"):
            report = agent.run()
        trees = sim.count(r"/stages/tree$")
        wfapi_runs = (
            sim.count(r"/app/1/wfapi/describe$"),
            sim.count(r"/app/[23]/(wfapi|execution)/"),
        )
    assert report.sent == 3
    old, *new = sorted(sei.accepted, key=lambda p: p["build_number"])
    assert [s["id"] for s in old["job_run"]["stages"]] == ["3", "6", "7", "9", "16", "18"]
    assert all(len(p["job_run"]["stages"]) == 8 for p in new)
    # one 404 for the old run, two answers; wfapi for the old run only; no existence check,
    # since wfapi's answer shows the build is there
    assert (trees, wfapi_runs) == (3, (1, 0))
    assert agent.by_kind["detect"] == 1 and "exists" not in agent.by_kind
    assert "app: no pipeline-graph-view answer for #1 and older" in caplog.text


def test_builds_older_than_one_without_an_answer_are_not_asked(
    settings: Settings, sei: SeiStandIn
) -> None:
    with controller(graphview=False, wfapi=True) as sim:
        sim.add_job("app", "pipeline")
        for _ in range(2):
            sim.add_build("app", stages=RUN[:1])
        sim.graphview = True
        client = JenkinsClient(with_url(settings, sim.url).jenkins)
        reader = DetailReader(client, steps=True, upstream_depth=0)
        job = Job(("app",), cls="org.jenkinsci.plugins.workflow.job.WorkflowJob")
        newer, older = (reader.read(job, {"number": n}).stages for n in (2, 1))
        client.close()
        trees = [path for _, path, _ in sim.requests if path.endswith("/stages/tree")]
        wfapi_runs = sim.count(r"/app/2/wfapi/describe$"), sim.count(r"/app/1/wfapi/describe$")
    assert newer is not None and older is not None
    assert wfapi_runs == (1, 1)  # both from wfapi
    assert trees == ["/job/app/2/stages/tree"]  # #1 is older than #2: not asked


def test_a_gone_build_is_gone_not_older_than_the_plugin(
    settings: Settings, sei: SeiStandIn
) -> None:
    with controller(wfapi=True) as sim:
        sim.add_job("app", "pipeline")
        for _ in range(2):
            sim.add_build("app", stages=RUN[:1])
        client = JenkinsClient(with_url(settings, sim.url).jenkins)
        reader = DetailReader(client, steps=True, upstream_depth=0)
        job = Job(("app",), cls="org.jenkinsci.plugins.workflow.job.WorkflowJob")
        sim.delete_build("app", 2)  # log rotation, after the listing was read
        with pytest.raises(JenkinsNotFound):
            reader.read(job, {"number": 2})
        details = reader.read(job, {"number": 1})
        client.close()
        read_from = sim.count(r"/app/1/stages/tree$"), sim.count(r"/app/1/wfapi/")
    assert details.stages is not None and read_from == (1, 0)  # from pipeline-graph-view


@pytest.mark.parametrize("paths", ["new", "overview", "old"])
def test_plugin_list_refused_the_path_generation_is_probed_once(
    settings: Settings, sei: SeiStandIn, caplog: pytest.LogCaptureFixture, paths: str
) -> None:
    with controller(graphview_paths=paths) as sim:
        sim.inject_fault(r"pluginManager", status=403, times=100)  # no Overall/SystemRead
        sim.add_job("app", "pipeline")
        for _ in range(3):
            sim.add_build("app", stages=RUN)
        agent = Agent(with_url(settings, sim.url))
        with caplog.at_level("INFO"):
            report = agent.run()
        trees = [path.rsplit("/", 2)[1] for _, path, _ in sim.requests if path.endswith("/tree")]
        all_steps = sim.count(r"/allSteps$")
    assert report.sent == 3 and all(len(p["job_run"]["stages"]) == 8 for p in sei.accepted)
    tried = {"new": [], "overview": ["stages"], "old": ["stages", "pipeline-overview"]}[paths]
    answering = trees[len(tried)]
    assert trees == [*tried, answering, answering, answering]  # each 404 once per controller
    assert all_steps == 3
    assert "the plugin list is refused (HTTP 403)" in caplog.text


def test_plugin_list_refused_and_no_graph_view_or_blue_ocean(
    settings: Settings, sei: SeiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    with controller(graphview=False, wfapi=True) as sim:
        sim.inject_fault(r"pluginManager", status=403, times=100)
        sim.add_job("app", "pipeline")
        for _ in range(3):
            sim.add_build("app", stages=RUN[:2])
        agent = Agent(with_url(settings, sim.url))
        with caplog.at_level("INFO"):
            agent.run()
        counts = (
            sim.count(STAGE_REQUESTS),
            sim.count(r"^/blue/rest/organizations/jenkins/$"),
            sim.count(r"/wfapi/describe$"),
        )
    assert all(len(p["job_run"]["stages"]) == 2 for p in sei.accepted)
    # the three graph-view generations and Blue Ocean's organization are asked once each
    assert counts == (3, 1, 3 * 3)
    assert agent.by_kind["exists"] == 1  # that the build the probe 404ed on is there
    assert "no pipeline-graph-view: none of its paths answers" in caplog.text
    assert "no Blue Ocean: its organization answers 404" in caplog.text


def test_a_plugin_list_without_plugins_is_no_answer(settings: Settings, sei: SeiStandIn) -> None:
    with controller() as sim:
        sim.inject_fault(r"pluginManager", status=200, body='{"_class":"hudson.PluginManager"}')
        sim.add_job("app", "pipeline")
        sim.add_build("app", stages=RUN)
        Agent(with_url(settings, sim.url)).run()
    [payload] = sei.accepted
    assert len(payload["job_run"]["stages"]) == 8  # probed, not taken for "no stage plugin"


@pytest.mark.parametrize(
    ("forced", "asked", "count"),
    [("wfapi", r"wfapi", 3), ("blueocean", r"^/blue/", 3), ("graphview", STAGE_REQUESTS, 2)],
)
def test_a_forced_source_is_the_only_one_asked(
    settings: Settings, sei: SeiStandIn, forced: str, asked: str, count: int
) -> None:
    stages = [RUN[0], {"id": "5", "name": "Test"}]
    with controller(blueocean=True, wfapi=True) as sim:
        sim.add_job("app", "pipeline")
        sim.add_build("app", stages=stages)
        agent = Agent(with_url(settings, sim.url, stage_source=forced))
        agent.run()
        total = sim.count(STAGE_REQUESTS + "|" + WFAPI_OR_BLUE)
        found = sim.count(asked)
    [payload] = sei.accepted
    assert [s["id"] for s in payload["job_run"]["stages"]] == ["3", "5"]
    assert total == found == count
    assert "detect" not in agent.by_kind  # no plugin list either


def test_source_forced_to_none(settings: Settings, sei: SeiStandIn) -> None:
    with controller(blueocean=True, wfapi=True) as sim:
        sim.add_job("app", "pipeline")
        sim.add_build("app", stages=RUN)
        agent = Agent(with_url(settings, sim.url, stage_source="none"))
        agent.run()
    [payload] = sei.accepted
    assert "job_run" not in payload
    assert agent.by_kind == {"discover": 1, "builds": 1}


def test_steps_off_cuts_the_all_steps_request(settings: Settings, sei: SeiStandIn) -> None:
    with controller() as sim:
        sim.add_job("app", "pipeline")
        sim.add_build("app", stages=RUN)
        agent = Agent(with_url(settings, sim.url, steps=False))
        agent.run()
        counts = sim.count(r"/stages/tree$"), sim.count(r"/allSteps$")
    [payload] = sei.accepted
    assert len(payload["job_run"]["stages"]) == 8
    assert all(s["steps"] == [] for s in payload["job_run"]["stages"])
    assert counts == (1, 0) and "steps" not in agent.by_kind


UNREADABLE = [
    ("tree", '{"status":"error","data":{"error":"boom"}}'),
    ("tree", '{"status":"ok","data":{"stages":{"6":{}}}}'),
    ("tree", "[]"),
    ("allSteps", '{"status":"ok","data":{"stepz":[]}}'),
    ("allSteps", '{"status":"ok","data":null}'),
]


@pytest.mark.parametrize(("endpoint", "body"), UNREADABLE)
def test_an_unreadable_answer_sends_the_run_from_the_next_source(
    settings: Settings, sei: SeiStandIn, caplog: pytest.LogCaptureFixture, endpoint: str, body: str
) -> None:
    with controller(wfapi=True) as sim:
        sim.add_job("app", "pipeline")
        sim.add_build("app", stages=RUN[:2])
        sim.add_build("app", stages=RUN[:2])
        sim.inject_fault(rf"/1/stages/{endpoint}$", status=200, body=body)
        with caplog.at_level("WARNING"):
            report = Agent(with_url(settings, sim.url)).run()
        wfapi_runs = sim.count(r"/app/1/wfapi/describe$"), sim.count(r"/app/2/wfapi/")
    assert report.sent == 2
    assert [len(p["job_run"]["stages"]) for p in sei.accepted] == [2, 2]
    assert wfapi_runs == (1, 0)  # run 2 reads pipeline-graph-view: nothing to remember
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    message = warning.getMessage()
    assert message.startswith(f"app #1: pipeline-graph-view answered stages/{endpoint} with")
    assert message.endswith("; trying the next source")


def test_an_unreadable_answer_with_no_other_source_sends_no_stages(
    settings: Settings, sei: SeiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    with controller() as sim:
        sim.add_job("app", "pipeline")
        sim.add_build("app", stages=RUN)
        sim.inject_fault(r"/stages/tree$", status=200, body='{"status":"ok"}')
        with caplog.at_level("WARNING"):
            report = Agent(with_url(settings, sim.url)).run()
    assert report.sent == 1  # never a lost build
    assert "job_run" not in sei.accepted[0]
    assert "app #1: pipeline-graph-view answered stages/tree" in caplog.text
