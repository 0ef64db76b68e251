"""The image without a Docker engine: install the project as the Dockerfile does, run its command.

No Docker engine runs where the tests run, so this follows the Dockerfile step by step: the
build stage's COPY lines into a clean folder, a wheel built from it, that wheel installed into a
fresh virtual environment, then the image's ENTRYPOINT + CMD with its ENV against the simulator
and the SEI stand-in, its HEALTHCHECK command, and its STOPSIGNAL. Two shortcuts keep it fast,
and neither touches what is tested: the wheel is built with --no-deps, and the dependencies are
the ones this test runs with (a .pth line), not wheels built from PyPI. The agent itself is
imported from the wheel, never from the source tree; the test checks that.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from agent_process import AgentProcess, wait_until
from conftest import ROOT, Cli
from dockerfile import Stage, env_of, exec_form, parse_dockerfile
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def dockerfile() -> list[Stage]:
    return parse_dockerfile(ROOT / "Dockerfile")


def test_dockerfile_is_multi_stage_non_root_with_volume_and_healthcheck(
    dockerfile: list[Stage],
) -> None:
    build, runtime = dockerfile
    assert build.name == "build" and "slim" in (ROOT / "Dockerfile").read_text()
    assert any("pip wheel" in run for run in build.all("RUN"))
    runtime_runs = " ".join(runtime.all("RUN"))
    assert "from=build" in runtime_runs and "--no-index" in runtime_runs
    for tool in ("gcc", "build-essential", "apt-get install"):
        assert tool not in runtime_runs
    user = runtime.one("USER").split(":")[0]
    assert user not in ("", "0", "root")
    env = env_of(runtime)
    volume = exec_form(runtime.one("VOLUME"))
    assert volume == ["/var/lib/jenkins-sei-agent"]
    assert Path(env["AGENT_STATE_FILE"]).parent == Path(volume[0])
    health = runtime.one("HEALTHCHECK")
    assert exec_form(health.split(" CMD ", 1)[1]) == ["python", "-m", "agent.service.healthcheck"]
    command = exec_form(runtime.one("ENTRYPOINT")) + exec_form(runtime.one("CMD"))
    assert command == ["jenkins-sei-agent", "run"]


def test_the_image_command_runs_from_the_wheel(
    dockerfile: list[Stage], tmp_path: Path, cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    build, runtime = dockerfile
    # build stage: COPY into a clean folder, then a wheel of it
    src = tmp_path / "src"
    src.mkdir()
    for copy in build.all("COPY"):
        *sources, _ = copy.split()
        for name in sources:
            target = src / name
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(ROOT / name, target)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", wheels, src], check=True)
    [wheel] = wheels.glob("jenkins_sei_agent-*.whl")

    # runtime stage: install the wheel offline into a fresh environment
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    install = ["install", "--no-deps", "--no-index", "--find-links", str(wheels), str(wheel)]
    subprocess.run([*pip, "--python", python, *install], check=True)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run(
        [python, "-c", "import agent; print(agent.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert where.startswith(str(venv)), f"agent imported from {where}, not from the wheel"

    # the container: ENV, the volume, ENTRYPOINT + CMD, then HEALTHCHECK and STOPSIGNAL
    volume = tmp_path / "volume"
    image_env = env_of(runtime)
    settings = {k: v for k, v in cli.env.items() if k.startswith(("JENKINS_", "SEI_"))}
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        **image_env,
        **settings,
        "AGENT_STATE_FILE": image_env["AGENT_STATE_FILE"].replace(
            "/var/lib/jenkins-sei-agent", str(volume)
        ),
        "AGENT_HTTP_PORT": "0",  # tests may run side by side; the image's 9464 is tested above
    }
    command = exec_form(runtime.one("ENTRYPOINT")) + exec_form(runtime.one("CMD"))
    command[0] = str(venv / "bin" / command[0])
    jenkins.add_job("app")
    jenkins.add_build("app")
    jenkins.add_build("app", result="FAILURE")
    with AgentProcess(env, volume.parent, command=command) as agent:
        wait_until(lambda: len(sei.accepted) == 2, 10, "the builds, sent by the installed agent")
        wait_until(lambda: agent.health()[0] == 200, 5, "/healthz 200")
        port = str(agent.port)
        health = exec_form(runtime.one("HEALTHCHECK").split(" CMD ", 1)[1])
        health[0] = str(venv / "bin" / health[0])
        check = subprocess.run(
            health,
            env={**env, "AGENT_HTTP_PORT": port},
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert check.returncode == 0, check.stderr
        assert json.loads(check.stdout)["status"] == "ok"
        stop_signal = signal.Signals[runtime.one("STOPSIGNAL")]
        assert agent.stop(stop_signal) < 5
    assert agent.proc.returncode == 128 + stop_signal, agent.stderr
    assert (volume / "agent-state.json").exists()
    assert agent.events and all(e["logger"] for e in agent.events)  # AGENT_LOG_FORMAT=json

    # with the agent gone, the same check fails, as Docker's HEALTHCHECK would see it
    gone = subprocess.run(
        health, env={**env, "AGENT_HTTP_PORT": port}, capture_output=True, timeout=10
    )
    assert gone.returncode == 1
