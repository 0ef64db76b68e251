"""Tests of the SEI stand-in itself: the agent's tests trust it, so it must follow sei-api.md."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sei_standin import SeiStandIn

KEY = "test-key-123"
GUID = "666ba79b-3f3d-4236-ac04-4686ce526705"
AUTH = {"Authorization": f"ApiKey {KEY}"}
CICD = "/v1/custom-cicd"
REQUIRED = [
    ("job_name", "pipeline"),
    ("instance_name", "instance_name"),
    ("instance_guid", "instance_guid"),
    ("job_full_name", "job_full_name"),
    ("qualified_name", "qualified_name"),
    ("result", "result"),
]


def build(**overrides: Any) -> dict[str, Any]:
    """A complete, valid custom-cicd payload; None in overrides deletes that key."""
    payload: dict[str, Any] = {
        "pipeline": "build",
        "instance_name": "jenkins-1",
        "instance_guid": GUID,
        "instance_url": "http://jenkins:8080",
        "job_full_name": "folder/build",
        "qualified_name": "folder/build",
        "result": "SUCCESS",
        "user_id": "SYSTEM",
        "start_time": 1711603545000,
        "duration": 780000,
        "build_number": 7,
        "job_run_params": [{"type": "StringParameterValue", "name": "v", "value": "1"}],
        "job_run": {
            "stages": [
                {
                    "displayName": "Build",
                    "result": "SUCCESS",
                    "state": "FINISHED",
                    "durationInMillis": 1200,
                    "steps": [{"displayName": "sh", "durationInMillis": 1100}],
                }
            ]
        },
        "artifacts": [
            {"type": "container", "location": "reg/img:1", "name": "img", "qualifier": "1"}
        ],
        "trigger_chain": [{"id": "SCMTrigger", "type": "SCMTriggerCause"}],
    }
    for key, value in overrides.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


def post(url: str, **kwargs: Any) -> httpx.Response:
    """One POST on a fresh client; verify=False skips loading CA certs (~80 ms) for plain HTTP."""
    with httpx.Client(verify=False, timeout=5) as c:
        return c.post(url, **kwargs)


@pytest.fixture
def sei() -> Iterator[SeiStandIn]:
    """A running stand-in that accepts any GUID."""
    with SeiStandIn(api_key=KEY) as standin:
        yield standin


@pytest.fixture
def client(sei: SeiStandIn) -> Iterator[httpx.Client]:
    """A client authenticated as the agent would be, against the stand-in's base URL."""
    with httpx.Client(base_url=sei.url, headers=AUTH, timeout=5, verify=False) as c:
        yield c


def test_start_returns_base_url_without_v1(sei: SeiStandIn) -> None:
    """Users configure the base without /v1 and the agent appends it."""
    assert sei.url.startswith("http://127.0.0.1:")
    assert sei.url.endswith("/sei/api")


def test_valid_build_is_accepted_and_stored(sei: SeiStandIn, client: httpx.Client) -> None:
    """The happy path: 202, kept in accepted and runs under (guid, job, build)."""
    r = client.post(CICD, json=build())
    assert r.status_code == 202
    assert r.json() == {}
    assert sei.accepted == [build()]
    assert sei.runs[(GUID, "folder/build", 7)]["result"] == "SUCCESS"
    assert sei.dropped == []
    assert sei.requests[-1]["status"] == 202
    assert sei.posts_for("folder/build", 7) == [build()]


def test_required_fields_checked_in_server_order(sei: SeiStandIn, client: httpx.Client) -> None:
    """The server names only the first missing field, in its order; the agent relies on it."""
    payload = build(**{key: None for _, key in REQUIRED})
    for name, key in REQUIRED:
        r = client.post(CICD, json=payload)
        assert r.status_code == 400
        assert r.json() == {"payload": f"{name} field is missing in request"}
        payload[key] = build()[key]
    assert client.post(CICD, json=payload).status_code == 202
    assert len(sei.accepted) == 1


