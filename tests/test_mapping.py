"""The mapping, field by field, against builds recorded from real controllers (tests/fixtures)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.jenkins.namemangler import mangle
from agent.jenkins.names import JobNaming
from agent.jenkins.stages.graphview import GraphView, GraphViewAnswers
from agent.jenkins.stages.wfapi import Wfapi, WfapiAnswers
from agent.jenkins.types import BuildDetails, Job
from agent.mapping import (
    MapContext,
    Unmappable,
    causes,
    execution_id,
    map_build,
    map_job_run,
    parse_manifests,
)

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
    job = Job(names=DEVLAKE_FOLDERS, cls="hudson.model.FreeStyleProject", containers=(FOLDER,))
    payload = map_build(build, job, CTX).to_json()
    full_name = "Test-jenkins-dir/test-jenkins-sub-dir/test-sub-sub-dir/devlake"
    on_disk = "Test-jenkins-dir/jobs/test-jenkins-sub-dir/jobs/test-sub-sub-dir/jobs/devlake"
    assert payload == {
        "pipeline": "devlake",
        "job_full_name": on_disk,  # the official plugin's name: its directory under jobs/
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
    job = Job(names=("github_org", "devlake-jenkins", "main"), containers=(MULTIBRANCH,))
    payload = map_build(row["data"], job, CTX).to_json()
    assert payload["pipeline"] == "devlake-jenkins"
    assert payload["job_full_name"] == "github_org/jobs/devlake-jenkins/branches/main"
    assert payload["qualified_name"] == "github_org/devlake-jenkins/main"
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
    payload = map_build(row["data"], Job(names=names, containers=(MULTIBRANCH,)), CTX).to_json()
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
    payload = map_build(row["data"], Job(names=names, containers=(MULTIBRANCH,)), CTX).to_json()
    assert {"id": "BranchIndexing", "type": "BranchIndexingCause"} in payload["trigger_chain"]
    assert payload["user_id"] == "SYSTEM"


def test_a_branch_job_in_each_naming_scheme() -> None:
    row = devlake_row("_raw_jenkins_api_builds_multibranch", "1")
    build = json.loads(json.dumps(row["data"]))
    for action in build["actions"]:
        if "lastBuiltRevision" in action:
            action["lastBuiltRevision"]["branch"][0]["name"] = "feature/login"
    job = Job(names=("web", "feature%2Flogin"), containers=(MULTIBRANCH,))
    # plugin 1.0.46 on: the item name, the one form a `job/<segment>` link resolves in Jenkins
    payload = map_build(build, job, CTX).to_json()
    assert payload["job_full_name"] == "web/branches/feature%2Flogin"
    assert payload["qualified_name"] == "web/feature/login"
    assert payload["branch_name"] == "feature/login"
    assert payload["pipeline"] == "web"
    assert payload["web_url"] == BASE + "job/web/job/feature%252Flogin/4/"
    # up to 1.0.42: the branch's directory, NameMangler's form (vector from NameManglerTest)
    legacy = map_build(build, job, replace(CTX, naming=JobNaming("plugin-legacy"))).to_json()
    assert legacy["job_full_name"] == "web/branches/feature-login.lgkpmn"
    assert legacy["qualified_name"] == "web/feature-login.lgkpmn"
    assert legacy["branch_name"] == "feature/login"
    jenkins = map_build(build, job, replace(CTX, naming=JobNaming("jenkins"))).to_json()
    assert jenkins["job_full_name"] == jenkins["qualified_name"] == "web/feature%2Flogin"
    assert jenkins["branch_name"] == "feature/login"


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
    job = Job(names=("Hygieia", "test"), containers=(MULTIBRANCH,))
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
        {"id": "team/jobs/build", "type": "UpstreamCause", "job_run_number": "51"},
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
    payload = map_build(row["data"], Job(names=names, containers=(MULTIBRANCH,)), CTX).to_json()
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


def finished(causes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "number": 9,
        "timestamp": 1,
        "duration": 1,
        "result": "SUCCESS",
        "actions": [{}, {"causes": causes}],
        **extra,
    }


BUILD_STEP_CAUSE = {
    "_class": "org.jenkinsci.plugins.workflow.support.steps.build.BuildUpstreamCause",
    "shortDescription": 'Started by upstream project "platform/web/main" build number 12',
    "upstreamBuild": 12,
    "upstreamProject": "platform/web/main",
    "upstreamUrl": "job/platform/job/web/job/main/",
}


def test_every_cause_naming_an_upstream_build_is_an_upstream_cause() -> None:
    rebuild = {
        "_class": "com.sonyericsson.rebuild.RebuildCause",
        "upstreamBuild": 3,
        "upstreamProject": "tools",
        "upstreamUrl": "job/tools/",
    }
    naming = JobNaming.of(
        "plugin",
        [(("platform", "web", "main"), (None, FOLDER, MULTIBRANCH)), (("tools",), (None,))],
    )
    upstream = {
        ("platform/web/main", 12): [{"causes": [{"userId": "ann", "userName": "Ann"}]}],
    }
    payload = map_build(
        finished([BUILD_STEP_CAUSE, rebuild]),
        Job(names=("deploy",)),
        replace(CTX, naming=naming),
        BuildDetails(upstream=upstream),
    ).to_json()
    assert payload["trigger_chain"] == [
        {
            "id": "platform/jobs/web/branches/main",
            "type": "UpstreamCause",
            "job_run_number": "12",
            "direct_parents": [{"id": "ann", "type": "UserIdCause"}],
        },
        {"id": "tools", "type": "UpstreamCause", "job_run_number": "3"},
    ]
    assert payload["user_id"] == "ann"
    jenkins = map_build(
        finished([BUILD_STEP_CAUSE]),
        Job(names=("deploy",)),
        replace(CTX, naming=replace(naming, scheme="jenkins")),
    )
    assert jenkins.trigger_chain[0].id == "platform/web/main"


def test_an_upstream_job_outside_discovery_is_named_as_if_in_folders() -> None:
    payload = map_build(finished([BUILD_STEP_CAUSE]), Job(names=("deploy",)), CTX)
    assert payload.trigger_chain[0].id == "platform/jobs/web/jobs/main"


def test_root_user_of_a_chain_thirty_builds_deep_and_a_cycle() -> None:
    def cause(level: int) -> dict[str, Any]:
        return {"upstreamProject": f"job{level}", "upstreamBuild": level}

    upstream: dict[tuple[str, int], list[dict[str, Any]]] = {
        (f"job{level}", level): [{"causes": [cause(level + 1)]}] for level in range(1, 30)
    }
    upstream[("job30", 30)] = [{"causes": [{"userId": "root-user"}]}]
    payload = map_build(
        finished([cause(1)]), Job(names=("deploy",)), CTX, BuildDetails(upstream=upstream)
    )
    assert payload.user_id == "root-user"
    depth, trigger = 0, payload.trigger_chain[0]
    while trigger.direct_parents:
        depth, trigger = depth + 1, trigger.direct_parents[0]
    assert (depth, trigger.id) == (30, "root-user")

    # a -> b -> a: each build is expanded once on a path, so the chain ends
    cycle = {
        ("a", 1): [{"causes": [{"upstreamProject": "b", "upstreamBuild": 2}]}],
        ("b", 2): [{"causes": [{"upstreamProject": "a", "upstreamBuild": 1}]}],
    }
    looped = map_build(
        finished([{"upstreamProject": "a", "upstreamBuild": 1}]),
        Job(names=("deploy",)),
        CTX,
        BuildDetails(upstream=cycle),
    ).to_json()
    assert looped["trigger_chain"] == [
        {
            "id": "a",
            "type": "UpstreamCause",
            "job_run_number": "1",
            "direct_parents": [
                # `a` again above `b` is dropped: SEI would keep that deeper row for `a`
                {"id": "b", "type": "UpstreamCause", "job_run_number": "2"}
            ],
        }
    ]
    assert looped["user_id"] == "SYSTEM"


def test_a_job_twice_in_one_chain_is_sent_where_it_is_the_direct_parent() -> None:
    """promote #1 <- build #13, a Rebuild of build #12 that alice started. SEI keeps one trigger
    row per (run, id, type), deepest first: sent whole, promote #1 would show build #12 as its
    parent. The deeper `build` is dropped; the root user is still found through it."""
    rebuild = {"_class": "com.sonyericsson.rebuild.RebuildCause"}
    upstream: dict[tuple[str, int], list[dict[str, Any]]] = {
        ("build", 13): [
            {"causes": [{**rebuild, "upstreamProject": "build", "upstreamBuild": 12}]},
            {"causes": [{"userId": "bob"}]},
        ],
        ("build", 12): [
            {"causes": [{"userId": "alice"}, {"upstreamProject": "ci", "upstreamBuild": 4}]}
        ],
        ("ci", 4): [{"causes": [{"userId": "bob"}]}],
    }
    payload = map_build(
        finished([{"upstreamProject": "build", "upstreamBuild": 13}]),
        Job(names=("promote",)),
        CTX,
        BuildDetails(upstream=upstream),
    ).to_json()
    assert payload["trigger_chain"] == [
        {
            "id": "build",
            "type": "UpstreamCause",
            "job_run_number": "13",
            "direct_parents": [{"id": "bob", "type": "UserIdCause"}],
        }
    ]
    assert payload["user_id"] == "alice"  # the chain's root, as the plugin walks it


def test_an_unseen_upstream_with_an_encoded_name_is_a_branch_job() -> None:
    """Jenkins forbids `%` in item names: a `%XX` leaf can only be branch-api's NameEncoder."""
    cause = {"upstreamProject": "DCAPI/DevzoneFrontend/hotfix%2F1.60.1", "upstreamBuild": 7}
    names = {
        "plugin": "DCAPI/jobs/DevzoneFrontend/branches/hotfix%2F1.60.1",
        "plugin-legacy": f"DCAPI/jobs/DevzoneFrontend/branches/{mangle('hotfix/1.60.1')}",
        "jenkins": "DCAPI/DevzoneFrontend/hotfix%2F1.60.1",
    }
    for scheme, name in names.items():
        ctx = replace(CTX, naming=JobNaming(scheme))  # type: ignore[arg-type]
        assert map_build(finished([cause]), Job(names=("x",)), ctx).trigger_chain[0].id == name
    # a container discovery saw keeps its class: a plain folder stays a folder
    seen = JobNaming.of("plugin", [(("DCAPI", "other"), (None, FOLDER))])
    plain: dict[str, Any] = {"upstreamProject": "DCAPI/100%25", "upstreamBuild": 1}
    assert seen.upstream(plain["upstreamProject"]) == "DCAPI/jobs/100%25"


