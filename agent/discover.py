"""Step 1 of the flow: find every job on the controller, with its newest build, in few requests.

One request returns the whole item tree `folder_depth` levels deep; only containers deeper than
that cost a request of their own. A cycle in which nothing changed therefore costs a handful of
requests whatever the number of jobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote

from agent.jenkins_client import JenkinsClient
from agent.queries import api_json, discovery_tree, job_path


@dataclass(frozen=True)
class Job:
    """A buildable item, named as Jenkins names it."""

    names: tuple[str, ...]
    cls: str | None = None
    parent_cls: str | None = None
    last_build: int | None = None
    last_build_ts: int | None = None

    @property
    def full_name(self) -> str:
        """Jenkins `fullName`: item names joined by '/', branch names still encoded."""
        return "/".join(self.names)

    @property
    def name(self) -> str:
        return self.names[-1]

    @property
    def path(self) -> str:
        return job_path(self.names)

    @property
    def is_branch(self) -> bool:
        """A branch job of a multibranch project (its parent's class says so)."""
        return bool(self.parent_cls and self.parent_cls.endswith("MultiBranchProject"))

    @property
    def pipeline(self) -> str:
        """SEI's pipeline name: the job, or for a branch job the multibranch project."""
        return self.names[-2] if self.is_branch and len(self.names) > 1 else self.name

    @property
    def branch(self) -> str | None:
        """The decoded branch of a branch job: `feature%2Flogin` -> `feature/login`."""
        return unquote(self.name) if self.is_branch else None


def matches(full_name: str, include: list[str], exclude: list[str]) -> bool:
    """Glob filter on full names; '*' also crosses '/' so 'team/*' covers nested folders."""
    if include and not any(fnmatchcase(full_name, g) for g in include):
        return False
    return not any(fnmatchcase(full_name, g) for g in exclude)


def discover_jobs(client: JenkinsClient, levels: int) -> Iterator[Job]:
    """Every job under the root, depth-first, containers at any depth included."""
    pending: list[tuple[tuple[str, ...], str | None]] = [((), None)]
    while pending:
        names, cls = pending.pop()
        answer = client.get_json(api_json(job_path(names)), discovery_tree(levels), kind="discover")
        items = answer.get("jobs")
        yield from _walk(items if isinstance(items, list) else [], names, cls, levels, pending)


def _walk(
    items: list[dict[str, Any]],
    parent: tuple[str, ...],
    parent_cls: str | None,
    levels_left: int,
    deeper: list[tuple[tuple[str, ...], str | None]],
) -> Iterator[Job]:
    for item in items:
        if not isinstance(item, dict):
            continue
        name = item.get("name")
        if not isinstance(name, str):
            continue
        names = (*parent, name)
        cls = item.get("_class")
        if "nextBuildNumber" in item:
            last = item.get("lastBuild")
            last = last if isinstance(last, dict) else {}
            number, started = last.get("number"), last.get("timestamp")
            yield Job(
                names=names,
                cls=cls if isinstance(cls, str) else None,
                parent_cls=parent_cls,
                last_build=number if isinstance(number, int) else None,
                last_build_ts=started if isinstance(started, int) else None,
            )
        children = item.get("jobs")
        if isinstance(children, list) and children:
            if levels_left > 1:
                yield from _walk(children, names, cls, levels_left - 1, deeper)
            else:
                deeper.append((names, cls))
