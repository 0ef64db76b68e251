"""The collector in-process against the simulator: request counts, faults, every kind of job."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import JENKINS_TOKEN, JENKINS_USER, Agent, now_ms, sent
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

from agent.config import Settings
from agent.jenkins.client import JenkinsUnavailable


def test_idle_cycle_costs_one_request_for_100_jobs_in_10_folders(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    for f in range(10):
        for j in range(10):
            name = f"folder{f}/job{j}"
            jenkins.add_job(name, "pipeline" if j % 2 else "freestyle")
            jenkins.add_build(name)
    first = agent.run()
    assert first.sent == 100 and first.exit_code == 0
    # discovery: 1; builds: one page per job with new builds (never one per build); stages
    # only for the 50 pipeline runs (Blue Ocean nodes; they have none, so no steps), after one
    # detection of the stage source for the whole controller
    assert agent.by_kind == {"discover": 1, "builds": 100, "detect": 1, "stages": 50}
    jenkins.reset_requests()
    idle = agent.run()
    assert idle.sent == 0
    assert jenkins.count() == 1 <= 5
    jenkins.add_build("folder3/job4")
    jenkins.add_build("folder3/job4")
    jenkins.reset_requests()
    busy = agent.run()
    assert busy.sent == 2
    assert jenkins.count() == 2  # discovery + one page holding both new builds


def each_with_a_new_build(agent: Agent, jenkins: JenkinsSim, jobs: int) -> None:
    """`jobs` jobs, each tracked with a build sent, then one new build each."""
    for j in range(jobs):
        jenkins.add_job(f"job{j}")
        jenkins.add_build(f"job{j}")
    agent.run()
    for j in range(jobs):
        jenkins.add_build(f"job{j}")


def test_sync_lists_the_next_jobs_while_a_job_is_handled(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    """A cycle where many jobs each have a new build: their listings go side by side on the
    lister threads (never more than JENKINS_CONCURRENCY at once), not one after another on the
    thread that applies the answers; the requests are the same."""
    each_with_a_new_build(agent, jenkins, 12)
    jenkins.latency = 0.02  # long enough for listings to meet
    jenkins.reset_requests()
    report = agent.run()
    assert report.sent == 12 and jenkins.count() == 13  # discovery, then a page a job
    assert 2 <= jenkins.peak_in_flight <= agent.settings.jenkins.concurrency


def test_with_sei_down_the_listings_ahead_stop_with_the_run(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    """SEI down halts the run at its first answer: the jobs listed ahead are all the
    controller pays, never a listing of every job with a new build."""
    each_with_a_new_build(agent, jenkins, 30)
    sei.fail_always(503)
    jenkins.reset_requests()
    report = agent.run()
    assert report.sent == 0 and report.sei_down is not None
    # the jobs handled while the first POSTs failed, and those listed ahead: 11-15 of 30 here
    assert 1 <= jenkins.count(r"^/job/") < 30


def test_pages_of_fifty_and_catch_up_beyond_the_newest_hundred(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("busy")
    jenkins.add_build("busy")
    agent.run()
    for _ in range(130):
        jenkins.add_build("busy")
    jenkins.reset_requests()
    report = agent.run()
    assert report.sent == 130
    assert sent(sei) == [("busy", n) for n in range(1, 132)]
    # 131 builds down to the anchor: builds{0,50}, {50,100}, allBuilds{100,150}
    assert jenkins.count(r"job/busy/api/json") == 3
    queries = [q for _, p, q in jenkins.requests if "job/busy" in p]
    assert "allBuilds" in queries[-1] and "allBuilds" not in queries[0]


def test_folders_any_depth_multibranch_and_org_folders(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn, settings: Settings
) -> None:
    deep = "a/b/c/d/e/f/g"
    jenkins.add_job(deep)
    jenkins.add_build(deep)
    jenkins.add_org_folder("github")
    jenkins.add_multibranch("github/repo")
    for branch in ("main", "feature/x", "PR-7"):
        jenkins.add_build(jenkins.add_branch("github/repo", branch))
    jenkins.add_job("m", "maven")
    jenkins.add_build("m")
    jenkins.add_job("mx", "matrix")
    jenkins.add_build("mx")
    report = agent.run()
    assert report.exit_code == 0
    feature = "github/jobs/repo/branches/feature%2Fx"  # plugin 1.0.46's item names
    assert sent(sei) == [
        ("a/jobs/b/jobs/c/jobs/d/jobs/e/jobs/f/jobs/g", 1),
        ("github/jobs/repo/branches/PR-7", 1),
        (feature, 1),
        ("github/jobs/repo/branches/main", 1),
        ("m", 1),
        ("mx", 1),
    ]
    by_name = {p["job_full_name"]: p for p in sei.accepted}
    assert by_name[feature]["branch_name"] == "feature/x"
    assert by_name[feature]["pipeline"] == "repo"
    assert by_name[feature]["qualified_name"] == "github/repo/feature/x"
    # folder_depth 4: the part of the tree deeper than 4 levels costs a request of its own
    assert jenkins.count(r"^/api/json") == 1
    assert jenkins.count(r"^/job/a/job/b/job/c/job/d/api/json") == 1


def test_include_exclude_and_cd_globs(
    jenkins: JenkinsSim, sei: SeiStandIn, settings: Settings
) -> None:
    for name in ("team/build", "team/deploy-prod", "sandbox/try"):
        jenkins.add_job(name)
        jenkins.add_build(name)
    tuned = settings.model_copy(
        update={
            "jenkins": settings.jenkins.model_copy(update={"exclude": ["sandbox/*"]}),
            "agent": settings.agent.model_copy(update={"cd_jobs": ["*/deploy-*"]}),
        }
    )
    Agent(tuned).run()
    assert sent(sei) == [("team/jobs/build", 1), ("team/jobs/deploy-prod", 1)]
    flags = {p["job_full_name"]: (p["ci"], p["cd"]) for p in sei.accepted}
    assert flags == {"team/jobs/build": (True, False), "team/jobs/deploy-prod": (False, True)}


def test_jenkins_errors_on_one_job_do_not_stop_the_others(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    for name in ("a", "b"):
        jenkins.add_job(name)
        jenkins.add_build(name)
    jenkins.inject_fault(r"^/job/a/api/json", status=502, times=3)  # outlasts 2 retries
    report = agent.run()
    assert report.failed_jobs == 1 and report.exit_code == 1
    assert sent(sei) == [("b", 1)]
    again = agent.run()
    assert again.exit_code == 0
    assert sent(sei) == [("a", 1), ("b", 1)]


@pytest.mark.parametrize("fault", [{"status": 500}, {"truncate": True}])
def test_passing_jenkins_faults_are_retried(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn, fault: dict[str, object]
) -> None:
    jenkins.add_job("a")
    jenkins.add_build("a")
    jenkins.inject_fault(r"^/job/a/api/json", times=2, **fault)  # type: ignore[arg-type]
    report = agent.run()
    assert report.exit_code == 0
    assert sent(sei) == [("a", 1)]


def test_login_page_with_status_200_is_a_credentials_problem(
    agent: Agent, jenkins: JenkinsSim
) -> None:
    jenkins.inject_fault(r"^/api/json", login_page=True)
    with pytest.raises(JenkinsUnavailable, match="HTML page"):
        agent.run()


def test_old_jenkins_without_class_fields(
    tmp_path: Path, sei: SeiStandIn, settings: Settings
) -> None:
    old = JenkinsSim(user=JENKINS_USER, token=JENKINS_TOKEN, old_style=True, clock_ms=now_ms())
    with old:
        old.add_folder("legacy")
        old.add_job("legacy/app")
        old.add_build(
            "legacy/app",
            parameters=[{"name": "FLAG", "value": True}],
            build_data=[
                {
                    "sha": "c" * 40,
                    "branch": "refs/remotes/origin/release",
                    "remote": "https://git.example/app.git",
                }
            ],
        )
        tuned = settings.model_copy(
            update={"jenkins": settings.jenkins.model_copy(update={"url": old.url})}
        )
        assert Agent(tuned).run().exit_code == 0
    [payload] = sei.accepted
    assert payload["job_run_params"] == [
        {"type": "BooleanParameterValue", "name": "FLAG", "value": "true"}
    ]
    assert payload["branch_name"] == "release"
    assert payload["user_id"] == "admin"


def test_job_deleted_between_discovery_and_read_is_skipped(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("gone")
    jenkins.add_build("gone")
    jenkins.add_job("kept")
    jenkins.add_build("kept")
    jenkins.inject_fault(r"^/job/gone/api/json", status=404)
    report = agent.run()
    assert report.exit_code == 0
    assert sent(sei) == [("kept", 1)]


def test_backfill_streams_all_history(agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn) -> None:
    jenkins.add_job("long")
    start = now_ms() - 400 * 86_400_000
    for i in range(260):
        jenkins.add_build("long", timestamp=start + i * 60_000)
    report = agent.run("backfill")
    assert report.sent == 260
    assert agent.jenkins_requests == 1 + 6  # 260 builds / 50 per page, the last page short


@pytest.mark.parametrize(
    "body", ['["not", "an", "object"]', '{"jobs": 7}', '{"jobs": [1, {"name": null}, {"x": 1}]}']
)
def test_unexpected_shapes_from_jenkins_do_not_crash(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn, body: str
) -> None:
    from agent.jenkins.client import JenkinsError

    jenkins.add_job("a")
    jenkins.add_build("a")
    jenkins.inject_fault(r"^/api/json", status=200, body=body)
    if body.startswith("["):
        with pytest.raises(JenkinsError, match="JSON list, not a dict"):
            agent.run()
    else:
        assert agent.run().exit_code == 0
    assert agent.run().exit_code == 0  # the next cycle reads normally
    assert [(p["job_full_name"], p["build_number"]) for p in sei.accepted] == [("a", 1)]


def test_unexpected_build_listing_is_retried_next_run(
    agent: Agent, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("a", "pipeline")
    jenkins.add_build("a")
    jenkins.inject_fault(r"^/job/a/api/json", status=200, body='{"builds": {"1": 2}}')
    jenkins.inject_fault(r"/nodes/$", status=200, body='{"not": "a list"}')
    assert agent.run().sent == 0  # a listing without a list of builds: nothing to send yet
    assert agent.run().failed_jobs == 1  # stages unreadable: not sent without them
    assert agent.run().exit_code == 0
    assert len(sei.accepted) == 1 and "job_run" in sei.accepted[0]
