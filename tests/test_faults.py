"""Faults on both sides: what the agent does when SEI or Jenkins misbehave, and what it loses.

Every test scripts a fault into the SEI stand-in or the Jenkins simulator, runs the agent
(in-process through conftest's Agent, or the real CLI where the exit code and the message are
the point), and checks the promise of the README: nothing lost (what was not delivered is sent
by a later run), nothing sent twice that was recorded, one bad build never stops the others,
and a clear message instead of a traceback. Retry waits are recorded, not slept.
"""

from __future__ import annotations

import email.utils
import io
import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from agent_process import wait_until
from conftest import GUID, Agent, Cli, sent
from jenkins_sim import JenkinsSim, Streamed
from sei_standin import SeiStandIn

from agent.config import Settings
from agent.jenkins.client import JenkinsUnavailable
from agent.jenkins.endpoints import job_path
from agent.logs import JsonFormatter
from agent.sei import client as sei_client
from agent.state import StateFile

STAGES = [
    {"id": "3", "name": "build", "duration": 40, "steps": [{"id": "4", "duration": 30}]},
    {"id": "7", "name": "test", "duration": 20, "steps": [{"id": "8", "duration": 10}]},
]


def tuned(settings: Settings, **sections: dict[str, Any]) -> Settings:
    """The fixture's settings with some fields of `sei`, `jenkins` or `agent` changed."""
    return settings.model_copy(
        update={
            name: getattr(settings, name).model_copy(update=fields)
            for name, fields in sections.items()
        }
    )


def jobs_with_builds(jenkins: JenkinsSim, names: list[str], builds: int) -> None:
    for name in names:
        jenkins.add_job(name)
        for _ in range(builds):
            jenkins.add_build(name)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits SeiClient computes between retries, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(sei_client.SeiClient, "retry_sleep", recorded.append)
    return recorded


# -- SEI -----------------------------------------------------------------------------------


def test_sei_503_storm_that_ends_exit_1_then_0_and_all_delivered_once(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn, waits: list[float]
) -> None:
    """A storm of 30 answers 503, longer than the retries: exit 1 until it ends, then 0."""
    jobs_with_builds(jenkins, ["a", "b", "c"], 3)
    sei.fail_next(30, status=503)
    agent = Agent(tuned(settings, sei={"retries": 2}))  # 3 attempts per build
    codes: list[int] = []
    while not codes or codes[-1] != 0:
        report = agent.run()
        codes.append(report.exit_code)  # what the CLI exits with
        assert len(codes) < 8, codes
    assert codes[0] == 1 and set(codes[:-1]) == {1}, codes
    assert sent(sei) == sorted((j, n) for j in "abc" for n in (1, 2, 3))  # each exactly once
    failed = sum(r["status"] == 503 for r in sei.requests)
    print(f"503 storm: {failed} answers 503, exit codes {codes}, 9 builds delivered once")
    assert failed == 30


def test_short_503_storm_is_absorbed_by_retries(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn, waits: list[float]
) -> None:
    jobs_with_builds(jenkins, ["a"], 1)
    sei.fail_next(1, status=503)  # the fixture allows one retry
    report = agent.run()
    assert report.exit_code == 0 and report.sent == 1
    assert len(sei.requests) == 2 and sent(sei) == [("a", 1)]
    assert waits == [0.0]  # SEI_RETRY_WAIT=0 in the fixture


