"""The project's repository, branch and commits among a build's git checkouts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from agent.jenkins.reading import as_list, dicts
from agent.jenkins.types import Job
from agent.sei.payload import Param

COMMIT_IDS_PARAMETER = "SEI_SCM_COMMIT_IDS"


MAX_COMMIT_IDS = 100


_SHA = re.compile(r"[0-9a-fA-F]{40}")


@dataclass
class Checkout:
    sha: str | None
    branch: str | None
    remotes: list[str] = field(default_factory=list)


def git_checkouts(actions: list[dict[str, Any]]) -> list[Checkout]:
    """Every git BuildData action, in the order Jenkins lists them."""
    found: list[Checkout] = []
    for action in actions:
        if "lastBuiltRevision" not in action and "remoteUrls" not in action:
            continue
        revision = action.get("lastBuiltRevision") or {}
        sha = revision.get("SHA1") if isinstance(revision, dict) else None
        branches = dicts(revision.get("branch")) if isinstance(revision, dict) else []
        built = [b for b in branches if b.get("SHA1") in (None, sha)] or branches
        branch = _plain_branch(built[0].get("name")) if built else None
        remotes = [u for u in as_list(action.get("remoteUrls")) if isinstance(u, str) and u]
        found.append(
            Checkout(sha=sha if isinstance(sha, str) else None, branch=branch, remotes=remotes)
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


def _is_library(checkout: Checkout, library_repos: tuple[str, ...]) -> bool:
    return any(fnmatchcase(url, glob) for url in checkout.remotes for glob in library_repos)


def _repo_stem(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git").lower()


def pick_checkout(
    checkouts: list[Checkout], job: Job, library_repos: tuple[str, ...]
) -> tuple[Checkout | None, list[Checkout]]:
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


def commit_ids(
    build: dict[str, Any],
    project: Checkout | None,
    libraries: list[Checkout],
    declared: list[str],
) -> list[str]:
    """Changeset commits and the built revision (never a shared library's head), then the ids
    declared in SEI_SCM_COMMIT_IDS (`declared`), each once, in that order.

    The official plugin merges the declared ids with the changelog since 1.0.43
    (`JobRunScmCommitIdsService.mergeCommitIds`); the cap bounds the changelog, never the ids a
    build declared itself (at most MAX_COMMIT_IDS of their own).
    """
    sets = dicts(build.get("changeSets")) + dicts([build.get("changeSet")])
    library_shas = {c.sha for c in libraries if c.sha}
    commits: list[str] = []
    for change_set in sets:
        for item in dicts(change_set.get("items")):
            commit = item.get("commitId") or item.get("revision")
            if isinstance(commit, str | int) and not isinstance(commit, bool):
                commits.append(str(commit))
    if project and project.sha:
        commits.append(project.sha)
    found = list(dict.fromkeys(c for c in commits if c and c not in library_shas))
    return list(dict.fromkeys([*found[:MAX_COMMIT_IDS], *declared]))


def declared_commits(actions: list[dict[str, Any]], params: list[Param]) -> list[str]:
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


def repo_url(project: Checkout | None) -> str | None:
    if not project:
        return None
    return next((u for u in project.remotes if "$" not in u), None)
