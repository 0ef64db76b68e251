"""Property tests: on arbitrary build JSON the mapping never raises (but Unmappable) and never
produces a payload SEI would reject or silently drop."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sei_standin import _null_param, _null_stage_duration, _validate_cicd

from agent.jenkins.stages.blueocean import BlueOcean, BlueOceanAnswers
from agent.jenkins.stages.wfapi import Wfapi, WfapiAnswers
from agent.jenkins.types import BuildDetails, Job, StageNode
from agent.mapping import MapContext, Unmappable, map_build

CTX = MapContext(
    instance_guid="666ba79b-3f3d-4236-ac04-4686ce526705",
    instance_name="jenkins",
    instance_url="https://jenkins.example/",
    cd_jobs=("*deploy*",),
)
MULTIBRANCH = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"

scalars = (
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=8)
)
anything = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The expected shape most of the time, anything at all otherwise."""
    return st.one_of(value, value, value, anything)


cause = st.fixed_dictionaries(
    {},
    optional={
        "_class": maybe(
            st.sampled_from(
                [
                    "hudson.model.Cause$UserIdCause",
                    "hudson.model.Cause$UpstreamCause",
                    "hudson.triggers.SCMTrigger$SCMTriggerCause",
                    "jenkins.branch.BranchEventCause",
                    "jenkins.model.CauseOfInterruption$UserInterruption",
                    "x.Y",
                ]
            )
        ),
        "shortDescription": maybe(st.text(max_size=20)),
        "userId": maybe(st.text(max_size=6)),
        "upstreamProject": maybe(st.text(max_size=10)),
        "upstreamBuild": maybe(st.integers(0, 99)),
    },
)
parameter = st.fixed_dictionaries(
    {},
    optional={
        "_class": maybe(
            st.sampled_from(
                [
                    "hudson.model.StringParameterValue",
                    "hudson.model.PasswordParameterValue",
                    "hudson.model.BooleanParameterValue",
                    "hudson.model.FileParameterValue",
                ]
            )
        ),
        "name": maybe(st.text(max_size=8)),
        "value": anything,
    },
)
build_data = st.fixed_dictionaries(
    {},
    optional={
        "lastBuiltRevision": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "SHA1": maybe(st.text("0123456789abcdef", min_size=40, max_size=40)),
                    "branch": maybe(
                        st.lists(
                            st.fixed_dictionaries(
                                {}, optional={"name": maybe(st.text(max_size=20)), "SHA1": anything}
                            ),
                            max_size=2,
                        )
                    ),
                },
            )
        ),
        "remoteUrls": maybe(st.lists(maybe(st.text(max_size=20)), max_size=2)),
    },
)
action = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"causes": maybe(st.lists(cause, max_size=3))}),
    st.fixed_dictionaries({"parameters": maybe(st.lists(parameter, max_size=3))}),
    build_data,
    anything,
)
change_set = st.fixed_dictionaries(
    {},
    optional={
        "items": maybe(
            st.lists(
                st.fixed_dictionaries({}, optional={"commitId": anything, "revision": anything}),
                max_size=3,
            )
        )
    },
)
build = st.fixed_dictionaries(
    {
        "number": maybe(st.integers(0, 10**6)),
        "timestamp": maybe(st.integers(0, 2**42)),
        "result": maybe(
            st.sampled_from(["SUCCESS", "FAILURE", "ABORTED", "UNSTABLE", "NOT_BUILT"])
        ),
    },
    optional={
        "duration": maybe(st.integers(-5, 10**7)),
        "building": maybe(st.booleans()),
        "actions": maybe(st.lists(action, max_size=5)),
        "changeSet": maybe(change_set),
        "changeSets": maybe(st.lists(change_set, max_size=2)),
        "artifacts": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "fileName": maybe(st.text(max_size=10)),
                        "relativePath": maybe(st.text(max_size=12)),
                    },
                ),
                max_size=3,
            )
        ),
    },
)
node = st.fixed_dictionaries(
    {},
    optional={
        "id": anything,
        "displayName": anything,
        "name": anything,
        "displayDescription": anything,
        "result": maybe(st.sampled_from(["SUCCESS", "FAILURE", "UNKNOWN", None])),
        "state": maybe(st.sampled_from(["FINISHED", "SKIPPED", None])),
        "status": maybe(st.sampled_from(["SUCCESS", "FAILED", "NOT_EXECUTED", "IN_PROGRESS"])),
        "durationInMillis": maybe(st.none() | st.integers(-5, 10**6)),
        "durationMillis": maybe(st.none() | st.integers(-5, 10**6)),
        "startTime": anything,
        "startTimeMillis": maybe(st.integers(-5, 2**42)),
        "stageFlowNodes": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "id": maybe(st.sampled_from(["1", "2", "3"])),
                        "parentNodes": anything,
                        "status": anything,
                        "durationMillis": anything,
                    },
                ),
                max_size=3,
            )
        ),
    },
)
# Each source's answers, through its reading: what the mapping is handed.
children = st.dictionaries(st.sampled_from(["1", "2", "3", "None"]), anything | node, max_size=3)
stages = (
    st.none()
    | st.builds(BlueOceanAnswers, st.lists(node, max_size=3), children).map(BlueOcean.normalize)
    | st.builds(WfapiAnswers, st.lists(node, max_size=3), children).map(Wfapi.normalize)
)
job = st.builds(
    Job,
    names=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3).map(tuple),
    containers=st.sampled_from(
        [
            (),
            (MULTIBRANCH,),
            ("hudson.maven.MavenModuleSet",),
            ("x.OrganizationFolder", MULTIBRANCH),
        ]
    ),
)
manifest = anything | st.fixed_dictionaries(
    {
        "artifacts": st.lists(
            anything
            | st.fixed_dictionaries(
                {},
                optional={
                    k: anything for k in ("type", "location", "name", "qualifier", "metadata")
                },
            ),
            max_size=3,
        )
    }
)


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI must be deterministic
    suppress_health_check=[HealthCheck.too_slow],
)
@given(build=build, job=job, stages=stages, manifest=manifest)
def test_mapping_never_raises_and_never_makes_a_payload_sei_drops(
    build: dict[str, Any], job: Job, stages: tuple[StageNode, ...] | None, manifest: Any
) -> None:
    try:
        payload = map_build(build, job, CTX, BuildDetails(stages=stages, manifests=(manifest,)))
    except Unmappable:
        ints = [build["number"], build["timestamp"]]
        valid = all(isinstance(v, int) and not isinstance(v, bool) for v in ints)
        named = bool(job.pipeline.strip() and job.full_name.strip())
        result = build["result"]
        finished = isinstance(result, str) and bool(result.strip()) and not build.get("building")
        assert not (valid and named and finished)
        return
    body = json.loads(json.dumps(payload.to_json(), allow_nan=False))
    assert _validate_cicd(body) is None
    assert not _null_param(body)
    assert not _null_stage_duration(body)
    assert body["ci"] != body["cd"]
    assert all(isinstance(c, str) and c for c in body["scm_commit_ids"])
    assert isinstance(body["build_number"], int) and not isinstance(body["build_number"], bool)
    assert body["duration"] >= 0
