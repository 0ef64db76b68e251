"""How a job is named in SEI: as the official plugin names it today, as it did up to 1.0.42,
or Jenkins' `fullName`.

SEI keys a job on (instance, `job_full_name`) and builds its links back to Jenkins from that
name, each segment passed as it is into a `job/<segment>` path. The official plugin
(propelo-job-reporter, `JobRunParserService`) sends the job's place below `$JENKINS_HOME/jobs`:
folder children under `jobs/`, multibranch branches under `branches/`, Maven modules under
`modules/`. What each segment is changed across its releases (../shared/sei-api.md):

- `plugin` (1.0.46 on, the default): every segment is the Jenkins item name, a branch job's in
  branch-api's NameEncoder form (`feature%2Flogin`): the only form Jenkins resolves in a link.
  `qualified_name` spells the branch as it is (`JobFullNameConverter.
  replaceEncodedBranchInNormalizedName`).
- `plugin-legacy` (up to 1.0.42, and this agent's earlier releases): the directory names, so
  branch and organization-folder repository segments are branch-api's NameMangler form.
- `jenkins`: `fullName` as it is.

Pure functions of names and item classes: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from agent.jenkins.namemangler import mangle

Scheme = Literal["plugin", "plugin-legacy", "jenkins"]

MAVEN_MODULE_SET = "hudson.maven.MavenModuleSet"
MULTIBRANCH = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"

# branch-api's NameEncoder.decode: only these escapes are undone, exactly as written.
_DECODED = {
    "%23": "#",
    "%25": "%",
    "%2F": "/",
    "%3F": "?",
    "%5B": "[",
    "%5C": "\\",
    "%5D": "]",
}
_WHOLE = {"%00": "", "%2E": ".", "%2E.": ".."}


def decode_name(name: str) -> str:
    """A branch or repository item name back to the real name (branch-api's NameEncoder)."""
    if "%" not in name:
        return name
    if name in _WHOLE:
        return _WHOLE[name]
    out: list[str] = []
    i = 0
    while i < len(name):
        escape = name[i : i + 3]
        if escape in _DECODED:
            out.append(_DECODED[escape])
            i += 3
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


def is_multibranch(cls: str | None) -> bool:
    return bool(cls) and str(cls).endswith("MultiBranchProject")


def is_organization_folder(cls: str | None) -> bool:
    return bool(cls) and str(cls).endswith("OrganizationFolder")


def is_module_set(cls: str | None) -> bool:
    return cls == MAVEN_MODULE_SET


def plugin_parts(
    names: tuple[str, ...], containers: tuple[str | None, ...], *, legacy: bool = False
) -> list[tuple[str, bool]]:
    """The segments of the job's place below `$JENKINS_HOME/jobs`, each with whether it names a
    branch; the separators (`jobs`, `branches`, `modules`) are segments of their own.

    `containers[i]` is the class of the item `names[i]` lives in (`None` for a top-level item or
    an unknown container, which is named as if it were a folder). `legacy` spells branch and
    organization-folder repository segments as their directories (NameMangler), as the plugin
    did up to 1.0.42.
    """
    parts: list[tuple[str, bool]] = []
    for name, parent in zip(names, containers, strict=True):
        on_disk = mangle(decode_name(name)) if legacy else name
        if is_multibranch(parent):
            parts += [("branches", False), (on_disk, True)]
        elif is_organization_folder(parent):
            parts += [("jobs", False), (on_disk, False)]
        elif is_module_set(parent):
            parts += [("modules", False), (name, False)]
        elif parts:
            parts += [("jobs", False), (name, False)]
        else:
            parts.append((name, False))
    return parts


def plugin_path(
    names: tuple[str, ...], containers: tuple[str | None, ...], *, legacy: bool = False
) -> str:
    """`job_full_name` as the official plugin sends it (1.0.46 on; up to 1.0.42 with `legacy`)."""
    return "/".join(part for part, _ in plugin_parts(names, containers, legacy=legacy))


_SEPARATORS = ("jobs", "branches", "modules")


def normalized(parts: list[tuple[str, bool]], *, decode: bool) -> str:
    """`qualified_name`: the path without its jobs/branches/modules segments, as the plugin
    makes it (`JobFullNameConverter.convertJobFullNameToJobNormalizedFullName`): any segment
    spelled so is dropped, a folder really named `Jobs` too, and a single-segment name is kept
    whole. `decode` spells branch segments as the real branch (plugin 1.0.43 on)."""
    if len(parts) < 2:
        return "/".join(part for part, _ in parts)
    kept = [
        decode_name(part) if decode and branch else part
        for part, branch in parts
        if part.lower() not in _SEPARATORS
    ]
    return "/".join(kept)


# Jenkins refuses `%` in an item name (Jenkins.checkGoodName), so a `%XX` escape in a name can
# only be branch-api's NameEncoder: the item is a branch job.
_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")


@dataclass(frozen=True)
class JobNaming:
    """The naming scheme in force, with the class of every container discovery saw.

    Upstream jobs are named with it too (a trigger's id must equal the upstream job's
    `job_full_name` for SEI to link the runs); containers it does not know are taken for folders.
    """

    scheme: Scheme = "plugin"
    containers: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def of(
        cls, scheme: Scheme, jobs: Iterable[tuple[tuple[str, ...], tuple[str | None, ...]]]
    ) -> JobNaming:
        """From every discovered job's names and the classes of the containers above it."""
        known: dict[str, str | None] = {}
        for names, parents in jobs:
            for depth in range(1, len(names)):
                known.setdefault("/".join(names[:depth]), parents[depth])
        return cls(scheme, known)

    def containers_of(self, names: tuple[str, ...]) -> tuple[str | None, ...]:
        """The container class of each name of a path (None at the top and where unknown)."""
        return (None, *(self.containers.get("/".join(names[:d])) for d in range(1, len(names))))

    def full_name(self, names: tuple[str, ...], containers: tuple[str | None, ...]) -> str:
        if self.scheme == "jenkins":
            return "/".join(names)
        return plugin_path(names, containers, legacy=self.scheme == "plugin-legacy")

    def qualified_name(self, names: tuple[str, ...], containers: tuple[str | None, ...]) -> str:
        """`qualified_name` (`job_normalized_full_name`) in the scheme in force."""
        if self.scheme == "jenkins":
            return "/".join(names)
        legacy = self.scheme == "plugin-legacy"
        return normalized(plugin_parts(names, containers, legacy=legacy), decode=not legacy)

    def upstream(self, project: str) -> str:
        """The `job_full_name` of an upstream job known by its Jenkins `fullName`.

        An upstream outside the discovered tree (a deleted or unreadable project) whose name
        holds a `%XX` escape is a branch job of a multibranch project: only branch-api's
        NameEncoder puts `%` in an item name.
        """
        names = tuple(project.split("/"))
        containers = self.containers_of(names)
        parent = "/".join(names[:-1])
        if len(names) > 1 and parent not in self.containers and _ENCODED.search(names[-1]):
            containers = (*containers[:-1], MULTIBRANCH)
        return self.full_name(names, containers)
