"""Step 3 of the flow: one Jenkins build (JSON from queries.BUILD_FIELDS) -> one SEI payload.

A pure function: no I/O, no clock. Actions are recognised by their fields, never by position
and not only by `_class`, because Jenkins 1.x omits `_class` and every controller pads the
action list with empty `{}` entries.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from agent.discover import Job
from agent.payload import CicdPayload, Param, Trigger

# Parameter values that must never leave the controller, whatever the job calls them.
_SECRET_PARAM = re.compile(r"Password|Credentials|FileParameter", re.IGNORECASE)

_SCM_CAUSES = {
    "SCMTriggerCause",
    "GitHubPushCause",
    "GitLabWebHookCause",
    "BitBucketPushCause",
    "BitbucketPushCause",
    "GogsPushCause",
    "GiteaPushCause",
}

# Simple class name -> trigger id, for causes whose id is what started them rather than who.
_CAUSE_IDS = {
    "TimerTriggerCause": "TimerTrigger",
    "BranchIndexingCause": "BranchIndexing",
    "BranchEventCause": "BranchEvent",
    "RemoteCause": "RemoteTrigger",
    "ReplayCause": "Replay",
    "RebuildCause": "Rebuild",
    "RestartDeclarativePipelineCause": "Restart",
}

# Recognising causes of class-less (Jenkins 1.x) answers by their description.
_DESCRIPTION_CLASSES = (
    ("Started by an SCM change", "SCMTriggerCause"),
    ("Started by GitHub push", "GitHubPushCause"),
    ("Started by timer", "TimerTriggerCause"),
    ("Branch indexing", "BranchIndexingCause"),
    ("Push event", "BranchEventCause"),
    ("Started by remote host", "RemoteCause"),
    ("Replayed", "ReplayCause"),
)


# How Jenkins 1.x describes an interruption cause that arrives without `_class`.
_INTERRUPTION_DESCRIPTIONS = ("Aborted by", "Timeout has been exceeded")


class Unmappable(ValueError):
    """The build lacks what every payload needs (number, start time, a final result)."""


@dataclass(frozen=True)
class MapContext:
    """Everything the payload takes from configuration rather than from the build."""

    instance_guid: str
    instance_name: str
    instance_url: str
    cd_jobs: tuple[str, ...] = ()
    library_repos: tuple[str, ...] = ()
    project_name: str | None = None


@dataclass
class _Checkout:
    sha: str | None
    branch: str | None
    remotes: list[str] = field(default_factory=list)


def map_build(build: dict[str, Any], job: Job, ctx: MapContext) -> CicdPayload:
    number, timestamp, result = build.get("number"), build.get("timestamp"), build.get("result")
    if not isinstance(number, int) or not isinstance(timestamp, int):
        raise Unmappable(f"{job.full_name}: build without a number or start time")
    if build.get("building") or not isinstance(result, str) or not result:
        raise Unmappable(f"{job.full_name} #{number}: not finished")
    actions = [a for a in build.get("actions") or [] if isinstance(a, dict)]
    triggers = _triggers(_start_causes(actions))
    checkouts = _checkouts(actions)
    project, libraries = _pick_checkout(checkouts, job, ctx.library_repos)
    duration = build.get("duration")
    return CicdPayload(
        pipeline=job.pipeline,
        job_full_name=job.full_name,
        qualified_name=job.full_name,
        instance_guid=ctx.instance_guid,
        instance_name=ctx.instance_name,
        instance_url=ctx.instance_url,
        start_time=timestamp,
        duration=max(duration, 0) if isinstance(duration, int) else 0,
        result=result,
        build_number=number,
        execution_id=execution_id(ctx.instance_guid, job.full_name, number, timestamp),
        web_url=f"{ctx.instance_url}{job.path}{number}/",
        user_id=_user_id(triggers),
        trigger_chain=triggers,
        job_run_params=_params(a for a in actions if "parameters" in a),
        scm_commit_ids=_commits(build, project, libraries),
        repo_url=_repo_url(project),
        branch_name=job.branch or (project.branch if project else None),
        project_name=_project_name(ctx.project_name, job),
        ci=not _is_cd(job, ctx),
        cd=_is_cd(job, ctx),
    )


def execution_id(instance_guid: str, full_name: str, number: int, timestamp: int) -> str:
    """Stable across retries; a restarted build number has another start time, so another id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{instance_guid}/{full_name}#{number}@{timestamp}"))


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _start_causes(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Causes that started the build; InterruptedBuildAction lists why it was *stopped*."""
    causes = []
    for action in actions:
        if "Interrupt" in str(action.get("_class") or ""):
            continue
        for cause in _dicts(action.get("causes")):
            cls = str(cause.get("_class") or "")
            description = str(cause.get("shortDescription") or "")
            if "CauseOfInterruption" in cls or "ExceededTimeout" in cls:
                continue
            if not cls and description.startswith(_INTERRUPTION_DESCRIPTIONS):
                continue
            causes.append(cause)
    return causes


def _simple_class(obj: dict[str, Any]) -> str:
    cls = obj.get("_class")
    if isinstance(cls, str) and cls:
        return re.split(r"[.$]", cls)[-1]
    return ""


def _cause_class(cause: dict[str, Any]) -> str:
    cls = _simple_class(cause)
    if cls:
        return cls
    if "upstreamProject" in cause:
        return "UpstreamCause"
    if "userId" in cause or "userName" in cause:
        return "UserIdCause"
    description = str(cause.get("shortDescription") or "")
    for prefix, name in _DESCRIPTION_CLASSES:
        if description.startswith(prefix):
            return name
    return ""


def _triggers(causes: list[dict[str, Any]]) -> list[Trigger]:
    triggers: list[Trigger] = []
    for cause in causes:
        cls = _cause_class(cause)
        if cls == "UpstreamCause" and isinstance(cause.get("upstreamProject"), str):
            upstream = cause.get("upstreamBuild")
            trigger = Trigger(
                id=cause["upstreamProject"],
                type="UpstreamCause",
                job_run_number=str(upstream) if upstream is not None else None,
            )
        elif cls == "UserIdCause":
            user = cause.get("userId") or "anonymous"
            trigger = Trigger(id=str(user), type="UserIdCause")
        elif cls in _SCM_CAUSES:
            trigger = Trigger(id="SCMTrigger", type="SCMTriggerCause")
        elif cls:
            trigger = Trigger(id=_CAUSE_IDS.get(cls, cls.removesuffix("Cause") or cls), type=cls)
        else:
            continue
        if trigger not in triggers:
            triggers.append(trigger)
    return triggers


def _user_id(triggers: list[Trigger]) -> str:
    """As the official plugin: SCMTrigger for SCM-started builds, else the user, else SYSTEM.

    A multibranch push event (BranchEventCause) is SCM-started too.
    """
    if any(t.id in ("SCMTrigger", "BranchEvent") for t in triggers):
        return "SCMTrigger"
    users = [t.id for t in triggers if t.type == "UserIdCause"]
    return users[0] if users else "SYSTEM"


def _params(actions: Any) -> list[Param]:
    params: list[Param] = []
    for action in actions:
        for raw in _dicts(action.get("parameters")):
            name, value = raw.get("name"), raw.get("value")
            cls = _simple_class(raw)
            if not isinstance(name, str) or value is None or _SECRET_PARAM.search(cls):
                continue
            if isinstance(value, bool):
                text, inferred = ("true" if value else "false"), "BooleanParameterValue"
            elif isinstance(value, str):
                text, inferred = value, "StringParameterValue"
            elif isinstance(value, int | float):
                text, inferred = str(value), "StringParameterValue"
            else:
                text, inferred = json.dumps(value, sort_keys=True), "StringParameterValue"
            params.append(Param(type=cls or inferred, name=name, value=text))
    return params


def _checkouts(actions: list[dict[str, Any]]) -> list[_Checkout]:
    """Every git BuildData action, in the order Jenkins lists them."""
    found: list[_Checkout] = []
    for action in actions:
        if "lastBuiltRevision" not in action and "remoteUrls" not in action:
            continue
        revision = action.get("lastBuiltRevision") or {}
        sha = revision.get("SHA1") if isinstance(revision, dict) else None
        branches = _dicts(revision.get("branch")) if isinstance(revision, dict) else []
        built = [b for b in branches if b.get("SHA1") in (None, sha)] or branches
        branch = _plain_branch(built[0].get("name")) if built else None
        remotes = [u for u in action.get("remoteUrls") or [] if isinstance(u, str) and u]
        found.append(
            _Checkout(sha=sha if isinstance(sha, str) else None, branch=branch, remotes=remotes)
        )
    return found


def _plain_branch(name: Any) -> str | None:
    """`refs/remotes/origin/main`, `origin/main`, `refs/heads/main` -> `main`."""
    if not isinstance(name, str) or not name:
        return None
    if name.startswith("refs/heads/"):
        return name[len("refs/heads/") :]
    if name.startswith("refs/remotes/"):
        rest = name[len("refs/remotes/") :]
        return rest.split("/", 1)[1] if "/" in rest else rest
    if name.startswith("remotes/"):
        rest = name[len("remotes/") :]
        return rest.split("/", 1)[1] if "/" in rest else rest
    if name.startswith("origin/"):
        return name[len("origin/") :]
    return name


def _is_library(checkout: _Checkout, library_repos: tuple[str, ...]) -> bool:
    return any(fnmatchcase(url, glob) for url in checkout.remotes for glob in library_repos)


def _repo_stem(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git").lower()


def _pick_checkout(
    checkouts: list[_Checkout], job: Job, library_repos: tuple[str, ...]
) -> tuple[_Checkout | None, list[_Checkout]]:
    """The project's own checkout, and the ones that are shared libraries.

    A pipeline run often has one BuildData per checkout, a shared library's frequently first,
    so the first one is not the answer. In order: a branch job's checkout of its own branch; a
    checkout whose remote is not a configured library; one whose repository is named like the
    job; one whose remote is not an unexpanded `$VARIABLE`; then the first left.
    """
    libraries = [c for c in checkouts if _is_library(c, library_repos)]
    candidates = [c for c in checkouts if c not in libraries]
    if not candidates:
        return None, libraries
    if job.branch:
        own = [c for c in candidates if c.branch == job.branch]
        if own:
            return own[0], libraries + [c for c in candidates if c is not own[0]]
    if len(candidates) > 1:
        names = {job.pipeline.lower(), job.name.lower()}
        named = [c for c in candidates if any(_repo_stem(u) in names for u in c.remotes)]
        expanded = [c for c in candidates if c.remotes and "$" not in c.remotes[0]]
        for preferred in (named, expanded):
            if preferred:
                return preferred[0], libraries
    return candidates[0], libraries


def _commits(
    build: dict[str, Any], project: _Checkout | None, libraries: list[_Checkout]
) -> list[str]:
    """Changeset commits, then the built revision; never a shared library's head."""
    sets = _dicts(build.get("changeSets")) + _dicts([build.get("changeSet")])
    library_shas = {c.sha for c in libraries if c.sha}
    commits: list[str] = []
    for change_set in sets:
        for item in _dicts(change_set.get("items")):
            commit = item.get("commitId") or item.get("revision")
            if commit is not None:
                commits.append(str(commit))
    if project and project.sha:
        commits.append(project.sha)
    unique = dict.fromkeys(c for c in commits if c and c not in library_shas)
    return list(unique)


def _repo_url(project: _Checkout | None) -> str | None:
    if not project:
        return None
    return next((u for u in project.remotes if "$" not in u), None)


def _project_name(template: str | None, job: Job) -> str | None:
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


def _is_cd(job: Job, ctx: MapContext) -> bool:
    return any(fnmatchcase(job.full_name, glob) for glob in ctx.cd_jobs)