def test_builds_that_all_caused_one_another_make_a_chain_of_bounded_size() -> None:
    """Eight builds, each caused by the seven others: expanding every path that repeats no
    build would list 8! x e entries (about 110,000). The chain stops at MAX_TRIGGERS entries,
    nearest first, and so does the work (it took 9 s, and kept none of the 8 nearest, when the
    budget was taken after each entry's parents)."""
    keys = [(f"job{n}", n) for n in range(1, 9)]

    def causes_but(key: tuple[str, int]) -> list[dict[str, Any]]:
        others = [{"upstreamProject": j, "upstreamBuild": n} for j, n in keys if (j, n) != key]
        return [{"causes": others}]

    upstream = {key: causes_but(key) for key in keys}
    started = map_build(
        finished(causes_but(("deploy", 0))[0]["causes"]),
        Job(names=("deploy",)),
        CTX,
        BuildDetails(upstream=upstream),
    ).to_json()

    def entries(chain: list[dict[str, Any]]) -> int:
        return sum(1 + entries(t.get("direct_parents") or []) for t in chain)

    assert len(started["trigger_chain"]) == 8  # the causes nearest the build are all kept
    walked = causes.trigger_chain(
        [{"causes": causes_but(("deploy", 0))[0]["causes"]}],
        upstream,
        JobNaming(),
        ("deploy", 0),
    )
    assert entries([t.model_dump() for t in walked]) == causes.MAX_TRIGGERS
    assert entries(started["trigger_chain"]) == 8  # every job once, where it is nearest
    assert len(json.dumps(started)) < 200_000
    assert started["user_id"] == "SYSTEM"  # no user anywhere up the chain


