"""What the operator's settings add to a payload: rules by job and result, the project name,
and whether a build is CI or CD."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any, Protocol

from agent.jenkins.types import Job
from agent.sei.payload import Artifact


class PayloadRule(Protocol):
    """Optional payload fields for the builds of matching jobs and results; the settings' Rule
    (agent/config/rules.py) is one, so the mapping never loads the settings."""

    @property
    def jobs(self) -> Sequence[str]: ...
    @property
    def results(self) -> Sequence[str]: ...
    @property
    def cfr_status(self) -> bool | None: ...
    @property
    def themes(self) -> Sequence[str] | None: ...
    @property
    def project_name(self) -> str | None: ...


def project_name_for(template: str | None, job: Job) -> str | None:
    """`AGENT_PROJECT_NAME`: a fixed name, or a template over {top_folder}, {pipeline}, ..."""
    if not template:
        return None
    values = {
        "top_folder": job.names[0] if len(job.names) > 1 else "",
        "pipeline": job.pipeline,
        "job_full_name": job.full_name,
        "job_name": job.name,
    }
    try:
        name = template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template
    return name or None


def is_cd(
    job: Job, cd_jobs: tuple[str, ...], ci_jobs: tuple[str, ...], declared: list[Artifact]
) -> bool:
    """A CD run, or else a CI run (SEI wants one true and the other false).

    AGENT_CD_JOBS, then AGENT_CI_JOBS decide when they match the job; otherwise the data does:
    a build whose manifest declares an input artifact consumed it, as a deployment does.
    """
    if any(fnmatchcase(job.full_name, glob) for glob in cd_jobs):
        return True
    if any(fnmatchcase(job.full_name, glob) for glob in ci_jobs):
        return False
    return any(a.input for a in declared)


class RuleMatch(dict[str, Any]):
    """For each optional field, the value of the first rule that matches and sets it."""

    def __init__(self, rules: Sequence[PayloadRule], full_name: str, result: str) -> None:
        super().__init__()
        for rule in rules:
            if not any(fnmatchcase(full_name, g) for g in rule.jobs):
                continue
            if rule.results and result not in rule.results:
                continue
            for name in ("cfr_status", "themes", "project_name"):
                value = getattr(rule, name)
                if value is not None:
                    self.setdefault(name, value)
