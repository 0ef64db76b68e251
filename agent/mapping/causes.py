"""Why a build started, as SEI's trigger chain: upstream builds, users, SCM, timers.

Causes are recognised by their fields where the class says too little: Jenkins 1.x omits
`_class`, and every subclass of UpstreamCause carries `upstreamProject` and `upstreamBuild`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.jenkins.causes import start_causes_of, upstream_of
from agent.jenkins.names import JobNaming
from agent.jenkins.reading import opt_text, simple_class
from agent.sei.payload import Trigger

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


def _cause_class(cause: dict[str, Any]) -> str:
    """The cause's simple class, or what its fields say it is when Jenkins 1.x left it out.

    Any cause naming an upstream build is an UpstreamCause, whatever its class: the Pipeline
    `build` step's BuildUpstreamCause, the Rebuild plugin's cause and other subclasses alike.
    """
    if upstream_of(cause):
        return "UpstreamCause"
    cls = simple_class(cause)
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
    a build caused by one of them is listed but not expanded again, so cycles end. A level's
    entries take from the budget before any of them is expanded, and nothing is expanded once
    it is spent: the causes nearest the build are kept, and the work is bounded like the chain.
    """
    listed: list[tuple[Trigger, tuple[str, int] | None]] = []
    for cause in causes:
        cls = _cause_class(cause)
        key = upstream_of(cause)
        if key is not None:
            trigger = Trigger(
                id=naming.upstream(key[0]), type="UpstreamCause", job_run_number=str(key[1])
            )
        elif cls == "UserIdCause":
            trigger = Trigger(id=opt_text(cause.get("userId")) or "anonymous", type=cls)
        elif cls == "UserCause":
            trigger = Trigger(id=opt_text(cause.get("userName")) or "anonymous", type=cls)
        elif cls in _SCM_CAUSES:
            trigger = Trigger(id="SCMTrigger", type="SCMTriggerCause")
        elif cls:
            trigger = Trigger(id=_CAUSE_IDS.get(cls, cls.removesuffix("Cause") or cls), type=cls)
        else:
            continue
        if trigger in (t for t, _ in listed):
            continue  # the same cause twice is one entry
        if not budget.take():
            break
        listed.append((trigger, key))
    triggers = []
    for trigger, key in listed:
        if key is not None and key in upstream and key not in path:
            parents = _triggers(
                start_causes_of(upstream[key]), upstream, naming, path | {key}, budget
            )
            trigger = trigger.model_copy(update={"direct_parents": parents or None})
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


def user_id(triggers: list[Trigger]) -> str:
    """From the root of the chain: SCMTrigger when SCM started it, else its user, else SYSTEM.

    A multibranch push event (BranchEventCause) is SCM-started too.
    """
    roots = _roots(triggers)
    if any(t.id in ("SCMTrigger", "BranchEvent") for t in roots):
        return "SCMTrigger"
    users = [t.id for t in roots if t.type in ("UserIdCause", "UserCause")]
    return users[0] if users else "SYSTEM"


def nearest_only(triggers: list[Trigger]) -> list[Trigger]:
    """The chain with each (id, type) kept only where it occurs nearest the build.

    SEI keeps one trigger row per (run, id, type) and writes a chain deepest entries first, so a
    job met twice in a chain (a Rebuild of #12 as #13 that starts a downstream, or a job
    upstream of itself) would be shown with its deeper build as the direct parent. Entries are
    taken level by level, nearest first; a repeat is dropped with what lies above it.
    """
    kept: set[int] = set()
    seen: set[tuple[str, str]] = set()
    level = list(triggers)
    while level:
        above: list[Trigger] = []
        for trigger in level:
            if (trigger.id, trigger.type) in seen:
                continue
            seen.add((trigger.id, trigger.type))
            kept.add(id(trigger))
            above.extend(trigger.direct_parents or [])
        level = above

    def rebuilt(trigger: Trigger) -> Trigger:
        if not trigger.direct_parents:
            return trigger
        parents = [rebuilt(p) for p in trigger.direct_parents if id(p) in kept]
        return trigger.model_copy(update={"direct_parents": parents or None})

    return [rebuilt(t) for t in triggers if id(t) in kept]


def trigger_chain(
    actions: list[dict[str, Any]],
    upstream: Mapping[tuple[str, int], list[dict[str, Any]]],
    naming: JobNaming,
    itself: tuple[str, int],
) -> list[Trigger]:
    """The build's trigger chain; `upstream` holds the actions of the builds above it."""
    return _triggers(start_causes_of(actions), upstream, naming, frozenset({itself}), _Budget())
