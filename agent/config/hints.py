"""The command that fixes a missing instance GUID, for the way this agent is run.

A message that only says "run register" leaves a container or Kubernetes user to work out how
to run a one-off command there, and where its output goes; so the message names the exact
command for the shell, the container (Docker, Podman) or the Kubernetes pod it comes from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config.models import Settings

# Files the container runtimes create in every container: Docker's and Podman's.
CONTAINER_MARKERS = (Path("/.dockerenv"), Path("/run/.containerenv"))


def runtime() -> str:
    """'kubernetes' (every pod has KUBERNETES_SERVICE_HOST), 'container' or 'shell'."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    if any(marker.exists() for marker in CONTAINER_MARKERS):
        return "container"
    return "shell"


def register_command(settings: Settings) -> str:
    """How to create the instance and put its GUID where this run reads it from."""
    name = settings.sei.instance_name or "NAME"
    integration = settings.sei.integration_id or "ID"
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
            f"docker run --rm --env-file agent.env jenkins-sei-agent {args}, then put the GUID "
            "it prints into agent.env as SEI_INSTANCE_GUID"
        )
    from_env = any(k.upper() == "SEI_INSTANCE_GUID" for k in os.environ)
    config = settings.agent.config
    if config is not None and (settings.integration is not None or not from_env):
        return f"jenkins-sei-agent --config {config} {args} --write-config"
    return f"jenkins-sei-agent {args}, then export SEI_INSTANCE_GUID=<the GUID it prints>"
