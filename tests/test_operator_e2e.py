"""Operator commands end to end: check, register, state, satellite.yml with several controllers,
and the dry run, each as the real CLI in a subprocess against the simulator and the SEI stand-in."""

from __future__ import annotations

import json
import os
import pty
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_process import AgentProcess, sample, wait_until
from conftest import GUID, JENKINS_TOKEN, JENKINS_USER, SEI_KEY, Cli, Result, now_ms, sent
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

from agent.state import StateFile

P = "jenkins_sei_agent_"
GUID_B = "7d1e1c52-9a0b-4c3e-8f7a-2b6d5e4f3a21"
SECRETS = (JENKINS_TOKEN, SEI_KEY, "token-b-5678")


def no_secrets(result: Result) -> None:
    for secret in SECRETS:
        assert secret not in result.stdout and secret not in result.stderr
    assert "Traceback" not in result.stderr


def custom_cicd_posts(sei: SeiStandIn) -> list[dict[str, Any]]:
    return [r for r in sei.requests if r["route"] == "/v1/custom-cicd"]


# -- check ----------------------------------------------------------------------------------


def test_check_passes_and_sends_no_build(cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn) -> None:
    jenkins.add_folder("team")
    jenkins.add_job("team/api", "pipeline")
    jenkins.add_job("web")
    jenkins.add_build("web")
    cli.env["JENKINS_EXCLUDE"] = "web"
    result = cli("check")
    assert result.code == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Jenkins 2.440.3 at " + jenkins.url in out
    assert "authenticated as admin" in out
    assert "Blue Ocean 1.27.11, then pipeline-stage-view (wfapi) 2.34 for runs it has" in out
    assert "2 jobs, 1 selected" in out
    assert "API key accepted" in out
    assert f"instance {GUID} (ci-main)" in out
    assert "FAIL" not in out
    assert [r["body"] for r in custom_cicd_posts(sei)] == [{}]  # no build data
    assert sei.accepted == []
    assert jenkins.count(r"/whoAmI/api/json") == 1
    assert jenkins.count(r"/pluginManager/api/json") == 1
    assert jenkins.count(r"crumbIssuer") == 0  # an API token needs no crumb
    no_secrets(result)


@pytest.mark.parametrize(
    ("plugins", "env", "expected", "verdict"),
    [
        ({"wfapi": True}, {}, "pipeline-stage-view (wfapi) 2.34", "ok"),
        ({}, {}, "none (no stage plugin): builds are sent without stages", "warn"),
        (
            {"graphview": True, "wfapi": True},
            {},
            "pipeline-graph-view 998.vc30deece0e36, then pipeline-stage-view (wfapi) 2.34",
            "ok",
        ),
        (
            {"graphview": True, "refused": True},
            {},
            "pipeline-graph-view, then Blue Ocean, pipeline-stage-view (wfapi) for runs it has "
            "no answer for, each tried on the first run that needs it (the plugin list is "
            "refused (HTTP 403))",
            "warn",
        ),
        ({"wfapi": True}, {"JENKINS_STAGE_SOURCE": "none"}, "JENKINS_STAGE_SOURCE=none", "ok"),
    ],
)
def test_check_names_the_stage_source(
    tmp_path: Path,
    sei: SeiStandIn,
    plugins: dict[str, bool],
    env: dict[str, str],
    expected: str,
    verdict: str,
) -> None:
    """`check` reports the source the agent would use, from the same detection."""
    from conftest import base_env

    refused = plugins.get("refused", False)
    with JenkinsSim(
        user=JENKINS_USER,
        token=JENKINS_TOKEN,
        wfapi=plugins.get("wfapi", False),
        blueocean=plugins.get("blueocean", False),
        graphview=plugins.get("graphview", False),
    ) as sim:
        if refused:
            sim.inject_fault(r"pluginManager", status=403, times=10)
        env = {**base_env(tmp_path), "JENKINS_URL": sim.url, "SEI_BASE_URL": sei.url, **env}
        result = Cli(env, tmp_path)("check")
        plugin_lists = sim.count(r"/pluginManager/api/json")
    assert result.code == 0, result.stdout
    [line] = [line for line in result.stdout.splitlines() if "stage source" in line]
    assert verdict in line and expected in line
    assert plugin_lists == 1  # forced or not: check looks for the official plugin too
    if refused:
        assert "hint: listing plugins needs Overall/SystemRead" in result.stdout


