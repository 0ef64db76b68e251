"""What a build is mapped with besides its own JSON: the settings, and what was read beside it."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.jenkins.names import JobNaming
from agent.mapping.rules import PayloadRule


class Unmappable(ValueError):
    """The build lacks what every payload needs (number, start time, a final result)."""


@dataclass(frozen=True)
class MapContext:
    """Everything the payload takes from configuration rather than from the build."""

    instance_guid: str
    instance_name: str
    instance_url: str  # the root URL Jenkins reports (jenkins/discover.py), or SEI_INSTANCE_URL
    naming: JobNaming = field(default_factory=JobNaming)
    cd_jobs: tuple[str, ...] = ()
    ci_jobs: tuple[str, ...] = ()
    library_repos: tuple[str, ...] = ()
    project_name: str | None = None
    rules: tuple[PayloadRule, ...] = ()
    max_artifacts: int = 20
