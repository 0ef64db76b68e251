"""deploy/ agrees with the image and the settings: names, paths, ports, schedules.

The Kubernetes schemas are checked by kubernetes-validate and the Dockerfile by hadolint (both
in .ci/run); this checks what no linter knows: that a setting's name is one the agent reads
(a misspelt one would be ignored silently), and that every file names the same volume and port.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from apscheduler.triggers.cron import CronTrigger
from conftest import ROOT
from dockerfile import env_of, exec_form, parse_dockerfile

from agent.config import ConfigError, Settings, hints, load_settings

DEPLOY = ROOT / "deploy"


def manifests() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            kind = doc["kind"]  # the Jobs by name: backfill and register
            docs[doc["metadata"]["name"] if kind == "Job" else kind] = doc
    return docs


def known(name: str) -> bool:
    section, _, field = name.lower().partition("_")
    model = Settings.model_fields.get(section)
    return model is not None and field in model.annotation.model_fields  # type: ignore[union-attr]


def env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


@pytest.fixture(scope="module")
def image() -> dict[str, Any]:
    runtime = parse_dockerfile(ROOT / "Dockerfile")[-1]
    return {
        "env": env_of(runtime),
        "volume": exec_form(runtime.one("VOLUME"))[0],
        "port": int(runtime.one("EXPOSE")),
        "user": int(runtime.one("USER").split(":")[0]),
    }


def test_every_setting_named_in_deploy_is_read_by_the_agent(
    monkeypatch: pytest.MonkeyPatch, image: dict[str, Any], tmp_path: Path
) -> None:
    docs = manifests()
    config = docs["ConfigMap"]["data"]
    secret = docs["Secret"]["stringData"]
    example = env_file(DEPLOY / "agent.env.example")
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert "environment" not in compose["services"]["sei-agent"]  # agent.env alone decides
    for name in [*config, *secret, *example, *image["env"]]:
        assert name.startswith("PYTHON") or name.startswith("PIP_") or known(name), name
    for name, value in {**image["env"], **config, **secret}.items():
        monkeypatch.setenv(name, str(value))
    with pytest.raises(ConfigError) as copied:  # what must be filled in is refused until it is
        load_settings()
    placeholders = {"JENKINS_URL", "JENKINS_API_TOKEN", "SEI_API_KEY", "SEI_INTEGRATION_ID"}
    assert {n for n in placeholders if f"invalid setting {n}:" in str(copied.value)} == (
        placeholders
    )
    monkeypatch.setenv("JENKINS_URL", "https://ci.acme.test/")
    monkeypatch.setenv("JENKINS_API_TOKEN", "a-real-token")
    monkeypatch.setenv("SEI_API_KEY", "a-real-key")
    monkeypatch.setenv("SEI_INTEGRATION_ID", "4711")
    settings = load_settings()  # `register` runs now, the GUID still the placeholder
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")  # as in every pod
    cmdline = tmp_path / "cmdline"  # process 1 of the pod: the image's ENTRYPOINT
    cmdline.write_bytes(b"/usr/local/bin/python\x00/usr/local/bin/jenkins-sei-agent\x00run\x00")
    monkeypatch.setattr(hints, "PID1_CMDLINE", cmdline)
    with pytest.raises(ConfigError, match=r"all-zero placeholder.*register-job\.yaml"):
        settings.require("sei.instance_guid")
    monkeypatch.setenv("SEI_INSTANCE_GUID", "0b5c7a5e-2f5d-4a7e-9a41-6f4b0f3c1d2e")
    settings = load_settings()
    assert settings.sei.api_key is not None and settings.jenkins.api_token is not None
    assert set(secret) == {"SEI_API_KEY", "JENKINS_API_TOKEN"}  # the two SecretStr settings
    assert not {"SEI_API_KEY", "JENKINS_API_TOKEN"} & set(config)


def test_kubernetes_deployment_cronjob_and_backfill_match_the_image(image: dict[str, Any]) -> None:
    docs = manifests()
    claim = docs["PersistentVolumeClaim"]["metadata"]["name"]
    deployment = docs["Deployment"]["spec"]
    assert deployment["replicas"] == 1 and deployment["strategy"]["type"] == "Recreate"
    pods = {
        "Deployment": deployment["template"]["spec"],
        "CronJob": docs["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        "Job": docs["jenkins-sei-agent-backfill"]["spec"]["template"]["spec"],
    }
    for kind, pod in pods.items():
        [container] = pod["containers"]
        assert pod["securityContext"]["runAsUser"] == image["user"], kind
        assert [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]] == [claim]
        assert [m["mountPath"] for m in container["volumeMounts"]] == [image["volume"]]
        refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert refs == {docs["ConfigMap"]["metadata"]["name"], docs["Secret"]["metadata"]["name"]}
    [agent] = pods["Deployment"]["containers"]
    assert agent["args"] == ["run"]
    port = agent["ports"][0]["containerPort"]
    assert port == image["port"] == int(image["env"]["AGENT_HTTP_PORT"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert agent[probe]["httpGet"]["path"] == "/healthz"
    cron = docs["CronJob"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert pods["CronJob"]["containers"][0]["args"] == ["sync"]
    assert pods["Job"]["containers"][0]["args"][:2] == ["backfill", "--since"]
    register = docs["jenkins-sei-agent-register"]["spec"]
    assert register["backoffLimit"] == 0  # a retry could create a second instance
    [registrar] = register["template"]["spec"]["containers"]
    assert registrar["args"] == ["register"] and registrar["image"] == agent["image"]
    assert registrar["env"] == [{"name": "AGENT_LOG_LEVEL", "value": "WARNING"}]  # GUID alone
    CronTrigger.from_crontab(cron["schedule"])


def test_compose_runs_the_agent_beside_jenkins(image: dict[str, Any]) -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    # the demo Jenkins only with its profile, and nothing of the agent depends on it
    assert services["jenkins"]["image"] == "jenkins/jenkins:lts"
    assert services["jenkins"]["profiles"] == ["demo"]
    agent = services["sei-agent"]
    assert "depends_on" not in agent and "environment" not in agent
    assert agent["build"]["context"] == ".."
    assert env_file(DEPLOY / "agent.env.example")["JENKINS_URL"].startswith("https://")
    [volume] = agent["volumes"]
    name, _, target = volume.partition(":")
    assert target == image["volume"] and name in compose["volumes"]
    assert agent["ports"] == [f"{image['port']}:{image['port']}"]
    assert agent["env_file"] == ["agent.env"]
    assert (DEPLOY / "agent.env.example").exists()


def test_crontab_line_is_valid_and_runs_sync() -> None:
    lines = [
        line
        for line in (DEPLOY / "crontab").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    [line] = lines
    fields = line.split()
    CronTrigger.from_crontab(" ".join(fields[:5]))
    user, command = fields[5], fields[6:]
    assert user != "root"
    assert command[0].endswith("/jenkins-sei-agent") and "sync" in command


def test_systemd_unit_runs_the_agent_and_counts_a_stop_as_clean(tmp_path: Path) -> None:
    """The unit runs `run` as its own user, takes 143 (the SIGTERM it sends) as success and does
    not restart a settings mistake; systemd itself checks it where systemd-analyze exists."""
    unit = DEPLOY / "systemd" / "jenkins-sei-agent.service"
    service: dict[str, list[str]] = {}
    section = ""
    for line in unit.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and not line.startswith("#") and section == "Service":
            key, _, value = line.partition("=")
            service.setdefault(key, []).append(value)
    command = service["ExecStart"][0].split()
    assert command[0].endswith("/jenkins-sei-agent") and command[-1] == "run"
    assert service["User"] == ["sei-agent"] and service["StateDirectory"] == ["jenkins-sei-agent"]
    assert service["SuccessExitStatus"] == ["143"] and service["RestartPreventExitStatus"] == ["2"]
    assert all(known(pair.partition("=")[0]) for pair in service["Environment"])
    verify = shutil.which("systemd-analyze")
    if verify is None:
        return
    agent = shutil.which("jenkins-sei-agent") or sys.executable
    local = tmp_path / unit.name
    local.write_text(unit.read_text().replace(command[0], agent))
    checked = subprocess.run([verify, "verify", str(local)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_sharded_statefulset_splits_the_jobs_once_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every job of a controller lands on exactly one shard, and each pod has its own state."""
    from agent.jenkins.discover import matches

    docs = {}
    for path in sorted((DEPLOY / "kubernetes" / "sharded").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            kind = doc["kind"]  # the Jobs by name: backfill and register
            docs[doc["metadata"]["name"] if kind == "Job" else kind] = doc
    statefulset, shards = docs["StatefulSet"], docs["ConfigMap"]["data"]
    replicas, name = statefulset["spec"]["replicas"], statefulset["metadata"]["name"]
    assert sorted(shards) == [f"{name}-{n}.yaml" for n in range(replicas)]
    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    assert {"name": "state", "mountPath": "/var/lib/jenkins-sei-agent"} in (
        container["volumeMounts"]
    ) and claim["metadata"]["name"] == "state"
    monkeypatch.setenv("JENKINS_URL", "https://ci.acme.test/")
    monkeypatch.setenv("SEI_INSTANCE_GUID", "0b5c7a5e-2f5d-4a7e-9a41-6f4b0f3c1d2e")
    loaded = []
    for key, text in sorted(shards.items()):
        (tmp_path / key).write_text(text)
        loaded.append(load_settings(tmp_path / key).jenkins)
    for job in ("team-a/api", "team-b/x/deep", "team-c/web", "solo", "team-a"):
        homes = [s for s in loaded if matches(job, s.include, s.exclude)]
        assert len(homes) == 1, job