def test_a_build_caused_by_itself_is_not_expanded() -> None:
    itself = {"upstreamProject": "deploy", "upstreamBuild": 9}
    payload = map_build(
        finished([itself]),
        Job(names=("deploy",)),
        CTX,
        BuildDetails(upstream={("deploy", 9): [{"causes": [itself]}]}),
    ).to_json()
    assert payload["trigger_chain"] == [
        {"id": "deploy", "type": "UpstreamCause", "job_run_number": "9"}
    ]


def test_jenkins_1x_user_cause_is_a_user_cause() -> None:
    cause = {"_class": "hudson.model.Cause$UserCause", "userName": "bob"}
    classless = {"shortDescription": "Started by user carol", "userName": "carol"}
    for raw, user in ((cause, "bob"), (classless, "carol")):
        payload = map_build(finished([raw]), Job(names=("x",)), CTX)
        assert payload.to_json()["trigger_chain"] == [{"id": user, "type": "UserCause"}]
        assert payload.user_id == user


MAVEN = "hudson.maven.MavenModuleSet"
ORG = "jenkins.branch.OrganizationFolder"


@pytest.mark.parametrize(
    ("names", "containers", "plugin", "qualified", "legacy", "jenkins"),
    [
        (("deploy",), (None,), "deploy", "deploy", None, "deploy"),
        (("Team A", "deploy"), (None, FOLDER), "Team A/jobs/deploy", "Team A/deploy", None, None),
        (
            ("platform", "web", "main"),
            (None, FOLDER, MULTIBRANCH),
            "platform/jobs/web/branches/main",
            "platform/web/main",
            None,
            None,
        ),
        (
            ("acme", "my.repo", "feature%2Flogin"),
            (None, ORG, MULTIBRANCH),
            "acme/jobs/my.repo/branches/feature%2Flogin",
            "acme/my.repo/feature/login",
            (
                "acme/jobs/my-repo.47uuud/branches/feature-login.lgkpmn",
                "acme/my-repo.47uuud/feature-login.lgkpmn",
            ),
            "acme/my.repo/feature%2Flogin",
        ),
        (
            ("app", "com.example$core"),
            (None, MAVEN),
            "app/modules/com.example$core",
            "app/com.example$core",
            None,
            None,
        ),
        (  # a folder really named Jobs is dropped from qualified_name, as the plugin does
            ("Jobs", "deploy"),
            (None, FOLDER),
            "Jobs/jobs/deploy",
            "deploy",
            None,
            None,
        ),
    ],
)
def test_job_names_in_every_scheme(
    names: tuple[str, ...],
    containers: tuple[str | None, ...],
    plugin: str,
    qualified: str,
    legacy: tuple[str, str] | None,
    jenkins: str | None,
) -> None:
    build = finished([{"userId": "u"}])
    job = Job(names=names, containers=containers)
    payload = map_build(build, job, CTX)
    assert (payload.job_full_name, payload.qualified_name) == (plugin, qualified)
    old = map_build(build, job, replace(CTX, naming=JobNaming("plugin-legacy")))
    assert (old.job_full_name, old.qualified_name) == (legacy or (plugin, qualified))
    other = map_build(build, job, replace(CTX, naming=JobNaming("jenkins")))
    full = jenkins or "/".join(names)
    assert (other.job_full_name, other.qualified_name) == (full, full)
    assert (
        payload.pipeline
        == other.pipeline
        == old.pipeline
        == (
            names[-2]
            if len(containers) > 1 and containers[-1] in (MULTIBRANCH, MAVEN)
            else names[-1]
        )
    )
    assert (
        payload.module_name == other.module_name == (names[-1] if containers[-1] == MAVEN else None)
    )


