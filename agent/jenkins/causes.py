"""Reading a build's causes: the ones that started it, and the upstream build a cause names.

Needed both to read what lies above a build (agent/jenkins/details.py) and to map its chain.
"""

from __future__ import annotations

from typing import Any

from agent.jenkins.reading import dicts, is_int

# How Jenkins 1.x describes an interruption cause that arrives without `_class`.
_INTERRUPTION_DESCRIPTIONS = ("Aborted by", "Timeout has been exceeded")


def start_causes_of(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Causes that started the build; InterruptedBuildAction lists why it was *stopped*."""
    causes = []
    for action in actions:
        if "Interrupt" in str(action.get("_class") or ""):
            continue
        for cause in dicts(action.get("causes")):
            cls = str(cause.get("_class") or "")
            description = str(cause.get("shortDescription") or "")
            if "CauseOfInterruption" in cls or "ExceededTimeout" in cls:
                continue
            if not cls and description.startswith(_INTERRUPTION_DESCRIPTIONS):
                continue
            causes.append(cause)
    return causes


def start_causes(build: dict[str, Any]) -> list[dict[str, Any]]:
    return start_causes_of(dicts(build.get("actions")))


def upstream_of(cause: dict[str, Any]) -> tuple[str, int] | None:
    """(Jenkins full name, build number) of the upstream build a cause names, if it names one."""
    project, number = cause.get("upstreamProject"), cause.get("upstreamBuild")
    if isinstance(number, str) and number.isdigit():
        number = int(number)
    if not isinstance(project, str) or not project.strip() or not is_int(number):
        return None
    return project, number