def test_an_outage_is_logged_once_per_side_with_the_build_in_json(
    settings: Settings,
    jenkins: JenkinsSim,
    sei: SeiStandIn,
    waits: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """20 builds meeting 30 answers 503 from SEI and 4 from Jenkins: a warning when each side
    starts failing, one when it answers again, and nothing per build per attempt."""
    jobs_with_builds(jenkins, ["a", "b"], 10)
    jenkins.inject_fault(r"^/job/b/api/json", status=502, times=2)
    sei.fail_next(30, status=503)
    agent = Agent(tuned(settings, sei={"retries": 40}))
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        with caplog.at_level(logging.INFO):
            report = agent.run()
    finally:
        logging.getLogger().removeHandler(handler)
    assert report.exit_code == 0 and report.sent == 20
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sorted(m.split(":")[0].split(",")[0] for m in said) == [
        "Jenkins answers again",
        "Jenkins failing",
        "SEI answers again",
        "SEI failing",
    ], said
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    [failing] = [e for e in events if e["message"].startswith("SEI failing")]
    assert failing["side"] == "SEI" and failing["job"] in ("a", "b") and failing["build"] >= 1


def test_retry_after_is_honoured_capped_and_backoff_doubles(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn, waits: list[float]
) -> None:
    """Retry-After in seconds and as an HTTP date, capped by SEI_RETRY_MAX_WAIT."""
    jobs_with_builds(jenkins, ["a"], 1)
    in_30s = email.utils.formatdate(time.time() + 30, usegmt=True)
    sei.fail_next(1, status=429, retry_after="7")
    sei.fail_next(1, status=503, retry_after=in_30s)
    sei.fail_next(1, status=429, retry_after="3600")
    sei.fail_next(1, status=503)
    agent = Agent(tuned(settings, sei={"retries": 4, "retry_wait": 0.5, "retry_max_wait": 60}))
    report = agent.run()
    assert report.exit_code == 0 and sent(sei) == [("a", 1)]
    assert len(waits) == 4
    assert waits[0] == 7
    assert 28 <= waits[1] <= 30
    assert waits[2] == 60  # 3600 asked, SEI_RETRY_MAX_WAIT=60 allowed
    assert waits[3] == 0.5 * 2**3  # no Retry-After: the doubling backoff of the 4th attempt


def test_timeout_resend_keeps_the_execution_id_and_sei_keeps_one_run(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    """SEI took the build but answered too late: the resend is the same execution."""
    jobs_with_builds(jenkins, ["a"], 2)
    sei.delay_next(1, 3.0)  # stored at once, answered after SEI_TIMEOUT
    agent = Agent(tuned(settings, sei={"timeout": 0.4, "concurrency": 1}))
    started = time.monotonic()
    report = agent.run()
    assert time.monotonic() - started < 2.5  # the client gave up, it did not wait 3 s
    assert report.exit_code == 0
    first = sei.posts_for("a", 1)
    assert len(first) == 2  # at least once: SEI saw it twice
    assert first[0]["execution_id"] == first[1]["execution_id"]
    assert len(sei.runs) == 2  # first write wins: still one run per build
    assert len(sei.posts_for("a", 2)) == 1


def test_timeouts_outlasting_retries_leave_the_build_for_the_next_run(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jobs_with_builds(jenkins, ["a"], 1)
    sei.delay_next(2, 3.0)  # both attempts (one retry) time out
    agent = Agent(tuned(settings, sei={"timeout": 0.3}))
    down = agent.run()
    assert down.exit_code == 1 and down.unsent == 1
    with StateFile(settings.agent.state_file) as state:
        assert state.jobs(GUID)["a"].sent.count() == 0  # not recorded, though SEI stored it
    again = agent.run()
    assert again.exit_code == 0
    ids = {p["execution_id"] for p in sei.posts_for("a", 1)}
    assert len(sei.posts_for("a", 1)) == 3 and len(ids) == 1


def test_connection_resets_are_retried_then_left_for_the_next_run(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jobs_with_builds(jenkins, ["a"], 1)
    sei.reset_next(1)
    assert agent.run().exit_code == 0  # one reset, one retry
    jenkins.add_build("a")
    sei.reset_next(2)  # outlasts the retry
    down = agent.run()
    assert down.exit_code == 1 and down.unsent == 1
    assert agent.run().exit_code == 0
    assert sent(sei) == [("a", 1), ("a", 2)]


def test_slow_answers_under_the_timeout_are_not_resent(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jobs_with_builds(jenkins, ["a", "b"], 2)
    sei.delay_next(3, 0.3)
    report = Agent(tuned(settings, sei={"timeout": 3.0})).run()
    assert report.exit_code == 0
    assert len(sei.requests) == 4  # one POST per build, none repeated
    assert sent(sei) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]


def test_builds_refused_with_4xx_are_dead_letters_and_the_others_go_on(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn, settings: Settings
) -> None:
    jobs_with_builds(jenkins, ["a", "b", "c"], 3)
    sei.reject(lambda p: (p["job_full_name"], p["build_number"]) == ("a", 2), 400, "bad a#2")
    sei.reject(lambda p: (p["job_full_name"], p["build_number"]) == ("c", 1), 422, "bad c#1")
    report = agent.run()
    assert report.exit_code == 1 and report.dead == 2 and report.sent == 7
    expected = sorted(
        (j, n) for j in "abc" for n in (1, 2, 3) if (j, n) not in {("a", 2), ("c", 1)}
    )
    assert sent(sei) == expected
    with StateFile(settings.agent.state_file) as state:
        jobs = state.jobs(GUID)
        assert jobs["a"].dead[2]["status"] == 400 and jobs["a"].dead[2]["message"] == "bad a#2"
        assert jobs["c"].dead[1]["status"] == 422 and jobs["c"].dead[1]["message"] == "bad c#1"
    sei.clear_rejects()
    posts = len(sei.requests)
    assert agent.run().exit_code == 0  # a dead letter waits for an operator, not resent alone
    assert len(sei.requests) == posts


# -- Jenkins -------------------------------------------------------------------------------


def test_jenkins_500_502_and_timeouts_on_some_requests_are_retried(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("p", "pipeline")
    jenkins.add_job("f")
    for _ in range(2):
        jenkins.add_build("p", stages=STAGES)
        jenkins.add_build("f")
    jenkins.inject_fault(r"^/api/json", status=502)
    jenkins.inject_fault(r"^/job/f/api/json", status=500)
    jenkins.inject_fault(r"/runs/1/nodes/$", delay=1.0)  # longer than JENKINS_TIMEOUT
    jenkins.inject_fault(r"/runs/2/nodes/3/steps/$", status=503)
    agent = Agent(tuned(settings, jenkins={"timeout": 0.3}))
    report = agent.run()
    assert report.exit_code == 0, report.summary()
    assert sent(sei) == [("f", 1), ("f", 2), ("p", 1), ("p", 2)]
    for payload in sei.accepted:
        if payload["job_full_name"] == "p":
            stages = payload["job_run"]["stages"]
            assert [s["displayName"] for s in stages] == ["build", "test"]
            assert all(s["steps"] for s in stages)


def test_stage_reads_failing_past_retries_hold_the_build_back_not_send_it_bare(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    """SEI keeps the first write, so a build sent without its stages could never get them."""
    jenkins.add_job("p", "pipeline")
    jenkins.add_job("f")
    jenkins.add_build("p", stages=STAGES)
    jenkins.add_build("f")
    jenkins.inject_fault(r"/runs/1/nodes/$", status=502, times=3)  # outlasts 2 retries
    first = agent.run()
    assert first.exit_code == 1 and first.failed_jobs == 1
    assert sent(sei) == [("f", 1)]
    assert agent.run().exit_code == 0
    [payload] = sei.posts_for("p", 1)
    assert len(payload["job_run"]["stages"]) == 2


def test_upstream_build_gone_404_stops_the_chain_and_the_build_is_sent(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("build")
    jenkins.add_job("deploy")
    jenkins.add_build("build")
    upstream = {
        "_class": "hudson.model.Cause$UpstreamCause",
        "shortDescription": "Started by upstream project build number 1",
        "upstreamBuild": 1,
        "upstreamProject": "build",
        "upstreamUrl": "job/build/",
    }
    jenkins.add_build("deploy", causes=[upstream])
    jenkins.inject_fault(r"^/job/build/1/api/json", status=404, times=5)
    report = agent.run()
    assert report.exit_code == 0
    [payload] = sei.posts_for("deploy", 1)
    [trigger] = payload["trigger_chain"]
    assert (trigger["id"], trigger["type"], trigger["job_run_number"]) == (
        "build",
        "UpstreamCause",
        "1",
    )
    assert not trigger.get("direct_parents")


def test_build_404_after_listing_does_not_strip_stages_from_the_next_builds(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("p", "pipeline")
    for _ in range(4):
        jenkins.add_build("p", stages=STAGES)
    # build 2 is rotated away between the listing and the read of its stages
    run_2 = r"^/(job/p/2/|blue/rest/organizations/jenkins/pipelines/p/runs/2/)"
    jenkins.inject_fault(run_2, status=404, times=9)
    report = Agent(tuned(settings, sei={"concurrency": 1})).run()
    assert report.exit_code == 0
    for number in (1, 3, 4):
        [payload] = sei.posts_for("p", number)
        assert "job_run" in payload, f"p #{number} was sent without its stages"


MANIFEST = {"artifact": {"type": "jar", "location": "s3://b/a.jar", "name": "a", "qualifier": "1"}}


@pytest.mark.parametrize("chunked", [False, True], ids=["length declared", "chunked"])
def test_a_manifest_over_the_cap_is_left_unread_said_too_large_and_the_build_sent(
    agent: Agent,
    jenkins: JenkinsSim,
    sei: SeiStandIn,
    caplog: pytest.LogCaptureFixture,
    chunked: bool,
) -> None:
    """A 400 MB manifest once took 440 MB of memory and was then called "not JSON"."""
    jenkins.add_job("app")
    jenkins.add_build("app", artifacts=["artifact-manifest.json", "sei-artifacts.json"])
    huge = Streamed(400 << 20, head=b'{"artifacts": [', chunked=chunked)
    jenkins.artifact_content[("app", 1, "artifact-manifest.json")] = huge
    jenkins.artifact_content[("app", 1, "sei-artifacts.json")] = json.dumps(MANIFEST).encode()
    with caplog.at_level("WARNING"):
        report = agent.run()
    assert report.exit_code == 0 and sent(sei) == [("app", 1)]
    [payload] = sei.posts_for("app", 1)
    assert [a["name"] for a in payload["artifacts"]] == ["a"]  # the other manifest still counts
    assert "app #1: artifact-manifest.json is too large (over 10 MiB); ignored" in caplog.text
    assert "not JSON" not in caplog.text
    wait_until(lambda: huge.hung_up, 5, "the agent to hang up")
    print(f"400 MB manifest, {'chunked' if chunked else 'length declared'}: {huge.sent:,} served")
    assert huge.sent < 32 << 20  # the cap, and what the sockets' buffers took in meanwhile


def test_a_manifest_nested_too_deep_is_left_out_with_a_warning(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    jenkins.add_job("app")
    jenkins.add_build("app", artifacts=["artifact-manifest.json", "sei-artifacts.json"])
    deep = b"[" * 100_000 + b"]" * 100_000
    jenkins.artifact_content[("app", 1, "artifact-manifest.json")] = deep
    jenkins.artifact_content[("app", 1, "sei-artifacts.json")] = json.dumps(MANIFEST).encode()
    with caplog.at_level("WARNING"):
        report = agent.run()
    assert report.exit_code == 0 and sent(sei) == [("app", 1)]
    assert [a["name"] for a in sei.posts_for("app", 1)[0]["artifacts"]] == ["a"]
    assert "app #1: artifact-manifest.json is nested too deep to be read; ignored" in caplog.text


def test_login_page_with_status_200_exits_3_with_a_clear_message(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jobs_with_builds(jenkins, ["a"], 1)
    jenkins.inject_fault(r"^/api/json", login_page=True, times=10)
    result = cli("sync")
    assert result.code == 3, result.stderr
    assert "HTML page instead of JSON" in result.stderr
    assert "JENKINS_API_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    assert sei.requests == []


def test_login_page_on_a_stage_read_stops_the_run_and_records_nothing_wrong(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("p", "pipeline")
    jenkins.add_build("p", stages=STAGES)
    jenkins.inject_fault(r"/nodes/$", login_page=True)
    with pytest.raises(JenkinsUnavailable, match="HTML page"):
        agent.run()
    assert sei.requests == []
    assert agent.run().exit_code == 0
    assert len(sei.posts_for("p", 1)[0]["job_run"]["stages"]) == 2


def test_truncated_json_past_retries_on_discovery_exits_3_without_traceback(
    cli: Cli, jenkins: JenkinsSim
) -> None:
    jobs_with_builds(jenkins, ["a"], 1)
    jenkins.inject_fault(r"^/api/json", truncate=True, times=3)  # JENKINS_RETRIES=2
    result = cli("sync")
    assert result.code == 3, result.stderr
    assert "malformed JSON" in result.stderr and "Traceback" not in result.stderr


def test_truncated_json_past_retries_on_one_job_does_not_stop_the_others(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jobs_with_builds(jenkins, ["a", "b"], 2)
    jenkins.inject_fault(r"^/job/a/api/json", truncate=True, times=3)
    first = agent.run()
    assert first.exit_code == 1 and first.failed_jobs == 1
    assert sent(sei) == [("b", 1), ("b", 2)]
    assert agent.run().exit_code == 0
    assert sent(sei) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]


def test_backfill_listing_read_ahead_failing_fails_its_own_job_only(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    """Backfill reads each job's listing while the job before it is handled; an error there
    belongs to that job, not to the one being handled, nor to the run."""
    jobs_with_builds(jenkins, ["a", "b", "c"], 2)
    jenkins.inject_fault(r"^/job/b/api/json", status=500, times=3)
    first = agent.run("backfill")
    assert first.exit_code == 1 and first.failed_jobs == 1
    assert sent(sei) == [("a", 1), ("a", 2), ("c", 1), ("c", 2)]
    assert agent.by_kind["builds"] == 3 + 2  # one per job, plus b's two retries
    assert agent.run("backfill").exit_code == 0
    assert sent(sei) == [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("c", 1), ("c", 2)]


@pytest.mark.parametrize(
    "body",
    [
        '{"jobs": null}',
        "{}",
        '{"jobs": [null, 3, "x", {"name": 5}, {"name": "a", "nextBuildNumber": "2",'
        ' "lastBuild": {"number": "x", "timestamp": null}}]}',
        '{"jobs": [{"name": "a", "nextBuildNumber": 3, "lastBuild": []}]}',
    ],
)
def test_odd_discovery_answers_do_not_crash_and_the_next_run_catches_up(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn, body: str
) -> None:
    jobs_with_builds(jenkins, ["a"], 2)
    jenkins.inject_fault(r"^/api/json", status=200, body=body)
    assert agent.run().exit_code in (0, 1)
    assert agent.run().exit_code == 0
    assert sent(sei) == [("a", 1), ("a", 2)]


def test_odd_builds_in_a_listing_never_stop_the_good_ones(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn, settings: Settings
) -> None:
    """Nulls, numbers, wrong types and missing fields beside two good builds."""
    jobs_with_builds(jenkins, ["a"], 2)
    good = [jenkins.build("a", 2), jenkins.build("a", 1)]
    odd: list[Any] = [
        None,
        3,
        "x",
        {"number": "x"},
        {"number": 7, "timestamp": good[0]["timestamp"] - 5, "building": False, "result": None},
        {"number": 6, "timestamp": "yesterday", "result": "SUCCESS"},
        {"number": 5, "timestamp": good[0]["timestamp"] - 9, "result": "SUCCESS", "actions": 7},
    ]
    listing = json.dumps({"builds": [odd[0], odd[1], good[0], *odd[2:], good[1]]})
    jenkins.inject_fault(r"^/job/a/api/json", status=200, body=listing)
    report = agent.run()
    print("odd builds:", report.summary())
    assert report.exit_code in (0, 1), report.summary()
    assert ("a", 1) in sent(sei) and ("a", 2) in sent(sei)
    assert sei.dropped == []
    with StateFile(settings.agent.state_file) as state:  # the state stays readable
        assert state.jobs(GUID)["a"].sent.contains(1, good[1]["timestamp"])
    assert agent.run().exit_code in (0, 1)  # and the next run starts


@pytest.mark.parametrize("odd", [{"number": 2}, {"number": 2, "timestamp": None}])
def test_a_build_without_start_time_neither_crashes_nor_corrupts_the_state(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn, odd: dict[str, Any]
) -> None:
    jobs_with_builds(jenkins, ["a", "b"], 1)
    listing = json.dumps({"builds": [{**odd, "result": "SUCCESS"}, jenkins.build("a", 1)]})
    jenkins.inject_fault(r"^/job/a/api/json", status=200, body=listing)
    agent.run()  # {"number": 2}: KeyError 'timestamp' from Collector._sync_job's finish()
    jenkins.add_build("a")
    assert agent.run().exit_code == 0  # {"timestamp": null}: StateError, anchor [2, null]
    assert sent(sei) == [("a", 1), ("a", 2), ("b", 1)]


def test_odd_stage_answers_never_send_null_durations(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("p", "pipeline")
    jenkins.add_build("p", stages=STAGES)
    nodes = '[null, 3, {"id": null}, {"id": "9", "displayName": "x", "durationInMillis": null}]'
    jenkins.inject_fault(r"/runs/1/nodes/$", status=200, body=nodes)
    jenkins.inject_fault(r"/nodes/9/steps/$", status=200, body='[{"id": 1}, null]')
    report = agent.run()
    print("odd stages:", report.summary(), sei.accepted and sei.accepted[0].get("job_run"))
    assert report.exit_code in (0, 1), report.summary()
    assert sei.dropped == []  # nothing SEI would silently discard (null durations)
    assert agent.run().exit_code in (0, 1)


# Found by the fuzz and fault suite (tests/test_fuzz.py): each test fails without its fix.

DEEP_JSON = "[" * 100_000 + "]" * 100_000  # deeper than Python's JSON parser goes


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or r.exc_text]


def test_jenkins_json_nested_too_deep_is_malformed_json_not_a_crash(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """The parser's RecursionError ended the run with a traceback, the other jobs unsent."""
    jobs_with_builds(jenkins, ["a", "b"], 1)
    jenkins.inject_fault(r"^/job/a/api/json", status=200, body=DEEP_JSON, times=3)
    first = agent.run()
    assert first.failed_jobs == 1 and sent(sei) == [("b", 1)]
    assert agent.run().exit_code == 0 and sent(sei) == [("a", 1), ("b", 1)]
    assert tracebacks(caplog) == []


def test_sei_json_nested_too_deep_is_not_seis_answer(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """The same RecursionError on SEI's answer failed the build with a traceback, where any
    answer that is not SEI's stops the run and keeps every build."""
    jobs_with_builds(jenkins, ["a"], 1)
    sei.fail_next(1, status=202, body=DEEP_JSON)
    report = agent.run()
    assert report.exit_code == 3 and "not SEI's JSON" in str(report.sei_down)
    assert tracebacks(caplog) == []
    assert agent.run().exit_code == 0 and sent(sei) == [("a", 1)]


def test_a_lone_surrogate_in_a_node_id_is_encoded_as_java_does(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """quote() raised UnicodeEncodeError on a Blue Ocean node id holding a lone surrogate,
    failing the build with a traceback on every run; Java's String.getBytes(UTF_8), which
    Jenkins encodes URLs with, writes it as '?'."""
    assert job_path(("x\ud800y",)) == "job/x%3Fy/"
    jenkins.add_job("p", "pipeline")
    jenkins.add_build("p", stages=STAGES)
    node = {"id": "a\udfff", "displayName": "odd", "state": "FINISHED", "result": "SUCCESS"}
    jenkins.inject_fault(r"/runs/1/nodes/$", status=200, body=json.dumps([node]))
    report = Agent(tuned(settings, jenkins={"stage_source": "blueocean"})).run()
    assert report.exit_code == 0 and sent(sei) == [("p", 1)]
    assert jenkins.count("/nodes/a%3F/steps/$") == 1
    assert tracebacks(caplog) == []


def test_wfapi_stages_that_are_not_a_list_are_none(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's `"stages": 5`: iterating an int failed the build with a traceback on every
    run."""
    jenkins.add_job("p", "pipeline")
    jenkins.add_build("p", stages=STAGES)
    jenkins.inject_fault(r"/wfapi/describe$", status=200, body='{"stages": 5}')
    report = Agent(tuned(settings, jenkins={"stage_source": "wfapi"})).run()
    assert report.exit_code == 0 and sent(sei) == [("p", 1)]
    assert tracebacks(caplog) == []


@pytest.mark.parametrize(
    "odd",
    [{"number": "1"}, {"timestamp": None}, {"number": 0}, None],
    ids=["number-text", "no-start-time", "number-0", "not-an-object"],
)
def test_a_listing_entry_that_cannot_be_identified_keeps_the_anchor(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn, odd: dict[str, Any] | None
) -> None:
    """Build #1 listed without a usable number or start time was skipped and the anchor moved
    past it: listed properly on the next run, it was never sent."""
    jenkins.add_job("a")
    builds = [jenkins.add_build("a") for _ in range(2)]
    entry = 5 if odd is None else {**builds[0], **odd}
    listing = json.dumps({"builds": [builds[1], entry]})
    jenkins.inject_fault(r"^/job/a/api/json", status=200, body=listing)
    agent.run()
    assert sent(sei) == [("a", 2)]
    assert agent.run().exit_code == 0
    assert sent(sei) == [("a", 1), ("a", 2)]


def test_a_name_too_long_for_a_url_fails_its_job_only(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx refuses a URL of 100,000 characters (a name from an answer) with InvalidURL,
    which nothing caught: the run ended with a traceback, the other jobs unsent."""
    jobs_with_builds(jenkins, ["a"], 1)
    last = {"number": 1, "timestamp": jenkins.build("a", 1)["timestamp"]}
    jobs = [
        {"name": name, "url": f"{jenkins.url}job/{name}/", "nextBuildNumber": 2, "lastBuild": last}
        for name in ("a", "x" * 100_000)
    ]
    discovery = json.dumps({"url": jenkins.url, "jobs": jobs})
    jenkins.inject_fault(r"^/api/json$", status=200, body=discovery)
    report = agent.run()
    assert report.failed_jobs == 1 and sent(sei) == [("a", 1)]
    assert tracebacks(caplog) == []


# -- one agent per state file --------------------------------------------------------------


def test_second_agent_on_a_locked_state_file_exits_2_at_once(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jobs_with_builds(jenkins, ["a"], 1)
    path = Path(cli.env["AGENT_STATE_FILE"])
    with StateFile(path):
        started = time.monotonic()
        result = cli("sync")
        took = time.monotonic() - started
    assert result.code == 2, result.stderr
    assert "in use by another agent" in result.stderr and str(path) in result.stderr
    assert took < 5  # at once: interpreter start, no waiting for the lock
    assert sei.requests == [] and jenkins.count() == 0


def test_two_cli_agents_at_once_the_second_exits_2_the_first_finishes(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    """The first agent is frozen (SIGSTOP) mid-run, lock held, while the second starts."""
    jobs_with_builds(jenkins, ["a", "b"], 2)
    sei.delay_next(1, 1.0)  # keeps the first agent inside its run when it is frozen
    first = cli.start("sync")
    try:
        deadline = time.monotonic() + 20
        while not sei.requests:
            assert first.poll() is None and time.monotonic() < deadline, "first agent not sending"
            time.sleep(0.005)
        first.send_signal(signal.SIGSTOP)
        second = cli("sync")
        first.send_signal(signal.SIGCONT)
        _, stderr = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert second.code == 2 and "in use by another agent" in second.stderr, second.stderr
    assert first.returncode == 0, stderr
    assert sent(sei) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, "<html><title>Sign in</title><form action=/login></form></html>"),
        (200, "OK"),
        (301, None),
        (404, None),
        (405, None),
    ],
    ids=["login-page", "text", "redirect", "not-found", "not-allowed"],
)
def test_an_answer_that_is_not_seis_stops_the_run_and_keeps_every_build(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, status: int, body: str | None
) -> None:
    """A login portal, a proxy or a wrong base URL answering: nothing counts as delivered."""
    jobs_with_builds(jenkins, ["a", "b"], 3)
    sei.fail_next(100, status=status, body=body)
    result = cli("sync")
    assert result.code == 3, result.stderr
    assert "SEI_BASE_URL" in result.stderr and "Traceback" not in result.stderr
    assert len(sei.requests) <= int(cli.env.get("SEI_CONCURRENCY", "16"))  # no retry storm
    sent_in_state = cli.state["controllers"][GUID]["jobs"]
    assert all(not job["sent"] and not job.get("dead") for job in sent_in_state.values())
    sei.clear_script()
    assert cli("sync").code == 0
    assert sent(sei) == [(job, n) for job in ("a", "b") for n in (1, 2, 3)]


def test_check_fails_on_an_answer_that_is_not_seis(cli: Cli, sei: SeiStandIn) -> None:
    sei.fail_next(1, status=200, body="<html>Sign in</html>")
    result = cli("check")
    assert result.code == 3 and "not SEI's JSON" in result.stdout, result.stdout


def test_408_is_retried(cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn) -> None:
    jobs_with_builds(jenkins, ["a"], 1)
    sei.fail_next(1, status=408)
    assert cli("sync").code == 0
    assert sent(sei) == [("a", 1)] and len(sei.requests) == 2
