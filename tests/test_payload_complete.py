"""Stages and steps, trigger chains, artifacts and commit fallback against the simulator."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import JENKINS_TOKEN, JENKINS_USER, Agent, now_ms
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

from agent.config import Settings
from agent.jenkins.client import JenkinsClient
from agent.jenkins.details import DetailReader
from agent.jenkins.types import BuildDetails, Job

FAILED_RUN = [
    {
        "id": "3",
        "name": "Build",
        "status": "SUCCESS",
        "start": 1000,
        "duration": 500,
        "steps": [
            {
                "id": "4",
                "name": "Shell Script",
                "description": "make",
                "status": "SUCCESS",
                "start": 1001,
                "duration": 400,
            },
        ],
    },
    {
        "id": "5",
        "name": "Test",
        "status": "FAILED",
        "start": 2000,
        "duration": 700,
        "steps": [
            {
                "id": "6",
                "name": "Shell Script",
                "description": "pytest",
                "status": "FAILED",
                "start": 2001,
                "duration": 650,
            },
        ],
    },
    {"id": "7", "name": "Deploy", "status": "NOT_EXECUTED", "start": 0, "duration": 0},
]
PARALLEL_RUN = [
    {"id": "3", "name": "Build", "status": "SUCCESS", "start": 1000, "duration": 500, "steps": []},
    {"id": "6", "name": "Checks", "status": "FAILED", "start": 2000, "duration": 700, "steps": []},
    {
        "id": "7",
        "name": "unit",
        "status": "SUCCESS",
        "start": 2001,
        "duration": 300,
        "parallel_of": "6",
        "steps": [
            {
                "id": "8",
                "name": "sh",
                "description": "pytest",
                "status": "SUCCESS",
                "start": 2002,
                "duration": 50,
            }
        ],
    },
    {
        "id": "9",
        "name": "lint",
        "status": "FAILED",
        "start": 2001,
        "duration": 600,
        "parallel_of": "6",
        "steps": [
            {
                "id": "10",
                "name": "sh",
                "description": "ruff",
                "status": "FAILED",
                "start": 2002,
                "duration": 40,
            },
            {
                "id": "11",
                "name": "echo",
                "description": "done",
                "status": "SUCCESS",
                "start": 2050,
                "duration": 1,
            },
        ],
    },
]


def controller(sei: SeiStandIn, *, wfapi: bool = True, blueocean: bool = True) -> JenkinsSim:
    return JenkinsSim(
        user=JENKINS_USER, token=JENKINS_TOKEN, clock_ms=now_ms(), wfapi=wfapi, blueocean=blueocean
    )


def with_url(settings: Settings, url: str, **jenkins: Any) -> Settings:
    return settings.model_copy(
        update={"jenkins": settings.jenkins.model_copy(update={"url": url, **jenkins})}
    )


def stages_of(payload: dict[str, Any]) -> list[tuple[str, str, str, str, int]]:
    return [
        (s["id"], s["displayName"], s["result"], s["state"], s["durationInMillis"])
        for s in payload["job_run"]["stages"]
    ]


@pytest.mark.parametrize("source", ["blueocean", "wfapi"])
def test_failed_stage_and_not_started_stage(
    settings: Settings, sei: SeiStandIn, source: str
) -> None:
    with controller(sei, blueocean=source == "blueocean") as sim:
        sim.add_job("app", "pipeline")
        sim.add_build("app", result="FAILURE", stages=FAILED_RUN)
        Agent(with_url(settings, sim.url)).run()
    [payload] = sei.accepted
    assert stages_of(payload) == [
        ("3", "Build", "SUCCESS", "FINISHED", 500),
        ("5", "Test", "FAILURE", "FINISHED", 700),
        ("7", "Deploy", "NOT_BUILT", "NOT_BUILT", 0),
    ]
    test = payload["job_run"]["stages"][1]
    assert test["steps"] == [
        {
            "id": "6",
            "displayName": "Shell Script",
            "displayDescription": "pytest",
            "result": "FAILURE",
            "state": "FINISHED",
            "durationInMillis": 650,
            "startTime": "1970-01-01T00:00:02.001+0000",
        }
    ]
    assert test["startTime"] == "1970-01-01T00:00:02.000+0000"
    assert "startTime" not in payload["job_run"]["stages"][2]  # never started


@pytest.mark.parametrize("source", ["blueocean", "wfapi"])
def test_aborted_run_with_stages_that_never_started(
    settings: Settings, sei: SeiStandIn, source: str
) -> None:
    stages = [
        {"id": "3", "name": "Build", "status": "ABORTED", "start": 1000, "duration": 20},
        {"id": "4", "name": "Test", "status": "NOT_EXECUTED", "start": 0, "duration": 0},
        {"id": "5", "name": "Ship", "status": "NOT_EXECUTED", "start": 0, "duration": 0},
    ]
    with controller(sei, blueocean=source == "blueocean") as sim:
        sim.add_job("app", "pipeline")
        sim.add_build("app", result="ABORTED", stages=stages)
        Agent(with_url(settings, sim.url)).run()
    [payload] = sei.accepted
    assert payload["result"] == "ABORTED"
    assert stages_of(payload) == [
        ("3", "Build", "ABORTED", "FINISHED", 20),
        ("4", "Test", "NOT_BUILT", "NOT_BUILT", 0),
        ("5", "Ship", "NOT_BUILT", "NOT_BUILT", 0),
    ]
    assert sei.dropped == []  # no null duration anywhere


@pytest.mark.parametrize("source", ["blueocean", "wfapi"])
def test_parallel_branches_are_stages_of_their_own(
    settings: Settings, sei: SeiStandIn, source: str
) -> None:
    with controller(sei, blueocean=source == "blueocean") as sim:
        sim.add_job("app", "pipeline")
        sim.add_build("app", result="FAILURE", stages=PARALLEL_RUN)
        Agent(with_url(settings, sim.url)).run()
    [payload] = sei.accepted
    names = [(s["id"], s["displayName"]) for s in payload["job_run"]["stages"]]
    assert names == [("3", "Build"), ("6", "Checks"), ("7", "unit"), ("9", "lint")]
    by_name = {s["displayName"]: s for s in payload["job_run"]["stages"]}
    assert [st["displayDescription"] for st in by_name["lint"]["steps"]] == ["ruff", "done"]
    assert [st["displayDescription"] for st in by_name["unit"]["steps"]] == ["pytest"]
    assert by_name["lint"]["result"] == "FAILURE"


def test_controller_without_either_plugin_sends_no_job_run(
    settings: Settings, sei: SeiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    with controller(sei, blueocean=False, wfapi=False) as sim:
        sim.add_job("app", "pipeline")
        sim.add_build("app", stages=FAILED_RUN)
        sim.add_build("app", stages=FAILED_RUN)
        agent = Agent(with_url(settings, sim.url))
        with caplog.at_level("INFO"):
            report = agent.run()
    assert report.sent == 2
    assert all("job_run" not in p for p in sei.accepted)
    assert "stage source: none (no stage plugin)" in caplog.text
    # the plugin list, read once, says there is no stage source: nothing is asked per build
    assert agent.by_kind == {"discover": 1, "builds": 1, "detect": 1}


def test_one_job_without_blue_ocean_degrades_alone(settings: Settings, sei: SeiStandIn) -> None:
    with controller(sei) as sim:
        for name in ("a", "b"):
            sim.add_job(name, "pipeline")
            sim.add_build(name, stages=FAILED_RUN)
        sim.inject_fault(r"^/blue/.*/pipelines/a/runs/", status=404)
        Agent(with_url(settings, sim.url)).run()
        wfapi_calls = sim.count(r"wfapi")
        blue_calls_for_b = sim.count(r"^/blue/.*/pipelines/b/runs/")
    assert all(len(p["job_run"]["stages"]) == 3 for p in sei.accepted)
    assert wfapi_calls == 3  # job a only: run describe + two stages with steps
    assert blue_calls_for_b == 3  # job b: nodes + steps of the two stages that ran


def test_steps_switched_off(settings: Settings, sei: SeiStandIn) -> None:
    with controller(sei, blueocean=False) as sim:
        sim.add_job("app", "pipeline")
        sim.add_build("app", stages=FAILED_RUN)
        agent = Agent(with_url(settings, sim.url, steps=False))
        agent.run()
    [payload] = sei.accepted
    assert [len(s["steps"]) for s in payload["job_run"]["stages"]] == [0, 0, 0]
    assert "steps" not in agent.by_kind


class MeetingClient:
    """Holds each run-level stage read until the other run's has started: serial reads fail."""

    def __init__(self, client: JenkinsClient) -> None:
        self.client = client
        self.both_reading = threading.Barrier(2, timeout=10)

    def get_json(self, path: str, tree: str | None = None, *, kind: str, shape: type = dict) -> Any:
        if kind == "stages":
            self.both_reading.wait()
        return self.client.get_json(path, tree, kind=kind, shape=shape)


