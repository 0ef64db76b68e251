"""Step 2 of the flow: read a job's builds, newest first, many per request.

Each page carries every mapped field of up to `page_size` builds, so reading costs one request
per page, never one per build. Paging stops as soon as the caller has what it needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agent.jenkins.endpoints import BUILDS_CAP, api_json, builds_tree
from agent.jenkins.types import Job
from agent.jenkins_client import JenkinsClient


@dataclass(frozen=True)
class Window:
    """Which builds the caller needs: numbers down to `down_to`, start times from `since_ms`."""

    down_to: int | None = None
    since_ms: int | None = None
    expected: int | None = None

    def exhausted_by(self, page: list[dict[str, Any]]) -> bool:
        """True once a page reaches below the window (builds are numbered in start order)."""
        oldest = page[-1]
        if self.down_to is not None and _int(oldest.get("number"), 0) <= self.down_to:
            return True
        return self.since_ms is not None and _int(oldest.get("timestamp"), 0) < self.since_ms


def read_builds(
    client: JenkinsClient, job: Job, window: Window, page_size: int
) -> Iterator[dict[str, Any]]:
    """Builds of `job` newest first, page by page, until the window is covered."""
    start = 0
    size = min(page_size, max(window.expected or page_size, 1))
    while True:
        end = start + size
        if start < BUILDS_CAP < end:
            end = BUILDS_CAP  # one page never straddles `builds` and `allBuilds`
        answer = client.get_json(api_json(job.path), builds_tree(start, end), kind="builds")
        key = "builds" if end <= BUILDS_CAP else "allBuilds"
        listed = answer.get(key)
        page = [b for b in listed if isinstance(b, dict)] if isinstance(listed, list) else []
        yield from page
        if len(page) < end - start or window.exhausted_by(page):
            return
        start, size = end, page_size


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) else default
