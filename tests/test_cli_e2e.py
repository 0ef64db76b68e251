"""End to end: the real CLI (agent.cli.main, in process) against the simulator and stand-in."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import GUID, JENKINS_TOKEN, SEI_KEY, Cli, now_ms, sent
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn


def test_first_sync_sends_every_finished_build_then_nothing(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("app", "pipeline")
    jenkins.add_folder("team/backend")
    jenkins.add_job("team/backend/api", "freestyle")
    for _ in range(3):
        jenkins.add_build("app")
    jenkins.add_build("team/backend/api", result="FAILURE")
    jenkins.add_build("team/backend/api", building=True)

    first = cli("sync")
    assert first.code == 0, first.stderr
    assert sent(sei) == [("app", 1), ("app", 2), ("app", 3), ("team/jobs/backend/jobs/api", 1)]
    payload = next(p for p in sei.accepted if p["job_full_name"] == "team/jobs/backend/jobs/api")
    assert payload["result"] == "FAILURE"
    assert payload["pipeline"] == "api"
    assert payload["instance_guid"] == GUID
    assert payload["web_url"] == jenkins.url + "job/team/job/backend/job/api/1/"
    assert payload["start_time"] == jenkins.build("team/backend/api", 1)["timestamp"]

    jenkins.reset_requests()
    posts = len(sei.requests)
    again = cli("sync")
    assert again.code == 0, again.stderr
    assert len(sei.requests) == posts  # nothing sent twice
    assert jenkins.count() <= 2  # discovery + the job with a running build


def test_running_build_overtaken_is_sent_when_it_finishes(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("deploy", "pipeline")
    jenkins.add_build("deploy", building=True)  # 1, still running
    jenkins.add_build("deploy")  # 2 finishes first
    assert cli("sync").code == 0
    assert sent(sei) == [("deploy", 2)]
    jenkins.finish_build("deploy", 1, result="ABORTED")
    result = cli("sync")
    assert result.code == 0, result.stderr
    assert sent(sei) == [("deploy", 1), ("deploy", 2)]
    assert sei.posts_for("deploy", 1)[0]["result"] == "ABORTED"


def test_a_recreated_job_never_overwrites_what_sei_shows_of_its_old_builds(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    """SEI keys runs on (job, number): the new #1..#3 would store no run of their own, put their
    stages into the old runs on the reused node ids and replace their artifacts. They are not
    sent, said once, counted, and shown by `state show`; #4 on is sent as usual."""
    stages = [{"id": "3", "name": "Build", "status": "SUCCESS", "duration": 1000}]
    jenkins.add_job("svc", "pipeline")
    for _ in range(3):
        jenkins.add_build("svc", stages=stages, artifacts=["old.jar"])
    assert cli("sync").code == 0
    shown = {n: sei.kept("svc", n) for n in (1, 2, 3)}
    jenkins.delete_job("svc")
    jenkins.add_job("svc", "pipeline")
    failing = [{**stages[0], "status": "FAILED", "name": "Compile"}]
    for _ in range(5):  # 1..5 again, started later
        jenkins.add_build("svc", result="FAILURE", stages=failing, artifacts=["new.jar"])
    result = cli("sync")
    assert result.code == 0, result.stderr
    assert sent(sei) == [("svc", n) for n in (1, 2, 3, 4, 5)]
    assert {n: sei.kept("svc", n) for n in (1, 2, 3)} == shown  # the old runs untouched
    assert sei.kept("svc", 4)["result"] == "FAILURE"
    assert result.stderr.count("SEI already holds these numbers") == 1
    assert "svc: 3 builds not sent (#1, #2, #3)" in result.stderr
    assert "3 not sent (SEI holds their numbers)" in result.stderr

    again = cli("sync")  # recorded: never tried again, never said again
    assert again.code == 0 and "holds these numbers" not in again.stderr
    assert len(sei.accepted) == 5
    shown_state = cli("state", "show", "--json")
    [job] = json.loads(shown_state.stdout)["controllers"][0]["jobs"]
    assert job["number_taken"] == [{"first": 1, "last": 3}]
    assert "#1-#3" in cli("state", "show").stdout


