"""From the example files to a watched service (issue 23), through the real CLI in process:
register from the examples, misspelt JENKINS_* variables, JENKINS_URL inside the controller,
moving from the official plugin, and the `jobs` command."""

from __future__ import annotations

import json
import re
import shutil
import string
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import JENKINS_TOKEN, JENKINS_USER, ROOT, Cli
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

from agent.config import ConfigError, hints, load_controllers
from agent.config.models import PLACEHOLDER_GUID


@pytest.fixture
def no_container(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The shell path, whatever runs the tests (process 1 may be anything)."""
    monkeypatch.setattr(hints, "PID1_CMDLINE", tmp_path / "no-such-process")


def the_image_is_process_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As in the agent's image: process 1 runs its ENTRYPOINT."""
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"/usr/local/bin/python\x00/usr/local/bin/jenkins-sei-agent\x00run\x00")
    monkeypatch.setattr(hints, "PID1_CMDLINE", cmdline)


# -- 1. register from the examples ---------------------------------------------------------


@pytest.mark.parametrize("held", [PLACEHOLDER_GUID, "", None])
def test_register_runs_whatever_the_guid_holds(
    cli: Cli, sei: SeiStandIn, held: str | None, no_container: None
) -> None:
    if held is None:
        del cli.env["SEI_INSTANCE_GUID"]
    else:
        cli.env["SEI_INSTANCE_GUID"] = held
    result = cli("register", "--integration-id", "4711")
    assert result.code == 0, result.stderr
    assert str(uuid.UUID(result.stdout.strip())) == result.stdout.strip()
    assert sei.instances[0]["name"] == "ci-main"  # --name defaults to SEI_INSTANCE_NAME


def test_the_placeholder_is_refused_with_the_command_for_the_shell(
    cli: Cli, sei: SeiStandIn, no_container: None
) -> None:
    cli.env["SEI_INSTANCE_GUID"] = PLACEHOLDER_GUID
    cli.env["SEI_INTEGRATION_ID"] = "4711"
    result = cli("sync")
    assert result.code == 2 and "Traceback" not in result.stderr
    assert "SEI_INSTANCE_GUID holds the example's all-zero placeholder" in result.stderr
    assert (
        "jenkins-sei-agent register --integration-id 4711 --name ci-main, then export "
        "SEI_INSTANCE_GUID=<the GUID it prints>" in result.stderr
    )
    assert sei.accepted == []
    cli.env["SEI_INSTANCE_GUID"] = ""  # empty: missing, with the same fix
    result = cli("sync")
    assert result.code == 2 and "missing setting: SEI_INSTANCE_GUID" in result.stderr
    assert "register --integration-id 4711 --name ci-main" in result.stderr


