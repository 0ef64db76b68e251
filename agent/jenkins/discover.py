"""Step 1 of the flow (discover): every job on the controller, with its newest build, in few
requests.

One request returns the whole item tree `folder_depth` levels deep; only containers deeper than
that cost a request of their own. A cycle in which nothing changed therefore costs a handful of
requests whatever the number of jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from agent.jenkins.client import JenkinsClient, JenkinsError
from agent.jenkins.endpoints import api_json, discovery_tree, job_path
from agent.jenkins.names import JobNaming, Scheme
from agent.jenkins.types import Job

log = logging.getLogger(__name__)


def matches(full_name: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Glob filter on full names; '*' also crosses '/' so 'team/*' covers nested folders."""
    if include and not any(fnmatchcase(full_name, g) for g in include):
        return False
    return not any(fnmatchcase(full_name, g) for g in exclude)


class NotTheRoot(JenkinsError):
    """JENKINS_URL lies inside the controller: a settings mistake (exit 2), not an outage."""


@dataclass
class Inventory:
    """What one discovery found: every job, the root URL Jenkins reports for itself, and the
    controller's clock when it answered (its Date header, ms since the epoch), if it said."""

    jobs: list[Job] = field(default_factory=list)
    root_url: str | None = None
    clock_ms: int | None = None

    def naming(self, scheme: Scheme) -> JobNaming:
        """How jobs, upstream ones included, are named in SEI, from the containers seen."""
        return JobNaming.of(scheme, ((j.names, j.path_containers) for j in self.jobs))

    def instance_url(self, configured: str | None, reached_at: str) -> str:
        """SEI_INSTANCE_URL, else the root URL Jenkins reports (the one users click; SEI builds
        every link from it), else the address the agent reaches Jenkins at, which is what
        Jenkins itself reports when no root URL is set."""
        if configured:
            return configured.rstrip("/") + "/"
        if self.root_url and self.root_url != reached_at:
            log.info(
                "Jenkins reports its URL as %s: SEI links to it (SEI_INSTANCE_URL overrides)",
                self.root_url,
            )
        return self.root_url or reached_at


def discover(client: JenkinsClient, levels: int) -> Inventory:
    """Every job under the root, containers and Maven modules at any depth included.

    The root URL comes from the answers themselves: every absolute `url` Jenkins writes starts
    with the URL it is configured to have, which is the address users click.
    """
    found = Inventory()
    # (a container's names, the container classes its items live under), the root first
    pending: list[tuple[tuple[str, ...], tuple[str | None, ...]]] = [((), (None,))]
    while pending:
        names, above = pending.pop()
        path = api_json(job_path(names))
        answer, date = client.get_json_dated(path, discovery_tree(levels), kind="discover")
        found.clock_ms = found.clock_ms or date
        if found.root_url is None:
            found.root_url = _root_of(answer.get("url"), job_path(names, above[:-1]))
            root = root_above(client.base, found.root_url)
            if root is not None:
                raise NotTheRoot(
                    f"JENKINS_URL {client.base} lies inside the controller, whose root URL "
                    f"Jenkins reports as {root}; set JENKINS_URL to the root (context path "
                    "included) and choose jobs with JENKINS_INCLUDE"
                )
        items = answer.get("jobs")
        found.jobs.extend(
            _walk(items if isinstance(items, list) else [], names, above, levels, pending, found)
        )
    return found


def root_above(configured: str, reported: str | None) -> str | None:
    """The root URL Jenkins reports when the configured URL lies below it (a path inside the
    controller rather than its root), else None. A root reported with another host or an
    unrelated path is a proxy's doing, and not this."""
    if not reported:
        return None
    mine, theirs = urlsplit(configured), urlsplit(reported)
    if mine.netloc.lower() != theirs.netloc.lower():
        return None
    path, root = mine.path.rstrip("/") + "/", theirs.path.rstrip("/") + "/"
    return reported if path != root and path.startswith(root) else None


def discover_jobs(client: JenkinsClient, levels: int) -> Iterator[Job]:
    yield from discover(client, levels).jobs


def _root_of(url: Any, path: str) -> str | None:
    """The root URL from the `url` of the item at `path` (`job/a/job/b/`): its host and
    context path, whatever the names' encoding."""
    if not isinstance(url, str) or "://" not in url:
        return None
    base = url.rstrip("/")
    for _ in range(path.count("/")):
        base = base.rsplit("/", 1)[0]
    return base + "/" if "://" in base else None


def _walk(
    items: list[Any],
    parent: tuple[str, ...],
    above: tuple[str | None, ...],
    levels_left: int,
    deeper: list[tuple[tuple[str, ...], tuple[str | None, ...]]],
    found: Inventory,
) -> Iterator[Job]:
    """Jobs among `items`; `above` is the class of each container on their path."""
    for item in items:
        if not isinstance(item, dict):
            continue
        name = item.get("name")
        if not isinstance(name, str) or not name:
            continue
        if name in (".", ".."):  # jenkins.model.Jenkins#checkGoodName refuses them; job/../
            where = "/".join(parent) or "the root"  # would read the folder above as a job
            log.warning("an item named %r in %s is skipped: no job can be named so", name, where)
            continue
        names = (*parent, name)
        cls = item.get("_class") if isinstance(item.get("_class"), str) else None
        if found.root_url is None:
            found.root_url = _root_of(item.get("url"), job_path(names, above))
        if "nextBuildNumber" in item:
            last = item.get("lastBuild")
            last = last if isinstance(last, dict) else {}
            number, started = last.get("number"), last.get("timestamp")
            yield Job(
                names=names,
                cls=cls,
                containers=above,
                last_build=number if isinstance(number, int) else None,
                last_build_ts=started if isinstance(started, int) else None,
            )
        modules = item.get("modules")
        if isinstance(modules, list) and modules:
            yield from _walk(modules, names, (*above, cls), 1, [], found)
        children = item.get("jobs")
        if isinstance(children, list) and children:
            if levels_left > 1:
                yield from _walk(children, names, (*above, cls), levels_left - 1, deeper, found)
            else:
                deeper.append((names, (*above, cls)))
