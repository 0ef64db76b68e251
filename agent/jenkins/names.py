"""How a job is named in SEI: the official plugin's on-disk path, or Jenkins' `fullName`.

SEI keys a job on (instance, `job_full_name`) and builds its links back to Jenkins from that
name with `/jobs/` and `/branches/` turned into `/job/`. The official plugin sends the job's
directory relative to `$JENKINS_HOME/jobs`: folder children under `jobs/`, multibranch branches
under `branches/`, Maven modules under `modules/`, and branch and organization-folder repository
directories in branch-api's NameMangler form. Sending that same form (`plugin`, the default)
keeps one row per job for a user who moves from the plugin, and links that work for jobs inside
folders; `jenkins` sends `fullName` as it is.

Pure functions of names and item classes: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from agent.jenkins.namemangler import mangle

Scheme = Literal["plugin", "jenkins"]
Names = tuple[str, ...]
Containers = tuple[str | None, ...]

MAVEN_MODULE_SET = "hudson.maven.MavenModuleSet"

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


def plugin_path(names: tuple[str, ...], containers: tuple[str | None, ...]) -> str:
    """The job's directory below `$JENKINS_HOME/jobs`, as the official plugin sends it.

    `containers[i]` is the class of the item `names[i]` lives in (`None` for a top-level item or
    an unknown container, which is named as if it were a folder).
    """
    parts: list[str] = []
    for name, parent in zip(names, containers, strict=True):
        if is_multibranch(parent):
            parts += ["branches", mangle(decode_name(name))]
        elif is_organization_folder(parent):
            parts += ["jobs", mangle(decode_name(name))]
        elif is_module_set(parent):
            parts += ["modules", name]
        elif parts:
            parts += ["jobs", name]
        else:
            parts.append(name)
    return "/".join(parts)


def normalized(path: str) -> str:
    """`qualified_name`: the path without its jobs/branches/modules segments, as the plugin does.

    Like the plugin, any segment spelled so is dropped, and a single-segment name is kept whole.
    """
    parts = path.split("/")
    if len(parts) < 2:
        return path
    return "/".join(p for p in parts if p.lower() not in ("jobs", "branches", "modules"))


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
        return plugin_path(names, containers)

    def upstream(self, project: str) -> str:
        """The `job_full_name` of an upstream job known by its Jenkins `fullName`."""
        names = tuple(project.split("/"))
        return self.full_name(names, self.containers_of(names))
