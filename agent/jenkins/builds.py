"""Step 2 of the flow: read a job's builds, newest first, many per request.

Each page carries every mapped field of up to `page_size` builds, so reading costs one request
per page, never one per build. Paging stops as soon as the caller has what it needs. A page
over the answer cap (huge parameter values, change sets) is asked again at half the size, down
to one build, rather than losing the job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from agent.jenkins.client import JenkinsClient, JenkinsNotFound, JenkinsTooLarge
from agent.jenkins.endpoints import BUILD_FIELDS, BUILDS_CAP, api_json, build_path, builds_tree
from agent.jenkins.types import Job, Window

log = logging.getLogger(__name__)


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
        try:
            answer = client.get_json(api_json(job.path), builds_tree(start, end), kind="builds")
        except JenkinsTooLarge as exc:
            if end - start == 1:
                raise JenkinsTooLarge(f"{exc}: build #{start + 1} from the newest alone") from None
            page_size = size = (end - start) // 2
            log.warning(
                "%s: %d builds are over the answer cap in one listing (%s); reading %d a "
                "request from now on, in this run (JENKINS_PAGE_SIZE)",
                job.full_name,
                end - start,
                exc,
                size,
            )
            continue
        key = "builds" if end <= BUILDS_CAP else "allBuilds"
        listed = answer.get(key)
        listed = listed if isinstance(listed, list) else []
        # An entry that is not an object is still an entry: as `{}`, a build the caller cannot
        # identify, rather than a hole in the listing that looks like a build deleted.
        page = [b if isinstance(b, dict) else {} for b in listed]
        yield from page
        if len(page) < end - start or window.exhausted_by(page):
            return
        start, size = end, page_size


def read_build(client: JenkinsClient, job: Job, number: int) -> dict[str, Any] | None:
    """One build by number, with every mapped field; None when it is gone (rotated away).

    Cheaper than paging down to an old build that is still running: one narrow request, and
    the controller loads only that build.
    """
    path = api_json(build_path(job.names, number, job.path_containers))
    try:
        return client.get_json(path, BUILD_FIELDS, kind="builds")  # type: ignore[no-any-return]
    except JenkinsNotFound:
        return None
