"""Every Jenkins request the agent makes, in one table.

Each query names only the fields the mapping reads (`tree=`), so answers stay small and the
controller does not serialise what nobody uses. Change a field here and the mapping is the
only other place to look.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from agent.jenkins.names import MAVEN_MODULE_SET
from agent.jenkins.reading import dicts

# Archived at the root of a build's artifacts, these describe its artifacts for SEI.
MANIFEST_NAMES = ("artifact-manifest.json", "sei-artifacts.json")
# The archived files a listing carries per build: what the payload can send (AGENT_MAX_ARTIFACTS,
# at most 100) and the manifests. A build archiving 8,000 files listed them all, in every page:
# 50 such builds took 294 MB. Of parameters, as many as any job declares.
ARTIFACTS_LISTED = 100 + len(MANIFEST_NAMES)
PARAMETERS_LISTED = 200

# Fields of one build that the payload is mapped from. Actions are matched by their fields, so
# the same query serves controllers that omit `_class` (Jenkins 1.x).
# Of a Pipeline's environment (EnvActionImpl) only the one variable the mapping reads is asked
# for: the rest is whatever the Jenkinsfile put there, secrets included.
BUILD_FIELDS = (
    "number,timestamp,duration,result,building,"
    "actions["
    "causes[shortDescription,userId,userName,upstreamProject,upstreamBuild,upstreamUrl],"
    f"parameters[name,value]{{0,{PARAMETERS_LISTED}}},"
    "lastBuiltRevision[SHA1,branch[SHA1,name]],remoteUrls,"
    "environment[SEI_SCM_COMMIT_IDS]"
    "],"
    "changeSet[kind,items[commitId,revision]],"
    "changeSets[kind,items[commitId,revision]],"
    f"artifacts[fileName,relativePath]{{0,{ARTIFACTS_LISTED}}}"
)

# What an upstream build contributes to a trigger chain: its own causes, nothing else.
CAUSE_FIELDS = (
    "actions[causes[shortDescription,userId,userName,upstreamProject,upstreamBuild,upstreamUrl]]"
)

# What tells, for every job at once, whether it has anything new: its newest build's number and
# start time. `nextBuildNumber` only exists on jobs, which tells jobs from containers; `url`
# carries the root URL Jenkins reports; a Maven project lists its modules, jobs of their own.
JOB_STATUS_FIELDS = "name,url,nextBuildNumber,lastBuild[number,timestamp]"
MODULE_FIELDS = f"modules[{JOB_STATUS_FIELDS}]"

# Jenkins keeps `builds` to the newest 100; older builds are reachable only through `allBuilds`,
# which walks the job's whole history on every page (backfill and catch-up only).
BUILDS_CAP = 100


def discovery_tree(levels: int) -> str:
    """`jobs[...]` nested `levels` deep; the last level asks only whether more items lie below."""
    inner = "jobs[name]"
    for _ in range(levels):
        inner = f"jobs[{JOB_STATUS_FIELDS},{MODULE_FIELDS},{inner}]"
    return f"url,{inner}"


def builds_tree(start: int, end: int) -> str:
    """Builds `start` (inclusive) to `end` (exclusive), newest first, with every mapped field."""
    field = "builds" if end <= BUILDS_CAP else "allBuilds"
    return f"{field}[{BUILD_FIELDS}]{{{start},{end}}}"


def segment(text: str, safe: str = "") -> str:
    """Percent-encoded UTF-8, as Jenkins encodes it: a lone surrogate, which UTF-8 cannot hold,
    becomes '?' as Java's String.getBytes(UTF_8) makes it, rather than an error."""
    return quote(text, safe=safe, errors="replace")


def job_path(names: tuple[str, ...], containers: tuple[str | None, ...] = ()) -> str:
    """Relative URL path of an item: each name percent-encoded once, as Jenkins' rawEncode does.

    A branch job named `feature%2Flogin` becomes `job/feature%252Flogin/`. A Maven module sits
    right below its project (`job/app/com.example$core/`, no `job/`); `containers`, aligned with
    `names` from the right, says which names are modules.
    """
    parents = (None,) * (len(names) - len(containers)) + tuple(containers[-len(names) :])
    return "".join(
        f"{segment(name)}/" if parent == MAVEN_MODULE_SET else f"job/{segment(name)}/"
        for name, parent in zip(names, parents, strict=True)
    )


def api_json(path: str) -> str:
    """The classic JSON API of the item or build at `path`."""
    return f"{path}api/json"


def build_path(names: tuple[str, ...], number: int, containers: tuple[str | None, ...] = ()) -> str:
    return f"{job_path(names, containers)}{number}/"


