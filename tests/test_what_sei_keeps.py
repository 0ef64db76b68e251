"""End to end: what a real SEI server would keep equals what Jenkins said, field by field.

One controller with what loses data when it is sent carelessly (../shared/sei-api.md, "What
the server stores after the 202"): jobs in folders, a multibranch branch named with a slash,
a Maven module, pipelines with parallel stages, downstream builds started by a Pipeline `build`
step (BuildUpstreamCause) seven levels deep, both artifact manifests with string flags and null
metadata, SEI_SCM_COMMIT_IDS in a Pipeline environment, and a root URL other than the address
the agent reaches Jenkins at. The real CLI sends it; the SEI stand-in keeps what the server's
tables would keep; every stage, step, upstream link, artifact and job row is compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from conftest import GUID, JENKINS_TOKEN, JENKINS_USER, SEI_KEY, now_ms
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

from agent.cli import main
from agent.jenkins.endpoints import CAUSE_FIELDS

PUBLIC = "https://jenkins.example.org/"
BUILD_STEP = "org.jenkinsci.plugins.workflow.support.steps.build.BuildUpstreamCause"
BRANCH = "platform/web/feature%2Flogin"
BRANCH_IN_SEI = "platform/jobs/web/branches/feature%2Flogin"  # plugin 1.0.46: item names
MODULE = "libs/core/com.acme$core"
SHA_ENV, SHA_PARAM = "e" * 40, "f" * 40
SVC_BUILDS = 12
# wfapi status -> the result and state SEI is sent (Blue Ocean's words)
RESULTS = {
    "SUCCESS": ("SUCCESS", "FINISHED"),
    "FAILED": ("FAILURE", "FINISHED"),
    "UNSTABLE": ("UNSTABLE", "FINISHED"),
    "ABORTED": ("ABORTED", "FINISHED"),
    "NOT_EXECUTED": ("NOT_BUILT", "NOT_BUILT"),
}
PIPELINE = [
    {
        "id": "3",
        "name": "Build",
        "status": "SUCCESS",
        "start": 1000,
        "duration": 400,
        "steps": [
            {"id": "4", "name": "Shell Script", "description": "make", "duration": 300},
            {"id": "5", "name": "Archive", "description": "dist/*", "duration": 20},
        ],
    },
    {"id": "6", "name": "Checks", "status": "FAILED", "start": 2000, "duration": 900},
    {
        "id": "7",
        "name": "unit",
        "status": "SUCCESS",
        "start": 2001,
        "duration": 500,
        "parallel_of": "6",
        "steps": [{"id": "8", "name": "Shell Script", "description": "pytest", "duration": 480}],
    },
    {
        "id": "9",
        "name": "lint " + "x" * 60,  # SEI cuts names to 50 characters
        "status": "FAILED",
        "start": 2002,
        "duration": 700,
        "parallel_of": "6",
        "steps": [{"id": "10", "name": "Shell Script", "description": "ruff", "status": "FAILED"}],
    },
    {"id": "11", "name": "Deploy", "status": "NOT_EXECUTED", "start": 0, "duration": 0},
]
MANIFEST = {
    "artifacts": [
        {
            "type": "container",
            "location": "registry.example/web:1.4",
            "name": "web",
            "qualifier": "1.4",
            "output": "true",
            "input": "no",
            "metadata": {"arch": "amd64", "layers": 7, "signed": True, "note": None},
        },
        {"type": "container", "location": " ", "name": "broken", "qualifier": "1"},
    ]
}
SEI_ARTIFACTS = {
    "artifact": {
        "type": "jar",
        "location": "s3://b/web.jar",
        "name": "web.jar",
        "qualifier": "1.4",
        "output": "TRUE",
    }
}


def upstream(project: str, number: int) -> dict[str, Any]:
    """The cause a Pipeline `build` step gives the build it starts."""
    return {
        "_class": BUILD_STEP,
        "shortDescription": f'Started by upstream project "{project}" build number {number}',
        "upstreamBuild": number,
        "upstreamProject": project,
        "upstreamUrl": "job/" + "/job/".join(project.split("/")) + "/",
    }


def populate(sim: JenkinsSim) -> None:
    sim.add_folder("platform")
    sim.add_multibranch("platform/web")
    assert sim.add_branch("platform/web", "feature/login") == BRANCH
    env = {
        "_class": "org.jenkinsci.plugins.workflow.cps.EnvActionImpl",
        "environment": {"SEI_SCM_COMMIT_IDS": SHA_ENV, "DEPLOY_TOKEN": "env-secret-1234"},
    }
    sim.add_build(
        BRANCH,
        result="FAILURE",
        stages=PIPELINE,
        actions=[env],
        parameters=[
            {
                "_class": "hudson.model.StringParameterValue",
                "name": "SEI_SCM_COMMIT_IDS",
                "value": SHA_PARAM,
            }
        ],
        artifacts=["artifact-manifest.json", "sei-artifacts.json", "dist/web.tar.gz"],
        causes=[{"_class": "hudson.model.Cause$UserIdCause", "userId": "alice"}],
    )
    sim.artifact_content[(BRANCH, 1, "artifact-manifest.json")] = json.dumps(MANIFEST).encode()
    sim.artifact_content[(BRANCH, 1, "sei-artifacts.json")] = json.dumps(SEI_ARTIFACTS).encode()
    # seven levels of `build` steps below the branch build, each in a folder of its own
    above = (BRANCH, 1)
    for level in range(1, 8):
        name = f"chain/step{level}"
        sim.add_job(name, "pipeline")
        sim.add_build(name, causes=[upstream(*above)], stages=PIPELINE[:1])
        above = (name, 1)
    # a Rebuild of build #1 as #2, which starts promote #1: `build` twice in promote's chain
    sim.add_job("build", "pipeline")
    sim.add_build("build", causes=[{"_class": "hudson.model.Cause$UserIdCause", "userId": "ann"}])
    rebuild = {**upstream("build", 1), "_class": "com.sonyericsson.rebuild.RebuildCause"}
    sim.add_build("build", causes=[rebuild])
    sim.add_job("promote", "pipeline")
    sim.add_build("promote", causes=[upstream("build", 2)])
    # a service whose builds checked out other repositories and branches over time
    sim.add_job("svc", "pipeline")
    for n in range(1, SVC_BUILDS + 1):
        remote = {"sha": f"{n:040x}", "branch": f"rel-{n}", "remote": f"https://git/svc{n}.git"}
        sim.add_build("svc", build_data=[remote], stages=PIPELINE[:1])
    sim.add_job("libs/core", "maven")
    assert sim.add_module("libs/core", "com.acme$core") == MODULE
    sim.add_build("libs/core")
    sim.add_build(MODULE, causes=[upstream("libs/core", 1)])


@pytest.fixture
def controller(request: pytest.FixtureRequest) -> Iterator[JenkinsSim]:
    source = request.param
    sim = JenkinsSim(
        user=JENKINS_USER,
        token=JENKINS_TOKEN,
        clock_ms=now_ms() - 3_600_000,
        root_url=PUBLIC,  # what Jenkins says its URL is; the agent reaches it elsewhere
        blueocean=source == "blueocean",
        wfapi=source == "wfapi",
        graphview=source == "graphview",
    )
    with sim:
        populate(sim)
        yield sim


def run_cli(monkeypatch: pytest.MonkeyPatch, sim: JenkinsSim, sei: SeiStandIn, tmp: Any) -> int:
    env = {
        "JENKINS_URL": sim.url,
        "JENKINS_USER": JENKINS_USER,
        "JENKINS_API_TOKEN": JENKINS_TOKEN,
        "SEI_BASE_URL": sei.url,
        "SEI_API_KEY": SEI_KEY,
        "SEI_INSTANCE_GUID": GUID,
        "SEI_INSTANCE_NAME": "ci",
        "AGENT_STATE_FILE": str(tmp / "state.json"),
        "JENKINS_RETRY_WAIT": "0",
        "SEI_RETRY_WAIT": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return main(["backfill", "--since", "2000-01-01"])


def step_name(step: dict[str, Any], source: str) -> str:
    """What a step is called: pipeline-graph-view gives Shell Script and Print Message steps no
    kind (`title`), only their arguments, which then name them."""
    if source == "graphview" and step["name"] in ("Shell Script", "Print Message"):
        return str(step["description"] or step["name"])
    return str(step["name"])


def expected_stages(stages: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """Each Jenkins stage and parallel branch, as the server keeps it."""
    out = []
    for stage in stages:
        result, state = RESULTS[stage["status"]]
        out.append(
            {
                "id": stage["id"],
                "name": stage["name"][:50],
                "result": result,
                "state": state,
                "duration": stage["duration"],
                "steps": [
                    {
                        "id": step["id"],
                        "name": step_name(step, source),
                        "result": RESULTS[step["status"]][0],
                    }
                    for step in stage["steps"]
                ],
            }
        )
    return out


def kept_stages(kept: dict[str, Any]) -> list[dict[str, Any]]:
    assert isinstance(kept["stages"], list), kept["stages"]
    return [
        {
            **{k: s[k] for k in ("id", "name", "result", "state", "duration")},
            "steps": [{k: t[k] for k in ("id", "name", "result")} for t in s["steps"]],
        }
        for s in kept["stages"]
    ]


@pytest.mark.parametrize("controller", ["graphview", "blueocean", "wfapi"], indirect=True)
def test_what_sei_keeps_is_what_jenkins_said(
    controller: JenkinsSim,
    sei: SeiStandIn,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_cli(monkeypatch, controller, sei, tmp_path) == 0, capsys.readouterr().err
    assert sei.dropped == []
    source = next(s for s in ("graphview", "blueocean", "wfapi") if getattr(controller, s))

    # every build, under the name the official plugin gives its job
    names = {key[1:] for key in sei.runs}
    chain = {(f"chain/jobs/step{level}", 1) for level in range(1, 8)}
    svc = {("svc", n) for n in range(1, SVC_BUILDS + 1)}
    assert names == {
        (BRANCH_IN_SEI, 1),
        ("libs/jobs/core", 1),
        ("libs/jobs/core/modules/com.acme$core", 1),
        ("build", 1),
        ("build", 2),
        ("promote", 1),
        *chain,
        *svc,
    }

    # the job row shows the newest build: posted after every older one of the job was answered
    order = [p["build_number"] for p in sei.accepted if p["job_full_name"] == "svc"]
    assert order[-1] == SVC_BUILDS and sorted(order) == list(range(1, SVC_BUILDS + 1))
    row = sei.kept("svc", 1)["job"]
    assert (row["repo_url"], row["branch_name"]) == (
        f"https://git/svc{SVC_BUILDS}.git",
        f"rel-{SVC_BUILDS}",
    )

    # direct parents: promote #1 is shown as a child of build #2, the Rebuild, not of #1
    promote = sei.kept("promote", 1)
    assert promote["upstream"] == [("build", 2)]
    assert promote["user_id"] == "ann"  # the root, found through the Rebuild's source

    # the instance URL and every link are the public root URL, never the agent's address
    assert sei.instance_urls[GUID] == PUBLIC
    assert all(p["web_url"].startswith(PUBLIC) for p in sei.accepted)

    # stages and steps: every one of them, parallel branches included, by node id
    branch = sei.kept(BRANCH_IN_SEI, 1)
    assert sorted(kept_stages(branch), key=lambda s: int(s["id"])) == expected_stages(
        controller.stages_of(BRANCH, 1), source
    )
    assert branch["job"] == {
        "job_full_name": BRANCH_IN_SEI,
        "name": "web",
        "qualified_name": "platform/web/feature/login",
        "repo_url": None,
        "branch_name": "feature/login",
        "module_name": None,
        "scm_user_id": None,
    }

    # the chain: each build linked to the one above it, the root user found seven levels up
    above = (BRANCH_IN_SEI, 1)
    for level in range(1, 8):
        kept = sei.kept(f"chain/jobs/step{level}", 1)
        assert kept["upstream"] == [above]
        assert kept["user_id"] == "alice"
        assert kept_stages(kept) == expected_stages(
            controller.stages_of(f"chain/step{level}", 1), source
        )
        above = (f"chain/jobs/step{level}", 1)

    # the Maven module: its own job row with its module name, linked to its project's build
    module = sei.kept("libs/jobs/core/modules/com.acme$core", 1)
    assert module["job"]["module_name"] == "com.acme$core"
    assert module["job"]["name"] == "core"
    assert module["upstream"] == [("libs/jobs/core", 1)]

    # both manifests, read as the plugin reads them, then the other archived files
    assert branch["artifacts"][:2] == [
        {
            "input": False,
            "output": True,
            "type": "container",
            "location": "registry.example/web:1.4",
            "name": "web",
            "qualifier": "1.4",
            "metadata": {"arch": "amd64", "layers": "7", "signed": "true"},
        },
        {
            "output": True,
            "type": "jar",
            "location": "s3://b/web.jar",
            "name": "web.jar",
            "qualifier": "1.4",
        },
    ]
    assert [a["name"] for a in branch["artifacts"][2:]] == ["dist/web.tar.gz"]
    assert "artifact manifest entry 1 lacks location" in capsys.readouterr().err

    # light on Jenkins: each upstream build read once (the branch build and six chain builds,
    # the Maven project's build, build #1 and #2), both manifests once; one discovery request
    # finds the module
    reads = [parse_qs(query).get("tree", [""])[0] for _, _, query in controller.requests]
    assert reads.count(CAUSE_FIELDS) == 10
    assert controller.count(r"/artifact/(artifact-manifest|sei-artifacts)\.json$") == 2
    assert controller.count(r"^/api/json$") == 1

    # commits: the Pipeline environment's SEI_SCM_COMMIT_IDS before the parameter; nothing
    # else of that environment leaves the controller
    assert branch["scm_commit_ids"] == [SHA_ENV]
    assert not any("env-secret-1234" in json.dumps(p) for p in sei.accepted)


@pytest.mark.parametrize("controller", ["wfapi"], indirect=True)
def test_jenkins_names_and_an_instance_url_override(
    controller: JenkinsSim,
    sei: SeiStandIn,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AGENT_JOB_NAMES", "jenkins")
    monkeypatch.setenv("SEI_INSTANCE_URL", "https://ci.example.org/jenkins")
    assert run_cli(monkeypatch, controller, sei, tmp_path) == 0, capsys.readouterr().err
    assert {key[1] for key in sei.runs} == {
        BRANCH,
        "libs/core",
        MODULE,
        "build",
        "promote",
        "svc",
        *(f"chain/step{level}" for level in range(1, 8)),
    }
    assert sei.instance_urls[GUID] == "https://ci.example.org/jenkins/"
    assert sei.kept("chain/step1", 1)["upstream"] == [(BRANCH, 1)]  # ids follow the scheme
    assert sei.kept("chain/step7", 1)["user_id"] == "alice"
    assert sei.kept(BRANCH, 1)["job"]["qualified_name"] == BRANCH