def test_runs_waiting_for_the_source_detection_then_read_stages_side_by_side(
    settings: Settings, sei: SeiStandIn
) -> None:
    """Only one run detects the controller's stage source; the runs that queued behind it
    must not go on reading one at a time once the source is known."""
    with controller(sei, blueocean=False) as sim:
        sim.add_job("app", "pipeline")
        for _ in range(2):
            sim.add_build("app", stages=FAILED_RUN)
        client = JenkinsClient(with_url(settings, sim.url).jenkins)
        meeting = MeetingClient(client)
        reader = DetailReader(meeting, steps=True, upstream_depth=0)  # type: ignore[arg-type]
        job = Job(("app",), cls="org.jenkinsci.plugins.workflow.job.WorkflowJob")
        read: dict[int, BuildDetails] = {}
        with reader.stages._probing:  # a detection is under way: both runs queue behind it
            runs = [
                threading.Thread(
                    target=lambda n=n: read.update({n: reader.read(job, {"number": n})})
                )
                for n in (1, 2)
            ]
            for run in runs:
                run.start()
        for run in runs:
            run.join(timeout=20)
        client.close()
    assert not meeting.both_reading.broken
    assert sorted(read) == [1, 2]
    assert all(details.stages and len(details.stages) == 3 for details in read.values())
    assert sim.count(r"pluginManager") == 1