def test_check_says_whether_the_watch_can_read_the_executors(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("app", "pipeline")
    jenkins.add_build("app", building=True)
    result = cli("check")
    assert result.code == 0, result.stdout
    [line] = [line for line in result.stdout.splitlines() if line.strip().startswith("watch")]
    assert "ok" in line and "every 10s in `run`; 1 builds running now" in line
    jenkins.computer_denied = True
    result = cli("check")
    assert result.code == 0, result.stdout  # a warning: the cycles need no executors
    [line] = [line for line in result.stdout.splitlines() if line.strip().startswith("watch")]
    assert "warn" in line and "off:" in line
    assert "the token needs Overall/Read" in result.stdout


def test_check_wrong_jenkins_token_fails_with_a_hint(cli: Cli, sei: SeiStandIn) -> None:
    cli.env["JENKINS_API_TOKEN"] = "token-b-5678"
    result = cli("check")
    assert result.code == 3
    [line] = [line for line in result.stdout.splitlines() if "credentials" in line]
    assert "FAIL" in line and "HTTP 401" in line
    assert "hint: check JENKINS_USER and JENKINS_API_TOKEN" in result.stdout
    assert "API key accepted" in result.stdout  # the SEI half is still checked
    no_secrets(result)


def test_check_says_when_a_login_page_answered(cli: Cli, jenkins: JenkinsSim) -> None:
    """An SSO proxy, or an expired session, answers 200 with Jenkins' sign-in page."""
    jenkins.inject_fault("whoAmI", login_page=True)
    result = cli("check")
    assert result.code == 3
    [line] = [line for line in result.stdout.splitlines() if line.strip().startswith("Jenkins ")]
    assert "FAIL" in line and "answered with no JSON" in line
    assert "hint: a login page or a proxy answered instead of Jenkins' API" in result.stdout


def test_check_wrong_sei_key_and_missing_guid(cli: Cli) -> None:
    cli.env["SEI_API_KEY"] = "token-b-5678"
    result = cli("check")
    assert result.code == 3
    assert "SEI refused the API key" in result.stdout
    assert "hint: check SEI_API_KEY" in result.stdout
    no_secrets(result)
    del cli.env["SEI_INSTANCE_GUID"]
    result = cli("check")
    assert result.code == 2  # a missing setting comes first
    assert "missing setting: SEI_INSTANCE_GUID" in result.stdout
    assert "jenkins-sei-agent register" in result.stdout


def test_check_unreachable_servers(cli: Cli) -> None:
    cli.env["JENKINS_URL"] = "http://127.0.0.1:9/"
    cli.env["SEI_BASE_URL"] = "http://127.0.0.1:9/sei/api"
    result = cli("check")
    assert result.code == 3
    assert "Jenkins at http://127.0.0.1:9/ cannot be reached" in result.stdout
    assert "SEI cannot be reached" in result.stdout
    assert result.stdout.count("FAIL") == 2
    no_secrets(result)


def test_check_shows_each_invalid_setting_as_a_row(cli: Cli, sei: SeiStandIn) -> None:
    cli.env.update(JENKINS_URL="ftp://ci", SEI_INSTANCE_GUID="0b5c7a5e-2f5d")
    result = cli("check")
    assert result.code == 2 and result.stderr == ""
    rows = [line for line in result.stdout.splitlines() if "FAIL" in line]
    assert len(rows) == 2
    assert "invalid setting JENKINS_URL: 'ftp://ci' is not an http(s) URL" in rows[0]
    assert "invalid setting SEI_INSTANCE_GUID: '0b5c7a5e-2f5d' is not a UUID" in rows[1]
    assert result.stdout.splitlines()[0].split() == ["CHECK", "RESULT", "DETAIL"]
    assert custom_cicd_posts(sei) == []


def test_check_state_file_folder_lock_and_owner(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, tmp_path: Path
) -> None:
    """The state file as sync will need it: a folder it can write, a lock it can take, and
    sections written for these controllers; check itself writes no state."""
    state = Path(cli.env["AGENT_STATE_FILE"])
    result = cli("check")
    assert result.code == 0 and f"{state}: new" in result.stdout
    assert not state.parent.exists()  # check creates no folder

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    cli.env["AGENT_STATE_FILE"] = str(blocked / "state.json")
    result = cli("check")
    assert result.code == 2
    [row] = [line for line in result.stdout.splitlines() if line.startswith("state file")]
    assert "FAIL" in row and "is not a writable folder" in row
    assert "hint: AGENT_STATE_FILE must be a file on a writable, persistent volume" in (
        result.stdout
    )

    cli.env["AGENT_STATE_FILE"] = str(state)
    jenkins.add_job("x")
    jenkins.add_build("x")
    assert cli("sync").code == 0
    before = state.read_bytes()
    with StateFile(state):  # a running agent holds it
        result = cli("check")
    assert result.code == 0
    assert f"{state}: 1 builds sent; in use by another agent now" in result.stdout
    assert "sync and backfill on this file exit 2 at once until it stops" in result.stdout

    moved = jenkins.url.replace("127.0.0.1", "localhost")
    cli.env["JENKINS_URL"] = moved
    result = cli("check")
    assert f"instance {GUID} was last used with {jenkins.url}, not {moved}" in result.stdout
    cli.env["JENKINS_URL"] = jenkins.url
    cli.env["SEI_INSTANCE_GUID"] = GUID_B
    result = cli("check")
    assert result.code == 0
    assert (
        f"{jenkins.url} was sent under instance {GUID} (1 builds); SEI_INSTANCE_GUID is now "
        f"{GUID_B}"
    ) in result.stdout
    assert state.read_bytes() == before


# -- satellite.yml: several controllers -----------------------------------------------------


class _Indented(yaml.SafeDumper):
    """Lists indented under their key, as the satellite.yml documentation writes them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def write_satellite(path: Path, sei: SeiStandIn, *controllers: dict[str, Any]) -> Path:
    integrations = [{"id": "1", "application": "github", "url": "https://github.com"}]
    integrations += [{"application": "jenkins", **c} for c in controllers]
    body = {
        "satellite": {"tenant": "acct", "api_key": SEI_KEY, "url": sei.url},
        "integrations": integrations,
    }
    path.write_text(yaml.dump(body, Dumper=_Indented, sort_keys=False))
    return path


@pytest.fixture
def second() -> Iterator[JenkinsSim]:
    sim = JenkinsSim(user="reader", token="token-b-5678", clock_ms=now_ms() - 3_600_000)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def satellite(
    tmp_path: Path, cli: Cli, jenkins: JenkinsSim, second: JenkinsSim, sei: SeiStandIn
) -> Path:
    """A satellite.yml with two Jenkins integrations; the environment's per-controller settings
    stay set to show that they do not leak into them."""
    assert sei.known_guids is not None  # the fixture's stand-in drops unknown GUIDs
    sei.known_guids.add(GUID_B)
    del cli.env["SEI_API_KEY"]  # from satellite.api_key
    a = {
        "id": "4711",
        "url": jenkins.url,
        "username": JENKINS_USER,
        "api_key": JENKINS_TOKEN,
        "metadata": {"instance_guid": GUID, "instance_name": "ci-a"},
    }
    b = {
        "id": "4712",
        "url": second.url,
        "username": "reader",
        "api_key": "token-b-5678",
        "metadata": {"instance_guid": GUID_B},
    }
    return write_satellite(tmp_path / "satellite.yml", sei, a, b)


def test_satellite_sync_serves_every_controller_with_its_own_instance(
    cli: Cli, jenkins: JenkinsSim, second: JenkinsSim, sei: SeiStandIn, satellite: Path
) -> None:
    jenkins.add_job("app")
    jenkins.add_build("app")
    second.add_job("app")
    second.add_build("app")
    second.add_build("app")
    result = cli("--config", str(satellite), "sync")
    assert result.code == 0, result.stderr
    by_guid = sorted(
        (p["instance_guid"], p["instance_name"], p["build_number"]) for p in sei.accepted
    )
    host = "127.0.0.1"  # no instance_name in metadata: the controller's host name
    assert by_guid == sorted([(GUID, "ci-a", 1), (GUID_B, host, 1), (GUID_B, host, 2)])
    assert {p["instance_url"] for p in sei.accepted} == {jenkins.url, second.url}
    sections = cli.state["controllers"]
    assert set(sections) == {GUID, GUID_B}
    assert sections[GUID_B]["url"] == second.url
    posts = len(sei.requests)
    assert cli("--config", str(satellite), "sync").code == 0
    assert len(sei.requests) == posts
    no_secrets(result)


def test_satellite_one_controller_down_the_other_is_served(
    cli: Cli, jenkins: JenkinsSim, second: JenkinsSim, sei: SeiStandIn, satellite: Path
) -> None:
    second.add_job("x")
    second.add_build("x")
    jenkins.stop()
    result = cli("--config", str(satellite), "sync")
    assert result.code == 3
    assert f"Jenkins at {jenkins.url} cannot be reached" in result.stderr
    assert [(p["instance_guid"], p["build_number"]) for p in sei.accepted] == [(GUID_B, 1)]
    no_secrets(result)


def test_satellite_check_has_a_section_per_controller(
    cli: Cli, jenkins: JenkinsSim, second: JenkinsSim, satellite: Path
) -> None:
    result = cli("--config", str(satellite), "check")
    assert result.code == 0, result.stdout
    assert f"{satellite}: 2 Jenkins controllers" in result.stdout
    assert f"controller {jenkins.url} (integration 4711)" in result.stdout
    assert f"controller {second.url} (integration 4712)" in result.stdout
    assert "authenticated as reader" in result.stdout
    data = yaml.safe_load(satellite.read_text())
    data["integrations"][2]["api_key"] = "wrong-token-000"
    satellite.write_text(yaml.safe_dump(data))
    result = cli("--config", str(satellite), "check")
    assert result.code == 3
    assert f"check integrations[2].username in {satellite}" in result.stdout
    assert "wrong-token-000" not in result.stdout + result.stderr


def test_satellite_mistakes_are_named(cli: Cli, sei: SeiStandIn, tmp_path: Path) -> None:
    path = write_satellite(
        tmp_path / "satellite.yml",
        sei,
        {"id": "1", "url": "not a url", "metadata": {"instance_guid": GUID}},
    )
    result = cli("--config", str(path), "sync")
    assert result.code == 2
    assert f"integrations[1].url in {path}" in result.stderr
    twice = {"metadata": {"instance_guid": GUID}}
    write_satellite(path, sei, {"url": "http://a/", **twice}, {"url": "http://b/", **twice})
    result = cli("--config", str(path), "sync")
    assert result.code == 2 and "every controller needs its own" in result.stderr
    write_satellite(path, sei)
    result = cli("--config", str(path), "check")
    assert result.code == 2 and "no integration with 'application: jenkins'" in result.stdout
    assert "Traceback" not in result.stderr + result.stdout


# -- register -------------------------------------------------------------------------------

AGENT_YAML = """\
# the team's agent settings
sei:
  instance_name: old-name   # replaced by register
  timeout: 30
agent:
  lookback: 24h             # keep
"""


def test_register_writes_the_guid_into_agent_yaml_and_sync_uses_it(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, tmp_path: Path
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(AGENT_YAML)
    for name in ("SEI_INSTANCE_GUID", "SEI_INSTANCE_NAME"):
        del cli.env[name]
    result = cli(
        "--config",
        str(config),
        "register",
        "--integration-id",
        "4711",
        "--name",
        "jenkins-main",
        "--write-config",
    )
    assert result.code == 0, result.stderr
    guid = result.stdout.strip()
    assert str(uuid.UUID(guid)) == guid
    [instance] = sei.instances
    assert instance == {
        "integration_id": "4711",
        "name": "jenkins-main",
        "url": jenkins.url,
        "type": "jenkins",
        "id": guid,
    }
    text = config.read_text()
    assert "# the team's agent settings" in text and "# keep" in text
    assert yaml.safe_load(text) == {
        "sei": {
            "instance_name": "jenkins-main",
            "timeout": 30,
            "instance_guid": guid,
            "integration_id": "4711",
        },
        "agent": {"lookback": "24h"},
    }
    jenkins.add_job("x")
    jenkins.add_build("x")
    assert cli("--config", str(config), "sync").code == 0
    [payload] = sei.accepted
    assert (payload["instance_guid"], payload["instance_name"]) == (guid, "jenkins-main")
    no_secrets(result)


def test_register_into_satellite_metadata(
    cli: Cli, jenkins: JenkinsSim, second: JenkinsSim, sei: SeiStandIn, satellite: Path
) -> None:
    data = yaml.safe_load(satellite.read_text())
    del data["integrations"][2]["metadata"]["instance_guid"]
    text = yaml.dump(data, Dumper=_Indented, sort_keys=False)
    text = text.replace("metadata: {}", "metadata: {}  # here")
    satellite.write_text("# satellite of team a\n" + text)
    satellite.chmod(0o600)
    before = satellite.read_text().splitlines()
    result = cli("--config", str(satellite), "register", "--name", "ci-b")
    assert result.code == 2 and "choose one with --integration-id (4711, 4712)" in result.stderr
    assert sei.instances == []
    result = cli(
        "--config",
        str(satellite),
        "register",
        "--integration-id",
        "4712",
        "--name",
        "ci-b",
        "--write-config",
    )
    assert result.code == 0, result.stderr
    guid = result.stdout.strip()
    assert sei.instances[0]["url"] == second.url
    after = satellite.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [
        (
            "    metadata: {}  # here",
            f"    metadata: {{instance_guid: {guid}, instance_name: ci-b}} # here",
        )
    ]
    assert stat.S_IMODE(satellite.stat().st_mode) == 0o600
    second.add_job("y")
    second.add_build("y")
    assert cli("--config", str(satellite), "sync").code == 0
    assert [(p["instance_guid"], p["instance_name"]) for p in sei.accepted] == [(guid, "ci-b")]


def register(cli: Cli, config: Path, *extra: str) -> Result:
    return cli(
        "--config", str(config), "register", "--integration-id", "4711", "--name", "ci", *extra
    )


def test_register_replaces_a_guid_only_with_force_and_changes_no_other_line(
    cli: Cli, sei: SeiStandIn, tmp_path: Path
) -> None:
    config = tmp_path / "agent.yaml"
    held = "8d5c1b2e-4f0a-4c55-9d1e-3a7b6c2f9e10"
    config.write_text(
        "sei:\n"
        f"  instance_guid: {held}  # from the first register\n"
        "  timeout:   30\n"
        "jenkins:\n"
        "  url:  'http://ci:8080/'\n"
    )
    before = config.read_text().splitlines()
    result = register(cli, config, "--write-config")
    assert result.code == 2 and f"already holds instance_guid {held}" in result.stderr
    assert "--force" in result.stderr and sei.instances == []
    assert config.read_text().splitlines() == before
    result = register(cli, config, "--write-config", "--force")
    assert result.code == 0, result.stderr
    guid = result.stdout.strip()
    assert config.read_text().splitlines() == [
        "sei:",
        f"  instance_guid: {guid}  # from the first register",
        "  timeout:   30",
        "  instance_name: ci",
        "  integration_id: '4711'",
        "jenkins:",
        "  url:  'http://ci:8080/'",
    ]


def test_register_refuses_before_sei_when_other_lines_would_change(
    cli: Cli, sei: SeiStandIn, tmp_path: Path
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("sei:\n  timeout: 30\nagent: {\n  lookback: 24h\n}\n")
    before = config.read_text()
    result = register(cli, config, "--write-config")
    assert result.code == 2, result.stderr
    assert "without changing its layout" in result.stderr
    assert "add instance_guid, instance_name and integration_id" in result.stderr
    assert sei.instances == [] and config.read_text() == before
    assert "Traceback" not in result.stderr


def test_register_mistakes(cli: Cli, sei: SeiStandIn, tmp_path: Path) -> None:
    result = cli("register", "--integration-id", "1", "--name", "n", "--write-config")
    assert result.code == 2 and "--write-config needs --config" in result.stderr
    result = cli("register", "--name", "n")
    assert result.code == 2 and "--integration-id" in result.stderr
    cli.env["SEI_API_KEY"] = "token-b-5678"
    result = cli("register", "--integration-id", "1", "--name", "n")
    assert result.code == 3 and "SEI refused the API key" in result.stderr
    assert sei.instances == []
    no_secrets(result)


# -- sync --dry-run -------------------------------------------------------------------------


def test_dry_run_with_a_state_sends_nothing_and_writes_nothing(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("x")
    jenkins.add_build("x")
    assert cli("sync").code == 0
    path = Path(cli.env["AGENT_STATE_FILE"])
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    requests = len(sei.requests)
    jenkins.add_build("x")
    jenkins.add_build("x", building=True)
    result = cli("sync", "--dry-run", "--output", "-")
    assert result.code == 0, result.stderr
    assert [p["build_number"] for p in result.lines()] == [2]
    assert len(sei.requests) == requests
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    assert cli("sync").code == 0  # the dry run left build 2 to be sent
    assert sent(sei) == [("x", 1), ("x", 2)]


# -- state ----------------------------------------------------------------------------------


@pytest.fixture
def synced(cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn) -> Cli:
    """Job `x`: builds 1-4 sent, 5 refused by SEI (a dead letter), 6 still running."""
    jenkins.add_job("x")
    for _ in range(5):
        jenkins.add_build("x")
    jenkins.add_build("x", building=True)
    sei.reject(lambda p: p.get("build_number") == 5, 400, "result field is missing in request")
    assert cli("sync").code == 1
    sei.clear_rejects()
    return cli


def test_state_show_table_and_json(synced: Cli, jenkins: JenkinsSim) -> None:
    result = synced("state", "show")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"instance {GUID} ({jenkins.url})"
    assert lines[1].split() == [
        *("JOB", "SENT", "LAST", "SENT", "PENDING", "DEAD", "LETTERS", "NUMBER", "TAKEN")
    ]
    row = lines[2].split()
    assert row[:3] == ["x", "4", "#4"] and row[-3:] == ["#6", "1", "-"]
    assert "x #5 (HTTP 400, " in result.stdout
    assert "result field is missing in request" in result.stdout
    body = json.loads(synced("state", "show", "--json").stdout)
    [controller] = body["controllers"]
    assert controller["instance_guid"] == GUID
    [job] = controller["jobs"]
    assert job["job"] == "x" and job["builds_sent"] == 4 and job["pending"] == [6]
    assert job["last_sent"]["build"] == 4
    assert job["last_sent"]["start_time"] == jenkins.build("x", 4)["timestamp"]
    assert [d["build"] for d in job["dead_letters"]] == [5]
    assert job["dead_letters"][0]["status"] == 400
    assert job["number_taken"] == []


def test_retry_dead_sends_the_dead_letter_on_the_next_sync(
    synced: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    assert synced("sync").code == 0  # not retried by itself
    assert sei.posts_for("x", 5) == [sei.posts_for("x", 5)[0]]
    result = synced("state", "retry-dead")
    assert result.code == 0 and "1 dead letters in 1 jobs" in result.stdout
    assert "dead" not in synced.state["controllers"][GUID]["jobs"]["x"]
    result = synced("sync")
    assert result.code == 0, result.stderr
    assert len(sei.posts_for("x", 5)) == 2
    assert sent(sei) == [("x", n) for n in range(1, 6)]
    assert all(len(sei.posts_for("x", n)) == 1 for n in range(1, 5))


def test_forget_a_build_and_the_next_sync_resends_it(synced: Cli, sei: SeiStandIn) -> None:
    assert synced("sync").code == 0
    result = synced("state", "forget", "x", "--build", "2", "--build", "5")
    assert result.code == 0, result.stderr
    job = synced.state["controllers"][GUID]["jobs"]["x"]
    assert job["open"] == [2, 5, 6] and "dead" not in job
    requests = len(sei.requests)
    assert synced("sync").code == 0
    resent = sorted(r["body"]["build_number"] for r in sei.requests[requests:])
    assert resent == [2, 5]
    job = synced.state["controllers"][GUID]["jobs"]["x"]
    assert job["open"] == [6]
    assert sorted(n for run in job["sent"] for n in range(run[0], run[1] + 1)) == [1, 2, 3, 4, 5]
    posts = len(sei.requests)
    assert synced("sync").code == 0
    assert len(sei.requests) == posts


def test_forget_a_build_older_than_the_lookback(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    day = 86_400_000
    jenkins.add_job("old")
    for i in range(3):
        jenkins.add_build("old", timestamp=now_ms() - (40 - i) * day)
    jenkins.add_build("old")
    assert cli("sync").code == 0
    assert cli("backfill", "--since", "2000-01-01").code == 0
    assert sent(sei) == [("old", n) for n in range(1, 5)]
    assert cli("state", "forget", "old", "--build", "2").code == 0
    assert cli("sync").code == 0
    assert len(sei.posts_for("old", 2)) == 2
    assert [len(sei.posts_for("old", n)) for n in (1, 3, 4)] == [1, 1, 1]


def test_forget_a_whole_job(synced: Cli, sei: SeiStandIn) -> None:
    result = synced("state", "forget", "x")
    assert result.code == 0 and "treats it as a new job" in result.stdout
    assert "x" not in synced.state["controllers"][GUID]["jobs"]
    assert synced("sync").code == 0
    assert [len(sei.posts_for("x", n)) for n in range(1, 6)] == [2, 2, 2, 2, 2]


def test_state_mistakes_exit_2(synced: Cli) -> None:
    before = Path(synced.env["AGENT_STATE_FILE"]).read_bytes()
    for args, says in [
        (("forget", "nope"), "no job 'nope'"),
        (("forget", "x", "--build", "99"), "#99 is recorded neither as sent nor as refused"),
        (("show", "--instance", GUID_B), f"no instance {GUID_B}"),
        (("reset",), "add --yes"),
    ]:
        result = synced("state", *args)
        assert result.code == 2, args
        assert says in result.stderr
        assert "Traceback" not in result.stderr
    assert Path(synced.env["AGENT_STATE_FILE"]).read_bytes() == before


def test_state_repairs_take_the_lock_and_reads_do_not(synced: Cli) -> None:
    """A running service holds the lock: `state show` still reads, `forget` waits its turn."""
    with StateFile(Path(synced.env["AGENT_STATE_FILE"])):
        shown = synced("state", "show")
        repair = synced("state", "forget", "x")
    assert shown.code == 0 and "JOB" in shown.stdout, shown.stderr
    assert repair.code == 2 and "in use by another agent" in repair.stderr


def test_read_only_commands_need_no_writable_folder(cli: Cli, tmp_path: Path) -> None:
    """--dry-run and `state show` read a state file that does not exist in a folder that
    cannot be created: nothing is written."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    cli.env["AGENT_STATE_FILE"] = str(blocker / "sub" / "state.json")
    assert cli("state", "show").code == 0
    dry = cli("sync", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert not (tmp_path / "blocker").is_dir()


def run_on_a_terminal(cli: Cli, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with a pseudo-terminal as stdin, the answer already typed."""
    leader, follower = pty.openpty()
    try:
        os.write(leader, answer.encode())
        return subprocess.run(
            [sys.executable, "-m", "agent", *args],
            env=cli.env,
            cwd=cli.cwd,
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.close(leader)
        os.close(follower)


def test_reset_asks_on_a_terminal(synced: Cli) -> None:
    declined = run_on_a_terminal(synced, "n\n", "state", "reset")
    assert declined.returncode == 1
    assert "[y/N]" in declined.stderr and "nothing changed" in declined.stderr
    assert synced.state["controllers"][GUID]["jobs"]
    accepted = run_on_a_terminal(synced, "y\n", "state", "reset")
    assert accepted.returncode == 0, accepted.stderr
    assert synced.state["controllers"] == {}


def test_reset_yes_then_sync_starts_afresh(synced: Cli, sei: SeiStandIn) -> None:
    assert synced("state", "reset", "--yes").code == 0
    assert synced.state == {"version": 1, "controllers": {}}
    assert synced("sync").code == 0
    assert len(sei.posts_for("x", 1)) == 2


def test_export_and_import(synced: Cli, tmp_path: Path) -> None:
    original = synced.state
    exported = synced("state", "export")
    assert exported.code == 0
    assert json.loads(exported.stdout) == original
    backup = tmp_path / "backup.json"
    assert synced("state", "export", str(backup)).code == 0
    assert json.loads(backup.read_text()) == original

    assert synced("state", "reset", "--yes").code == 0
    assert synced("state", "import", str(backup)).code == 0  # empty state: nothing to confirm
    assert synced.state == original
    refused = synced("state", "import", str(backup))
    assert refused.code == 2 and "add --yes" in refused.stderr

    bad = tmp_path / "bad.json"
    for content, says in [("{nope", "is not JSON"), ('{"version": 7}', "is not a state export")]:
        bad.write_text(content)
        result = synced("state", "import", str(bad), "--yes")
        assert result.code == 2 and str(bad) in result.stderr and says in result.stderr
    assert synced.state == original


@pytest.mark.parametrize(
    "command",
    [
        ["sync"],
        ["backfill"],
        ["check"],
        ["jobs"],
        ["register"],
        ["state"],
        ["state", "show"],
        ["state", "forget"],
        ["state", "retry-dead"],
        ["state", "reset"],
        ["state", "export"],
        ["state", "import"],
    ],
)
def test_every_command_has_help_with_an_example(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from agent.cli import main

    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    assert "example:\n  jenkins-sei-agent" in capsys.readouterr().out


def test_run_serves_every_controller_one_down_does_not_stop_the_other(
    cli: Cli, jenkins: JenkinsSim, second: JenkinsSim, sei: SeiStandIn, satellite: Path
) -> None:
    """One process, one schedule, a lane per controller; health, status and metrics controller
    by controller."""
    jenkins.add_job("app")
    jenkins.add_build("app")
    second.add_job("app")
    second.stop()  # the second controller is down
    env = {**cli.env, "AGENT_CONFIG": str(satellite)}
    with AgentProcess(env, cli.cwd) as agent:
        wait_until(lambda: len(sei.accepted) == 1, 10, "the first controller's build")
        jenkins.add_build("app")
        wait_until(lambda: len(sei.accepted) == 2, 10, "a later cycle of the first controller")
        # each controller has a lane of its own: the first does not wait for the second's
        # retries to fail
        code, health = wait_until(
            lambda: (h := agent.health())[0] == 503 and h, 15, "the second controller's failure"
        )
        status = agent.status()
        metrics = agent.metrics()
    assert code == 503 and set(health["controllers"]) == {"ci-a", "127.0.0.1"}
    assert health["controllers"]["ci-a"]["status"] == "ok"
    assert health["controllers"]["127.0.0.1"]["status"] == "failing"
    assert "127.0.0.1: the last cycle failed" in health["reason"]
    assert [c["controller"] for c in status["controllers"]] == ["ci-a", "127.0.0.1"]
    assert sample(metrics, P + "builds_sent_total", controller="ci-a", result="SUCCESS") == 2
    assert sample(metrics, P + "cycles_total", controller="127.0.0.1", outcome="failed") >= 1


def test_state_show_lives_with_a_start_time_no_calendar_holds(cli: Cli) -> None:
    path = Path(cli.env["AGENT_STATE_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    far = 10**15  # past the year 9999
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "controllers": {GUID: {"url": None, "jobs": {"x": {"sent": [[1, 2, far, far]]}}}},
            }
        )
    )
    shown = cli("state", "show")
    assert shown.code == 0 and f"{far} ms" in shown.stdout, shown.stderr
