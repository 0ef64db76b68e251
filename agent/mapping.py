"""Step 3 of the flow: one Jenkins build (JSON from queries.BUILD_FIELDS) -> one SEI payload.

A pure function: no I/O, no clock. Actions are recognised by their fields, never by position
and not only by `_class`, because Jenkins 1.x omits `_class` and every controller pads the
action list with empty `{}` entries.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Literal, TypeGuard

from pydantic import ValidationError

from agent.config import Rule
from agent.discover import Job
from agent.jobnames import JobNaming, normalized
from agent.payload import Artifact, CicdPayload, JobRun, Param, Stage, Step, Trigger
from agent.queries import artifact_path

# Parameter values that must never leave the controller, whatever the job calls them.
_SECRET_PARAM = re.compile(r"Password|Credentials|FileParameter", re.IGNORECASE)
# Jenkins 1.x sends parameters without `_class`: then the name is all there is to go by.
_SECRET_NAME = re.compile(r"password|passwd|secret|token|key|credential", re.IGNORECASE)

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


# Archived at the root of a build's artifacts, these describe its artifacts for SEI.
MANIFEST_NAMES = ("artifact-manifest.json", "sei-artifacts.json")
COMMIT_IDS_PARAMETER = "SEI_SCM_COMMIT_IDS"
MAX_COMMIT_IDS = 100
_SHA = re.compile(r"[0-9a-fA-F]{40}")

_RESULTS = {"SUCCESS", "FAILURE", "UNSTABLE", "ABORTED", "NOT_BUILT"}
_STATES = {"FINISHED", "SKIPPED", "NOT_BUILT", "RUNNING", "QUEUED", "PAUSED"}
# wfapi status -> (result, state) in Blue Ocean's words.
_WFAPI_STATUS = {
    "SUCCESS": ("SUCCESS", "FINISHED"),
    "FAILED": ("FAILURE", "FINISHED"),
    "FAILURE": ("FAILURE", "FINISHED"),
    "ABORTED": ("ABORTED", "FINISHED"),
    "UNSTABLE": ("UNSTABLE", "FINISHED"),
    "NOT_EXECUTED": ("NOT_BUILT", "NOT_BUILT"),
    "SKIPPED": ("NOT_BUILT", "SKIPPED"),
}
# pipeline-graph-view state -> (result, state), as the Blue Ocean mapping turns its own words:
# a result SEI does not know (UNKNOWN, or none while a node runs) becomes NOT_BUILT.
_GRAPH_STATES = {
    "success": ("SUCCESS", "FINISHED"),
    "failure": ("FAILURE", "FINISHED"),
    "unstable": ("UNSTABLE", "FINISHED"),
    "aborted": ("ABORTED", "FINISHED"),
    "not_built": ("NOT_BUILT", "NOT_BUILT"),
    "skipped": ("NOT_BUILT", "SKIPPED"),
    "unknown": ("NOT_BUILT", "FINISHED"),
    "finished": ("NOT_BUILT", "FINISHED"),
    "running": ("NOT_BUILT", "RUNNING"),
    "queued": ("NOT_BUILT", "QUEUED"),
    "paused": ("NOT_BUILT", "PAUSED"),
}


@dataclass(frozen=True)
class MapContext:
    """Everything the payload takes from configuration rather than from the build."""

    instance_guid: str
    instance_name: str
    instance_url: str  # the controller's public root URL (agent/discover.py), or SEI_INSTANCE_URL
    naming: JobNaming = field(default_factory=JobNaming)
    cd_jobs: tuple[str, ...] = ()
    ci_jobs: tuple[str, ...] = ()
    library_repos: tuple[str, ...] = ()
    project_name: str | None = None
    rules: tuple[Rule, ...] = ()
    max_artifacts: int = 20


@dataclass(frozen=True)
class StageData:
    """A run's raw stage answers from the source its controller offers.

    Blue Ocean: `nodes` is `.../nodes/`, `children` maps a node id to its `steps/`.
    wfapi: `nodes` is the run's `wfapi/describe` stages, `children` maps a node id to that
    node's `wfapi/describe` (stage steps, or a parallel branch with its steps).
    pipeline-graph-view: `nodes` is the stage tree's top-level `stages` (`tree` answer's `data`),
    `steps` every step of the run (`allSteps` answer's `data`), each naming its stage by `stageId`.
    """

    source: Literal["blueocean", "wfapi", "graphview"]
    nodes: list[dict[str, Any]]
    children: Mapping[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class BuildDetails:
    """What a build's listing does not carry, read separately by agent/details.py."""

    stages: StageData | None = None
    upstream: Mapping[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    manifests: tuple[Any, ...] = ()  # each archived manifest's JSON, in MANIFEST_NAMES order


@dataclass
class _Checkout:
    sha: str | None
    branch: str | None
    remotes: list[str] = field(default_factory=list)


def map_build(
    build: dict[str, Any], job: Job, ctx: MapContext, details: BuildDetails | None = None
) -> CicdPayload:
    """The heart of the agent: one finished Jenkins build as the payload SEI stores.

    `build` is the listing's JSON (queries.BUILD_FIELDS), `details` what was read beside it.
    Raises Unmappable when the build lacks what every payload needs.
    """
    number, timestamp, result = build.get("number"), build.get("timestamp"), build.get("result")
    if not _is_int(number) or not _is_int(timestamp):
        raise Unmappable(f"{job.full_name}: build without a number or start time")
    if build.get("building") or not isinstance(result, str) or not result.strip():
        raise Unmappable(f"{job.full_name} #{number}: not finished")
    if not job.pipeline.strip() or not job.full_name.strip():
        raise Unmappable(f"#{number}: a job without a name")  # SEI would refuse it
    details = details or BuildDetails()
    actions = _dicts(build.get("actions"))
    itself = frozenset({(job.full_name, number)})
    triggers = _triggers(_start_causes(actions), details.upstream, ctx.naming, itself, _Budget())
    checkouts = _checkouts(actions)
    project, libraries = _pick_checkout(checkouts, job, ctx.library_repos)
    params = _params(a for a in actions if "parameters" in a)
    duration = build.get("duration")
    rule = _RuleMatch(ctx.rules, job.full_name, result)
    full_name = ctx.naming.full_name(job.names, job.path_containers)
    declared, _ = parse_manifests(details.manifests)
    cd = _is_cd(job, ctx, declared)
    return CicdPayload(
        pipeline=job.pipeline,
        job_full_name=full_name,
        qualified_name=normalized(full_name) if ctx.naming.scheme == "plugin" else full_name,
        instance_guid=ctx.instance_guid,
        instance_name=ctx.instance_name,
        instance_url=ctx.instance_url,
        start_time=timestamp,
        duration=max(duration, 0) if _is_int(duration) else 0,
        result=result,
        build_number=number,
        execution_id=execution_id(ctx.instance_guid, job.full_name, number, timestamp),
        web_url=f"{ctx.instance_url}{job.path}{number}/",
        user_id=_user_id(triggers),
        trigger_chain=triggers,
        job_run_params=params,
        scm_commit_ids=_commits(build, project, libraries, _declared_commits(actions, params)),
        repo_url=_repo_url(project),
        branch_name=job.branch or (project.branch if project else None),
        module_name=job.module,
        project_name=_project_name(rule.get("project_name") or ctx.project_name, job),
        ci=not cd,
        cd=cd,
        job_run=map_job_run(details.stages) if details.stages else None,
        artifacts=declared + _archived(build, job, ctx) or None,
        cfr_status=rule.get("cfr_status"),
        themes=rule.get("themes"),
    )


def execution_id(instance_guid: str, full_name: str, number: int, timestamp: int) -> str:
    """Stable across retries; a restarted build number has another start time, so another id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{instance_guid}/{full_name}#{number}@{timestamp}"))


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    """A non-empty string, or None: junk in an optional text field is left out."""
    return value if isinstance(value, str) and value else None


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
    """The cause's simple class, or what its fields say it is when Jenkins 1.x left it out.

    Any cause naming an upstream build is an UpstreamCause, whatever its class: the Pipeline
    `build` step's BuildUpstreamCause, the Rebuild plugin's cause and other subclasses alike.
    """
    if upstream_of(cause):
        return "UpstreamCause"
    cls = _simple_class(cause)
    if cls:
        return cls
    if "userId" in cause:
        return "UserIdCause"
    if "userName" in cause:
        return "UserCause"  # Jenkins before 1.427 knew users by name only
    description = str(cause.get("shortDescription") or "")
    for prefix, name in _DESCRIPTION_CLASSES:
        if description.startswith(prefix):
            return name
    return ""


def upstream_of(cause: dict[str, Any]) -> tuple[str, int] | None:
    """(Jenkins full name, build number) of the upstream build a cause names, if it names one."""
    project, number = cause.get("upstreamProject"), cause.get("upstreamBuild")
    if isinstance(number, str) and number.isdigit():
        number = int(number)
    if not isinstance(project, str) or not project.strip() or not _is_int(number):
        return None
    return project, number


def start_causes(build: dict[str, Any]) -> list[dict[str, Any]]:
    return _start_causes(_dicts(build.get("actions")))


# At most this many entries in one trigger chain: a diamond of upstream builds repeats whole
# sub-chains, and a chain that large says nothing more to SEI.
MAX_TRIGGERS = 1000


class _Budget:
    """How many more trigger entries one chain may get."""

    def __init__(self, left: int = MAX_TRIGGERS) -> None:
        self.left = left

    def take(self) -> bool:
        self.left -= 1
        return self.left >= 0


def _triggers(
    causes: list[dict[str, Any]],
    upstream: Mapping[tuple[str, int], list[dict[str, Any]]],
    naming: JobNaming,
    path: frozenset[tuple[str, int]],
    budget: _Budget,
) -> list[Trigger]:
    """One entry per cause; an upstream one carries its build's own causes as direct parents.

    SEI links two runs only for type `UpstreamCause` with the upstream job's `job_full_name` as
    id, so every upstream cause is sent so. `path` holds the builds above (and the build itself):
    a build caused by one of them is listed but not expanded again, so cycles end.
    """
    triggers: list[Trigger] = []
    for cause in causes:
        cls = _cause_class(cause)
        key = upstream_of(cause)
        if key is not None:
            parents = None
            if key in upstream and key not in path:
                parents = _triggers(
                    _start_causes(upstream[key]), upstream, naming, path | {key}, budget
                )
            trigger = Trigger(
                id=naming.upstream(key[0]),
                type="UpstreamCause",
                job_run_number=str(key[1]),
                direct_parents=parents or None,
            )
        elif cls == "UserIdCause":
            trigger = Trigger(id=_text(cause.get("userId")) or "anonymous", type=cls)
        elif cls == "UserCause":
            trigger = Trigger(id=_text(cause.get("userName")) or "anonymous", type=cls)
        elif cls in _SCM_CAUSES:
            trigger = Trigger(id="SCMTrigger", type="SCMTriggerCause")
        elif cls:
            trigger = Trigger(id=_CAUSE_IDS.get(cls, cls.removesuffix("Cause") or cls), type=cls)
        else:
            continue
        if trigger not in triggers and budget.take():
            triggers.append(trigger)
    return triggers


def _roots(triggers: list[Trigger]) -> list[Trigger]:
    """The causes that started the chain: upstream causes replaced by their own causes."""
    roots: list[Trigger] = []
    for trigger in triggers:
        if trigger.type == "UpstreamCause":
            roots.extend(_roots(trigger.direct_parents or []))
        else:
            roots.append(trigger)
    return roots


def _user_id(triggers: list[Trigger]) -> str:
    """From the root of the chain: SCMTrigger when SCM started it, else its user, else SYSTEM.

    A multibranch push event (BranchEventCause) is SCM-started too.
    """
    roots = _roots(triggers)
    if any(t.id in ("SCMTrigger", "BranchEvent") for t in roots):
        return "SCMTrigger"
    users = [t.id for t in roots if t.type in ("UserIdCause", "UserCause")]
    return users[0] if users else "SYSTEM"


def _params(actions: Any) -> list[Param]:
    params: list[Param] = []
    for action in actions:
        for raw in _dicts(action.get("parameters")):
            name, value = raw.get("name"), raw.get("value")
            cls = _simple_class(raw)
            if not isinstance(name, str) or value is None or _SECRET_PARAM.search(cls):
                continue
            if not cls and _SECRET_NAME.search(name):
                continue  # a class-less DB_PASSWORD may hold the password itself
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
        remotes = [u for u in _list(action.get("remoteUrls")) if isinstance(u, str) and u]
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
    build: dict[str, Any],
    project: _Checkout | None,
    libraries: list[_Checkout],
    declared: list[str],
) -> list[str]:
    """Changeset commits, then the built revision; never a shared library's head.

    A build without a changeset may name its commits in SEI_SCM_COMMIT_IDS (`declared`).
    """
    sets = _dicts(build.get("changeSets")) + _dicts([build.get("changeSet")])
    library_shas = {c.sha for c in libraries if c.sha}
    commits: list[str] = []
    for change_set in sets:
        for item in _dicts(change_set.get("items")):
            commit = item.get("commitId") or item.get("revision")
            if isinstance(commit, str | int) and not isinstance(commit, bool):
                commits.append(str(commit))
    if not commits:
        commits.extend(declared)
    if project and project.sha:
        commits.append(project.sha)
    unique = dict.fromkeys(c for c in commits if c and c not in library_shas)
    return list(unique)[:MAX_COMMIT_IDS]


def _declared_commits(actions: list[dict[str, Any]], params: list[Param]) -> list[str]:
    """SEI_SCM_COMMIT_IDS as the official plugin reads it: the Pipeline environment first (a
    Jenkinsfile's `env.SEI_SCM_COMMIT_IDS = ...`), then a build parameter.

    40-hex SHAs split on commas, semicolons or white space, each once, at most 100.
    """
    values = [
        a["environment"].get(COMMIT_IDS_PARAMETER)
        for a in actions
        if isinstance(a.get("environment"), dict)
    ]
    values += [p.value for p in params if p.name == COMMIT_IDS_PARAMETER]
    value = next((v for v in values if isinstance(v, str) and v.strip()), "")
    shas = (s.lower() for s in re.split(r"[\s,;]+", value) if _SHA.fullmatch(s))
    return list(dict.fromkeys(shas))[:MAX_COMMIT_IDS]


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


def _is_cd(job: Job, ctx: MapContext, declared: list[Artifact]) -> bool:
    """A CD run, or else a CI run (SEI wants one true and the other false).

    AGENT_CD_JOBS, then AGENT_CI_JOBS decide when they match the job; otherwise the data does:
    a build whose manifest declares an input artifact consumed it, as a deployment does.
    """
    if any(fnmatchcase(job.full_name, glob) for glob in ctx.cd_jobs):
        return True
    if any(fnmatchcase(job.full_name, glob) for glob in ctx.ci_jobs):
        return False
    return any(a.input for a in declared)


class _RuleMatch(dict[str, Any]):
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


# -- stages and steps ---------------------------------------------------------------------


def map_job_run(data: StageData) -> JobRun:
    """Stages with their steps, each under its flow-node id, whatever the source.

    SEI stores a stage only under an id unique within the run and a step under one unique
    within its stage: a node without a usable id, or repeating one, is left out.
    """
    if data.source == "blueocean":
        stages = [
            _blue_stage(node, data.children.get(node_id))
            for node_id, node in _with_ids(_dicts(data.nodes))
        ]
    elif data.source == "graphview":
        stages = _graph_view_stages(data)
    else:
        stages = [s for _, node in _with_ids(_dicts(data.nodes)) for s in _wfapi_stages(node, data)]
    return JobRun(stages=_unique(stages))


# The longest id SEI stores (its column is 50 characters).
MAX_NODE_ID = 50


def node_id(node: dict[str, Any]) -> str | None:
    """A flow node's id as SEI keys it: a non-empty string of at most 50 characters."""
    value = node.get("id")
    if _is_int(value):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NODE_ID:
        return None
    return value


def _with_ids(nodes: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The nodes that have a usable id, each id once (the first node that has it)."""
    seen: dict[str, dict[str, Any]] = {}
    for node in nodes:
        key = node_id(node)
        if key is not None and key not in seen:
            seen[key] = node
    return list(seen.items())


def _unique(stages: list[Stage]) -> list[Stage]:
    """Each stage id once within the run (a parallel branch repeating a stage's id is dropped)."""
    seen: dict[str, Stage] = {}
    for stage in stages:
        seen.setdefault(stage.id, stage)
    return list(seen.values())


def _blue_fields(node_key: str, node: dict[str, Any]) -> dict[str, Any]:
    result = node.get("result")
    state = node.get("state")
    duration = node.get("durationInMillis")
    return {
        "id": node_key,
        "displayName": str(node.get("displayName") or node_key),
        "displayDescription": _text(node.get("displayDescription")),
        "result": result if isinstance(result, str) and result in _RESULTS else "NOT_BUILT",
        "state": state if isinstance(state, str) and state in _STATES else "NOT_BUILT",
        "durationInMillis": max(duration, 0) if _is_int(duration) else 0,
        "startTime": node.get("startTime") if isinstance(node.get("startTime"), str) else None,
    }


def _blue_stage(node: dict[str, Any], steps: Any) -> Stage:
    key = node_id(node)
    assert key is not None  # map_job_run passes only nodes with ids
    return Stage(
        **_blue_fields(key, node),
        steps=[Step(**_blue_fields(k, step)) for k, step in _with_ids(_dicts(steps))],
    )


def _wfapi_fields(node: dict[str, Any], description_key: str | None) -> dict[str, Any]:
    result, state = _WFAPI_STATUS.get(str(node.get("status")), ("NOT_BUILT", "NOT_BUILT"))
    duration = node.get("durationMillis")
    start = node.get("startTimeMillis")
    description = node.get(description_key) if description_key else None
    key = node_id(node)
    return {
        "id": key,
        "displayName": str(node.get("name") or key),
        "displayDescription": _text(description),
        "result": result,
        "state": state,
        "durationInMillis": max(duration, 0) if _is_int(duration) else 0,
        "startTime": _iso(start) if _is_int(start) and start > 0 else None,
    }


def _chain_roots(describe: dict[str, Any]) -> dict[str, str]:
    """Flow node id -> the node its chain of steps leads back to (outside the node list)."""
    nodes = _dicts(describe.get("stageFlowNodes"))
    parent = {str(n.get("id")): str((_list(n.get("parentNodes")) or [""])[0]) for n in nodes}
    roots = {}
    for start in parent:
        node, seen = start, {start}
        while parent[node] in parent and parent[node] not in seen:
            node = parent[node]
            seen.add(node)
        roots[start] = parent[node]
    return roots


def wfapi_branches(stage_describe: dict[str, Any]) -> list[str]:
    """Ids of the parallel branches inside a stage, from its flow nodes' parents.

    Each chain of steps leads back to the node that opened it: the stage itself (or its body)
    for ordinary steps, one branch node per branch in a parallel stage. One root: no branches.
    """
    roots = list(dict.fromkeys(r for r in _chain_roots(stage_describe).values() if r))
    return roots if len(roots) > 1 else []


def _wfapi_steps(describe: dict[str, Any], branch: str | None = None) -> list[Step]:
    roots = _chain_roots(describe)
    return [
        Step(**_wfapi_fields(n, "parameterDescription"))
        for key, n in _with_ids(_dicts(describe.get("stageFlowNodes")))
        if branch is None or roots.get(key) == branch
    ]


def _wfapi_stages(stage: dict[str, Any], data: StageData) -> list[Stage]:
    """A wfapi stage, and its parallel branches as stages of their own (with their node ids)."""
    describe = data.children.get(str(stage.get("id")))
    if not isinstance(describe, dict):
        return [Stage(**_wfapi_fields(stage, None))]
    branches = [
        b
        for b in wfapi_branches(describe)
        if isinstance(data.children.get(b), dict) and node_id(data.children[b])
    ]
    if not branches:
        return [Stage(**_wfapi_fields(stage, None), steps=_wfapi_steps(describe))]
    stages = [Stage(**_wfapi_fields(stage, None))]
    for branch in branches:
        stages.append(
            Stage(
                **_wfapi_fields(data.children[branch], None), steps=_wfapi_steps(describe, branch)
            )
        )
    return stages


# A step's text is its command or arguments, which can run to kilobytes (a whole shell script);
# SEI shortens names to 50 characters anyway.
MAX_STEP_TEXT = 1000


def _graph_tree(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every stage of a pipeline-graph-view tree, in the order the graph draws them.

    A node, then its `children` (the branches of a parallel, or the stages nested in a stage or
    in a branch), then its `nextSibling` (a sequential stage after it in its branch), each with
    everything below it. Synthetic stages (Declarative's checkout and post actions) and the
    placeholder that stands for a run without stages are no stages of the run; stages below
    them still are.

    Parallel blocks: where a stage holds nothing but one `parallel`, the plugin folds the block
    into that stage (PipelineNodeGraphAdapter.getNodesToRemap), so the stage comes with its
    branches as children, as Blue Ocean and wfapi send a parallel stage and its branches. A
    PARALLEL_BLOCK node left in the tree (a `parallel` outside any stage, or beside other work
    in its stage) is the parallel step's own flow node, with its id, timing and state, drawn
    by the plugin as a stage named "Parallel" heading its branches: it is sent as a stage too,
    as Blue Ocean sends its "Parallel" node.
    """
    found = []
    pending = list(reversed(nodes))
    while pending:
        node = pending.pop()
        if not isinstance(node, dict):
            continue
        pending.append(node.get("nextSibling"))
        pending.extend(reversed(_list(node.get("children"))))
        synthetic = node.get("synthetic") is True or node.get("placeholder") is True
        if not synthetic and node.get("type") != "PIPELINE_START":
            found.append(node)
    return found


def _graph_fields(key: str, node: dict[str, Any], name: str | None) -> dict[str, Any]:
    result, state = _GRAPH_STATES.get(str(node.get("state")).lower(), ("NOT_BUILT", "NOT_BUILT"))
    duration = node.get("totalDurationMillis")  # null or absent while the node runs
    start = node.get("startTimeMillis")
    return {
        "id": key,
        "displayName": name or key,
        "result": result,
        "state": state,
        "durationInMillis": max(duration, 0) if _is_int(duration) else 0,
        "startTime": _iso(start) if _is_int(start) and start > 0 else None,
    }


def _graph_step(key: str, step: dict[str, Any]) -> Step:
    """A step whose `name` is its command or arguments (`sh 'make'` gives "make"), its label,
    or for a step without arguments its kind; `title` is the kind ("Git") when `name` holds
    arguments, except that releases since 448 leave it empty for Shell Script and Print
    Message. The kind is the name SEI shows, as with Blue Ocean; the text is the description.
    """
    text = _text(step.get("name"))
    title = _text(step.get("title"))
    text = text[:MAX_STEP_TEXT] if text else None
    return Step(
        **_graph_fields(key, step, title[:MAX_STEP_TEXT] if title else text),
        displayDescription=text,
    )


def _graph_view_stages(data: StageData) -> list[Stage]:
    steps: dict[str, list[dict[str, Any]]] = {}
    for step in _dicts(data.steps):
        stage_id = step.get("stageId")
        if isinstance(stage_id, str | int) and not isinstance(stage_id, bool):
            steps.setdefault(str(stage_id), []).append(step)
    return [
        Stage(
            **_graph_fields(key, node, _text(node.get("name"))),
            steps=[_graph_step(k, step) for k, step in _with_ids(steps.get(key, []))],
        )
        for key, node in _with_ids(_graph_tree(_dicts(data.nodes)))
    ]


def _iso(ms: int) -> str:
    """Epoch ms in Blue Ocean's format, so both sources give the same startTime."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"


# -- artifacts ----------------------------------------------------------------------------


def parse_manifests(manifests: tuple[Any, ...]) -> tuple[list[Artifact], list[str]]:
    """Every archived manifest's artifacts, concatenated as the official plugin does."""
    artifacts: list[Artifact] = []
    problems: list[str] = []
    for manifest in manifests:
        found, skipped = parse_manifest(manifest)
        artifacts += found
        problems += skipped
    return artifacts, problems


_REQUIRED_ARTIFACT_FIELDS = ("type", "location", "name", "qualifier")


def parse_manifest(manifest: Any) -> tuple[list[Artifact], list[str]]:
    """Artifacts of a manifest in any of its three shapes, and why entries were skipped.

    Read as the official plugin reads it: `input`/`output` true only for true or "true" (any
    case), absent when absent; metadata values as text, nulls dropped; an entry whose type,
    location, name or qualifier is missing or blank is skipped.
    """
    if manifest is None:
        return [], []
    if isinstance(manifest, dict) and isinstance(manifest.get("artifacts"), list):
        entries = manifest["artifacts"]
    elif isinstance(manifest, dict) and isinstance(manifest.get("artifact"), dict):
        entries = [manifest["artifact"]]
    elif isinstance(manifest, dict):
        entries = [manifest]
    else:
        return [], ["the manifest is not a JSON object"]
    artifacts, problems = [], []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"entry {index} is not an object")
            continue
        required = {
            k: _scalar_text(entry.get(k)) for k in ("type", "location", "name", "qualifier")
        }
        missing = [k for k, v in required.items() if not v or not v.strip()]
        if missing:
            problems.append(f"entry {index} lacks {', '.join(missing)}")
            continue
        metadata = entry.get("metadata")
        try:
            artifacts.append(
                Artifact(
                    **{k: v for k, v in required.items() if v},
                    input=_as_boolean(entry["input"]) if "input" in entry else None,
                    output=_as_boolean(entry["output"]) if "output" in entry else None,
                    hash=_scalar_text(entry.get("hash")) or None,
                    metadata={
                        str(k): text
                        for k, v in metadata.items()
                        if (text := _json_text(v)) is not None
                    }
                    if isinstance(metadata, dict)
                    else None,
                )
            )
        except ValidationError as exc:
            problems.append(f"entry {index}: {exc.errors()[0]['msg']}")
    return artifacts, problems


def _as_boolean(value: Any) -> bool:
    """Jackson's asBoolean as the plugin applies it: true, or the text "true" in any case."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _scalar_text(value: Any) -> str | None:
    """A JSON string, number or boolean as text; None for null, objects and lists."""
    if value is None or isinstance(value, dict | list):
        return None
    return _json_text(value)


def _json_text(value: Any) -> str | None:
    """A JSON value as text the way Jackson writes it: `true`, `3`, `1.5`; null is None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def manifest_paths(build: dict[str, Any]) -> list[str]:
    """Relative paths of the artifact manifests the build archived at its root."""
    names = {str(a.get("relativePath")) for a in _dicts(build.get("artifacts"))}
    return [name for name in MANIFEST_NAMES if name in names]


def _archived(build: dict[str, Any], job: Job, ctx: MapContext) -> list[Artifact]:
    """Archived files other than manifests, as output artifacts (`AGENT_MAX_ARTIFACTS` of them).

    Named by their path in the build and qualified by the build, so that (name, qualifier),
    which SEI correlates on, is unique per execution across jobs.
    """
    archived = []
    number = build["number"]
    qualifier = f"{job.full_name}#{number}"
    for entry in _dicts(build.get("artifacts")):
        relative = entry.get("relativePath")
        if not isinstance(relative, str) or not relative.strip() or relative in MANIFEST_NAMES:
            continue
        name = entry.get("fileName")
        if not isinstance(name, str) or not name.strip():
            name = relative.rsplit("/", 1)[-1]
        location = artifact_path(job.names, number, relative, job.path_containers)
        archived.append(
            Artifact(
                type=_file_type(name),
                location=ctx.instance_url + location,
                name=relative,
                qualifier=qualifier,
                input=False,
                output=True,
            )
        )
    return archived[: ctx.max_artifacts]


def _file_type(name: str) -> str:
    lower = name.lower()
    for double in (".tar.gz", ".tar.bz2", ".tar.xz"):
        if lower.endswith(double):
            return double[1:]
    stem, dot, extension = lower.rpartition(".")
    return extension if dot and stem else "file"


def push_artifacts_body(payload: dict[str, Any], integration_id: str) -> dict[str, Any] | None:
    """The optional /v1/cicd/push_artifacts body for a mapped build; None without artifacts."""
    artifacts = payload.get("artifacts") or []
    if not artifacts:
        return None
    finished = payload["start_time"] + payload["duration"]
    return {
        "integration_id": integration_id,
        "repository": payload.get("repo_url") or payload["job_full_name"],
        "job_name": payload["job_full_name"],
        "job_run_number": str(payload["build_number"]),
        "artifacts": [
            {
                "name": a["name"],
                "location": a["location"],
                "tag": a["qualifier"],
                "digest": a.get("hash") or "",
                "type": a["type"],
                "artifact_created_at": finished,
            }
            for a in artifacts
        ],
    }
