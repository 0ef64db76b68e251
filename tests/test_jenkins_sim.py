"""Tests of the Jenkins simulator itself: the agent's tests trust it, so it must follow
jenkins-api.md and look like the recorded captures."""

from __future__ import annotations

import itertools
import json
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jenkins_sim import JenkinsSim, parse_tree, tree_filter
from live_controller import LiveBuild, LiveController

AUTH = ("admin", "jenkins-token")
# Building an SSL context costs ~0.1 s per httpx.Client; share one to keep the suite fast.
_SSL = ssl.create_default_context()
BRANCH = "job/web/job/feature%252Flogin/"
STAGES: list[dict[str, Any]] = [
    {
        "id": "6",
        "name": "Build",
        "status": "SUCCESS",
        "start": 1_000,
        "duration": 500,
        "steps": [
            {"id": "7", "name": "Shell Script", "description": "make", "duration": 400},
        ],
    },
    {"id": "9", "name": "Tests", "status": "FAILED", "start": 1_500, "duration": 900},
    {
        "id": "10",
        "name": "unit",
        "status": "FAILED",
        "parallel_of": "9",
        "start": 1_500,
        "steps": [{"id": "12", "name": "Shell Script", "description": "pytest"}],
    },
    {"id": "11", "name": "lint", "status": "SUCCESS", "parallel_of": "9", "start": 1_500},
    {"id": "15", "name": "Deploy", "status": "NOT_EXECUTED"},
]


def connect(
    sim: JenkinsSim, auth: tuple[str, str] | None = AUTH, base: str | None = None
) -> httpx.Client:
    """An httpx client for the simulator (base URL `base`, default the simulator's URL)."""
    return httpx.Client(base_url=sim.url if base is None else base, auth=auth, verify=_SSL)


@pytest.fixture
def sim() -> Iterator[JenkinsSim]:
    with JenkinsSim() as running:
        yield running


@pytest.fixture
def client(sim: JenkinsSim) -> Iterator[httpx.Client]:
    with connect(sim) as http:
        yield http


def get(client: httpx.Client, path: str, tree: str | None = None) -> Any:
    """GET and decode JSON, failing loudly on anything but a 200."""
    response = client.get(path, params={"tree": tree} if tree else None)
    assert response.status_code == 200, (path, response.status_code, response.text[:200])
    assert response.headers["content-type"] == "application/json;charset=utf-8"
    return response.json()


def numbers(builds: list[dict[str, Any]]) -> list[int]:
    return [b["number"] for b in builds]


# ---- tree= ------------------------------------------------------------------------------------


def test_tree_filter_nested_fields_and_star() -> None:
    obj = {
        "_class": "Root",
        "a": 1,
        "b": {"_class": "B", "c": 2, "d": {"e": 3, "f": 4}},
        "g": [{"_class": "G", "h": 5, "i": 6}, {"h": 7}, {"x": 8}],
        "n": None,
    }
    assert tree_filter(obj, "a,b[d[e]]") == {
        "_class": "Root",
        "a": 1,
        "b": {"_class": "B", "d": {"e": 3}},
    }
    assert tree_filter(obj, "g[h]") == {
        "_class": "Root",
        "g": [{"_class": "G", "h": 5}, {"h": 7}, {}],
    }
    # Named but absent fields stay absent; named nulls are null; an unexpanded object keeps
    # only its class.
    assert tree_filter(obj, "missing,n,b") == {"_class": "Root", "n": None, "b": {"_class": "B"}}
    assert tree_filter(obj, "b[*]") == {
        "_class": "Root",
        "b": {"_class": "B", "c": 2, "d": {}},
    }
    assert tree_filter(obj, "b[*[*]]")["b"]["d"] == {"e": 3, "f": 4}


def test_tree_filter_ranges() -> None:
    obj = {"xs": [{"n": i} for i in range(10)], "ys": list(range(5))}

    def pick(tree: str) -> list[int]:
        return [x["n"] for x in tree_filter(obj, tree)["xs"]]

    assert pick("xs[n]{2,5}") == [2, 3, 4]
    assert pick("xs[n]{7,}") == [7, 8, 9]
    assert pick("xs[n]{,3}") == [0, 1, 2]
    assert pick("xs[n]{4}") == [4]
    assert pick("xs[n]{20,30}") == []
    assert pick("xs{1,3}[n]") == [1, 2]  # a range before the brackets is accepted too
    assert tree_filter(obj, "ys{3,}") == {"ys": [3, 4]}


@pytest.mark.parametrize("bad", ["", "a,", "a[b", "a]", "a{x}", "a{}", "a{1,2", "[a]", "a,,b"])
def test_tree_parse_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_tree(bad)


def test_bad_tree_is_400(sim: JenkinsSim, client: httpx.Client) -> None:
    assert client.get("api/json", params={"tree": "jobs[name"}).status_code == 400


# ---- builds -----------------------------------------------------------------------------------