def test_folders_branches_with_slash_and_context_path(tmp_path: Path, sei: SeiStandIn) -> None:
    from conftest import JENKINS_USER, base_env

    sim = JenkinsSim(
        context_path="/ci",
        user=JENKINS_USER,
        token=JENKINS_TOKEN,
        clock_ms=now_ms() - 3_600_000,
        root_url="https://wrong.example/",
    )
    with sim:
        sim.add_folder("org/platform")
        sim.add_multibranch("org/platform/web")
        branch = sim.add_branch("org/platform/web", "feature/login")
        sim.add_build(
            branch,
            build_data=[
                {
                    "sha": "b" * 40,
                    "branch": "feature/login",
                    "remote": "https://git.example/web.git",
                }
            ],
        )
        env = {**base_env(tmp_path), "JENKINS_URL": sim.url.rstrip("/"), "SEI_BASE_URL": sei.url}
        result = Cli(env, tmp_path)("sync")
    assert result.code == 0, result.stderr
    [payload] = sei.accepted
    # plugin 1.0.46's names: SEI's link, job/<segment> each, resolves in Jenkins
    assert payload["job_full_name"] == "org/jobs/platform/jobs/web/branches/feature%2Flogin"
    assert payload["qualified_name"] == "org/platform/web/feature/login"
    assert payload["pipeline"] == "web"
    assert payload["branch_name"] == "feature/login"
    assert payload["repo_url"] == "https://git.example/web.git"
    # requests went to the configured address; SEI gets the root URL Jenkins reports, the one
    # users click (here a wrong one: SEI_INSTANCE_URL is how an operator overrides it)
    path = "job/org/job/platform/job/web/job/feature%252Flogin/1/"
    assert payload["web_url"] == "https://wrong.example/" + path
    assert payload["instance_url"] == "https://wrong.example/"


def test_lookback_then_backfill_history(cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn) -> None:
    day = 86_400_000
    jenkins.add_job("old")
    start = now_ms() - 40 * day
    for i in range(5):
        jenkins.add_build("old", timestamp=start + i * day)  # 40..36 days ago
    jenkins.add_build("old")  # within the last day
    jenkins.add_job("idle")
    jenkins.add_build("idle", timestamp=start)
    first = cli("sync")
    assert first.code == 0
    assert sent(sei) == [("old", 6)]
    # said once: what the lookback left, and how to send it
    assert "up to 6 older builds of 2 jobs seen for the first time" in first.stderr
    assert "AGENT_LOOKBACK, 1d" in first.stderr and "backfill --since" in first.stderr
    assert "older builds" not in cli("sync").stderr

    from datetime import UTC, datetime

    since = datetime.fromtimestamp((start + day) / 1000, UTC).strftime("%Y-%m-%d")
    until = datetime.fromtimestamp((start + 3 * day) / 1000, UTC).strftime("%Y-%m-%d")
    result = cli("backfill", "--since", since, "--until", until)
    assert result.code == 0, result.stderr
    assert sent(sei) == [("old", 2), ("old", 3), ("old", 4), ("old", 6)]
    assert cli("backfill", "--since", "2000-01-01").code == 0
    assert sent(sei) == [("idle", 1)] + [("old", n) for n in range(1, 7)]
    posts = len(sei.requests)
    assert cli("backfill", "--since", "2000-01-01").code == 0
    assert len(sei.requests) == posts


