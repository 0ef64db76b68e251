"""The command that fixes a missing instance GUID, for the way this agent is run.

A message that only says "run register" leaves a container or Kubernetes user to work out how
to run a one-off command there, and where its output goes; so the message names the exact
command for the shell, the container (Docker, Podman) or the Kubernetes pod it comes from.
"""

from __future__ import annotations

import os
from pathlib import Path

# The command line of process 1: in the agent's image it is the agent itself (its ENTRYPOINT,
# or an init such as `docker run --init` starting it). Being inside some container is not
# enough: a developer's or a CI runner's shell in one runs the agent as on any host.
PID1_CMDLINE = Path("/proc/1/cmdline")


def runtime() -> str:
    """'kubernetes' (the image in a pod: every pod has KUBERNETES_SERVICE_HOST), 'container'
    (the image under Docker, Compose or Podman) or 'shell'."""
    try:
        image = b"jenkins-sei-agent" in PID1_CMDLINE.read_bytes()
    except OSError:
        image = False
    if not image:
        return "shell"
    return "kubernetes" if os.environ.get("KUBERNETES_SERVICE_HOST") else "container"


def guid_in_environment() -> bool:
    """SEI_INSTANCE_GUID is set in the environment (which beats the file)."""
    return any(name.upper() == "SEI_INSTANCE_GUID" for name in os.environ)


def register_command(
    name: str | None, integration: str | None, config: Path | None, satellite: bool
) -> str:
    """How to create the instance and put its GUID where this run reads it from: `config` the
    settings file in use, `satellite` whether it is an SEI satellite.yml."""
    name = name or "NAME"
    integration = integration or "ID"
    args = f"register --integration-id {integration} --name {name}"
    where = runtime()
    if where == "kubernetes":
        return (
            "kubectl apply -f deploy/kubernetes/register-job.yaml, then "
            "kubectl wait --for=condition=complete job/jenkins-sei-agent-register, then "
            "kubectl patch configmap jenkins-sei-agent -p "
            '"{\\"data\\":{\\"SEI_INSTANCE_GUID\\":'
            '\\"$(kubectl logs job/jenkins-sei-agent-register)\\"}}" '
            "and kubectl rollout restart deployment/jenkins-sei-agent"
        )
    if where == "container":
        return (
            f"docker run --rm --env-file agent.env jenkins-sei-agent {args} (with Compose: "
            f"docker compose -f deploy/docker-compose.yml run --rm sei-agent {args}), then put "
            "the GUID it prints into agent.env as SEI_INSTANCE_GUID"
        )
    if config is not None and (satellite or not guid_in_environment()):
        return f"jenkins-sei-agent --config {config} {args} --write-config"
    return f"jenkins-sei-agent {args}, then export SEI_INSTANCE_GUID=<the GUID it prints>"