def test_build_json_shape(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("team/app", kind="freestyle")
    sim.add_build(
        "team/app",
        parameters=[
            {"_class": "hudson.model.StringParameterValue", "name": "ENV", "value": "prod"}
        ],
        build_data=[
            {
                "sha": "a" * 40,
                "branch": "refs/remotes/origin/main",
                "remote": "https://git.example.com/x.git",
            }
        ],
        changeset=["c0ffee" * 6 + "beef"],
        actions=[
            {
                "_class": "hudson.tasks.junit.TestResultAction",
                "failCount": 1,
                "skipCount": 0,
                "totalCount": 9,
            }
        ],
        artifacts=["dist/app.tar.gz"],
    )
    build = get(client, "job/team/job/app/1/api/json")
    assert build["_class"] == "hudson.model.FreeStyleBuild"
    assert build["fullDisplayName"] == "team » app #1"
    assert (build["id"], build["displayName"], build["number"]) == ("1", "#1", 1)
    assert build["timestamp"] == 1_763_800_000_000
    assert build["url"] == f"{sim.url}job/team/job/app/1/"
    classes = [a.get("_class") for a in build["actions"]]
    assert classes[0] == "hudson.model.CauseAction"
    assert "hudson.model.ParametersAction" in classes
    assert "org.jenkinsci.plugins.displayurlapi.actions.RunDisplayAction" in classes
    assert classes[-1] == "hudson.tasks.junit.TestResultAction"
    git = next(a for a in build["actions"] if "lastBuiltRevision" in a)
    assert git["lastBuiltRevision"] == {
        "SHA1": "a" * 40,
        "branch": [{"SHA1": "a" * 40, "name": "refs/remotes/origin/main"}],
    }
    assert git["remoteUrls"] == ["https://git.example.com/x.git"]
    assert build["changeSet"]["kind"] == "git"
    assert build["changeSet"]["items"][0]["commitId"] == "c0ffee" * 6 + "beef"
    assert "changeSets" not in build
    assert build["artifacts"] == [
        {"displayPath": "app.tar.gz", "fileName": "app.tar.gz", "relativePath": "dist/app.tar.gz"}
    ]
    assert build == sim.build("team/app", 1)


def test_changesets_by_job_kind(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("pipe", kind="pipeline")
    sim.add_job("free")
    sim.add_build("pipe", changeset=["abc1234"])
    sim.add_build("pipe")
    sim.add_build("free")
    tree = "changeSet[kind,items[commitId]],changeSets[kind,items[commitId]]"
    first = get(client, "job/pipe/1/api/json", tree)
    assert first == {
        "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
        "changeSets": [
            {
                "_class": "hudson.plugins.git.GitChangeSetList",
                "kind": "git",
                "items": [{"_class": "hudson.plugins.git.GitChangeSet", "commitId": "abc1234"}],
            }
        ],
    }
    assert get(client, "job/pipe/2/api/json", tree)["changeSets"] == []
    assert get(client, "job/free/1/api/json", tree)["changeSet"] == {
        "_class": "hudson.scm.EmptyChangeLogSet",
        "kind": None,
        "items": [],
    }
    pipe_actions = [a.get("_class") for a in sim.build("pipe", 1)["actions"]]
    assert "org.jenkinsci.plugins.workflow.libs.LibrariesAction" in pipe_actions
    assert "org.jenkinsci.plugins.workflow.job.views.FlowGraphAction" in pipe_actions


def test_class_kept_and_unmatched_actions_empty(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("app")
    sim.add_build("app")
    build = get(client, "job/app/1/api/json", "number,actions[causes[userId]]")
    assert build["_class"] == "hudson.model.FreeStyleBuild"
    assert build["actions"][0] == {
        "_class": "hudson.model.CauseAction",
        "causes": [{"_class": "hudson.model.Cause$UserIdCause", "userId": "admin"}],
    }
    assert build["actions"].count({}) >= 2
    assert {"_class": "org.jenkinsci.plugins.displayurlapi.actions.RunDisplayAction"} in build[
        "actions"
    ]
    assert set(build) == {"_class", "number", "actions"}


def test_builds_capped_at_100_and_all_builds(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("big")
    for _ in range(150):
        sim.add_build("big")
    job = get(client, "job/big/api/json", "builds[number],allBuilds[number]")
    assert numbers(job["builds"]) == list(range(150, 50, -1))
    assert numbers(job["allBuilds"]) == list(range(150, 0, -1))
    assert numbers(get(client, "job/big/api/json", "builds[number]{90,120}")["builds"]) == list(
        range(60, 50, -1)
    )
    assert numbers(get(client, "job/big/api/json", "builds[number]{,3}")["builds"]) == [
        150,
        149,
        148,
    ]
    assert numbers(get(client, "job/big/api/json", "builds[number]{2}")["builds"]) == [148]
    assert numbers(get(client, "job/big/api/json", "allBuilds[number]{145,}")["allBuilds"]) == [
        5,
        4,
        3,
        2,
        1,
    ]
    assert numbers(get(client, "job/big/api/json", "allBuilds[number]{100,102}")["allBuilds"]) == [
        50,
        49,
    ]
    stamps = [sim.build("big", n)["timestamp"] for n in range(1, 151)]
    assert stamps == sorted(set(stamps))  # default timestamps strictly increase


def test_job_item_json(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("app", kind="pipeline")
    sim.add_build("app", result="FAILURE")
    sim.add_build("app", result="SUCCESS")
    sim.add_build("app", building=True)
    job = get(client, "job/app/api/json")
    for key in (
        "name",
        "fullName",
        "displayName",
        "fullDisplayName",
        "url",
        "description",
        "buildable",
        "color",
        "inQueue",
        "keepDependencies",
        "nextBuildNumber",
        "builds",
        "allBuilds",
        "firstBuild",
        "lastBuild",
        "lastCompletedBuild",
        "lastFailedBuild",
        "lastSuccessfulBuild",
        "healthReport",
        "property",
        "actions",
    ):
        assert key in job, key
    assert job["_class"] == "org.jenkinsci.plugins.workflow.job.WorkflowJob"
    assert job["nextBuildNumber"] == 4
    assert job["color"] == "blue_anime"
    assert (job["lastBuild"]["number"], job["lastCompletedBuild"]["number"]) == (3, 2)
    assert (job["lastFailedBuild"]["number"], job["firstBuild"]["number"]) == (1, 1)


def test_permalinks(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("app")
    sim.add_build("app", result="SUCCESS")
    sim.add_build("app", result="FAILURE")
    sim.add_build("app", building=True)
    assert get(client, "job/app/lastBuild/api/json", "number")["number"] == 3
    assert get(client, "job/app/lastCompletedBuild/api/json", "number")["number"] == 2
    assert get(client, "job/app/lastSuccessfulBuild/api/json", "number")["number"] == 1
    sim.add_job("empty")
    assert client.get("job/empty/lastBuild/api/json").status_code == 404


def test_running_build_then_finished(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("app")
    sim.add_build("app", building=True, result="SUCCESS", duration=5)
    running = get(client, "job/app/1/api/json", "building,result,duration")
    assert running == {
        "_class": "hudson.model.FreeStyleBuild",
        "building": True,
        "result": None,
        "duration": 0,
    }
    sim.finish_build("app", 1, result="UNSTABLE", duration=1234)
    done = get(client, "job/app/1/api/json", "building,result,duration")
    assert (done["building"], done["result"], done["duration"]) == (False, "UNSTABLE", 1234)


def test_deleted_build_is_404(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("app")
    sim.add_build("app")
    sim.add_build("app")
    sim.delete_build("app", 1)
    response = client.get("job/app/1/api/json")
    assert response.status_code == 404
    assert "<title>Error 404 Not Found</title>" in response.text
    assert response.headers["content-type"].startswith("text/html")
    assert numbers(get(client, "job/app/api/json", "builds[number]")["builds"]) == [2]
    assert client.get("job/nope/api/json").status_code == 404
    assert client.get("job/app/99/api/json").status_code == 404


def test_delete_job_and_readd_restarts_numbering(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("f/app")
    first = sim.add_build("f/app")
    sim.add_build("f/app")
    sim.delete_job("f/app")
    assert client.get("job/f/job/app/api/json").status_code == 404
    sim.add_job("f/app")
    again = sim.add_build("f/app")
    assert again["number"] == 1
    assert again["timestamp"] != first["timestamp"]
    assert get(client, "job/f/job/app/api/json", "nextBuildNumber")["nextBuildNumber"] == 2


# ---- items and paths ------------------------------------------------------------------------


def test_folders_two_deep(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("a/b/c", kind="maven")
    sim.add_job("a/x", kind="matrix")
    tree = "jobs[name,_class,jobs[name,fullName,jobs[name,fullName,url,nextBuildNumber]]]"
    root = get(client, "api/json", tree)
    assert root["_class"] == "hudson.model.Hudson"
    folder_a = root["jobs"][0]
    assert (folder_a["name"], folder_a["_class"]) == (
        "a",
        "com.cloudbees.hudson.plugins.folder.Folder",
    )
    b, x = folder_a["jobs"]
    assert (b["fullName"], x["fullName"], x["_class"]) == (
        "a/b",
        "a/x",
        "hudson.matrix.MatrixProject",
    )
    c = b["jobs"][0]
    assert c == {
        "_class": "hudson.maven.MavenModuleSet",
        "name": "c",
        "fullName": "a/b/c",
        "url": f"{sim.url}job/a/job/b/job/c/",
        "nextBuildNumber": 1,
    }
    folder = get(client, "job/a/job/b/api/json")
    for key in (
        "name",
        "fullName",
        "displayName",
        "url",
        "description",
        "jobs",
        "primaryView",
        "views",
    ):
        assert key in folder
    sim.add_build("a/b/c")
    assert (
        get(client, "job/a/job/b/job/c/1/api/json")["_class"] == "hudson.maven.MavenModuleSetBuild"
    )


def test_multibranch_branch_with_slash(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_multibranch("web")
    sim.add_org_folder("gh")
    assert sim.add_branch("web", "feature/login") == "web/feature%2Flogin"
    sim.add_build("web/feature%2Flogin", build_data=[{"sha": "b" * 40}])
    project = get(client, "job/web/api/json", "jobs[name,fullName,url]")
    assert project["_class"].endswith("WorkflowMultiBranchProject")
    assert project["jobs"][0]["name"] == "feature%2Flogin"
    assert project["jobs"][0]["url"] == f"{sim.url}{BRANCH}"
    job = get(client, f"{BRANCH}api/json", "fullName,displayName")
    assert (job["fullName"], job["displayName"]) == ("web/feature%2Flogin", "feature/login")
    build = get(client, f"{BRANCH}1/api/json")
    assert build["url"] == f"{sim.url}{BRANCH}1/"
    assert build["fullDisplayName"] == "web » feature/login #1"
    git = next(a for a in build["actions"] if "lastBuiltRevision" in a)
    assert git["lastBuiltRevision"]["branch"][0]["name"] == "feature/login"
    # Decoded only once: the un-doubled form names a different (missing) job.
    assert client.get("job/web/job/feature%2Flogin/api/json").status_code == 404
    assert get(client, "job/gh/api/json", "name")["_class"] == "jenkins.branch.OrganizationFolder"


def test_maven_modules_sit_right_below_their_project(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_folder("libs")
    sim.add_job("libs/core", "maven")
    module = sim.add_module("libs/core", "com.acme$core")
    assert module == "libs/core/com.acme$core"
    sim.add_build(module)
    project = get(client, "/job/libs/job/core/api/json", "modules[name,url,nextBuildNumber]")
    assert project["_class"] == "hudson.maven.MavenModuleSet"
    assert project["modules"] == [
        {
            "_class": "hudson.maven.MavenModule",
            "name": "com.acme$core",
            "url": f"{sim.url}job/libs/job/core/com.acme$core/",
            "nextBuildNumber": 2,
        }
    ]
    build = get(client, "/job/libs/job/core/com.acme%24core/1/api/json", "number")
    assert build == {"_class": "hudson.maven.MavenBuild", "number": 1}
    assert client.get("/job/libs/job/core/job/com.acme%24core/1/api/json").status_code == 404


def test_odd_names_and_view_prefix(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("my folder/déploiement ü")
    sim.add_build("my folder/déploiement ü")
    path = "job/my%20folder/job/d%C3%A9ploiement%20%C3%BC/"
    assert get(client, f"{path}api/json", "fullName")["fullName"] == "my folder/déploiement ü"
    assert get(client, f"{path}1/api/json")["url"] == f"{sim.url}{path}1/"
    assert get(client, f"view/all/{path}api/json", "name")["name"] == "déploiement ü"


def test_context_path() -> None:
    with JenkinsSim(context_path="/ci") as sim, connect(sim, base="") as http:
        assert sim.url.endswith("/ci/")
        sim.add_job("app")
        sim.add_build("app")
        origin = sim.url[: -len("ci/")]
        assert http.get(f"{origin}api/json").status_code == 404
        assert http.get(f"{origin}job/app/api/json").status_code == 404
        root = http.get(f"{sim.url}api/json", params={"tree": "url,jobs[url]"}).json()
        assert root["url"] == sim.url
        assert root["jobs"][0]["url"] == f"{sim.url}job/app/"
        assert http.get(f"{sim.url}job/app/1/api/json").json()["url"] == f"{sim.url}job/app/1/"


def test_root_url_override_appears_in_urls() -> None:
    wrong = "https://wrong.example/jenkins/"
    with JenkinsSim(root_url=wrong) as sim, connect(sim) as http:
        sim.add_job("f/app")
        sim.add_build("f/app")
        assert http.get("api/json", params={"tree": "url"}).json()["url"] == wrong
        job = http.get("job/f/job/app/api/json", params={"tree": "url,builds[url]"}).json()
        assert job["url"] == f"{wrong}job/f/job/app/"
        assert job["builds"][0]["url"] == f"{wrong}job/f/job/app/1/"


def test_builds_added_before_start_get_the_real_url() -> None:
    sim = JenkinsSim()
    sim.add_job("app")
    sim.add_build("app")
    with sim:
        assert sim.build("app", 1)["url"] == f"{sim.url}job/app/1/"


# ---- auth -----------------------------------------------------------------------------------


def test_auth(sim: JenkinsSim) -> None:
    with connect(sim, None) as anonymous:
        response = anonymous.get("api/json")
        assert response.status_code == 403
        assert "Authentication required" in response.text
        assert response.headers["x-jenkins"] == "2.440.3"
    with connect(sim, ("admin", "wrong")) as wrong:
        response = wrong.get("api/json")
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("text/html")
    with connect(sim, ("someone", "jenkins-token")) as other:
        assert other.get("api/json").status_code == 401
    with connect(sim) as good:
        response = good.get("api/json")
        assert response.status_code == 200
        assert response.headers["x-jenkins"] == "2.440.3"
        who = good.get("whoAmI/api/json").json()
        assert (who["_class"], who["name"], who["anonymous"]) == (
            "hudson.security.WhoAmI",
            "admin",
            False,
        )


def test_no_auth_configured() -> None:
    with JenkinsSim(user=None, token=None) as sim, connect(sim, None) as http:
        assert http.get("api/json").status_code == 200
        assert http.get("whoAmI/api/json").json()["anonymous"] is True


def test_plugin_list_follows_flags() -> None:
    for wfapi, blue, graph in ((True, True, True), (False, False, False)):
        with (
            JenkinsSim(wfapi=wfapi, blueocean=blue, graphview=graph, version="2.479.1") as sim,
            connect(sim) as http,
        ):
            response = http.get("pluginManager/api/json", params={"tree": "plugins[shortName]"})
            assert response.headers["x-jenkins"] == "2.479.1"
            names = {p["shortName"] for p in response.json()["plugins"]}
            assert {
                "workflow-job",
                "git",
                "cloudbees-folder",
                "workflow-multibranch",
                "branch-api",
            } <= names
            assert ("pipeline-stage-view" in names) is wfapi
            assert ({"blueocean-rest", "blueocean"} <= names) is blue
            assert ("pipeline-graph-view" in names) is graph


@pytest.mark.parametrize(
    ("paths", "version"),
    [
        ("new", "998.vc30deece0e36"),
        ("overview", "772.vb_b_19985c0b_8b_"),
        ("old", "482.vdf24443b_6cf9"),
    ],
)
def test_plugin_list_names_the_graph_view_release(paths: str, version: str) -> None:
    with JenkinsSim(graphview=True, graphview_paths=paths) as sim, connect(sim) as http:
        plugins = get(http, "pluginManager/api/json", "plugins[shortName,version,active]")
    assert {"shortName": "pipeline-graph-view", "version": version, "active": True} in plugins[
        "plugins"
    ]


# ---- stages ---------------------------------------------------------------------------------


def test_wfapi_describe_and_node(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("f/pipe", kind="pipeline")
    sim.add_build("f/pipe", result="FAILURE", duration=2_000, timestamp=1_000, stages=STAGES)
    run = get(client, "job/f/job/pipe/1/wfapi/describe")
    assert (run["id"], run["name"], run["status"]) == ("1", "#1", "FAILED")
    assert (run["startTimeMillis"], run["endTimeMillis"], run["durationMillis"]) == (
        1_000,
        3_000,
        2_000,
    )
    assert [s["id"] for s in run["stages"]] == ["6", "9", "15"]
    assert run["stages"][0] == {
        "_links": {"self": {"href": "/job/f/job/pipe/1/execution/node/6/wfapi/describe"}},
        "id": "6",
        "name": "Build",
        "execNode": "",
        "status": "SUCCESS",
        "startTimeMillis": 1_000,
        "durationMillis": 500,
        "pauseDurationMillis": 0,
    }
    node = get(client, "job/f/job/pipe/1/execution/node/6/wfapi/describe")
    step = node["stageFlowNodes"][0]
    assert (step["id"], step["name"], step["parameterDescription"], step["parentNodes"]) == (
        "7",
        "Shell Script",
        "make",
        ["6"],
    )
    assert (step["status"], step["durationMillis"]) == ("SUCCESS", 400)
    parallel = get(client, "job/f/job/pipe/1/execution/node/9/wfapi/describe")
    assert [(s["id"], s["parentNodes"]) for s in parallel["stageFlowNodes"]] == [("12", ["10"])]
    assert client.get("job/f/job/pipe/1/execution/node/99/wfapi/describe").status_code == 404
    sim.add_job("free")
    sim.add_build("free")
    assert client.get("job/free/1/wfapi/describe").status_code == 404


def test_wfapi_absent() -> None:
    with JenkinsSim(wfapi=False) as sim, connect(sim) as http:
        sim.add_job("pipe", kind="pipeline")
        sim.add_build("pipe", stages=STAGES)
        assert http.get("job/pipe/1/wfapi/describe").status_code == 404
        assert http.get("job/pipe/1/execution/node/6/wfapi/describe").status_code == 404


def test_running_stage_finishes_with_the_build(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("pipe", kind="pipeline")
    sim.add_build(
        "pipe", building=True, stages=[{"id": "5", "name": "Build", "status": "IN_PROGRESS"}]
    )
    assert get(client, "job/pipe/1/wfapi/describe")["status"] == "IN_PROGRESS"
    node = get(client, "blue/rest/organizations/jenkins/pipelines/pipe/runs/1/nodes/5/")
    assert (node["result"], node["state"]) == ("UNKNOWN", "RUNNING")
    sim.finish_build("pipe", 1, result="ABORTED")
    run = get(client, "job/pipe/1/wfapi/describe")
    assert (run["status"], run["stages"][0]["status"]) == ("ABORTED", "ABORTED")


def test_blue_ocean_nodes_and_steps(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("f/pipe", kind="pipeline")
    sim.add_build("f/pipe", result="FAILURE", timestamp=1_000, stages=STAGES)
    base = "blue/rest/organizations/jenkins/pipelines/f/pipelines/pipe/runs/1/"
    nodes = {n["id"]: n for n in get(client, f"{base}nodes/")}
    assert list(nodes) == ["6", "9", "10", "11", "15"]
    build = nodes["6"]
    assert build["_class"] == "io.jenkins.blueocean.rest.impl.pipeline.PipelineNodeImpl"
    assert (build["displayName"], build["result"], build["state"], build["type"]) == (
        "Build",
        "SUCCESS",
        "FINISHED",
        "STAGE",
    )
    assert (build["startTime"], build["durationInMillis"]) == ("1970-01-01T00:00:01.000+0000", 500)
    assert build["firstParent"] is None
    assert [e["id"] for e in build["edges"]] == ["9"]
    tests = nodes["9"]
    assert tests["result"] == "FAILURE"
    assert [(e["id"], e["type"]) for e in tests["edges"]] == [
        ("10", "PARALLEL"),
        ("11", "PARALLEL"),
    ]
    assert (nodes["10"]["type"], nodes["10"]["firstParent"]) == ("PARALLEL", "9")
    assert [e["id"] for e in nodes["11"]["edges"]] == ["15"]
    deploy = nodes["15"]
    assert [deploy[k] for k in ("result", "state", "startTime", "durationInMillis")] == [None] * 4
    assert deploy["edges"] == []
    steps = get(client, f"{base}nodes/6/steps/")
    assert steps == [
        {
            "_class": "io.jenkins.blueocean.rest.impl.pipeline.PipelineStepImpl",
            "_links": steps[0]["_links"],
            "actions": [],
            "displayDescription": "make",
            "displayName": "Shell Script",
            "durationInMillis": 400,
            "result": "SUCCESS",
            "startTime": "1970-01-01T00:00:01.000+0000",
            "state": "FINISHED",
            "id": "7",
            "input": None,
            "type": "STEP",
        }
    ]
    assert steps[0]["_links"]["self"]["href"] == f"/{base}nodes/6/steps/7/"
    assert [s["id"] for s in get(client, f"{base}nodes/10/steps/")] == ["12"]
    assert client.get(f"{base}nodes/99/steps/").status_code == 404
    assert get(client, base)["result"] == "FAILURE"


def test_blue_ocean_branch_path(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_folder("org")
    sim.add_multibranch("org/web")
    branch = sim.add_branch("org/web", "feature/login")
    sim.add_build(branch, stages=STAGES[:1])
    base = "blue/rest/organizations/jenkins/pipelines/org/pipelines/web/"
    nodes = get(client, f"{base}branches/feature%252Flogin/runs/1/nodes/")
    assert [n["id"] for n in nodes] == ["6"]
    assert nodes[0]["_links"]["self"]["href"] == (
        f"/{base}branches/feature%252Flogin/runs/1/nodes/6/"
    )
    assert [
        s["id"] for s in get(client, f"{base}branches/feature%252Flogin/runs/1/nodes/6/steps/")
    ] == ["7"]
    assert client.get(f"{base}pipelines/feature%252Flogin/runs/1/nodes/").status_code == 404
    assert client.get(f"{base}branches/feature%2Flogin/runs/1/nodes/").status_code == 404


def test_blue_ocean_absent() -> None:
    with JenkinsSim(blueocean=False) as sim, connect(sim) as http:
        sim.add_job("pipe", kind="pipeline")
        sim.add_build("pipe", stages=STAGES)
        assert (
            http.get("blue/rest/organizations/jenkins/pipelines/pipe/runs/1/nodes/").status_code
            == 404
        )
        assert http.get("blue/rest/organizations/jenkins/").status_code == 404


GRAPH_STAGES: list[dict[str, Any]] = [
    *STAGES[:4],
    {
        "id": "13",
        "name": "lint-a",
        "status": "SUCCESS",
        "nested_in": "11",
        "start": 1_600,
        "duration": 30,
        "steps": [{"id": "14", "name": "Print Message", "description": "hi", "start": 1_601}],
    },
    {"id": "16", "name": "Docs", "status": "SKIPPED", "start": 2_500, "duration": 3},
    STAGES[4],
]


def test_graph_view_tree_and_all_steps(sim: JenkinsSim) -> None:
    sim.graphview = True
    sim.add_job("f/pipe", kind="pipeline")
    sim.add_build("f/pipe", result="FAILURE", timestamp=1_000, stages=GRAPH_STAGES)
    with connect(sim) as client:
        tree = get(client, "job/f/job/pipe/1/stages/tree")
        steps = get(client, "job/f/job/pipe/1/stages/allSteps")
    assert tree["status"] == "ok" and tree["data"]["complete"] is True
    build, tests, docs, deploy = tree["data"]["stages"]
    assert build == {
        "id": "6",
        "name": "Build",
        "state": "success",
        "type": "STAGE",
        "title": "Build",
        "pauseDurationMillis": 0,
        "startTimeMillis": 1_000,
        "totalDurationMillis": 500,
        "children": [],
        "isSequential": False,
        "synthetic": False,
        "placeholder": False,
        "agent": "built-in",
        "url": "/job/f/job/pipe/1/stages/?selected-node=6",
    }
    # a stage holding a parallel gets its branches; a branch gets its sequential stages
    assert [(c["id"], c["type"], c["state"]) for c in tests["children"]] == [
        ("10", "PARALLEL", "failure"),
        ("11", "PARALLEL", "success"),
    ]
    assert [(c["id"], c["type"]) for c in tests["children"][1]["children"]] == [("13", "STAGE")]
    assert (docs["state"], docs["totalDurationMillis"]) == ("skipped", 3)
    assert (deploy["state"], deploy["startTimeMillis"], deploy["totalDurationMillis"]) == (
        "not_built",
        0,
        0,
    )
    assert steps["data"]["runIsComplete"] is True
    # name: the arguments; title: the step's kind, none for Shell Script and Print Message
    assert [
        (s["id"], s["stageId"], s["name"], s["title"], s["state"]) for s in steps["data"]["steps"]
    ] == [
        ("7", "6", "make", "", "success"),
        ("12", "10", "pytest", "", "failure"),
        ("14", "13", "hi", "", "success"),
    ]
    assert list(steps["data"]["steps"][0]) == [
        "id",
        "name",
        "state",
        "type",
        "title",
        "pauseDurationMillis",
        "startTimeMillis",
        "totalDurationMillis",
        "stageId",
        "flags",
    ]


def test_graph_view_running_node_has_no_total_duration(sim: JenkinsSim) -> None:
    sim.graphview = True
    sim.add_job("pipe", kind="pipeline")
    sim.add_build("pipe", building=True, stages=[{"id": "5", "name": "B", "status": "IN_PROGRESS"}])
    with connect(sim) as client:
        tree = get(client, "job/pipe/1/stages/tree")["data"]
    assert tree["complete"] is False
    assert tree["stages"][0]["state"] == "running"
    assert "totalDurationMillis" not in tree["stages"][0]  # null, which the plugin leaves out


@pytest.mark.parametrize(
    ("paths", "served", "absent"),
    [
        ("new", ["stages/tree", "stages/allSteps"], ["pipeline-console/tree"]),
        (
            "overview",
            ["pipeline-overview/tree", "pipeline-overview/allSteps"],
            ["stages/tree", "pipeline-console/allSteps"],
        ),
        (
            "old",
            ["pipeline-graph/tree", "pipeline-console/tree", "pipeline-console/allSteps"],
            ["stages/tree", "pipeline-overview/tree", "pipeline-graph/allSteps"],
        ),
    ],
)
def test_graph_view_path_generations(paths: str, served: list[str], absent: list[str]) -> None:
    with JenkinsSim(graphview=True, graphview_paths=paths) as sim, connect(sim) as client:
        sim.add_job("pipe", kind="pipeline")
        sim.add_build("pipe", stages=GRAPH_STAGES)
        answers = {path: get(client, f"job/pipe/1/{path}") for path in served}
        for path in absent:
            assert client.get(f"job/pipe/1/{path}").status_code == 404, path
    assert all(answer["status"] == "ok" for answer in answers.values())
    if paths == "old":  # every getter, nulls included; no placeholder, no runIsComplete
        stage = answers["pipeline-console/tree"]["data"]["stages"][0]
        assert (stage["nextSibling"], stage["seqContainerName"]) == (None, None)
        assert "placeholder" not in stage
        assert stage["url"] == "/job/pipe/1/pipeline-console?selected-node=6"
        assert answers["pipeline-graph/tree"] == answers["pipeline-console/tree"]
        assert "runIsComplete" not in answers["pipeline-console/allSteps"]["data"]


def test_graph_view_absent_and_builds_older_than_it() -> None:
    with JenkinsSim() as sim, connect(sim) as client:
        sim.add_job("pipe", kind="pipeline")
        sim.add_build("pipe", stages=STAGES)
        assert client.get("job/pipe/1/stages/tree").status_code == 404  # no plugin
        sim.graphview = True  # installed now: build 1 predates it
        sim.add_build("pipe", stages=STAGES)
        assert client.get("job/pipe/1/stages/tree").status_code == 404
        assert client.get("job/pipe/1/stages/allSteps").status_code == 404
        assert get(client, "job/pipe/2/stages/tree")["status"] == "ok"
        sim.add_job("free")
        sim.add_build("free")
        assert client.get("job/free/1/stages/tree").status_code == 404


def test_nested_and_skipped_stages_in_wfapi_and_blue_ocean(
    sim: JenkinsSim, client: httpx.Client
) -> None:
    sim.add_job("pipe", kind="pipeline")
    sim.add_build("pipe", timestamp=1_000, stages=GRAPH_STAGES)
    run = get(client, "job/pipe/1/wfapi/describe")
    # wfapi lists top-level stages only, and has no word for skipped: SUCCESS
    assert [(s["id"], s["status"]) for s in run["stages"]] == [
        ("6", "SUCCESS"),
        ("9", "FAILED"),
        ("16", "SUCCESS"),
        ("15", "NOT_EXECUTED"),
    ]
    parallel = get(client, "job/pipe/1/execution/node/9/wfapi/describe")
    # a stage nested in a branch is not a wfapi stage: its steps are the branch's
    assert [(s["id"], s["parentNodes"]) for s in parallel["stageFlowNodes"]] == [
        ("12", ["10"]),
        ("14", ["11"]),
    ]
    base = "blue/rest/organizations/jenkins/pipelines/pipe/runs/1/"
    nodes = {n["id"]: n for n in get(client, f"{base}nodes/")}
    assert list(nodes) == ["6", "9", "10", "11", "13", "16", "15"]
    nested = nodes["13"]
    assert (nested["type"], nested["firstParent"], nested["result"]) == ("STAGE", "11", "SUCCESS")
    assert [e["id"] for e in nodes["11"]["edges"]] == ["13"]
    assert [e["id"] for e in nested["edges"]] == ["16"]
    skipped = nodes["16"]
    assert (skipped["result"], skipped["state"], skipped["durationInMillis"]) == (
        "NOT_BUILT",
        "SKIPPED",
        3,
    )
    assert [s["id"] for s in get(client, f"{base}nodes/13/steps/")] == ["14"]


def test_nested_stage_needs_an_earlier_branch(sim: JenkinsSim) -> None:
    sim.add_job("pipe", kind="pipeline")
    with pytest.raises(ValueError, match="nested_in"):
        sim.add_build("pipe", stages=[{"id": "3", "name": "a", "nested_in": "2"}])
    with pytest.raises(ValueError, match="nested_in"):
        sim.add_build("pipe", stages=[STAGES[0], {"id": "3", "name": "a", "nested_in": "6"}])


# ---- artifacts --------------------------------------------------------------------------------


def test_artifact_download(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("app")
    sim.add_build("app", artifacts=["out/report.json", "app.bin"])
    sim.artifact_content[("app", 1, "out/report.json")] = b'{"ok": true}'
    assert client.get("job/app/1/artifact/out/report.json").content == b'{"ok": true}'
    default = client.get("job/app/1/artifact/app.bin")
    assert default.status_code == 200 and default.content
    assert default.content == client.get("job/app/1/artifact/app.bin").content
    assert client.get("job/app/1/artifact/missing.txt").status_code == 404


# ---- latency, faults, request log -----------------------------------------------------------


def test_latency() -> None:
    with JenkinsSim(latency=0.01) as sim, connect(sim) as http:
        started = time.perf_counter()
        assert http.get("api/json").status_code == 200
        assert time.perf_counter() - started >= 0.01


def test_fault_status_times_and_order(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("app")
    sim.inject_fault(r"/job/app/api/json", status=503, times=2)
    sim.inject_fault(r"/job/app/", status=502, body='{"error": "gateway"}')
    first = client.get("job/app/api/json")
    assert first.status_code == 503
    assert first.headers["content-type"].startswith("text/html")
    assert client.get("job/app/api/json").status_code == 503
    third = client.get("job/app/api/json")
    assert (third.status_code, third.json()) == (502, {"error": "gateway"})
    assert client.get("job/app/api/json").status_code == 200
    assert client.get("api/json").status_code == 200


def test_fault_delay() -> None:
    with JenkinsSim() as sim, connect(sim) as http:
        sim.inject_fault("api/json", status=500, delay=0.02)
        started = time.perf_counter()
        assert http.get("api/json").status_code == 500
        assert time.perf_counter() - started >= 0.02
        with pytest.raises(httpx.ReadTimeout):
            sim.inject_fault("api/json", status=200, delay=0.2)
            http.get("api/json", timeout=0.02)


def test_fault_login_page(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.inject_fault("api/json", login_page=True)
    response = client.get("api/json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>Sign in [Jenkins]</title>" in response.text


def test_fault_truncate(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("app")
    sim.inject_fault("api/json", truncate=True)
    response = client.get("api/json", params={"tree": "jobs[name,url]"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json;charset=utf-8"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    whole = get(client, "api/json", "jobs[name,url]")
    assert (
        json.dumps(whole, ensure_ascii=False).encode()[: len(response.content)] == response.content
    )


def test_computer_shows_what_a_live_controller_runs_at_each_moment(
    sim: JenkinsSim, client: httpx.Client
) -> None:
    live = LiveController(sim, jobs=4, seed=5)
    running_on = "[currentExecutable[url,number]]"
    tree = f"computer[executors{running_on},oneOffExecutors{running_on}]"
    for _ in range(12):
        live.advance(7)
        [node] = get(client, "computer/api/json", tree)["computer"]
        flyweight = {e["currentExecutable"]["url"] for e in node["oneOffExecutors"]}
        numbered = {
            e["currentExecutable"]["url"] for e in node["executors"] if e["currentExecutable"]
        }
        running = {
            (sim.build(b.job, b.number)["url"], b.job.startswith("svc-")) for b in live.running()
        }
        assert flyweight == {url for url, pipeline in running if pipeline}
        assert numbered == {url for url, pipeline in running if not pipeline}
        assert len(node["executors"]) == len(numbered) + 2  # two idle numbered executors


def test_a_live_controller_plays_the_same_builds_however_its_clock_is_stepped() -> None:
    def played(step: float) -> tuple[list[LiveBuild], JenkinsSim]:
        world = JenkinsSim()
        live = LiveController(world, jobs=3, seed=11, short_share=0.3)
        for _ in range(round(180 / step)):
            live.advance(step)
        live.stop_starting()
        live.advance(60)
        assert live.idle()
        return live.finished, world

    coarse, world = played(10)
    assert played(0.25)[0] == coarse
    assert len(coarse) > 9 and any(b.duration_ms < 5_000 for b in coarse)
    for job in {b.job for b in coarse}:  # one build at a time, the next a pause after the last
        runs = sorted((b for b in coarse if b.job == job), key=lambda b: b.number)
        assert [b.number for b in runs] == list(range(1, len(runs) + 1))
        assert all(later.start_ms == b.end_ms + 50 for b, later in itertools.pairwise(runs))
    for b in coarse:  # what Jenkins answers is what was played
        build = world.build(b.job, b.number)
        assert not build["building"]
        assert (build["result"], build["timestamp"], build["duration"]) == (
            b.result,
            b.start_ms,
            b.duration_ms,
        )


def test_request_log(sim: JenkinsSim, client: httpx.Client) -> None:
    sim.add_job("app")
    client.get("job/app/api/json", params={"tree": "name"})
    client.get("api/json")
    assert sim.requests[0] == ("GET", "/job/app/api/json", "tree=name")
    assert sim.count(r"^/job/app/") == 1
    assert sim.count() == 2
    sim.reset_requests()
    assert sim.count() == 0


def test_token_not_in_request_log(sim: JenkinsSim, client: httpx.Client) -> None:
    client.get("api/json")
    assert "jenkins-token" not in repr(sim.requests)


# ---- old Jenkins ----------------------------------------------------------------------------


def test_old_style_has_no_class() -> None:
    with JenkinsSim(old_style=True, version="1.651.3") as sim, connect(sim) as http:
        sim.add_job("f/app")
        sim.add_build(
            "f/app",
            parameters=[
                {"_class": "hudson.model.BooleanParameterValue", "name": "X", "value": True}
            ],
            build_data=[{"sha": "c" * 40}],
        )
        everything = http.get("api/json", params={"depth": "2"}).text
        build = http.get("job/f/job/app/1/api/json").text
        filtered = http.get(
            "job/f/job/app/1/api/json", params={"tree": "actions[causes[userId],parameters[name]]"}
        ).json()
        assert "_class" not in everything + build
        assert "_class" not in json.dumps(sim.build("f/app", 1))
        assert {"causes": [{"userId": "admin"}]} in filtered["actions"]
        assert {"parameters": [{"name": "X"}]} in filtered["actions"]
        assert {} in filtered["actions"]
