"""From the example files to a watched service (issue 23), through the real CLI in process:
register from the examples, misspelt JENKINS_* variables, JENKINS_URL inside the controller,
moving from the official plugin, and the `jobs` command."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, Cli
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

from agent.config import hints
from agent.config.models import PLACEHOLDER_GUID


@pytest.fixture
def no_container(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shell path, whatever machine the tests run on (a CI container has /.dockerenv)."""
    monkeypatch.setattr(hints, "CONTAINER_MARKERS", ())


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
    marker = tmp_path / ".dockerenv"
    marker.touch()
    monkeypatch.setattr(hints, "CONTAINER_MARKERS", (marker,))
    result = cli("sync")
    assert result.code == 2
    assert "docker run --rm --env-file agent.env jenkins-sei-agent register" in result.stderr
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