def test_both_manifests_are_read_as_the_plugin_reads_them() -> None:
    first = {
        "artifacts": [
            {
                "type": "container",
                "location": "registry/app",
                "name": "app",
                "qualifier": "1.4",
                "output": "TRUE",
                "metadata": {"signed": True, "layers": 3, "note": None, "by": "ci"},
            },
            {"type": "jar", "location": " ", "name": "lib", "qualifier": "1"},
        ]
    }
    second = {
        "artifact": {
            "type": "container",
            "location": "r/base",
            "name": "base",
            "qualifier": 7,
            "input": "false",
        }
    }
    payload = map_build(
        finished([{"userId": "u"}]),
        Job(names=("x",)),
        CTX,
        BuildDetails(manifests=(first, second)),
    ).to_json()
    assert payload["artifacts"] == [
        {
            "output": True,
            "type": "container",
            "location": "registry/app",
            "name": "app",
            "qualifier": "1.4",
            "metadata": {"signed": "true", "layers": "3", "by": "ci"},
        },
        {
            "input": False,
            "type": "container",
            "location": "r/base",
            "name": "base",
            "qualifier": "7",
        },
    ]
    assert (payload["ci"], payload["cd"]) == (True, False)


def test_an_input_artifact_makes_a_cd_run_unless_a_job_rule_says_otherwise() -> None:
    manifest = {
        "type": "container",
        "location": "r/app",
        "name": "app",
        "qualifier": "2",
        "input": True,
    }
    build, job = finished([{"userId": "u"}]), Job(names=("team", "release"))
    details = BuildDetails(manifests=(manifest,))
    assert map_build(build, job, CTX, details).cd is True
    ci = map_build(build, job, replace(CTX, ci_jobs=("team/*",)), details)
    assert (ci.ci, ci.cd) == (True, False)
    cd = map_build(build, job, replace(CTX, cd_jobs=("team/*",), ci_jobs=("team/*",)))
    assert (cd.ci, cd.cd) == (False, True)