def test_freestyle_has_no_job_run_and_costs_no_stage_request(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("fs")
    jenkins.add_build("fs")
    agent.run()
    assert "job_run" not in sei.accepted[0]
    assert set(agent.by_kind) == {"discover", "builds"}


def upstream(project: str, number: int) -> dict[str, Any]:
    return {
        "_class": "hudson.model.Cause$UpstreamCause",
        "shortDescription": f'Started by upstream project "{project}" build number {number}',
        "upstreamBuild": number,
        "upstreamProject": project,
        "upstreamUrl": "job/" + "/job/".join(project.split("/")) + "/",
    }


def test_two_level_upstream_chain_with_direct_parents(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    for name in ("build", "team/deploy", "smoke"):
        jenkins.add_job(name)
    jenkins.add_build("build")  # started by admin (the simulator's default cause)
    jenkins.add_build("team/deploy", causes=[upstream("build", 1)])
    for _ in range(5):  # a fan-out: five downstream builds of the same upstream
        jenkins.add_build("smoke", causes=[upstream("team/deploy", 1)])
    agent.run()
    smoke = [p for p in sei.accepted if p["job_full_name"] == "smoke"]
    assert len(smoke) == 5
    assert smoke[0]["trigger_chain"] == [
        {
            "id": "team/jobs/deploy",
            "type": "UpstreamCause",
            "job_run_number": "1",
            "direct_parents": [
                {
                    "id": "build",
                    "type": "UpstreamCause",
                    "job_run_number": "1",
                    "direct_parents": [{"id": "admin", "type": "UserIdCause"}],
                }
            ],
        }
    ]
    assert smoke[0]["user_id"] == "admin"  # the user at the root of the chain
    ids = {p["job_full_name"] for p in sei.accepted}
    assert "team/jobs/deploy" in ids  # the id each chain names is that job's job_full_name
    # team/deploy#1 and build#1 are read once each, for 5 smoke builds and team/deploy#1 itself
    assert agent.by_kind["upstream"] == 2


def test_scm_started_chain_and_deleted_upstream(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    scm = {
        "_class": "hudson.triggers.SCMTrigger$SCMTriggerCause",
        "shortDescription": "Started by an SCM change",
    }
    jenkins.add_job("build")
    jenkins.add_job("deploy")
    jenkins.add_build("build", causes=[scm])
    jenkins.add_build("deploy", causes=[upstream("build", 1)])
    jenkins.add_build("deploy", causes=[upstream("gone", 9)])
    agent.run()
    deploys = sorted(
        (p for p in sei.accepted if p["job_full_name"] == "deploy"), key=lambda p: p["build_number"]
    )
    assert deploys[0]["user_id"] == "SCMTrigger"
    assert deploys[1]["trigger_chain"] == [
        {"id": "gone", "type": "UpstreamCause", "job_run_number": "9"}
    ]
    assert deploys[1]["user_id"] == "SYSTEM"


MANIFESTS = {
    "list": {
        "artifacts": [
            {
                "type": "container",
                "location": "registry/app:1.2",
                "name": "app",
                "qualifier": "1.2",
                "hash": "sha256:abc",
                "metadata": {"arch": "amd64", "size": 12},
            },
            {"type": "container", "location": "registry/bad", "name": "bad"},  # no qualifier
        ]
    },
    "single-key": {
        "artifact": {
            "type": "jar",
            "location": "s3://b/app.jar",
            "name": "app.jar",
            "qualifier": "7",
            "input": True,
            "output": False,
        }
    },
    "bare": {"type": "container", "location": "registry/app:9", "name": "app", "qualifier": "9"},
}


@pytest.mark.parametrize("shape", MANIFESTS)
def test_artifact_manifest_in_each_shape(
    agent: Agent,
    jenkins: JenkinsSim,
    sei: SeiStandIn,
    shape: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    jenkins.add_job("pkg")
    jenkins.add_build("pkg", artifacts=["sei-artifacts.json", "dist/app.tar.gz", "README"])
    jenkins.artifact_content[("pkg", 1, "sei-artifacts.json")] = json.dumps(
        MANIFESTS[shape]
    ).encode()
    with caplog.at_level("WARNING"):
        agent.run()
    [payload] = sei.accepted
    declared = [a for a in payload["artifacts"] if not a["location"].startswith(jenkins.url)]
    archived = [a for a in payload["artifacts"] if a["location"].startswith(jenkins.url)]
    if shape == "list":
        assert declared == [
            {
                "type": "container",
                "location": "registry/app:1.2",
                "name": "app",
                "qualifier": "1.2",
                "hash": "sha256:abc",
                "metadata": {"arch": "amd64", "size": "12"},
            }
        ]
        assert "pkg #1: artifact manifest entry 1 lacks qualifier" in caplog.text
    elif shape == "single-key":
        assert declared == [
            {
                "input": True,
                "output": False,
                "type": "jar",
                "location": "s3://b/app.jar",
                "name": "app.jar",
                "qualifier": "7",
            }
        ]
    else:
        assert [a["location"] for a in declared] == ["registry/app:9"]
    assert archived == [
        {
            "input": False,
            "output": True,
            "type": "tar.gz",
            "name": "dist/app.tar.gz",
            "qualifier": "pkg#1",
            "location": jenkins.url + "job/pkg/1/artifact/dist/app.tar.gz",
        },
        {
            "input": False,
            "output": True,
            "type": "file",
            "name": "README",
            "qualifier": "pkg#1",
            "location": jenkins.url + "job/pkg/1/artifact/README",
        },
    ]


def test_archived_artifacts_are_capped(
    jenkins: JenkinsSim, sei: SeiStandIn, settings: Settings
) -> None:
    jenkins.add_job("many")
    jenkins.add_build("many", artifacts=[f"f{i}.bin" for i in range(30)])
    capped = settings.model_copy(
        update={"agent": settings.agent.model_copy(update={"max_artifacts": 5})}
    )
    Agent(capped).run()
    assert [a["name"] for a in sei.accepted[0]["artifacts"]] == [f"f{i}.bin" for i in range(5)]


def test_push_artifacts_endpoint_when_switched_on(
    jenkins: JenkinsSim, sei: SeiStandIn, settings: Settings
) -> None:
    jenkins.add_job("pkg")
    jenkins.add_build("pkg", artifacts=["app.jar"], duration=5000)
    jenkins.add_build("pkg")  # no artifacts: nothing to push
    on = settings.model_copy(
        update={
            "sei": settings.sei.model_copy(
                update={"push_artifacts": True, "integration_id": "4711"}
            )
        }
    )
    sei.fail_next(1, status=503, path="/v1/cicd/push_artifacts")
    assert Agent(on).run().exit_code == 0
    [push] = sei.artifact_pushes
    first = jenkins.build("pkg", 1)
    assert push == {
        "integration_id": "4711",
        "repository": "pkg",
        "job_name": "pkg",
        "job_run_number": "1",
        "artifacts": [
            {
                "name": "app.jar",
                "location": jenkins.url + "job/pkg/1/artifact/app.jar",
                "tag": "pkg#1",
                "digest": "",
                "type": "jar",
                "artifact_created_at": first["timestamp"] + 5000,
            }
        ],
    }


def test_push_artifacts_failing_keeps_the_build_unsent(
    jenkins: JenkinsSim, sei: SeiStandIn, settings: Settings
) -> None:
    jenkins.add_job("pkg")
    jenkins.add_build("pkg", artifacts=["app.jar"])
    on = settings.model_copy(
        update={
            "sei": settings.sei.model_copy(
                update={"push_artifacts": True, "integration_id": "4711"}
            )
        }
    )
    sei.fail_next(2, status=503, path="/v1/cicd/push_artifacts")  # outlasts the retry
    assert Agent(on).run().exit_code == 1
    assert Agent(on).run().exit_code == 0  # sent again, push included
    assert len(sei.artifact_pushes) == 1
    assert len(sei.posts_for("pkg", 1)) == 2  # first write wins on SEI: the resend is harmless


SHA_A, SHA_B = "a" * 40, "b" * 40


def test_commit_fallback_parameter(agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn) -> None:
    jenkins.add_job("deploy")
    param = {
        "_class": "hudson.model.StringParameterValue",
        "name": "SEI_SCM_COMMIT_IDS",
        "value": f"{SHA_A}, {SHA_B.upper()};{SHA_A} not-a-sha",
    }
    jenkins.add_build("deploy", parameters=[param])
    jenkins.add_build("deploy", parameters=[param], changeset=["c" * 40])
    agent.run()
    by_number = {p["build_number"]: p for p in sei.accepted}
    assert by_number[1]["scm_commit_ids"] == [SHA_A, SHA_B]
    # merged with the changelog's, after it, as the plugin does from 1.0.43
    assert by_number[2]["scm_commit_ids"] == ["c" * 40, SHA_A, SHA_B]


def test_rules_set_cfr_status_themes_and_project(
    jenkins: JenkinsSim, sei: SeiStandIn, settings: Settings, tmp_path: Path
) -> None:
    from agent.config import Rule

    rules = [
        Rule(jobs=["*/deploy-*"], results=["FAILURE"], cfr_status=True),
        Rule(jobs=["*/deploy-*"], cfr_status=False, themes=["deployments"]),
        Rule(jobs=["payments/*"], project_name="{top_folder}"),
    ]
    tuned = settings.model_copy(
        update={"agent": settings.agent.model_copy(update={"rules": rules})}
    )
    jenkins.add_job("payments/deploy-prod")
    jenkins.add_build("payments/deploy-prod", result="FAILURE")
    jenkins.add_build("payments/deploy-prod")
    jenkins.add_job("other")
    jenkins.add_build("other")
    Agent(tuned).run()
    got = {(p["job_full_name"], p["build_number"]): p for p in sei.accepted}
    failed, ok = got[("payments/jobs/deploy-prod", 1)], got[("payments/jobs/deploy-prod", 2)]
    assert (failed["cfr_status"], failed["themes"], failed["project_name"]) == (
        True,
        ["deployments"],
        "payments",
    )
    assert (ok["cfr_status"], ok["themes"]) == (False, ["deployments"])
    assert not {"cfr_status", "themes", "project_name"} & set(got[("other", 1)])
