"""The mapping, field by field, against builds recorded from real controllers (tests/fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.discover import Job
from agent.mapping import MapContext, Unmappable, execution_id, map_build

FIXTURES = Path(__file__).parent / "fixtures" / "jenkins"
GUID = "666ba79b-3f3d-4236-ac04-4686ce526705"
BASE = "https://jenkins.example.com/ci/"
CTX = MapContext(instance_guid=GUID, instance_name="jenkins-1", instance_url=BASE)
MULTIBRANCH = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
FOLDER = "com.cloudbees.hudson.plugins.folder.Folder"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def devlake_row(name: str, row_id: str) -> dict[str, Any]:
    rows = load(f"devlake/{name}.csv.extracted.json")
    return next(r for r in rows if r["id"] == row_id)


DEVLAKE_FOLDERS = ("Test-jenkins-dir", "test-jenkins-sub-dir", "test-sub-sub-dir", "devlake")


def test_freestyle_three_folders_deep() -> None:
    build = devlake_row("_raw_jenkins_api_builds", "93")["data"]
    job = Job(names=DEVLAKE_FOLDERS, cls="hudson.model.FreeStyleProject", parent_cls=FOLDER)
    payload = map_build(build, job, CTX).to_json()
    full_name = "Test-jenkins-dir/test-jenkins-sub-dir/test-sub-sub-dir/devlake"
    assert payload == {
        "pipeline": "devlake",
        "job_full_name": full_name,
        "qualified_name": full_name,
        "instance_guid": GUID,
        "instance_name": "jenkins-1",
        "instance_url": BASE,
        "start_time": 1650024049161,
        "duration": 1587,
        "result": "SUCCESS",
        "build_number": 31,
        "execution_id": execution_id(GUID, full_name, 31, 1650024049161),
        "web_url": BASE
        + "job/Test-jenkins-dir/job/test-jenkins-sub-dir/job/test-sub-sub-dir/job/devlake/31/",
        "user_id": "merico",
        "trigger_chain": [{"id": "merico", "type": "UserIdCause"}],
        "job_run_params": [],
        "scm_commit_ids": ["0f886c74949c3ee7e489188911c7dc0c1d547418"],
        "repo_url": "https://github.com/merico-dev/lake.git",
        "branch_name": "main",
        "ci": True,
        "cd": False,
    }


def test_multibranch_branch_job_uses_project_as_pipeline() -> None:
    row = devlake_row("_raw_jenkins_api_builds_multibranch", "1")
    assert row["input"]["FullName"] == "github_org/devlake-jenkins/main"
    job = Job(names=("github_org", "devlake-jenkins", "main"), parent_cls=MULTIBRANCH)
    payload = map_build(row["data"], job, CTX).to_json()
    assert payload["pipeline"] == "devlake-jenkins"
    assert (
        payload["job_full_name"] == payload["qualified_name"] == "github_org/devlake-jenkins/main"
    )
    assert payload["branch_name"] == "main"
    assert payload["repo_url"] == "git@github.com:gustavobini/devlake-jenkins.git"
    assert payload["scm_commit_ids"] == ["c83ae02076382670e286ac2474b7a7327fc28cde"]
    assert payload["trigger_chain"] == [{"id": "BranchEvent", "type": "BranchEventCause"}]
    assert payload["user_id"] == "SCMTrigger"  # a push event started it
    assert (payload["build_number"], payload["start_time"], payload["duration"]) == (
        4,
        1711277551963,
        30415,
    )
    assert payload["web_url"] == BASE + "job/github_org/job/devlake-jenkins/job/main/4/"


@pytest.mark.parametrize(
    ("row_id", "result"),
    [
        (r["id"], r["data"]["result"])
        for r in load("devlake/_raw_jenkins_api_builds_multibranch.csv.extracted.json")
    ],
)
def test_every_recorded_multibranch_build_keeps_its_result(row_id: str, result: str) -> None:
    row = devlake_row("_raw_jenkins_api_builds_multibranch", row_id)
    names = tuple(row["input"]["FullName"].split("/"))
    payload = map_build(row["data"], Job(names=names, parent_cls=MULTIBRANCH), CTX).to_json()
    assert payload["result"] == result
    assert payload["branch_name"] == names[-1]
    assert payload["build_number"] == row["data"]["number"]
    has_git = any("lastBuiltRevision" in a for a in row["data"]["actions"])
    assert ("repo_url" in payload) == has_git
    assert len(payload["scm_commit_ids"]) == (1 if has_git else 0)


def test_branch_indexing_is_system() -> None:
    rows = load("devlake/_raw_jenkins_api_builds_multibranch.csv.extracted.json")
    row = next(
        r
        for r in rows
        if any(
            c.get("_class", "").endswith("BranchIndexingCause")
            for a in r["data"]["actions"]
            for c in a.get("causes", [])
        )
    )
    names = tuple(row["input"]["FullName"].split("/"))
    payload = map_build(row["data"], Job(names=names, parent_cls=MULTIBRANCH), CTX).to_json()
    assert {"id": "BranchIndexing", "type": "BranchIndexingCause"} in payload["trigger_chain"]
    assert payload["user_id"] == "SYSTEM"


def test_encoded_branch_name_is_decoded_only_in_branch_name() -> None:
    row = devlake_row("_raw_jenkins_api_builds_multibranch", "1")
    build = json.loads(json.dumps(row["data"]))
    for action in build["actions"]:
        if "lastBuiltRevision" in action:
            action["lastBuiltRevision"]["branch"][0]["name"] = "feature/login"
    job = Job(names=("web", "feature%2Flogin"), parent_cls=MULTIBRANCH)
    payload = map_build(build, job, CTX).to_json()
    assert payload["job_full_name"] == "web/feature%2Flogin"
    assert payload["branch_name"] == "feature/login"
    assert payload["pipeline"] == "web"
    assert payload["web_url"] == BASE + "job/web/job/feature%252Flogin/4/"


@pytest.mark.parametrize("row_id", ["10002", "10003", "10005"])
def test_synthetic_result_variants(row_id: str) -> None:
    build = devlake_row("_raw_jenkins_api_builds", row_id)["data"]
    if build.get("building"):
        with pytest.raises(Unmappable):
            map_build(build, Job(names=DEVLAKE_FOLDERS), CTX)
        return
    payload = map_build(build, Job(names=DEVLAKE_FOLDERS), CTX).to_json()
    assert payload["result"] == build["result"]


def test_running_build_is_not_mapped() -> None:
    build = devlake_row("_raw_jenkins_api_builds", "10001")["data"]
    assert build["building"] is True
    with pytest.raises(Unmappable):
        map_build(build, Job(names=DEVLAKE_FOLDERS), CTX)
    with pytest.raises(Unmappable):
        map_build({**build, "building": False, "result": None}, Job(names=DEVLAKE_FOLDERS), CTX)


def test_classless_old_jenkins_parameters_and_anonymous_user() -> None:
    build = load("jenkins-rest/build-info.json")
    assert "_class" not in build["actions"][0]
    payload = map_build(build, Job(names=("fish",)), CTX).to_json()
    assert payload["job_run_params"] == [
        {"type": "BooleanParameterValue", "name": "bear", "value": "true"},
        {"type": "StringParameterValue", "name": "fish", "value": "salmon"},
    ]
    assert payload["trigger_chain"] == [{"id": "anonymous", "type": "UserIdCause"}]
    assert payload["user_id"] == "anonymous"
    assert payload["web_url"] == BASE + "job/fish/10/"  # not the recorded localhost:32769 URL
    assert payload["scm_commit_ids"] == []
    assert "repo_url" not in payload and "branch_name" not in payload


def test_pipeline_changesets_give_commits() -> None:
    build = load("jenkins-rest/build-info-git-commit.json")
    payload = map_build(build, Job(names=("fish",)), CTX).to_json()
    assert payload["scm_commit_ids"] == ["d27afa0805201322d846d7defc29b82c88d9b5ce"]


def test_subversion_revisions_and_duplicate_changesets() -> None:
    full = map_build(load("hygieia/buildDetails_full.json"), Job(names=("lucene",)), CTX)
    assert full.scm_commit_ids[:2] == ["1651902", "1651896"]
    assert len(full.scm_commit_ids) == len(set(full.scm_commit_ids))
    dup = load("hygieia/buildDetails_pipeline-duplicate_changeSets.json")
    ids = map_build(dup, Job(names=("lucene",)), CTX).scm_commit_ids
    recorded = [i["commitId"] for cs in dup["changeSets"] for i in cs["items"]]
    assert len(recorded) > len(set(recorded))  # the recording really has duplicates
    assert ids == list(dict.fromkeys(recorded))


def test_several_build_data_prefers_project_not_library() -> None:
    build = load("hygieia/buildDetails_withMultipleSCM.json")
    plain = map_build(build, Job(names=("Hygieia-Common",)), CTX)
    assert plain.repo_url == "https://github.com/myrepo/Hygieia.git"
    assert plain.branch_name == "master"
    assert plain.scm_commit_ids == ["f6617799ff337984df0b80156995ddb87f60c0af"]
    # Declaring the first repository a shared library moves everything to the other checkout.
    ctx = MapContext(GUID, "jenkins-1", BASE, library_repos=("*/Hygieia.git",))
    lib = map_build(build, Job(names=("Hygieia-Common",)), ctx)
    assert lib.repo_url == "https://github.com/myrepo/Hygieia222.git"
    assert lib.branch_name == "test"
    assert lib.scm_commit_ids == ["385bbf9dd7bc367b9980f58a6c4489ba95cbb9a9"]


def test_library_checkout_first_is_not_taken_for_a_job_named_like_its_repo() -> None:
    build = load("hygieia/buildDetails_withMultipleSCM.json")
    payload = map_build(build, Job(names=("Hygieia222",)), CTX)
    assert payload.repo_url == "https://github.com/myrepo/Hygieia222.git"
    assert payload.scm_commit_ids == ["385bbf9dd7bc367b9980f58a6c4489ba95cbb9a9"]


def test_branch_job_picks_its_own_branch_checkout() -> None:
    build = load("hygieia/buildDetails_withMultipleSCM.json")
    job = Job(names=("Hygieia", "test"), parent_cls=MULTIBRANCH)
    payload = map_build(build, job, CTX)
    assert payload.repo_url == "https://github.com/myrepo/Hygieia222.git"
    assert payload.scm_commit_ids == ["385bbf9dd7bc367b9980f58a6c4489ba95cbb9a9"]


def test_branch_of_the_built_revision_among_several() -> None:
    build = load("hygieia/buildDetails_withRepo-multipleBranches.json")
    payload = map_build(build, Job(names=("Hygieia-Common",)), CTX)
    assert payload.branch_name == "master"
    assert payload.result == "FAILURE"


def test_unexpanded_remote_url_is_not_sent() -> None:
    build = {
        "number": 3,
        "timestamp": 1_700_000_000_000,
        "duration": 5,
        "result": "SUCCESS",
        "actions": [{"lastBuiltRevision": {"SHA1": "a" * 40}, "remoteUrls": ["$REPO_URL"]}],
    }
    payload = map_build(build, Job(names=("x",)), CTX).to_json()
    assert "repo_url" not in payload
    assert payload["scm_commit_ids"] == ["a" * 40]


def test_secret_and_null_parameters_never_leave() -> None:
    build = {
        "number": 1,
        "timestamp": 1_700_000_000_000,
        "duration": 1,
        "result": "SUCCESS",
        "actions": [
            {
                "_class": "hudson.model.ParametersAction",
                "parameters": [
                    {"_class": "hudson.model.PasswordParameterValue", "name": "PW"},
                    {"_class": "hudson.model.PasswordParameterValue", "name": "PW2", "value": "x"},
                    {
                        "_class": "com.cloudbees.plugins.credentials.CredentialsParameterValue",
                        "name": "CRED",
                        "value": "cred-id",
                    },
                    {"_class": "hudson.model.FileParameterValue", "name": "F", "value": "a.txt"},
                    {"_class": "hudson.model.StringParameterValue", "name": "NULL", "value": None},
                    {"name": "OLD_PASSWORD"},  # Jenkins 1.x hides a password's value
                    {"_class": "hudson.model.TextParameterValue", "name": "T", "value": "a\nb"},
                    {"_class": "hudson.model.StringParameterValue", "name": "N", "value": 3},
                ],
            }
        ],
    }
    payload = map_build(build, Job(names=("x",)), CTX).to_json()
    assert payload["job_run_params"] == [
        {"type": "TextParameterValue", "name": "T", "value": "a\nb"},
        {"type": "StringParameterValue", "name": "N", "value": "3"},
    ]
    assert "cred-id" not in json.dumps(payload)


def test_causes_of_every_kind() -> None:
    causes = [
        {
            "_class": "hudson.model.Cause$UpstreamCause",
            "shortDescription": 'Started by upstream project "build" build number 51',
            "upstreamBuild": 51,
            "upstreamProject": "team/build",
            "upstreamUrl": "job/team/job/build/",
        },
        {
            "_class": "hudson.triggers.SCMTrigger$SCMTriggerCause",
            "shortDescription": "Started by an SCM change",
        },
        {
            "_class": "hudson.triggers.TimerTrigger$TimerTriggerCause",
            "shortDescription": "Started by timer",
        },
        {
            "_class": "hudson.model.Cause$RemoteCause",
            "shortDescription": "Started by remote host 1.2.3.4",
        },
        {
            "_class": "org.jenkinsci.plugins.workflow.cps.replay.ReplayCause",
            "shortDescription": "Replayed #4",
        },
        {"shortDescription": "Started by timer"},  # Jenkins 1.x, no _class
    ]
    build = {
        "number": 2,
        "timestamp": 1,
        "duration": 1,
        "result": "SUCCESS",
        "actions": [{}, {"causes": causes}],
    }
    payload = map_build(build, Job(names=("deploy",)), CTX).to_json()
    assert payload["trigger_chain"] == [
        {"id": "team/build", "type": "UpstreamCause", "job_run_number": "51"},
        {"id": "SCMTrigger", "type": "SCMTriggerCause"},
        {"id": "TimerTrigger", "type": "TimerTriggerCause"},
        {"id": "RemoteTrigger", "type": "RemoteCause"},
        {"id": "Replay", "type": "ReplayCause"},
    ]
    assert payload["user_id"] == "SCMTrigger"


def test_cd_jobs_and_project_name() -> None:
    ctx = MapContext(GUID, "jenkins-1", BASE, cd_jobs=("*/deploy-*",), project_name="{top_folder}")
    build = {"number": 1, "timestamp": 1, "duration": 1, "result": "SUCCESS", "actions": []}
    deploy = map_build(build, Job(names=("payments", "deploy-prod")), ctx).to_json()
    assert (deploy["ci"], deploy["cd"], deploy["project_name"]) == (False, True, "payments")
    other = map_build(build, Job(names=("payments", "unit")), ctx).to_json()
    assert (other["ci"], other["cd"]) == (True, False)
    top = map_build(build, Job(names=("solo",)), ctx).to_json()
    assert "project_name" not in top  # no folder, no project
    fixed = MapContext(GUID, "jenkins-1", BASE, project_name="Platform")
    assert map_build(build, Job(names=("solo",)), fixed).project_name == "Platform"


def test_execution_id_is_stable_and_changes_with_a_restarted_number() -> None:
    first = execution_id(GUID, "a/b", 7, 1000)
    assert first == execution_id(GUID, "a/b", 7, 1000)
    assert first != execution_id(GUID, "a/b", 7, 2000)
    assert first != execution_id(GUID, "a/b", 8, 1000)


def test_interruption_causes_are_not_triggers() -> None:
    rows = load("devlake/_raw_jenkins_api_builds_multibranch.csv.extracted.json")
    row = next(
        r
        for r in rows
        if any(
            a.get("_class") == "jenkins.model.InterruptedBuildAction" for a in r["data"]["actions"]
        )
    )
    names = tuple(row["input"]["FullName"].split("/"))
    payload = map_build(row["data"], Job(names=names, parent_cls=MULTIBRANCH), CTX).to_json()
    assert payload["result"] == "ABORTED"
    assert [t["type"] for t in payload["trigger_chain"]] == ["BranchEventCause"]
    old = {
        "number": 1,
        "timestamp": 1,
        "duration": 1,
        "result": "ABORTED",
        "actions": [
            {"causes": [{"shortDescription": "Started by user bob", "userId": "bob"}]},
            {"causes": [{"shortDescription": "Aborted by alice"}]},
        ],
    }
    assert map_build(old, Job(names=("x",)), CTX).trigger_chain[0].id == "bob"
    assert len(map_build(old, Job(names=("x",)), CTX).trigger_chain) == 1