def test_archived_files_are_unique_per_execution_across_jobs() -> None:
    build = finished(
        [{"userId": "u"}], artifacts=[{"fileName": "app.jar", "relativePath": "target/app.jar"}]
    )
    one = map_build(build, Job(names=("a",)), CTX).to_json()["artifacts"]
    two = map_build(build, Job(names=("b",)), CTX).to_json()["artifacts"]
    assert {(x["name"], x["qualifier"]) for x in one}.isdisjoint(
        (x["name"], x["qualifier"]) for x in two
    )
    assert one == [
        {
            "input": False,
            "output": True,
            "type": "jar",
            "location": BASE + "job/a/9/artifact/target/app.jar",
            "name": "target/app.jar",
            "qualifier": "a#9",
        }
    ]


SHA_A, SHA_B = "a" * 40, "B" * 40


def test_commit_ids_from_the_pipeline_environment_then_a_parameter() -> None:
    env = {
        "_class": "org.jenkinsci.plugins.workflow.cps.EnvActionImpl",
        "environment": {"SEI_SCM_COMMIT_IDS": f"{SHA_A}; {SHA_B},{SHA_A} nope"},
    }
    params = {"parameters": [{"name": "SEI_SCM_COMMIT_IDS", "value": "c" * 40}]}
    build = finished([{"userId": "u"}])
    build["actions"] += [env, params]
    assert map_build(build, Job(names=("x",)), CTX).scm_commit_ids == [SHA_A, SHA_B.lower()]
    build["actions"].remove(env)
    assert map_build(build, Job(names=("x",)), CTX).scm_commit_ids == ["c" * 40]
    many = " ".join(f"{n:040x}" for n in range(150))
    build["actions"] = [{"environment": {"SEI_SCM_COMMIT_IDS": many}}]
    assert len(map_build(build, Job(names=("x",)), CTX).scm_commit_ids) == 100