def test_backfill_jobs_glob_and_progress_lines(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    for name in ("a/one", "a/two", "b/three"):
        jenkins.add_job(name)
        jenkins.add_build(name)
    result = cli("backfill", "--since", "2020-01-01", "--jobs", "a/*")
    assert result.code == 0, result.stderr
    assert sent(sei) == [("a/jobs/one", 1), ("a/jobs/two", 1)]
    assert "backfill done" in result.stderr


def test_a_selection_that_selects_nothing_says_so(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("team/app")
    jenkins.add_build("team/app")
    none = cli("backfill", "--since", "2000-01-01", "--jobs", "app")
    assert none.code == 0 and "--jobs app selects none of the 1 jobs" in none.stderr
    future = cli("backfill", "--since", "2099-01-01")
    assert future.code == 0
    assert "no build of the 1 selected jobs started between --since and --until" in future.stderr
    assert sei.accepted == []


def test_backfill_progress_lines_move_inside_one_big_job(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a terminal, a line every period, even while one job's builds are read."""
    from agent.pipeline import backfill

    monkeypatch.setattr(backfill, "PROGRESS_LOG_SECONDS", 0.0)
    jenkins.add_job("big")
    for _ in range(30):
        jenkins.add_build("big")
    result = cli("backfill", "--since", "2020-01-01")
    assert result.code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "builds examined" in line]
    assert len(lines) >= 20 and all("0/1 jobs done" in line for line in lines)
    assert "30 builds examined" in lines[-1]


def test_one_build_refused_is_dead_lettered_others_go_on(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("x")
    for _ in range(3):
        jenkins.add_build("x")
    sei.reject(lambda p: p.get("build_number") == 2, 400, "job_name field is missing in request")
    first = cli("sync")
    assert first.code == 1
    assert sent(sei) == [("x", 1), ("x", 3)]
    dead = cli.state["controllers"][GUID]["jobs"]["x"]["dead"]
    assert dead["2"]["message"] == "job_name field is missing in request"
    assert dead["2"]["status"] == 400
    sei.clear_rejects()
    posts = len(sei.requests)
    assert cli("sync").code == 0  # a dead letter is not retried by itself
    assert len(sei.requests) == posts


def test_sei_outage_leaves_builds_unsent_for_the_next_run(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("x")
    for _ in range(3):
        jenkins.add_build("x")
    sei.fail_always(503)
    down = cli("sync")
    assert down.code == 1
    assert "503" in down.stderr
    assert sei.accepted == []
    state = cli.state["controllers"][GUID]["jobs"]["x"]
    assert state["sent"] == []
    sei.fail_always(None)
    up = cli("sync")
    assert up.code == 0, up.stderr
    assert sent(sei) == [("x", 1), ("x", 2), ("x", 3)]


def test_retry_after_429_is_honoured_and_delivered(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("x")
    jenkins.add_build("x")
    sei.fail_next(2, status=429, retry_after="0")
    result = cli("sync")
    assert result.code == 0, result.stderr
    assert sent(sei) == [("x", 1)]
    assert len(sei.posts_for("x", 1)) == 3


def test_refused_key_stops_with_exit_3_and_marks_nothing(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("x")
    jenkins.add_build("x")
    cli.env["SEI_API_KEY"] = "wrong-key-123"
    result = cli("sync")
    assert result.code == 3
    assert "SEI refused the API key" in result.stderr
    assert "wrong-key-123" not in result.stderr
    assert cli.state["controllers"][GUID]["jobs"]["x"]["sent"] == []  # nothing marked sent
    cli.env["SEI_API_KEY"] = SEI_KEY
    assert cli("sync").code == 0
    assert sent(sei) == [("x", 1)]


def test_jenkins_refusing_the_token_exits_3(cli: Cli, jenkins: JenkinsSim) -> None:
    cli.env["JENKINS_API_TOKEN"] = "not-the-token"
    result = cli("sync")
    assert result.code == 3
    assert "JENKINS_API_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_servers_exit_3(cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn) -> None:
    jenkins.add_job("x")
    jenkins.add_build("x")
    cli.env["SEI_BASE_URL"] = "http://127.0.0.1:9/sei/api"
    result = cli("sync")
    assert result.code == 3
    assert "SEI cannot be reached" in result.stderr
    cli.env["JENKINS_URL"] = "http://127.0.0.1:9/"
    result = cli("sync")
    assert result.code == 3
    assert "Jenkins at http://127.0.0.1:9/ cannot be reached" in result.stderr
    assert "Traceback" not in result.stderr


def test_log_rotated_running_build_is_dropped_quietly(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("x")
    jenkins.add_build("x", building=True)
    jenkins.add_build("x")
    assert cli("sync").code == 0
    jenkins.delete_build("x", 1)
    result = cli("sync")
    assert result.code == 0, result.stderr
    assert "open" not in cli.state["controllers"][GUID]["jobs"]["x"]


def test_dry_run_prints_payloads_and_changes_nothing(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("x")
    jenkins.add_build(
        "x",
        parameters=[
            {"_class": "hudson.model.PasswordParameterValue", "name": "SECRET"},
            {"_class": "hudson.model.StringParameterValue", "name": "ENV", "value": "prod"},
        ],
    )
    result = cli("sync", "--dry-run", "--output", "-")
    assert result.code == 0, result.stderr
    [payload] = result.lines()
    assert payload["job_run_params"] == [
        {"type": "StringParameterValue", "name": "ENV", "value": "prod"}
    ]
    assert sei.requests == []
    assert not Path(cli.env["AGENT_STATE_FILE"]).exists()


def test_output_file_records_what_was_sent(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, tmp_path: Path
) -> None:
    jenkins.add_job("x")
    jenkins.add_build("x")
    out = tmp_path / "sent.jsonl"
    assert cli("sync", "--output", str(out)).code == 0
    [line] = out.read_text().splitlines()
    assert json.loads(line) == sei.accepted[0]


def test_secrets_never_reach_logs_state_or_output(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("x")
    jenkins.add_build("x")
    sei.fail_next(1, status=503)
    result = cli("--log-level", "DEBUG", "sync", "--output", "-")
    assert result.code == 0, result.stderr
    state_text = Path(cli.env["AGENT_STATE_FILE"]).read_text()
    for secret in (JENKINS_TOKEN, SEI_KEY):
        assert secret not in result.stderr
        assert secret not in result.stdout
        assert secret not in state_text


def test_config_file_before_or_after_the_command(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, tmp_path: Path
) -> None:
    jenkins.add_job("x")
    jenkins.add_build("x")
    config = tmp_path / "agent.yaml"
    config.write_text(f"sei:\n  instance_name: from-yaml\n  base_url: {sei.url}\n")
    env_name = cli.env.pop("SEI_INSTANCE_NAME")
    assert (
        cli("--config", str(config), "sync", "--dry-run", "--output", "-").lines()[0][
            "instance_name"
        ]
        == "from-yaml"
    )
    assert (
        cli("sync", "--config", str(config), "--dry-run", "--output", "-").lines()[0][
            "instance_name"
        ]
        == "from-yaml"
    )
    cli.env["SEI_INSTANCE_NAME"] = env_name  # the environment beats the file
    assert (
        cli("sync", "--config", str(config), "--dry-run", "--output", "-").lines()[0][
            "instance_name"
        ]
        == env_name
    )


BAD_SETTINGS = [
    ({"JENKINS_URL": ""}, "JENKINS_URL"),
    ({"JENKINS_URL": "not a url"}, "JENKINS_URL"),
    ({"SEI_INSTANCE_GUID": "1234"}, "SEI_INSTANCE_GUID"),
    ({"SEI_BASE_URL": "", "SEI_ENVIRONMENT": "prod9"}, "SEI_ENVIRONMENT"),
    ({"SEI_BASE_URL": ""}, "SEI_BASE_URL or SEI_ENVIRONMENT"),
    ({"AGENT_INTERVAL": "-5"}, "AGENT_INTERVAL"),
    ({"AGENT_LOOKBACK": "soon"}, "AGENT_LOOKBACK"),
    ({"SEI_API_KEY": ""}, "SEI_API_KEY"),
    ({"JENKINS_API_TOKEN": ""}, "JENKINS_API_TOKEN"),
    ({"AGENT_LOG_FORMAT": "xml"}, "AGENT_LOG_FORMAT"),
]


@pytest.mark.parametrize(("change", "named"), BAD_SETTINGS)
def test_bad_settings_exit_2_naming_the_setting(
    cli: Cli, change: dict[str, str], named: str
) -> None:
    for key, value in change.items():
        if value:
            cli.env[key] = value
        else:
            cli.env.pop(key, None)
    result = cli("sync")
    assert result.code == 2, result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_files_exit_2(cli: Cli, tmp_path: Path) -> None:
    missing = cli("--config", str(tmp_path / "nope.yaml"), "sync")
    assert missing.code == 2 and "nope.yaml" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("sei:\n  base_url: [unclosed\n  api_key: x\n")
    result = cli("--config", str(broken), "sync")
    assert result.code == 2
    assert "broken.yaml" in result.stderr and "line 3" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("setting", ["JENKINS_CA_BUNDLE", "SEI_CA_BUNDLE"])
def test_a_ca_bundle_that_is_not_pem_exits_2_naming_the_setting(
    cli: Cli, tmp_path: Path, setting: str
) -> None:
    bundle = tmp_path / "ca.der"
    bundle.write_bytes(b"\x30\x82\x03\x0a" + bytes(range(256)))  # DER, say, not PEM
    cli.env[setting] = str(bundle)
    for command in ("sync", "check"):  # check says it in a row of its table
        result = cli(command)
        said = result.stderr + result.stdout
        assert result.code == 2, said
        assert f"invalid setting {setting}: CA bundle {bundle} is not a PEM file" in said
        assert "Traceback" not in said


def test_bad_dates_and_usage_exit_2(cli: Cli) -> None:
    assert cli("backfill", "--since", "yesterday").code == 2
    result = cli("backfill", "--since", "2024-02-01", "--until", "2024-01-01")
    assert result.code == 2 and "--until" in result.stderr
    assert cli("backfill").code == 2  # --since is required
    assert cli("frobnicate").code == 2


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"version": 1, "controllers": ', "JSONDecodeError"),
        ('{"version": 99, "controllers": {}}', "unknown format version 99"),
    ],
)
def test_corrupt_state_exits_2_and_is_left_untouched(
    cli: Cli, jenkins: JenkinsSim, content: str, why: str
) -> None:
    path = Path(cli.env["AGENT_STATE_FILE"])
    path.parent.mkdir(parents=True)
    path.write_text(content)
    result = cli("sync")
    assert result.code == 2
    assert str(path) in result.stderr and why in result.stderr
    assert "fix or move it away, the agent does not overwrite it" in result.stderr
    assert path.read_text() == content


def test_version_and_module_entry_point(cli: Cli) -> None:
    result = cli("--version")
    assert result.code == 0 and result.stdout.startswith("jenkins-sei-agent ")


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]
)
def test_a_signal_stops_a_backfill_cleanly_and_the_next_one_sends_the_rest_once(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, sig: signal.Signals, code: int
) -> None:
    """A CronJob deadline or `docker stop` in the middle of a backfill loses nothing."""
    for job in range(4):
        jenkins.add_job(f"team/svc{job}")
        for _ in range(6):
            jenkins.add_build(f"team/svc{job}")
    sei.latency = 0.05  # slow enough to be stopped in the middle
    cli.env["SEI_CONCURRENCY"] = "2"
    proc = cli.start("backfill", "--since", "2000-01-01")
    deadline = time.monotonic() + 20
    while len(sei.accepted) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, "no delivery started"
        time.sleep(0.01)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert f"backfill stopped by {sig.name}" in stderr and "Traceback" not in stderr
    stopped_at = len(sei.accepted)
    assert 3 <= stopped_at < 24
    sei.latency = 0
    assert cli("backfill", "--since", "2000-01-01").code == 0
    posts = Counter(key for key in sent(sei))
    assert len(posts) == 24 and set(posts.values()) == {1}  # nothing sent twice


def test_a_signal_during_jenkins_retries_exits_like_any_stop(cli: Cli, jenkins: JenkinsSim) -> None:
    """A stop that ends the retries of a failing Jenkins is a stop (143), not an outage (3)."""
    jenkins.add_job("app")
    jenkins.inject_fault("api/json", status=503, times=100)
    cli.env.update(JENKINS_RETRY_WAIT="30", JENKINS_RETRIES="5")
    proc = cli.start("sync")
    deadline = time.monotonic() + 20
    while not jenkins.count("api/json"):
        assert proc.poll() is None and time.monotonic() < deadline, "no request made"
        time.sleep(0.01)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 143, stderr
    assert time.monotonic() - started < 5
    assert "sync stopped by SIGTERM while retrying: Jenkins answered HTTP 503" in stderr
    assert "check JENKINS_URL" not in stderr and "Traceback" not in stderr