def test_the_fix_names_the_container_and_the_pod_command(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cli.env["SEI_INSTANCE_GUID"] = PLACEHOLDER_GUID
    the_image_is_process_1(monkeypatch, tmp_path)
    result = cli("sync")
    assert result.code == 2
    assert "docker run --rm --env-file agent.env jenkins-sei-agent register" in result.stderr
    assert "docker compose -f deploy/docker-compose.yml run --rm sei-agent register" in (
        result.stderr
    )
    cli.env["KUBERNETES_SERVICE_HOST"] = "10.0.0.1"
    result = cli("check")
    assert result.code == 2
    assert "hint: kubectl apply -f deploy/kubernetes/register-job.yaml" in result.stdout
    assert "kubectl logs job/jenkins-sei-agent-register" in result.stdout


def test_register_write_config_replaces_the_examples_placeholder_without_force(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, tmp_path: Path, no_container: None
) -> None:
    config = tmp_path / "agent.yaml"
    shutil.copy(ROOT / "config" / "agent.example.yaml", config)
    for name in ("SEI_INSTANCE_GUID", "SEI_INSTANCE_NAME"):
        del cli.env[name]
    result = cli("--config", str(config), "sync")
    assert result.code == 2
    assert f"sei.instance_guid in {config} holds the example's all-zero placeholder" in (
        result.stderr
    )
    assert f"jenkins-sei-agent --config {config} register --integration-id ID" in result.stderr
    assert "--write-config" in result.stderr
    result = cli("--config", str(config), "register", "--integration-id", "4711", "--write-config")
    assert result.code == 0, result.stderr
    guid = result.stdout.strip()
    assert yaml.safe_load(config.read_text())["sei"]["instance_guid"] == guid
    again = cli("--config", str(config), "register", "--integration-id", "4711", "--write-config")
    assert again.code == 2 and "--force" in again.stderr  # a real GUID still needs it
    jenkins.add_job("x")
    jenkins.add_build("x")
    assert cli("--config", str(config), "sync").code == 0
    assert [p["instance_guid"] for p in sei.accepted] == [guid]


# -- 3. misspelt JENKINS_* variables --------------------------------------------------------


def test_a_misspelt_jenkins_variable_the_command_reads_is_an_error(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_folder("team-a")
    for job in ("team-a/build", "team-a/deploy-prod"):
        jenkins.add_job(job)
        jenkins.add_build(job)
    cli.env["JENKINS_EXCLUDES"] = "team-a/deploy-*"
    result = cli("sync")
    assert result.code == 2 and sei.accepted == []
    assert (
        "JENKINS_EXCLUDES is not a setting of the agent; did you mean JENKINS_EXCLUDE? This "
        "command reads JENKINS_EXCLUDE, which is not set: rename the variable" in result.stderr
    )
    del cli.env["JENKINS_EXCLUDES"]
    cli.env["JENKINS_API_TOKN"] = "x"
    del cli.env["JENKINS_API_TOKEN"], cli.env["JENKINS_USER"]
    result = cli("check")
    assert result.code == 2 and "did you mean JENKINS_API_TOKEN?" in result.stdout


def test_misspellings_of_settings_already_set_or_not_read_are_warnings(
    cli: Cli, sei: SeiStandIn, no_container: None
) -> None:
    cli.env.update(
        JENKINS_USERNAME="admin",  # JENKINS_USER is set too
        JENKINS_PASSWORD="pw",  # and JENKINS_API_TOKEN
        JENKINS_EXCLUDES="x",  # `state` reads no Jenkins setting
        AGENT_LOG_FORMAT="json",
    )
    result = cli("state", "show")
    assert result.code == 0, result.stderr
    warnings = [json.loads(line) for line in result.stderr.splitlines()]
    assert {(w["level"], w["message"]) for w in warnings} == {
        ("warning", f"{name} is not a setting of the agent, ignored; did you mean {meant}?")
        for name, meant in [
            ("JENKINS_USERNAME", "JENKINS_USER"),
            ("JENKINS_PASSWORD", "JENKINS_API_TOKEN"),
            ("JENKINS_EXCLUDES", "JENKINS_EXCLUDE"),
        ]
    }


def test_jenkins_own_variables_stay_quiet(cli: Cli, sei: SeiStandIn) -> None:
    cli.env.update(
        JENKINS_HOME="/var/jenkins_home",
        JENKINS_SECRET="abc",
        JENKINS_AGENT_NAME="agent-1",
        JENKINS_AGENT_WORKDIR="/home/jenkins/agent",
        JENKINS_UC="https://updates.jenkins.io",
        JENKINS_VERSION="2.440.3",
        JENKINS_JAVA_OPTS="-Xmx1g",
        JENKINS_TUNNEL="jenkins-agent:50000",
        JENKINS_WEB_SOCKET="true",
        JENKINS_SERVICE_HOST="10.0.0.2",
        JENKINS_PORT_8080_TCP="tcp://10.0.0.2:8080",
        JENKINS_NODE_COOKIE="x",
    )
    result = cli("sync")
    assert result.code == 0, result.stderr
    assert "is not a setting" not in result.stderr


# -- 4. JENKINS_URL must be the controller's root -------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["sync"], ["backfill", "--since", "2024-01-01"], ["run"], ["register"], ["jobs"]],
)
def test_a_folder_url_is_refused_by_every_command_naming_the_root(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, command: list[str]
) -> None:
    cli.env["JENKINS_URL"] = jenkins.url + "job/team-a/job/app/"
    result = cli.in_process(
        *command, *(["--integration-id", "1"] if command == ["register"] else [])
    )
    assert result.code == 2 and "Traceback" not in result.stderr
    assert (
        f"is the URL of a job or folder, not of the controller; set it to {jenkins.url} "
        in result.stderr
    )
    assert jenkins.requests == [] and sei.requests == []


def test_a_url_below_the_root_jenkins_reports_is_refused(
    cli: Cli, sei: SeiStandIn, tmp_path: Path
) -> None:
    with JenkinsSim(user=None, token=None, context_path="/ci/team") as inside:
        inside.root_url = inside.url.removesuffix("team/")
        inside.add_job("app")
        inside.add_build("app")
        cli.env["JENKINS_URL"] = inside.url
        del cli.env["JENKINS_USER"], cli.env["JENKINS_API_TOKEN"]
        result = cli("sync")
        assert result.code == 2 and sei.accepted == []
        assert f"whose root URL Jenkins reports as {inside.root_url}" in result.stderr
        result = cli("check")
        assert result.code == 2 and f"reports as {inside.root_url}" in result.stdout


# -- 6. jobs --------------------------------------------------------------------------------


def test_jobs_lists_the_selection_with_the_names_sei_shows_and_the_state(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_folder("team-a")
    jenkins.add_job("team-a/build")
    jenkins.add_job("team-a/deploy-prod", kind="pipeline")
    jenkins.add_folder("platform")
    jenkins.add_multibranch("platform/web")
    branch = jenkins.add_branch("platform/web", "feature/login")
    for job in ("team-a/build", "team-a/deploy-prod", branch):
        jenkins.add_build(job)
    jenkins.add_job("idle")
    cli.env["JENKINS_EXCLUDE"] = "team-a/deploy-*"
    assert cli("sync").code == 0
    shown_by_sei = {p["job_full_name"] for p in sei.accepted}
    jenkins.add_build("team-a/build")  # not sent yet
    jenkins.reset_requests()
    result = cli("jobs", "--output", "json")
    assert result.code == 0, result.stderr
    assert jenkins.count() == 1  # one discovery, as a sync's
    [listing] = json.loads(result.stdout)["controllers"]
    assert (listing["jobs_found"], listing["instance_guid"]) == (4, cli.env["SEI_INSTANCE_GUID"])
    jobs = {j["job"]: j for j in listing["jobs"]}
    assert sorted(jobs) == ["idle", branch, "team-a/build"]  # the excluded one is not read
    assert {jobs[n]["sei_name"] for n in (branch, "team-a/build")} == shown_by_sei
    assert [jobs[n]["kind"] for n in sorted(jobs)] == ["freestyle", "branch", "freestyle"]
    assert jobs["team-a/build"]["newest_build"]["number"] == 2
    assert (jobs["team-a/build"]["tracked"], jobs["team-a/build"]["builds_sent"]) == (True, 1)
    assert (jobs["idle"]["tracked"], jobs["idle"]["newest_build"]) == (True, None)
    result = cli("jobs", "--jobs", "platform/*")
    assert result.code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "JOB",
        "NAME",
        "IN",
        "SEI",
        "KIND",
        "NEWEST",
        "BUILD",
        "TRACKED",
        "SENT",
        "DEAD",
        "LETTERS",
    ]
    assert lines[1].startswith(branch) and " branch " in lines[1]
    assert lines[-1] == "1 of 4 jobs selected; names in SEI by AGENT_JOB_NAMES=plugin"


# -- 5. moving from the official plugin -----------------------------------------------------


@pytest.mark.parametrize(("version", "naming"), [("1.0.46", "plugin"), ("1.0.42", "plugin-legacy")])
def test_check_warns_when_the_official_plugin_is_active(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, version: str, naming: str
) -> None:
    result = cli("check")
    assert result.code == 0
    assert "official plugin  ok      propelo-job-reporter not active" in result.stdout
    jenkins.extra_plugins.append(("propelo-job-reporter", version, "Harness SEI Job Reporter"))
    jenkins.reset_requests()
    result = cli("check")
    assert result.code == 0, result.stdout  # a warning: the agent can still run
    assert f"official plugin  warn    propelo-job-reporter {version} is active" in result.stdout
    assert "jenkins-instance-guid.txt" in result.stdout
    assert f"AGENT_JOB_NAMES={naming}" in result.stdout
    assert jenkins.count(r"/pluginManager/api/json") == 1  # the stage detection's own read


# -- 7. the CI -> CD example ----------------------------------------------------------------

EXAMPLES = ROOT / "examples" / "ci-cd"


def manifest_of(jenkinsfile: Path, **variables: str) -> bytes:
    """The sei-artifacts.json the Jenkinsfile's shell step writes: its heredoc, with the
    pipeline's `environment` and the given variables expanded as the shell would."""
    text = jenkinsfile.read_text()
    [heredoc] = re.findall(r"cat > sei-artifacts\.json <<EOF\n(.*?)\nEOF\n", text, re.DOTALL)
    environment = dict(re.findall(r"^\s+([A-Z_]+) = '([^']*)'$", text, re.MULTILINE))
    return string.Template(heredoc).substitute(environment, **variables).encode()


def test_the_ci_cd_example_pair_links_in_sei(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    tag = "3f2a9c1d7e4b"
    jenkins.add_folder("shop")
    jenkins.add_job("shop/build", kind="pipeline")
    jenkins.add_job("shop/deploy", kind="pipeline")
    jenkins.add_build("shop/build", artifacts=["sei-artifacts.json"])
    jenkins.artifact_content[("shop/build", 1, "sei-artifacts.json")] = manifest_of(
        EXAMPLES / "build.Jenkinsfile", TAG=tag
    )
    upstream = {
        "_class": "org.jenkinsci.plugins.workflow.support.steps.build.BuildUpstreamCause",
        "upstreamProject": "shop/build",
        "upstreamBuild": 1,
        "upstreamUrl": "job/shop/job/build/",
    }
    jenkins.add_build(
        "shop/deploy",
        causes=[upstream],
        parameters=[
            {"_class": "hudson.model.StringParameterValue", "name": "IMAGE_TAG", "value": tag}
        ],
        artifacts=["sei-artifacts.json"],
    )
    jenkins.artifact_content[("shop/deploy", 1, "sei-artifacts.json")] = manifest_of(
        EXAMPLES / "deploy.Jenkinsfile", IMAGE_TAG=tag
    )
    result = cli("sync")
    assert result.code == 0, result.stderr
    by_pipeline = {p["pipeline"]: p for p in sei.accepted}
    ci, cd = by_pipeline["build"], by_pipeline["deploy"]
    assert (ci["ci"], ci["cd"], cd["ci"], cd["cd"]) == (True, False, False, True)
    built = sei.kept(ci["job_full_name"], 1)["artifacts"]
    deployed = sei.kept(cd["job_full_name"], 1)
    assert [a.get("output") for a in built] == [True]
    assert [a.get("input") for a in deployed["artifacts"]] == [True]

    def identity(artifact: dict[str, Any]) -> tuple[str, ...]:
        return tuple(artifact[k] for k in ("type", "name", "location", "qualifier"))

    assert (
        identity(built[0])
        == identity(deployed["artifacts"][0])
        == (
            "container",
            "web",
            f"registry.example.com/shop/web:{tag}",
            tag,
        )
    )
    assert deployed["upstream"] == [(ci["job_full_name"], 1)]  # the trigger links them too


# -- 9. the small ones ----------------------------------------------------------------------


def test_a_redirect_is_a_short_warning_and_a_warned_row_in_check(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    """Moved on the same origin (credentials may follow, issue 24): said once, shortly."""
    with JenkinsSim(user=JENKINS_USER, token=JENKINS_TOKEN, context_path="ci") as moved:
        moved.moved_from = "/old"
        cli.env["JENKINS_URL"] = moved.url.replace("/ci/", "/old/")
        moved.add_job("app")
        moved.add_build("app")
        result = cli("sync")
        assert result.code == 0, result.stderr
        [warning] = [line for line in result.stderr.splitlines() if "redirected" in line]
        assert warning.endswith(
            f"every request costs one more until JENKINS_URL is set to {moved.url}"
        )
        assert "tree=" not in warning and len(warning) < 300
        result = cli("check")
    assert result.code == 0
    [row] = [line for line in result.stdout.splitlines() if line.startswith("  Jenkins ")]
    assert row.split()[1] == "warn" and "reached through a redirect" in row


def test_help_says_at_least_once(cli: Cli) -> None:
    result = cli("--help")
    assert result.code == 0
    assert "at least once" in " ".join(result.stdout.split())


def test_a_satellite_reads_no_jenkins_credentials_from_the_environment_so_a_near_miss_warns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    satellite = tmp_path / "satellite.yml"
    satellite.write_text(
        "satellite: {tenant: acct, api_key: k, url: 'http://127.0.0.1:9/sei/api'}\n"
        "integrations:\n"
        "  - {id: '4711', application: jenkins, url: 'http://127.0.0.1:8/', username: u,"
        " api_key: t, metadata: {instance_name: a}}\n"
    )
    monkeypatch.setenv("JENKINS_PASSWORD", "for another tool")
    with pytest.raises(ConfigError, match="This command reads JENKINS_API_TOKEN"):
        load_controllers()  # the environment alone: JENKINS_API_TOKEN is read, and not set
    with caplog.at_level("WARNING"):
        [settings] = load_controllers(satellite)
    assert settings.jenkins.api_token is not None
    assert "JENKINS_PASSWORD is not a setting of the agent, ignored" in caplog.text
