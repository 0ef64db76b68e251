"""What the controller's executors run now: the builds in progress, in one cheap request.

A Pipeline run holds a flyweight executor of the built-in node (`oneOffExecutors`) from its
start to its end; a classic build holds a numbered executor; a `node {}` block's placeholder
names its run too but ends first, and may be hidden (`null`) on older releases, so only the
union is taken (core `Executor.getCurrentExecutableForApi`: a build the token cannot read is
`null`, like an idle executor). A build seen running and held by no executor later has
finished: the watch in `run` reads it then (agent/service/watch.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from agent.jenkins.client import JenkinsClient
from agent.jenkins.endpoints import EXECUTOR_FIELDS, EXECUTORS
from agent.jenkins.reading import dicts, is_int

# What reading the executors needs and a token may lack (core `ComputerSet` and `Executor`).
PERMISSION = "Overall/Read, and Agent/Connect where the authorization strategy restricts agents"

# A running build: its job's path below the root (`job/a/job/b/`, as `Job.path` gives it)
# and its number.
Running = tuple[str, int]


def running_builds(client: JenkinsClient) -> set[Running]:
    """Every build an executor runs now, by its job's path and number."""
    answer = client.get_json(EXECUTORS, EXECUTOR_FIELDS, kind="executors")
    found: set[Running] = set()
    for computer in dicts(answer.get("computer")):
        for executor in dicts(computer.get("executors")) + dicts(computer.get("oneOffExecutors")):
            build = executor.get("currentExecutable")
            if isinstance(build, dict):
                found |= _parsed(build)
    return found


def _parsed(build: dict[str, Any]) -> set[Running]:
    """The build's job path and number, from its URL (under whatever root URL Jenkins has)."""
    url, number = build.get("url"), build.get("number")
    if not isinstance(url, str) or not is_int(number):
        return set()
    path = urlsplit(url).path
    start = path.find("/job/")
    suffix = f"/{number}/"
    if start < 0 or not path.endswith(suffix):
        return set()
    return {(path[start + 1 : -len(suffix) + 1], number)}
