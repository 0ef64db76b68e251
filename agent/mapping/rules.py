"""What the operator's settings add to a payload: rules by job and result, the project name,
and whether a build is CI or CD."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.jenkins.types import Job
from agent.sei.payload import Artifact


def split_globs(value: Any) -> list[str]:
    """A list of globs, or one string of them separated by commas (as environment values are)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


# The results Jenkins gives a finished build; a rule naming another could never match.
RESULTS = ("SUCCESS", "UNSTABLE", "FAILURE", "ABORTED", "NOT_BUILT")


class Rule(BaseModel):
    """Optional payload fields for the builds of matching jobs (and results).

    A misspelt key would make the rule match every job (`job:` for `jobs:`), so unknown keys are
    refused; so is a result Jenkins never gives.
    """

    model_config = ConfigDict(extra="forbid")

    jobs: list[str] = Field(default_factory=lambda: ["*"])
    results: list[str] = Field(default_factory=list)  # empty: any result
    cfr_status: bool | None = None
    themes: list[str] | None = None
    project_name: str | None = None

    _globs = field_validator("jobs", mode="before")(split_globs)

    @field_validator("results", mode="before")
    @classmethod
    def _results(cls, value: Any) -> Any:
        words = split_globs(value) if isinstance(value, str) else value
        if not isinstance(words, list):
            return value
        upper = [str(word).strip().upper() for word in words]
        unknown = [word for word in upper if word not in RESULTS]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} is not a Jenkins result (one of {', '.join(RESULTS)})"
            )
        return upper


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

    def __init__(self, rules: tuple[Rule, ...], full_name: str, result: str) -> None:
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