def artifact_path(
    names: tuple[str, ...],
    number: int,
    relative_path: str,
    containers: tuple[str | None, ...] = (),
) -> str:
    return f"{build_path(names, number, containers)}artifact/{segment(relative_path, safe='/')}"


# pipeline-stage-view ("wfapi"): the run's stages, then one stage's flow nodes (its steps).
def wfapi_run(names: tuple[str, ...], number: int) -> str:
    return f"{build_path(names, number)}wfapi/describe"


def wfapi_node(names: tuple[str, ...], number: int, node_id: str) -> str:
    return f"{build_path(names, number)}execution/node/{segment(node_id)}/wfapi/describe"


# Who the credentials make us, for `check` (its `X-Jenkins` header gives the version too).
WHO_AM_I = "whoAmI/api/json"

# What every executor runs now: one request, answered from memory, its size growing with the
# executors, not the jobs. Pipeline runs sit on the built-in node's flyweight executors.
EXECUTORS = "computer/api/json"
EXECUTOR_FIELDS = (
    "computer[executors[currentExecutable[url,number]],"
    "oneOffExecutors[currentExecutable[url,number]]]"
)


# Blue Ocean: answers only when the plugin is installed; the organization is always "jenkins".
BLUE_ORGANIZATION = "blue/rest/organizations/jenkins/"


def blue_run(names: tuple[str, ...], number: int, branch_job: bool) -> str:
    """`.../pipelines/a/pipelines/b/runs/N/`; a branch job sits under its project's `branches/`."""
    encoded = [segment(name) for name in names]
    if branch_job and len(encoded) > 1:
        parents = "".join(f"pipelines/{n}/" for n in encoded[:-1])
        return f"{BLUE_ORGANIZATION}{parents}branches/{encoded[-1]}/runs/{number}/"
    return f"{BLUE_ORGANIZATION}{''.join(f'pipelines/{n}/' for n in encoded)}runs/{number}/"


def blue_nodes(run: str) -> str:
    return f"{run}nodes/"


def blue_steps(run: str, node_id: str) -> str:
    return f"{run}nodes/{segment(node_id)}/steps/"


# The plugin list: which stage sources the controller has (needs Overall/SystemRead or admin).
PLUGINS = "pluginManager/api/json"
PLUGIN_FIELDS = "plugins[shortName,version,active]"


@dataclass(frozen=True)
class GraphViewPaths:
    """Where one generation of pipeline-graph-view releases serves a run's graph and steps.

    `since` is the first release (the number before the version's first dot) that serves them.
    Both answers are `{"status": "ok", "data": ...}`.
    """

    since: int
    tree: str
    steps: str


# Newest first. The plugin's run action moved from `pipeline-console` to `pipeline-overview` in
# release 520 (May 2025) and to `stages` in 777 (February 2026). Every release before 520 also
# answers `pipeline-console/tree`: until 483 the graph and the console actions shared the tree
# method, so this path covers the releases that served it at `pipeline-graph/tree` too.
GRAPH_VIEW_PATHS = (
    GraphViewPaths(777, "stages/tree", "stages/allSteps"),
    GraphViewPaths(520, "pipeline-overview/tree", "pipeline-overview/allSteps"),
    GraphViewPaths(0, "pipeline-console/tree", "pipeline-console/allSteps"),
)


def graph_view_paths(version: str | None) -> tuple[GraphViewPaths, ...]:
    """The generation a plugin version serves; every generation, newest first, when unknown."""
    release = (version or "").split(".", 1)[0]
    if not release.isdigit() or "SNAPSHOT" in (version or ""):
        return GRAPH_VIEW_PATHS  # no version, or a build of the plugin's own sources
    return next((p,) for p in GRAPH_VIEW_PATHS if int(release) >= p.since)


def graph_tree(names: tuple[str, ...], number: int, paths: GraphViewPaths) -> str:
    return f"{build_path(names, number)}{paths.tree}"


def graph_steps(names: tuple[str, ...], number: int, paths: GraphViewPaths) -> str:
    return f"{build_path(names, number)}{paths.steps}"


def manifest_paths(build: dict[str, Any]) -> list[str]:
    """Relative paths of the artifact manifests the build archived at its root: those listed,
    and when the listing was cut at ARTIFACTS_LISTED, the others too (Jenkins lists files by
    path, hudson.model.Run#addArtifacts: a manifest may be past the cut; one that is not
    there answers 404)."""
    listed = dicts(build.get("artifacts"))
    names = {str(a.get("relativePath")) for a in listed}
    cut = len(listed) >= ARTIFACTS_LISTED
    return [name for name in MANIFEST_NAMES if cut or name in names]