@pytest.mark.parametrize(("name", "key"), REQUIRED)
def test_empty_string_counts_as_missing(client: httpx.Client, name: str, key: str) -> None:
    """An empty value is no better than none."""
    r = client.post(CICD, json=build(**{key: ""}))
    assert r.status_code == 400
    assert r.json() == {"payload": f"{name} field is missing in request"}


def test_empty_object_checks_key_without_storing(sei: SeiStandIn, client: httpx.Client) -> None:
    """POST {} is how a key is checked: 400 naming a field, nothing stored."""
    r = client.post(CICD, json={})
    assert r.status_code == 400
    assert r.json() == {"payload": "job_name field is missing in request"}
    assert sei.accepted == [] and sei.runs == {}


def test_guid_must_be_a_uuid(client: httpx.Client) -> None:
    """A non-UUID instance_guid is refused, not silently dropped."""
    r = client.post(CICD, json=build(instance_guid="jenkins-main"))
    assert r.status_code == 400
    assert r.json() == {"payload": "instance_guid is not a valid UUID"}


@pytest.mark.parametrize("field", ["start_time", "duration", "build_number"])
@pytest.mark.parametrize("value", ["1711603545000", 1.5, 7.0, True])
def test_integer_fields_must_be_integers(client: httpx.Client, field: str, value: Any) -> None:
    """Strings, floats and booleans are not integers, whatever they look like."""
    r = client.post(CICD, json=build(**{field: value}))
    assert r.status_code == 400
    assert field in r.json()["payload"]


def test_missing_key_is_401(sei: SeiStandIn) -> None:
    """No Authorization header: refused before anything else is checked."""
    r = post(sei.url + CICD, json=build())
    assert r.status_code == 401
    assert r.json() == {"message": "Unauthorized"}
    assert sei.accepted == []


@pytest.mark.parametrize(
    "value", [f"ApiKey {KEY}x", f"Bearer {KEY}", "ApiKey", KEY, f"ApiKey {KEY.upper()}"]
)
def test_wrong_key_or_scheme_is_401(sei: SeiStandIn, value: str) -> None:
    """The key is compared exactly and the scheme must be ApiKey."""
    r = post(sei.url + CICD, json=build(), headers={"Authorization": value})
    assert r.status_code == 401


@pytest.mark.parametrize("scheme", ["apikey", "APIKEY", "Apikey"])
def test_scheme_is_case_insensitive(sei: SeiStandIn, scheme: str) -> None:
    """The server compares the scheme case-insensitively (the artifacts doc uses `Apikey`)."""
    r = post(sei.url + CICD, json=build(), headers={"Authorization": f"{scheme} {KEY}"})
    assert r.status_code == 202


def test_authorization_is_redacted_in_requests(sei: SeiStandIn, client: httpx.Client) -> None:
    """A key must never be kept, right or wrong, so a test failure cannot print it."""
    client.post(CICD, json=build())
    post(sei.url + CICD, json=build(), headers={"Authorization": "ApiKey other-secret"})
    assert [r["headers"]["Authorization"] for r in sei.requests] == ["ApiKey ***"] * 2
    assert KEY not in repr(sei.requests)
    assert "other-secret" not in repr(sei.requests)
    assert sei.requests[0]["headers"]["Content-Type"] == "application/json"