def test_declared_commit_ids_are_merged_with_the_changelog_as_the_plugin_does() -> None:
    """Plugin 1.0.43 on (JobRunScmCommitIdsService.mergeCommitIds): the changelog's commits,
    then the declared ones, each once; the cap bounds the changelog, never the declared ids."""
    build = finished([{"userId": "u"}])
    build["changeSets"] = [{"items": [{"commitId": "1" * 40}, {"commitId": SHA_A}]}]
    build["actions"].append({"environment": {"SEI_SCM_COMMIT_IDS": f"{SHA_A},{SHA_B}"}})
    ids = map_build(build, Job(names=("x",)), CTX).scm_commit_ids
    assert ids == ["1" * 40, SHA_A, SHA_B.lower()]
    build["changeSets"] = [{"items": [{"commitId": f"{n:040x}"} for n in range(1, 151)]}]
    ids = map_build(build, Job(names=("x",)), CTX).scm_commit_ids
    assert len(ids) == 102 and ids[-2:] == [SHA_A, SHA_B.lower()]


def test_classless_parameters_named_like_secrets_are_never_sent() -> None:
    names = ["DB_PASSWORD", "api_token", "ssh-key", "AwsSecret", "GIT_CREDENTIALS", "VERSION"]
    build = finished(
        [{"userId": "u"}],
        actions=[{"causes": []}, {"parameters": [{"name": n, "value": "v4lue"} for n in names]}],
    )
    payload = map_build(build, Job(names=("x",)), CTX)
    assert [p.name for p in payload.job_run_params] == ["VERSION"]
    typed = {"_class": "hudson.model.StringParameterValue", "name": "TOKEN_TTL", "value": "5"}
    build["actions"][1]["parameters"] = [typed]
    assert [p.name for p in map_build(build, Job(names=("x",)), CTX).job_run_params] == [
        "TOKEN_TTL"
    ]


def test_stage_times_no_calendar_holds_are_no_start_time() -> None:
    """Found by fuzzing (tests/test_fuzz.py): a stage starting at 10^20 ms raised OSError or
    ValueError out of the mapping, and the build failed with a traceback on every run."""
    wfapi = {"id": "3", "name": "b", "status": "SUCCESS", "startTimeMillis": 10**20}
    graph = {"id": "4", "name": "c", "state": "success", "startTimeMillis": 2**62}
    for data in (
        Wfapi.normalize(WfapiAnswers([wfapi])),
        GraphView.normalize(GraphViewAnswers([graph])),
    ):
        [stage] = map_job_run(data).stages
        assert stage.id in ("3", "4") and stage.startTime is None


def test_manifest_numbers_no_json_holds_are_dropped_like_nulls() -> None:
    """Found by fuzzing: NaN in a manifest's metadata (Python's JSON parser takes it) raised
    ValueError out of the mapping."""
    entry: dict[str, Any] = {"type": "t", "location": "l", "name": "n", "qualifier": "q"}
    entry["metadata"] = {"ok": 1, "nan": float("nan"), "inf": float("-inf")}
    [artifact], problems = parse_manifests(({"artifacts": [entry]},))
    assert artifact.metadata == {"ok": "1"} and problems == []