def test_invalid_json_is_400(sei: SeiStandIn, client: httpx.Client) -> None:
    """A body that is not JSON is refused and recorded as raw text."""
    r = client.post(CICD, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {"payload": "invalid json"}
    assert sei.requests[-1]["body"] == "{not json"


def test_unknown_path_is_404(client: httpx.Client) -> None:
    """A base URL with /v1 twice must fail loudly rather than be accepted."""
    r = client.post("/v1/v1/custom-cicd", json=build())
    assert r.status_code == 404
    assert r.json()["message"] == "Not Found"


def test_unknown_guid_is_dropped_silently() -> None:
    """The server answers 202 for a GUID it does not know, then discards the build."""
    with SeiStandIn(api_key=KEY, known_guids={str(uuid.uuid4())}) as sei:
        r = post(sei.url + CICD, json=build(), headers=AUTH)
        assert r.status_code == 202
        assert sei.accepted == [] and sei.runs == {}
        assert sei.dropped == [(build(), "unknown instance_guid")]


def test_known_guid_is_kept() -> None:
    """A GUID in known_guids is kept; case does not matter, as for a UUID."""
    with SeiStandIn(api_key=KEY, known_guids={GUID.upper()}) as sei:
        r = post(sei.url + CICD, json=build(), headers=AUTH)
        assert r.status_code == 202
        assert len(sei.accepted) == 1


def test_null_parameter_value_is_dropped(sei: SeiStandIn, client: httpx.Client) -> None:
    """A null parameter value rolls back the whole run on the server."""
    params = [{"type": "StringParameterValue", "name": "v", "value": None}]
    r = client.post(CICD, json=build(job_run_params=params))
    assert r.status_code == 202
    assert sei.dropped[0][1] == "null parameter value"
    assert sei.accepted == [] and sei.runs == {}


@pytest.mark.parametrize("where", ["stage", "step"])
def test_null_stage_duration_is_dropped(sei: SeiStandIn, client: httpx.Client, where: str) -> None:
    """A stage or step without durationInMillis crashes the server's processing."""
    payload = build()
    stage = payload["job_run"]["stages"][0]
    target = stage if where == "stage" else stage["steps"][0]
    target["durationInMillis"] = None
    assert client.post(CICD, json=payload).status_code == 202
    del target["durationInMillis"]
    assert client.post(CICD, json=payload).status_code == 202
    assert [reason for _, reason in sei.dropped] == ["null stage duration"] * 2
    assert sei.runs == {}


def test_first_write_wins_but_artifacts_are_replaced(sei: SeiStandIn, client: httpx.Client) -> None:
    """A resend cannot change a run's status; only its artifacts, as on the real server."""
    client.post(CICD, json=build(result="FAILURE"))
    new_artifacts = [{"type": "container", "location": "r/i:2", "name": "img", "qualifier": "2"}]
    r = client.post(CICD, json=build(result="SUCCESS", duration=1, artifacts=new_artifacts))
    assert r.status_code == 202
    run = sei.runs[(GUID, "folder/build", 7)]
    assert run["result"] == "FAILURE"
    assert run["duration"] == 780000
    assert run["artifacts"] == new_artifacts
    assert len(sei.accepted) == 2
    assert sei.accepted[0]["result"] == "FAILURE"
    assert len(sei.posts_for("folder/build", 7)) == 2


def test_other_builds_are_separate_runs(sei: SeiStandIn, client: httpx.Client) -> None:
    """Uniqueness is per build number and per job."""
    client.post(CICD, json=build())
    client.post(CICD, json=build(build_number=8))
    client.post(CICD, json=build(job_full_name="other"))
    assert set(sei.runs) == {
        (GUID, "folder/build", 7),
        (GUID, "folder/build", 8),
        (GUID, "other", 7),
    }


def test_aliases_are_accepted(sei: SeiStandIn, client: httpx.Client) -> None:
    """The server accepts the Jenkins plugin's field names as well as the documented ones."""
    renames = {
        "pipeline": "job_name",
        "instance_name": "jenkins_instance_name",
        "instance_guid": "jenkins_instance_guid",
        "qualified_name": "job_normalized_full_name",
        "user_id": "triggered_by",
        "instance_url": "jenkins_instance_url",
        "job_run_params": "execution_parameters",
    }
    payload = {renames.get(k, k): v for k, v in build().items()}
    assert client.post(CICD, json=payload).status_code == 202
    assert sei.runs[(GUID, "folder/build", 7)]["job_name"] == "build"
    payload["execution_parameters"] = [{"name": "v", "value": None}]
    payload["build_number"] = 8
    assert client.post(CICD, json=payload).status_code == 202
    assert sei.dropped[0][1] == "null parameter value"


def test_instances_creates_a_known_guid() -> None:
    """A GUID created through the API is known, so builds sent with it are kept."""
    with SeiStandIn(api_key=KEY, known_guids=set()) as sei:
        body = {"integration_id": "4242", "name": "Jenkins", "type": "jenkins", "url": "http://j"}
        r = post(sei.url + "/v1/cicd/instances", json=body, headers=AUTH)
        assert r.status_code == 200
        new_id = r.json()["id"]
        assert str(uuid.UUID(new_id)) == new_id
        assert sei.known_guids == {new_id}
        r = post(sei.url + CICD, json=build(instance_guid=new_id), headers=AUTH)
        assert r.status_code == 202
        assert (new_id, "folder/build", 7) in sei.runs


@pytest.mark.parametrize("field", ["integration_id", "name", "type"])
def test_instances_needs_fields(client: httpx.Client, field: str) -> None:
    """integration_id, name and type are all needed to create an instance."""
    body = {"integration_id": "4242", "name": "Jenkins", "type": "jenkins"}
    del body[field]
    r = client.post("/v1/cicd/instances", json=body)
    assert r.status_code == 400
    assert field in r.json()["payload"]


def test_push_artifacts(sei: SeiStandIn, client: httpx.Client) -> None:
    """push_artifacts accepts a complete body, records it, and refuses an incomplete one."""
    body = {
        "integration_id": "4242",
        "repository": "org/repo",
        "job_name": "build",
        "job_run_number": "7",
        "artifacts": [{"name": "img", "location": "reg/img", "tag": "1", "digest": "sha256:0"}],
    }
    assert client.post("/v1/cicd/push_artifacts", json=body).status_code == 202
    assert sei.artifact_pushes == [body]
    r = client.post("/v1/cicd/push_artifacts", json={**body, "artifacts": None})
    assert r.status_code == 400
    assert r.json() == {"payload": "artifacts field is missing in request"}
    assert len(sei.artifact_pushes) == 1


def test_fail_next_with_retry_after(sei: SeiStandIn, client: httpx.Client) -> None:
    """Gateway failures come first, in order, with Retry-After; then normal service resumes."""
    sei.fail_next(1, status=429, retry_after="2")
    sei.fail_next(1, status=502, body="bad gateway")
    r = client.post(CICD, json=build())
    assert (r.status_code, r.headers["Retry-After"]) == (429, "2")
    r = client.post(CICD, json=build())
    assert (r.status_code, r.text) == (502, "bad gateway")
    assert "Retry-After" not in r.headers
    assert client.post(CICD, json=build()).status_code == 202
    assert [q["status"] for q in sei.requests] == [429, 502, 202]
    assert len(sei.accepted) == 1
    assert len(sei.posts_for("folder/build", 7)) == 3


def test_fail_next_only_affects_its_path(sei: SeiStandIn, client: httpx.Client) -> None:
    """A failure scripted for instances does not hit custom-cicd."""
    sei.fail_next(1, path="/v1/cicd/instances")
    assert client.post(CICD, json=build()).status_code == 202
    body = {"integration_id": "1", "name": "J", "type": "jenkins"}
    assert client.post("/v1/cicd/instances", json=body).status_code == 503
    assert client.post("/v1/cicd/instances", json=body).status_code == 200


def test_reset_next_is_a_connection_error(sei: SeiStandIn, client: httpx.Client) -> None:
    """A reset gives the client no answer at all, and nothing is stored."""
    sei.reset_next(1)
    with pytest.raises(httpx.TransportError):
        client.post(CICD, json=build())
    assert sei.accepted == []
    assert sei.requests[0]["status"] is None
    assert client.post(CICD, json=build()).status_code == 202


def test_delay_next_causes_client_timeout(sei: SeiStandIn, client: httpx.Client) -> None:
    """A slow answer makes the client time out, though the server kept the build."""
    sei.delay_next(1, 30.0)
    with pytest.raises(httpx.TimeoutException):
        client.post(CICD, json=build(), timeout=0.05)
    assert len(sei.accepted) == 1
    assert client.post(CICD, json=build()).status_code == 202


def test_delay_next_answers_normally(sei: SeiStandIn, client: httpx.Client) -> None:
    """Below the client's timeout a delayed answer is just late."""
    sei.delay_next(1, 0.03)
    started = time.monotonic()
    r = client.post(CICD, json=build())
    assert r.status_code == 202
    assert time.monotonic() - started >= 0.03


def test_reject_predicate(sei: SeiStandIn, client: httpx.Client) -> None:
    """reject() refuses matching payloads until cleared, and leaves others alone."""
    sei.reject(lambda p: p.get("build_number") == 7, status=422, message="no seven")
    r = client.post(CICD, json=build())
    assert (r.status_code, r.json()) == (422, {"payload": "no seven"})
    assert client.post(CICD, json=build()).status_code == 422
    assert client.post(CICD, json=build(build_number=8)).status_code == 202
    sei.clear_rejects()
    assert client.post(CICD, json=build()).status_code == 202
    assert [p["build_number"] for p in sei.accepted] == [8, 7]


def test_fail_always_is_an_outage(sei: SeiStandIn, client: httpx.Client) -> None:
    """Every custom-cicd POST fails until the outage is turned off."""
    sei.fail_always(503)
    assert [client.post(CICD, json=build()).status_code for _ in range(3)] == [503] * 3
    assert sei.accepted == []
    sei.fail_always(None)
    assert client.post(CICD, json=build()).status_code == 202


def test_stop_is_quick_with_open_connections() -> None:
    """stop() must not hang on keep-alive connections or delayed answers."""
    sei = SeiStandIn(api_key=KEY)
    url = sei.start()
    with httpx.Client(base_url=url, headers=AUTH, verify=False) as c:
        assert c.post(CICD, json=build()).status_code == 202
        started = time.monotonic()
        sei.stop()
        assert time.monotonic() - started < 1


# -- what the server keeps after the 202 -----------------------------------------------------


def stage(node_id: str | None, name: str = "Build", steps: list[Any] | None = None) -> Any:
    node: dict[str, Any] = {
        "displayName": name,
        "result": "SUCCESS",
        "state": "FINISHED",
        "durationInMillis": 5,
        "steps": steps or [],
    }
    if node_id is not None:
        node["id"] = node_id
    return node


def test_stages_are_kept_by_id_and_steps_without_one_are_skipped(
    sei: SeiStandIn, client: httpx.Client
) -> None:
    steps = [stage("4", "sh"), stage(None, "no id"), stage("4", "repeat"), stage("5", "x" * 60)]
    run = {"stages": [stage("3", "Build", steps), stage("6", "Test")]}
    assert client.post(CICD, json=build(job_run=run)).status_code == 202
    kept = sei.kept("folder/build", 7)
    assert [(s["id"], s["name"]) for s in kept["stages"]] == [("3", "Build"), ("6", "Test")]
    assert [(s["id"], s["name"]) for s in kept["stages"][0]["steps"]] == [
        ("4", "sh"),
        ("5", "x" * 50),  # names are cut to 50 characters
    ]


@pytest.mark.parametrize(
    "stages",
    [[stage("3"), stage(None, "Test")], [stage("3"), stage("3", "Test")], [stage("x" * 51)]],
    ids=["missing", "repeated", "too-long"],
)
def test_one_stage_without_a_usable_id_abandons_every_stage(
    sei: SeiStandIn, client: httpx.Client, stages: list[Any]
) -> None:
    assert client.post(CICD, json=build(job_run={"stages": stages})).status_code == 202
    assert isinstance(sei.kept("folder/build", 7)["stages"], str)
    fixed = build(job_run={"stages": [stage("3")]})
    assert client.post(CICD, json=fixed).status_code == 202
    assert isinstance(sei.kept("folder/build", 7)["stages"], str)  # first write wins


def test_runs_are_linked_only_by_upstream_cause_naming_a_known_job(
    sei: SeiStandIn, client: httpx.Client
) -> None:
    upstream = build(job_full_name="team/jobs/build", build_number=51)
    assert client.post(CICD, json=upstream).status_code == 202
    chain = [
        {"id": "team/jobs/build", "type": "UpstreamCause", "job_run_number": "51"},
        {"id": "team/jobs/build", "type": "BuildUpstreamCause", "job_run_number": "51"},
        {"id": "team/build", "type": "UpstreamCause", "job_run_number": "51"},
        {"id": "team/jobs/build", "type": "UpstreamCause"},
    ]
    downstream = build(job_full_name="deploy", build_number=3, trigger_chain=chain)
    assert client.post(CICD, json=downstream).status_code == 202
    assert sei.kept("deploy", 3)["upstream"] == [("team/jobs/build", 51)]


def test_every_run_overwrites_the_instance_url_and_artifacts(
    sei: SeiStandIn, client: httpx.Client
) -> None:
    client.post(CICD, json=build(instance_url="https://ci.example/"))
    client.post(CICD, json=build(build_number=8, instance_url="http://jenkins.internal:8080/"))
    assert sei.instance_urls[GUID] == "http://jenkins.internal:8080/"
    client.post(CICD, json=build(artifacts=[]))
    assert sei.kept("folder/build", 7)["artifacts"] == []
    assert sei.kept("folder/build", 7)["job"] == {
        "job_full_name": "folder/build",
        "name": "build",
        "qualified_name": "folder/build",
        "repo_url": None,
        "branch_name": None,
        "module_name": None,
        "scm_user_id": None,
    }


# -- keys and overwrites: what SEI shows after several payloads -----------------------------


def test_the_job_row_shows_whichever_build_arrived_last(
    sei: SeiStandIn, client: httpx.Client
) -> None:
    new = build(build_number=9, repo_url="https://git/new.git", branch_name="main")
    old = build(build_number=2, repo_url="https://git/old.git", branch_name="legacy")
    for payload in (new, old):
        assert client.post(CICD, json=payload).status_code == 202
    row = sei.kept("folder/build", 9)["job"]
    assert (row["repo_url"], row["branch_name"]) == ("https://git/old.git", "legacy")


def test_a_second_payload_for_a_number_upserts_stages_and_replaces_artifacts(
    sei: SeiStandIn, client: httpx.Client
) -> None:
    """A recreated job's #7: its run row is not stored, but its stages land in the old run
    on the reused node ids and its artifacts replace the old run's."""
    art = {"type": "container", "location": "r/a:1", "name": "a", "qualifier": "1"}
    first = build(
        result="SUCCESS",
        job_run={"stages": [stage("3", "Build"), stage("6", "Test")]},
        artifacts=[art, art],  # identical entries collapse into one row
    )
    assert client.post(CICD, json=first).status_code == 202
    assert sei.kept("folder/build", 7)["artifacts"] == [art]
    failed = {**stage("3", "Compile"), "result": "FAILURE"}
    other = {**art, "location": "r/b:2"}
    second = build(result="FAILURE", job_run={"stages": [failed]}, artifacts=[other])
    assert client.post(CICD, json=second).status_code == 202
    kept = sei.kept("folder/build", 7)
    assert kept["result"] == "SUCCESS"
    assert [(s["id"], s["name"], s["result"]) for s in kept["stages"]] == [
        ("3", "Compile", "FAILURE"),
        ("6", "Test", "SUCCESS"),
    ]
    assert kept["artifacts"] == [other]


def test_one_trigger_row_per_id_and_type_written_deepest_first(
    sei: SeiStandIn, client: httpx.Client
) -> None:
    """promote #1 <- build #13 <- build #12 (a Rebuild): the deeper row for `build` is written
    first and kept, so SEI shows #12 as the parent; sent without the repeat, #13."""
    for number in (12, 13):
        client.post(CICD, json=build(job_full_name="build", build_number=number))
    rebuilt = {"id": "build", "type": "UpstreamCause", "job_run_number": "12"}
    parent = {"id": "build", "type": "UpstreamCause", "job_run_number": "13"}
    whole = [{**parent, "direct_parents": [rebuilt]}]
    client.post(CICD, json=build(job_full_name="promote", build_number=1, trigger_chain=whole))
    assert sei.kept("promote", 1)["upstream"] == [("build", 12)]
    client.post(CICD, json=build(job_full_name="promote", build_number=2, trigger_chain=[parent]))
    assert sei.kept("promote", 2)["upstream"] == [("build", 13)]
