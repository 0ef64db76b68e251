"""A Jenkins REST API simulator, for tests.

No real Jenkins can run where the tests run, so this one imitates what the agent reads, as
described in /work/shared/jenkins-api.md: `api/json` with a real `tree=` parser (nested fields,
`*`, the four range forms, the 100-build cap on `builds`), folders, multibranch branch jobs whose
names are already percent-encoded, a context path, a wrong root-URL setting, basic auth with an
API token, log rotation, job re-creation, running builds, the pipeline-stage-view (`wfapi`),
Blue Ocean and pipeline-graph-view stage/step endpoints, the plugin list, and scripted faults
(errors, delays, login pages, truncated JSON). JSON shapes copy the recorded captures in
/work/shared/jenkins-fixtures/ and tests/fixtures/jenkins/, and for pipeline-graph-view the
plugin's own classes (PipelineStage, PipelineStep, PipelineJsonWriter).
Standard library only, so it runs wherever the tests do.
"""

from __future__ import annotations

import base64
import copy
import html
import itertools
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote

Json = Any


@dataclass
class Streamed:
    """An artifact too large to hold: `size` bytes, `head` then spaces, written 64 KiB at a time
    as the client reads them (with a Content-Length, or chunked). `sent` counts the bytes written
    before the client hung up or the body ended."""

    size: int
    head: bytes = b""
    chunked: bool = False
    sent: int = 0
    hung_up: bool = False  # the client closed the connection before the end


Reply = tuple[int, dict[str, str], bytes | Streamed]

BUILDS_CAP = 100
JSON_TYPE = "application/json;charset=utf-8"
HTML_TYPE = "text/html;charset=utf-8"

# Characters Jenkins' Util.rawEncode leaves alone in an item name; everything else is %XX (UTF-8).
_RAW_SAFE = "!$&'()*+,-.=@_~"

_CONTAINER_CLASSES = {
    "folder": "com.cloudbees.hudson.plugins.folder.Folder",
    "multibranch": "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject",
    "orgfolder": "jenkins.branch.OrganizationFolder",
}
_JOB_CLASSES = {
    "freestyle": "hudson.model.FreeStyleProject",
    "pipeline": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
    "maven": "hudson.maven.MavenModuleSet",
    "matrix": "hudson.matrix.MatrixProject",
    "module": "hudson.maven.MavenModule",
}
_BUILD_CLASSES = {
    "freestyle": "hudson.model.FreeStyleBuild",
    "pipeline": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
    "maven": "hudson.maven.MavenModuleSetBuild",
    "matrix": "hudson.matrix.MatrixBuild",
    "module": "hudson.maven.MavenBuild",
}
_COLORS = {
    "SUCCESS": "blue",
    "UNSTABLE": "yellow",
    "FAILURE": "red",
    "ABORTED": "aborted",
    "NOT_BUILT": "notbuilt",
}
_WFAPI_STATUSES = frozenset(
    {
        "SUCCESS",
        "FAILED",
        "ABORTED",
        "UNSTABLE",
        "IN_PROGRESS",
        "NOT_EXECUTED",
        "PAUSED_PENDING_INPUT",
        "SKIPPED",  # not a wfapi word: a `when` that was false; wfapi itself says SUCCESS
    }
)
# wfapi status -> Blue Ocean (result, state); NOT_EXECUTED nodes never started: all null.
_BLUE_STATUS: dict[str, tuple[str | None, str | None]] = {
    "SUCCESS": ("SUCCESS", "FINISHED"),
    "FAILED": ("FAILURE", "FINISHED"),
    "ABORTED": ("ABORTED", "FINISHED"),
    "UNSTABLE": ("UNSTABLE", "FINISHED"),
    "IN_PROGRESS": ("UNKNOWN", "RUNNING"),
    "PAUSED_PENDING_INPUT": ("UNKNOWN", "PAUSED"),
    "NOT_EXECUTED": (None, None),
    "SKIPPED": ("NOT_BUILT", "SKIPPED"),
}
# Stage status -> pipeline-graph-view state (PipelineState, lower case on the wire).
_GRAPH_STATE = {
    "SUCCESS": "success",
    "FAILED": "failure",
    "ABORTED": "aborted",
    "UNSTABLE": "unstable",
    "IN_PROGRESS": "running",
    "PAUSED_PENDING_INPUT": "paused",
    "NOT_EXECUTED": "not_built",
    "SKIPPED": "skipped",
}
# pipeline-graph-view path generations: the run action's URL name(s) and the plugin version the
# plugin list reports. "old" (before release 483) served the tree under both of its actions.
_GRAPH_VIEW = {
    "new": (("stages",), "stages", "998.vc30deece0e36"),
    "overview": (("pipeline-overview",), "pipeline-overview", "772.vb_b_19985c0b_8b_"),
    "old": (("pipeline-graph", "pipeline-console"), "pipeline-console", "482.vdf24443b_6cf9"),
}
# Build result -> wfapi run status.
_RUN_STATUS = {
    "SUCCESS": "SUCCESS",
    "FAILURE": "FAILED",
    "ABORTED": "ABORTED",
    "UNSTABLE": "UNSTABLE",
    "NOT_BUILT": "NOT_EXECUTED",
}
_PERMALINKS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "lastBuild": lambda b: True,
    "lastCompletedBuild": lambda b: not b["building"],
    "lastSuccessfulBuild": lambda b: b["result"] in ("SUCCESS", "UNSTABLE"),
    "lastStableBuild": lambda b: b["result"] == "SUCCESS",
    "lastFailedBuild": lambda b: b["result"] == "FAILURE",
    "lastUnstableBuild": lambda b: b["result"] == "UNSTABLE",
    "lastUnsuccessfulBuild": lambda b: not b["building"] and b["result"] != "SUCCESS",
}
_BO = "io.jenkins.blueocean.rest"
_BO_LINK = f"{_BO}.hal.Link"


# --------------------------------------------------------------------------------------------
# tree= filtering


class _Lazy:
    """A field computed only when an answer needs it, so `builds` costs nothing unless named."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn


# name -> (subtree, slice to apply when the value is a list)
_Spec = dict[str, tuple["_Spec", slice | None]]
_NAME_RE = re.compile(r"[^\[\]{},]+")
_RANGE_RE = re.compile(r"\s*(\d*)\s*(,?)\s*(\d*)\s*")


class _TreeParser:
    """Recursive descent over Jenkins' tree grammar: `a,b[c,d[e]]{M,N},*`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> _Spec:
        spec = self._list()
        if self.pos != len(self.text):
            self._fail("unexpected character")
        return spec

    def _fail(self, what: str) -> None:
        raise ValueError(f"bad tree {self.text!r} at {self.pos}: {what}")

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _list(self) -> _Spec:
        spec: _Spec = {}
        while True:
            name, sub, rng = self._node()
            spec[name] = (sub, rng)
            if self._peek() != ",":
                return spec
            self.pos += 1

    def _node(self) -> tuple[str, _Spec, slice | None]:
        match = _NAME_RE.match(self.text, self.pos)
        name = match.group().strip() if match else ""
        if not match or not name:
            self._fail("expected a field name")
        assert match is not None
        self.pos = match.end()
        rng = self._range() if self._peek() == "{" else None
        sub: _Spec = {}
        if self._peek() == "[":
            self.pos += 1
            sub = self._list()
            if self._peek() != "]":
                self._fail("expected ']'")
            self.pos += 1
        if self._peek() == "{":
            if rng is not None:
                self._fail("two ranges")
            rng = self._range()
        return name, sub, rng

    def _range(self) -> slice:
        end = self.text.find("}", self.pos)
        if end < 0:
            self._fail("unclosed '{'")
        body = self.text[self.pos + 1 : end]
        match = _RANGE_RE.fullmatch(body)
        if not match or not (match.group(1) or match.group(3)):
            self._fail(f"bad range {{{body}}}")
        assert match is not None
        self.pos = end + 1
        low, comma, high = match.groups()
        if not comma:  # {N}: the single element N
            return slice(int(low), int(low) + 1)
        return slice(int(low) if low else 0, int(high) if high else None)


def parse_tree(tree: str) -> _Spec:
    """Parse a `tree=` expression; ValueError when it is malformed (Jenkins answers 400)."""
    return _TreeParser(tree).parse()


def _resolve(value: Any) -> Any:
    return value.fn() if isinstance(value, _Lazy) else value


def _apply(value: Any, spec: _Spec) -> Any:
    value = _resolve(value)
    if isinstance(value, list):
        return [_apply(item, spec) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    if "_class" in value:  # objects keep their class even when it is not named
        out["_class"] = value["_class"]
    star = spec.get("*")
    for key, item in value.items():
        entry = spec.get(key, star)
        if entry is None or key == "_class":
            continue
        sub, rng = entry
        item = _resolve(item)
        if rng is not None and isinstance(item, list):
            item = item[rng]
        out[key] = _apply(item, sub)
    return out


def tree_filter(obj: Any, tree: str) -> Any:
    """Apply a Jenkins `tree=` expression to a JSON-like object, as `api/json` does.

    Fields not named are absent; `_class` stays; list elements that match nothing become
    `{"_class": ...}` or `{}`; a range `{M,N}`/`{M,}`/`{,N}`/`{N}` slices a list field.
    """
    return _apply(obj, parse_tree(tree))


def _materialize(value: Any, strip_class: bool) -> Any:
    """Resolve lazy fields (and drop `_class` for a Jenkins 1.x imitation)."""
    value = _resolve(value)
    if isinstance(value, list):
        return [_materialize(item, strip_class) for item in value]
    if isinstance(value, dict):
        return {
            key: _materialize(item, strip_class)
            for key, item in value.items()
            if not (strip_class and key == "_class")
        }
    return value


# --------------------------------------------------------------------------------------------
# HTML pages


def _error_page(status: int, reason: str, uri: str) -> bytes:
    """Jetty's error page, which Jenkins sends for 404s and most errors."""
    uri = html.escape(uri)
    return (
        "<html>\n<head>\n"
        '<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>\n'
        f"<title>Error {status} {reason}</title>\n</head>\n"
        f"<body><h2>HTTP ERROR {status} {reason}</h2>\n<table>\n"
        f"<tr><th>URI:</th><td>{uri}</td></tr>\n"
        f"<tr><th>STATUS:</th><td>{status}</td></tr>\n"
        f"<tr><th>MESSAGE:</th><td>{reason}</td></tr>\n"
        "<tr><th>SERVLET:</th><td>Stapler</td></tr>\n</table>\n"
        '<hr/><a href="https://eclipse.org/jetty">Powered by Jetty:// 10.0.20</a><hr/>\n'
        "</body>\n</html>\n"
    ).encode()


def _auth_required_page(ctx: str, path: str) -> bytes:
    """The page Jenkins sends anonymous requests when anonymous users may not read."""
    target = f"{ctx}/login?from={quote(path, safe='')}"
    return (
        f"<html><head><meta http-equiv='refresh' content='1;url={target}'/>"
        f"<script>window.location.replace('{target}');</script></head>"
        "<body style='background-color:white; color:white;'>\n\n\n"
        "Authentication required\n<!--\n-->\n\n</body></html>"
    ).encode()


def _login_page(ctx: str) -> bytes:
    """Jenkins' sign-in form, which an SSO proxy or an expired session answers with."""
    return (
        '<!DOCTYPE html><html lang="en"><head resURL="/static/abcd1234">'
        '<meta charset="utf-8"><title>Sign in [Jenkins]</title>'
        f'<link rel="stylesheet" href="{ctx}/static/abcd1234/jsbundles/simple-page.css">'
        '</head><body><div class="simple-page" role="main"><div class="modal login">'
        '<div class="container"><h1 class="logo">Welcome to Jenkins!</h1>'
        f'<form method="post" name="login" action="{ctx}/j_spring_security_check">'
        '<input autocorrect="off" autocapitalize="off" type="text" name="j_username" '
        'placeholder="Username">'
        '<input type="password" name="j_password" placeholder="Password">'
        '<button type="submit" class="submit-button">Sign in</button>'
        "</form></div></div></div></body></html>"
    ).encode()


# --------------------------------------------------------------------------------------------
# model


@dataclass(eq=False)
class _Item:
    """One Jenkins item (or the root); builds are kept oldest first, keyed by number."""

    name: str
    kind: str
    parent: _Item | None = None
    children: dict[str, _Item] = field(default_factory=dict)
    builds: dict[int, dict[str, Any]] = field(default_factory=dict)
    stages: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    before_graphview: set[int] = field(default_factory=set)
    next_build: int = 1

    @property
    def is_job(self) -> bool:
        return self.kind in _JOB_CLASSES

    @property
    def is_container(self) -> bool:
        return self.kind in _CONTAINER_CLASSES or self.kind == "root"

    @property
    def names(self) -> list[str]:
        out: list[str] = []
        item: _Item | None = self
        while item is not None and item.kind != "root":
            out.append(item.name)
            item = item.parent
        return out[::-1]

    @property
    def full_name(self) -> str:
        return "/".join(self.names)

    @property
    def is_branch(self) -> bool:
        return self.parent is not None and self.parent.kind == "multibranch"

    @property
    def display_name(self) -> str:
        """Branch jobs show the decoded branch name, as multibranch does."""
        return unquote(self.name) if self.is_branch else self.name

    @property
    def full_display_name(self) -> str:
        parts: list[str] = []
        item: _Item | None = self
        while item is not None and item.kind != "root":
            parts.append(item.display_name)
            item = item.parent
        return " » ".join(parts[::-1])

    @property
    def rel_path(self) -> str:
        """Path below the root: `job/a/job/b/`, each name encoded once (Jenkins rawEncode).

        A Maven module sits right below its project, without `job/` (its getShortUrl).
        """
        if self.kind == "module" and self.parent is not None:
            return f"{self.parent.rel_path}{quote(self.name, safe=_RAW_SAFE)}/"
        return "".join(f"job/{quote(name, safe=_RAW_SAFE)}/" for name in self.names)

    def newest_first(self) -> Iterator[dict[str, Any]]:
        return reversed(self.builds.values())

    def sorted_children(self) -> list[_Item]:
        """Jenkins keeps items in a case-insensitive sorted map."""
        return sorted(self.children.values(), key=lambda c: (c.name.lower(), c.name))


@dataclass
class _Fault:
    pattern: re.Pattern[str]
    status: int
    times: int
    body: str | None
    delay: float
    login_page: bool
    truncate: bool


def _iso(ms: int | None) -> str | None:
    """Blue Ocean's timestamp format: 2024-03-24T11:01:21.092+0000."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}+0000"


def _strip_class(value: Any) -> Any:
    if isinstance(value, list):
        return [_strip_class(item) for item in value]
    if isinstance(value, dict):
        return {k: _strip_class(v) for k, v in value.items() if k != "_class"}
    return value


def _rebase(value: Any, old: str, new: str) -> Any:
    """Rewrite absolute URLs in place when the root URL changes (e.g. at start())."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = _rebase(item, old, new)
    elif isinstance(value, dict):
        for key, item in value.items():
            value[key] = _rebase(item, old, new)
    elif isinstance(value, str) and value.startswith(old):
        return new + value[len(old) :]
    return value


class _NotFound(Exception):
    """Routing found nothing at this path: Jenkins answers 404."""


class JenkinsSim:
    """An in-process Jenkins controller: build the model with add_*, then point a client at url."""

    def __init__(
        self,
        *,
        context_path: str = "",
        user: str | None = "admin",
        token: str | None = "jenkins-token",
        latency: float = 0.0,
        version: str = "2.440.3",
        old_style: bool = False,
        wfapi: bool = True,
        blueocean: bool = True,
        graphview: bool = False,
        graphview_paths: str = "new",
        root_url: str | None = None,
        clock_ms: int = 1_763_800_000_000,
        skew_ms: int = 0,
    ) -> None:
        """`skew_ms`: how far the controller's clock is off, in its Date headers and in the
        start times of the builds added (from `clock_ms` + `skew_ms`)."""
        ctx = context_path.strip("/")
        self.context_path = f"/{ctx}" if ctx else ""
        # a path the controller moved from: requests below it are redirected (301) to the same
        # path below the context path, on the same origin, as after a reverse-proxy change
        self.moved_from = ""
        self.computer_denied = False  # /computer answers 403
        self.user = user
        self._token = token
        self.latency = latency
        self.version = version
        self.old_style = old_style
        self.wfapi = wfapi
        self.blueocean = blueocean
        # pipeline-graph-view: a build added while it is off predates the plugin and has no
        # answer there (404), as the issue describes runs older than the plugin.
        if graphview_paths not in _GRAPH_VIEW:
            raise ValueError(f"graphview_paths must be one of {sorted(_GRAPH_VIEW)}")
        self.graphview = graphview
        self.graphview_paths = graphview_paths
        self.clock_ms = clock_ms + skew_ms
        self.skew_ms = skew_ms
        self.url = ""
        self.requests: list[tuple[str, str, str]] = []
        # each answered request's arrival and end (time.monotonic()), for benchmarks
        self.answered: list[tuple[float, float]] = []
        self.in_flight = 0  # requests being answered now
        self.peak_in_flight = 0  # the most at once since the last reset_requests()
        self.artifact_content: dict[tuple[str, int, str], bytes | Streamed] = {}
        self._root_override = root_url
        self.extra_plugins: list[tuple[str, str, str]] = []  # (shortName, version, longName)
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._root = _Item(name="", kind="root")
        self._queue_id = 100
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._urls_root = self.root_url

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread; returns the base URL."""
        if self._server is not None:
            raise RuntimeError("already started")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.sim = self
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}{self.context_path}/"
        # A short poll interval keeps stop() fast; tests start and stop many simulators.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        self._rebase_urls()
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> JenkinsSim:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        """The URL Jenkins believes it has: used in every `url` field, possibly wrong."""
        if self._root_override is not None:
            return self._root_override
        return self.url or f"http://127.0.0.1:0{self.context_path}/"

    @root_url.setter
    def root_url(self, value: str | None) -> None:
        self._root_override = value
        self._rebase_urls()

    def _rebase_urls(self) -> None:
        with self._lock:
            old, new = self._urls_root, self.root_url
            if old != new:
                for item in self._walk(self._root):
                    for build in item.builds.values():
                        _rebase(build, old, new)
            self._urls_root = new

    # ---- model -----------------------------------------------------------------------------

    def _walk(self, item: _Item) -> Iterator[_Item]:
        yield item
        for child in item.children.values():
            yield from self._walk(child)

    def _find(self, full_name: str) -> _Item:
        item = self._root
        for name in full_name.split("/"):
            child = item.children.get(name)
            if child is None:
                raise KeyError(f"no item {full_name!r}")
            item = child
        return item

    def _job(self, full_name: str) -> _Item:
        item = self._find(full_name)
        if not item.is_job:
            raise ValueError(f"{full_name!r} is a {item.kind}, not a job")
        return item

    def _create(self, full_name: str, kind: str) -> _Item:
        names = full_name.split("/")
        if not all(names):
            raise ValueError(f"bad full name {full_name!r}")
        parent = self._root
        for name in names[:-1]:
            child = parent.children.get(name)
            if child is None:
                child = _Item(name=name, kind="folder", parent=parent)
                parent.children[name] = child
            if not child.is_container:
                raise ValueError(f"{child.full_name!r} is a job and cannot hold items")
            parent = child
        existing = parent.children.get(names[-1])
        if existing is not None:
            if existing.kind != kind:
                raise ValueError(f"{full_name!r} already exists as a {existing.kind}")
            return existing
        item = _Item(name=names[-1], kind=kind, parent=parent)
        parent.children[names[-1]] = item
        return item

    def add_folder(self, full_name: str) -> None:
        with self._lock:
            self._create(full_name, "folder")

    def add_multibranch(self, full_name: str) -> None:
        with self._lock:
            self._create(full_name, "multibranch")

    def add_org_folder(self, full_name: str) -> None:
        with self._lock:
            self._create(full_name, "orgfolder")

    def add_job(self, full_name: str, kind: str = "freestyle") -> None:
        if kind not in _JOB_CLASSES:
            raise ValueError(f"kind must be one of {sorted(_JOB_CLASSES)}")
        with self._lock:
            self._create(full_name, kind)

    def add_module(self, project_full_name: str, module: str) -> str:
        """Add a module to a Maven project, named `groupId$artifactId` as the maven plugin does;
        returns its full name. Its builds are added with add_build like any job's."""
        with self._lock:
            project = self._find(project_full_name)
            if project.kind != "maven":
                raise ValueError(f"{project_full_name!r} is not a Maven project")
            if "$" not in module:
                raise ValueError("a module is named groupId$artifactId")
            item = project.children.get(module)
            if item is None:
                item = project.children[module] = _Item(name=module, kind="module", parent=project)
            return item.full_name

    def add_branch(self, project_full_name: str, branch: str) -> str:
        """Add a branch job, named like multibranch does: `feature/login` -> `feature%2Flogin`."""
        with self._lock:
            project = self._find(project_full_name)
            if project.kind != "multibranch":
                raise ValueError(f"{project_full_name!r} is not a multibranch project")
            full_name = f"{project_full_name}/{quote(branch, safe='')}"
            self._create(full_name, "pipeline")
            return full_name

    def delete_job(self, full_name: str) -> None:
        """Delete an item with its builds; a job re-added later starts again at #1."""
        with self._lock:
            item = self._find(full_name)
            assert item.parent is not None
            del item.parent.children[item.name]
            prefix = full_name + "/"
            for key in [
                k for k in self.artifact_content if k[0] == full_name or k[0].startswith(prefix)
            ]:
                del self.artifact_content[key]

    def add_build(
        self,
        full_name: str,
        *,
        result: str | None = "SUCCESS",
        building: bool = False,
        timestamp: int | None = None,
        duration: int = 60_000,
        causes: list[dict[str, Any]] | None = None,
        parameters: list[dict[str, Any]] | None = None,
        build_data: list[dict[str, Any]] | None = None,
        changeset: list[str] | None = None,
        actions: list[dict[str, Any]] | None = None,
        artifacts: list[str] | None = None,
        stages: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Record the job's next build; returns the stored build JSON (edits change answers)."""
        with self._lock:
            job = self._job(full_name)
            if stages and job.kind != "pipeline":
                raise ValueError("stages exist only on pipeline jobs")
            number = job.next_build
            if timestamp is None:
                timestamp = self.clock_ms
                self.clock_ms += 1000
            else:
                self.clock_ms = max(self.clock_ms, timestamp + 1000)
            self._queue_id += 1
            build = self._build_json(
                job,
                number,
                result=None if building else result,
                building=building,
                timestamp=timestamp,
                duration=0 if building else duration,
                causes=causes,
                parameters=parameters,
                build_data=build_data or [],
                changeset=changeset or [],
                actions=actions or [],
                artifacts=artifacts or [],
            )
            if self.old_style:
                build = _strip_class(build)
            job.builds[number] = build
            job.stages[number] = self._normalize_stages(stages or [], timestamp)
            if not self.graphview:
                job.before_graphview.add(number)
            job.next_build = number + 1
            return build

    def _estimate(self, job: _Item) -> int:
        """Jenkins' estimate: the mean duration of the last few completed builds, else -1."""
        done = [
            b["duration"]
            for b in itertools.islice((b for b in job.newest_first() if not b["building"]), 3)
        ]
        return sum(done) // len(done) if done else -1

    def _build_json(
        self,
        job: _Item,
        number: int,
        *,
        result: str | None,
        building: bool,
        timestamp: int,
        duration: int,
        causes: list[dict[str, Any]] | None,
        parameters: list[dict[str, Any]] | None,
        build_data: list[dict[str, Any]],
        changeset: list[str],
        actions: list[dict[str, Any]],
        artifacts: list[str],
    ) -> dict[str, Any]:
        pipeline = job.kind == "pipeline"
        root = self.root_url
        if causes is None:
            causes = [
                {
                    "_class": "hudson.model.Cause$UserIdCause",
                    "shortDescription": "Started by user admin",
                    "userId": "admin",
                    "userName": "admin",
                }
            ]
        acts: list[dict[str, Any]] = [
            {"_class": "hudson.model.CauseAction", "causes": copy.deepcopy(causes)}
        ]
        if parameters:
            acts.append(
                {"_class": "hudson.model.ParametersAction", "parameters": copy.deepcopy(parameters)}
            )
        if job.is_branch:
            acts.append({"_class": "jenkins.scm.api.SCMRevisionAction"})
        if pipeline:
            acts += [{"_class": "org.jenkinsci.plugins.workflow.libs.LibrariesAction"}, {}, {}]
        default_branch = unquote(job.name) if job.is_branch else "refs/remotes/origin/main"
        for data in build_data:
            acts.append(self._git_build_data(data, number, default_branch))
        acts += [{}, {}, {"_class": "org.jenkinsci.plugins.displayurlapi.actions.RunDisplayAction"}]
        if pipeline:
            acts += [{}, {"_class": "org.jenkinsci.plugins.workflow.job.views.FlowGraphAction"}, {}]
        acts += copy.deepcopy(actions)
        estimate = self._estimate(job)
        build: dict[str, Any] = {
            "_class": _BUILD_CLASSES[job.kind],
            "actions": acts,
            "artifacts": [
                {
                    "displayPath": p.rsplit("/", 1)[-1],
                    "fileName": p.rsplit("/", 1)[-1],
                    "relativePath": p,
                }
                for p in artifacts
            ],
            "building": building,
            "description": None,
            "displayName": f"#{number}",
            "duration": duration,
            "estimatedDuration": duration if estimate < 0 and not building else estimate,
            "executor": None,
            "fullDisplayName": f"{job.full_display_name} #{number}",
            "id": str(number),
            "keepLog": False,
            "number": number,
            "queueId": self._queue_id,
            "result": result,
            "timestamp": timestamp,
            "url": f"{root}{job.rel_path}{number}/",
        }
        items = [self._commit(cid, i, timestamp) for i, cid in enumerate(changeset)]
        if pipeline:
            build["changeSets"] = (
                [{"_class": "hudson.plugins.git.GitChangeSetList", "items": items, "kind": "git"}]
                if items
                else []
            )
            build["culprits"] = []
            build["inProgress"] = building
        else:
            build["builtOn"] = ""
            build["changeSet"] = (
                {"_class": "hudson.plugins.git.GitChangeSetList", "items": items, "kind": "git"}
                if items
                else {"_class": "hudson.scm.EmptyChangeLogSet", "items": [], "kind": None}
            )
            build["culprits"] = []
            if job.kind in ("maven", "module"):
                build["mavenArtifacts"] = None
                build["mavenVersionUsed"] = "3.9.6"
            if job.kind == "matrix":
                build["runs"] = []
        return build

    @staticmethod
    def _git_build_data(data: dict[str, Any], number: int, default_branch: str) -> dict[str, Any]:
        sha = data["sha"]
        branch = data.get("branch") or default_branch
        revision = {"SHA1": sha, "branch": [{"SHA1": sha, "name": branch}]}
        return {
            "_class": "hudson.plugins.git.util.BuildData",
            "buildsByBranchName": {
                branch: {
                    "_class": "hudson.plugins.git.util.Build",
                    "buildNumber": number,
                    "buildResult": None,
                    "marked": copy.deepcopy(revision),
                    "revision": copy.deepcopy(revision),
                }
            },
            "lastBuiltRevision": revision,
            "remoteUrls": [data.get("remote", "https://git.example.com/acme/app.git")],
            "scmName": "",
        }

    def _commit(self, commit_id: str, index: int, timestamp: int) -> dict[str, Any]:
        author = f"dev{index % 3}"
        path = f"src/module{index}.py"
        moment = datetime.fromtimestamp(timestamp / 1000, tz=UTC)
        return {
            "_class": "hudson.plugins.git.GitChangeSet",
            "affectedPaths": [path],
            "commitId": commit_id,
            "timestamp": timestamp - 60_000,
            "author": {"absoluteUrl": f"{self.root_url}user/{author}", "fullName": author},
            "authorEmail": f"{author}@example.com",
            "comment": f"Change {index} ({commit_id[:7]})\n",
            "date": moment.strftime("%Y-%m-%d %H:%M:%S +0000"),
            "id": commit_id,
            "msg": f"Change {index} ({commit_id[:7]})",
            "paths": [{"editType": "edit", "file": path}],
        }

    @staticmethod
    def _normalize_stages(stages: list[dict[str, Any]], timestamp: int) -> list[dict[str, Any]]:
        """Check and complete `add_build(stages=...)`.

        A stage is `{"id", "name", "status", "start", "duration", "steps": [...]}` with a wfapi
        status word, or SKIPPED for a `when` that was false. `parallel_of` names the earlier
        top-level stage whose parallel branch it is; `nested_in` names the earlier branch it is
        a sequential stage of (`parallel { stage('b') { stages { ... } } }`).
        """
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        top: set[str] = set()
        branches: set[str] = set()
        for raw in stages:
            sid = str(raw["id"])
            status = raw.get("status", "SUCCESS")
            if sid in seen or status not in _WFAPI_STATUSES:
                raise ValueError(f"stage {sid}: duplicate id or bad status {status!r}")
            parent = raw.get("parallel_of")
            parent = None if parent is None else str(parent)
            if parent is not None and parent not in top:
                raise ValueError(f"stage {sid}: parallel_of {parent!r} is not an earlier stage")
            nested = raw.get("nested_in")
            nested = None if nested is None else str(nested)
            if nested is not None and (parent is not None or nested not in branches):
                raise ValueError(f"stage {sid}: nested_in {nested!r} is not an earlier branch")
            seen.add(sid)
            if parent is None and nested is None:
                top.add(sid)
            if parent is not None:
                branches.add(sid)
            start = int(raw.get("start", timestamp))
            steps = []
            for step in raw.get("steps", []):
                step_status = step.get("status", status)
                if step_status not in _WFAPI_STATUSES:
                    raise ValueError(f"step {step.get('id')}: bad status {step_status!r}")
                steps.append(
                    {
                        "id": str(step["id"]),
                        "name": step.get("name", "Shell Script"),
                        "description": step.get("description"),
                        "status": step_status,
                        "start": int(step.get("start", start)),
                        "duration": int(step.get("duration", 0)),
                    }
                )
            out.append(
                {
                    "id": sid,
                    "name": raw["name"],
                    "status": status,
                    "start": start,
                    "duration": int(raw.get("duration", 0)),
                    "parallel_of": parent,
                    "nested_in": nested,
                    "steps": steps,
                }
            )
        return out

    def finish_build(
        self, full_name: str, number: int, result: str = "SUCCESS", duration: int = 60_000
    ) -> None:
        """A running build completes; its running stages take the run's final status."""
        with self._lock:
            job = self._job(full_name)
            build = job.builds[number]
            build.update(building=False, result=result, duration=duration)
            if "inProgress" in build:
                build["inProgress"] = False
            if build["estimatedDuration"] < 0:
                build["estimatedDuration"] = duration
            final = _RUN_STATUS.get(result, "SUCCESS")
            for stage in job.stages.get(number, []):
                for node in [stage, *stage["steps"]]:
                    if node["status"] == "IN_PROGRESS":
                        node["status"] = final

    def delete_build(self, full_name: str, number: int) -> None:
        """Log rotation: the build is gone and its URL answers 404."""
        with self._lock:
            job = self._job(full_name)
            del job.builds[number]
            job.stages.pop(number, None)
            job.before_graphview.discard(number)
            for key in [k for k in self.artifact_content if k[:2] == (full_name, number)]:
                del self.artifact_content[key]

    def stages_of(self, full_name: str, number: int) -> list[dict[str, Any]]:
        """A run's stages as the simulator keeps them (id, name, status, parallel_of, steps):
        the truth every stage source answers from."""
        with self._lock:
            return copy.deepcopy(self._job(full_name).stages.get(number, []))

    def build(self, full_name: str, number: int) -> dict[str, Any]:
        """The stored build JSON (the live object: edits change what the server answers)."""
        with self._lock:
            return self._job(full_name).builds[number]

    # ---- faults and request log ------------------------------------------------------------

    def inject_fault(
        self,
        path_regex: str,
        *,
        status: int = 500,
        times: int = 1,
        body: str | None = None,
        delay: float = 0.0,
        login_page: bool = False,
        truncate: bool = False,
    ) -> None:
        """The next `times` requests whose path matches answer this way instead (FIFO)."""
        with self._lock:
            self._faults.append(
                _Fault(re.compile(path_regex), status, times, body, delay, login_page, truncate)
            )

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.pattern.search(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _record(self, method: str, path: str, query: str) -> float:
        arrived = time.monotonic()
        with self._lock:
            self.requests.append((method, path, query))
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return arrived

    def _left(self, arrived: float) -> None:
        with self._lock:
            self.in_flight -= 1
            self.answered.append((arrived, time.monotonic()))

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()
            self.answered.clear()
            self.peak_in_flight = self.in_flight

    def count(self, path_regex: str = ".*") -> int:
        """How many recorded requests had a path matching the regex (re.search)."""
        pattern = re.compile(path_regex)
        with self._lock:
            return sum(1 for _, path, _ in self.requests if pattern.search(path))

    # ---- serving ---------------------------------------------------------------------------

    def _headers(self, content_type: str) -> dict[str, str]:
        return {
            "Content-Type": content_type,
            "X-Jenkins": self.version,
            "X-Hudson": "1.395",
            "X-Jenkins-Session": "4b2a7c9e",
            "X-Content-Type-Options": "nosniff",
            "Server": "Jetty(10.0.20)",
        }

    def _html(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> Reply:
        headers = self._headers(HTML_TYPE)
        headers.update(extra or {})
        return status, headers, body

    def _not_found(self, path: str) -> Reply:
        return self._html(404, _error_page(404, "Not Found", path))

    def _fault_reply(self, fault: _Fault, path: str) -> Reply:
        if fault.login_page:
            return self._html(200, _login_page(self.context_path))
        if fault.body is not None:
            looks_json = fault.body.lstrip().startswith(("{", "["))
            headers = self._headers(JSON_TYPE if looks_json else HTML_TYPE)
            return fault.status, headers, fault.body.encode()
        reason = _REASONS.get(fault.status, "Error")
        return self._html(fault.status, _error_page(fault.status, reason, path))

    def _check_auth(self, authorization: str | None, path: str) -> Reply | None:
        """Basic auth with user:token; anonymous gets 403, bad credentials 401 (as Jenkins)."""
        if self.user is None or self._token is None:
            return None
        if not authorization:
            extra = {
                "X-You-Are-Authenticated-As": "anonymous",
                "X-You-Are-In-Group-Disabled": "JENKINS-39402: use -Dhudson.security."
                "AccessDeniedException2.REPORT_GROUP_HEADERS=true or use /whoAmI to diagnose",
                "X-Required-Permission": "hudson.model.Hudson.Read",
                "X-Permission-Implied-By": "hudson.security.Permission.GenericRead",
            }
            return self._html(403, _auth_required_page(self.context_path, path), extra)
        scheme, _, encoded = authorization.partition(" ")
        try:
            user, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            user, secret = "", ""
        if scheme.lower() != "basic" or user != self.user or secret != self._token:
            body = _error_page(401, "Unauthorized", path).replace(
                b"<td>Unauthorized</td>",
                b"<td>Invalid password/token for user: " + html.escape(user).encode() + b"</td>",
            )
            return self._html(401, body, {"WWW-Authenticate": 'Basic realm="Jenkins"'})
        return None

    def _respond(self, method: str, path: str, query: str, authorization: str | None) -> Reply:
        ctx = self.context_path
        if self.moved_from and path.startswith(self.moved_from + "/"):
            headers = self._headers(HTML_TYPE)
            rest = path[len(self.moved_from) :]
            headers["Location"] = ctx + rest + (f"?{query}" if query else "")
            return 301, headers, b""
        if ctx:
            if path == ctx:
                headers = self._headers(HTML_TYPE)
                headers["Location"] = f"{ctx}/"
                return 302, headers, b""
            if not path.startswith(ctx + "/"):
                return self._not_found(path)
        denied = self._check_auth(authorization, path)
        if denied is not None:
            return denied
        if method not in ("GET", "HEAD"):
            return self._html(
                403, _error_page(403, "No valid crumb was included in the request", path)
            )
        params = parse_qs(query, keep_blank_values=True)
        tree = (params.get("tree") or [""])[-1]
        pretty = (params.get("pretty") or [""])[-1] == "true"
        segments = [s for s in path[len(ctx) :].split("/") if s]
        try:
            with self._lock:
                found = self._route(segments, path)
                if isinstance(found, tuple):
                    return found
                if tree:
                    found = tree_filter(found, tree)
                body = _materialize(found, self.old_style)
                text = json.dumps(body, ensure_ascii=False, indent=2 if pretty else None)
        except _NotFound:
            return self._not_found(path)
        except ValueError as exc:
            return self._html(400, _error_page(400, html.escape(str(exc)), path))
        return 200, self._headers(JSON_TYPE), text.encode()

    def _route(self, segs: list[str], path: str) -> Json | Reply:
        """The object at this path (JSON-like, maybe lazy) or a complete non-JSON reply."""
        if segs == ["api", "json"]:
            return self._root_json()
        if segs == ["whoAmI", "api", "json"]:
            return self._who_am_i()
        if segs == ["pluginManager", "api", "json"]:
            return self._plugins()
        if segs == ["computer", "api", "json"]:
            if self.computer_denied:  # a token whose strategy hides the agents
                return self._html(403, _error_page(403, "lacks Overall/Read", path))
            return self._computers()
        if segs[:1] == ["blue"]:
            if not self.blueocean:
                raise _NotFound
            return self._route_blue(segs[1:])
        item, i = self._root, 0
        while i + 1 < len(segs) and segs[i] in ("job", "view"):
            if segs[i] == "job":
                child = item.children.get(unquote(segs[i + 1])) if item.is_container else None
                if child is None:
                    raise _NotFound  # a Maven module is not under job/ (see below)
                item = child
            elif not item.is_container:
                raise _NotFound
            i += 2
        rest = segs[i:]
        if item.kind == "maven" and rest and unquote(rest[0]) in item.children:
            item, rest = item.children[unquote(rest[0])], rest[1:]  # job/app/g$a/...
        if item is self._root:
            if rest == ["api", "json"]:
                return self._root_json()
            raise _NotFound
        if rest == ["api", "json"]:
            return self._item_json(item)
        if not item.is_job or not rest:
            raise _NotFound
        number = self._resolve_build(item, rest[0])
        build, sub = item.builds[number], rest[1:]
        if sub == ["api", "json"]:
            return build
        if sub == ["wfapi", "describe"] and self.wfapi and item.kind == "pipeline":
            return self._wfapi_run(item, number)
        if (
            len(sub) == 5
            and sub[:2] == ["execution", "node"]
            and sub[3:] == ["wfapi", "describe"]
            and self.wfapi
            and item.kind == "pipeline"
        ):
            return self._wfapi_node(item, number, unquote(sub[2]))
        if sub[:1] == ["artifact"] and len(sub) > 1:
            return self._artifact(item, number, "/".join(unquote(s) for s in sub[1:]))
        if len(sub) == 2 and self._serves_graph_view(item, number):
            actions, steps_action, _ = _GRAPH_VIEW[self.graphview_paths]
            if sub[0] in actions and sub[1] == "tree":
                return self._graph_tree(item, number)
            if sub == [steps_action, "allSteps"]:
                return self._graph_all_steps(item, number)
        raise _NotFound

    @staticmethod
    def _resolve_build(job: _Item, segment: str) -> int:
        if segment.isdigit() and int(segment) in job.builds:
            return int(segment)
        test = _PERMALINKS.get(segment)
        if test is not None:
            for build in job.newest_first():
                if test(build):
                    return int(build["number"])
        raise _NotFound

    def _artifact(self, job: _Item, number: int, rel: str) -> Reply:
        if not any(a["relativePath"] == rel for a in job.builds[number]["artifacts"]):
            raise _NotFound
        key = (job.full_name, number, rel)
        default = f"artifact {job.full_name} #{number} {rel}\n".encode()
        body = self.artifact_content.get(key, default)
        return 200, self._headers("application/octet-stream"), body

    # ---- classic JSON ----------------------------------------------------------------------

    def _view(self, url: str) -> dict[str, Any]:
        return {"_class": "hudson.model.AllView", "name": "all", "url": url}

    def _root_json(self) -> dict[str, Any]:
        root = self.root_url
        return {
            "_class": "hudson.model.Hudson",
            "assignedLabels": [{"name": "built-in"}],
            "mode": "NORMAL",
            "nodeDescription": "the Jenkins controller's built-in node",
            "nodeName": "",
            "numExecutors": 2,
            "description": None,
            "jobs": _Lazy(lambda: [self._item_json(c) for c in self._root.sorted_children()]),
            "overallLoad": {},
            "primaryView": self._view(root),
            "quietDownReason": None,
            "quietingDown": False,
            "slaveAgentPort": -1,
            "unlabeledLoad": {"_class": "jenkins.model.UnlabeledLoadStatistics"},
            "url": root,
            "useCrumbs": True,
            "useSecurity": self.user is not None,
            "views": [self._view(root)],
        }

    def _item_json(self, item: _Item) -> dict[str, Any]:
        url = f"{self.root_url}{item.rel_path}"
        common = {
            "description": None if item.is_container else "",
            "displayName": item.display_name,
            "displayNameOrNull": None,
            "fullDisplayName": item.full_display_name,
            "fullName": item.full_name,
            "name": item.name,
            "url": url,
        }
        if item.is_container:
            return {
                "_class": _CONTAINER_CLASSES[item.kind],
                "actions": [
                    {},
                    {},
                    {"_class": "com.cloudbees.plugins.credentials.ViewCredentialsAction"},
                ],
                **common,
                "healthReport": [],
                "jobs": _Lazy(lambda: [self._item_json(c) for c in item.sorted_children()]),
                "primaryView": self._view(url),
                "views": [self._view(url)],
            }

        def first() -> dict[str, Any] | None:
            return next(iter(item.builds.values()), None)

        def permalink(name: str) -> _Lazy:
            test = _PERMALINKS[name]
            return _Lazy(lambda: next((b for b in item.newest_first() if test(b)), None))

        last = next(item.newest_first(), None)
        last_done = next((b for b in item.newest_first() if not b["building"]), None)
        color = _COLORS.get(last_done["result"], "notbuilt") if last_done else "notbuilt"
        if last is not None and last["building"]:
            color += "_anime"
        props: list[dict[str, Any]] = []
        if item.is_branch:
            props.append(
                {
                    "_class": "org.jenkinsci.plugins.workflow.multibranch.BranchJobProperty",
                    "branch": {},
                }
            )
        job: dict[str, Any] = {
            "_class": _JOB_CLASSES[item.kind],
            "actions": [
                {},
                {},
                {"_class": "com.cloudbees.plugins.credentials.ViewCredentialsAction"},
            ],
            **common,
            "buildable": True,
            "builds": _Lazy(lambda: list(itertools.islice(item.newest_first(), BUILDS_CAP))),
            "allBuilds": _Lazy(lambda: list(item.newest_first())),
            "color": color,
            "firstBuild": _Lazy(first),
            "healthReport": [],
            "inQueue": False,
            "keepDependencies": False,
            "lastBuild": permalink("lastBuild"),
            "lastCompletedBuild": permalink("lastCompletedBuild"),
            "lastFailedBuild": permalink("lastFailedBuild"),
            "lastStableBuild": permalink("lastStableBuild"),
            "lastSuccessfulBuild": permalink("lastSuccessfulBuild"),
            "lastUnstableBuild": permalink("lastUnstableBuild"),
            "lastUnsuccessfulBuild": permalink("lastUnsuccessfulBuild"),
            "nextBuildNumber": item.next_build,
            "property": props,
            "queueItem": None,
            "concurrentBuild": False,
        }
        if item.kind == "maven":
            job["modules"] = _Lazy(lambda: [self._item_json(c) for c in item.sorted_children()])
        if item.kind == "pipeline":
            job["resumeBlocked"] = False
        else:
            job.update(
                downstreamProjects=[], upstreamProjects=[], scm={"_class": "hudson.scm.NullSCM"}
            )
        return job

    def _computers(self) -> dict[str, Any]:
        """What the executors run now: each build in progress, a Pipeline run on a flyweight
        executor of the built-in node, any other build on one of its numbered executors (two
        of them idle), as `computer/api/json` answers."""
        flyweight: list[dict[str, Any]] = []
        numbered: list[dict[str, Any]] = []
        for item in self._walk(self._root):
            for build in item.builds.values():
                if build.get("building"):
                    running = {"_class": build["_class"], "number": build["number"]}
                    running["url"] = build["url"]
                    target = flyweight if item.kind == "pipeline" else numbered
                    target.append({"currentExecutable": running})
        numbered += [{"currentExecutable": None}] * 2
        return {
            "_class": "hudson.model.ComputerSet",
            "computer": [
                {
                    "_class": "hudson.model.Hudson$MasterComputer",
                    "executors": numbered,
                    "oneOffExecutors": flyweight,
                }
            ],
        }

    def _who_am_i(self) -> dict[str, Any]:
        anonymous = self.user is None or self._token is None
        name = "anonymous" if anonymous else self.user
        return {
            "_class": "hudson.security.WhoAmI",
            "anonymous": anonymous,
            "authenticated": True,
            "authorities": ["anonymous"] if anonymous else ["authenticated"],
            "details": None,
            "name": name,
            "toString": f"UsernamePasswordAuthenticationToken [Principal={name}]",
        }

    def _plugins(self) -> dict[str, Any]:
        names = [
            ("workflow-job", "1400.v7fd111b_ec82f", "Pipeline: Job"),
            ("git", "5.2.2", "Git plugin"),
            ("cloudbees-folder", "6.928.v7c780211d66e", "Folders Plugin"),
            ("workflow-multibranch", "783.va_6eb_ef636fb_d", "Pipeline: Multibranch"),
            ("branch-api", "2.1152.v6f101e97dd77", "Branch API Plugin"),
            ("display-url-api", "2.200.vb_9327d658781", "Display URL API"),
        ]
        if self.wfapi:
            names.append(("pipeline-stage-view", "2.34", "Pipeline: Stage View Plugin"))
        if self.graphview:
            version = _GRAPH_VIEW[self.graphview_paths][2]
            names.append(("pipeline-graph-view", version, "Pipeline Graph View"))
        if self.blueocean:
            names += [
                ("blueocean-rest", "1.27.11", "REST API for Blue Ocean"),
                ("blueocean", "1.27.11", "Blue Ocean"),
            ]
        names += self.extra_plugins
        plugins: list[dict[str, Any]] = [
            {
                "active": True,
                "backupVersion": None,
                "bundled": False,
                "deleted": False,
                "dependencies": [],
                "downgradable": False,
                "enabled": True,
                "hasUpdate": False,
                "longName": long_name,
                "pinned": False,
                "requiredCoreVersion": "2.401.3",
                "shortName": short,
                "supportsDynamicLoad": "MAYBE",
                "url": f"https://plugins.jenkins.io/{short}",
                "version": version,
            }
            for short, version, long_name in names
        ]
        return {"_class": "hudson.LocalPluginManager", "plugins": plugins}

    # ---- wfapi -----------------------------------------------------------------------------

    def _build_path(self, job: _Item, number: int) -> str:
        return f"{self.context_path}/{job.rel_path}{number}/"

    @staticmethod
    def _is_top(stage: dict[str, Any]) -> bool:
        return stage["parallel_of"] is None and stage["nested_in"] is None

    @staticmethod
    def _wfapi_status(status: str) -> str:
        """wfapi has no word for a skipped stage: it ran, instantly, without error."""
        return "SUCCESS" if status == "SKIPPED" else status

    def _wfapi_stage(self, base: str, stage: dict[str, Any]) -> dict[str, Any]:
        return {
            "_links": {"self": {"href": f"{base}execution/node/{stage['id']}/wfapi/describe"}},
            "id": stage["id"],
            "name": stage["name"],
            "execNode": "",
            "status": self._wfapi_status(stage["status"]),
            "startTimeMillis": stage["start"],
            "durationMillis": stage["duration"],
            "pauseDurationMillis": 0,
        }

    def _wfapi_run(self, job: _Item, number: int) -> dict[str, Any]:
        build = job.builds[number]
        base = self._build_path(job, number)
        status = (
            "IN_PROGRESS"
            if build["building"]
            else _RUN_STATUS.get(build["result"] or "", "NOT_EXECUTED")
        )
        stages = job.stages.get(number, [])
        links: dict[str, Any] = {"self": {"href": f"{base}wfapi/describe"}}
        if build["artifacts"]:
            links["artifacts"] = {"href": f"{base}wfapi/artifacts"}
        return {
            "_links": links,
            "id": str(number),
            "name": f"#{number}",
            "status": status,
            "startTimeMillis": build["timestamp"],
            "endTimeMillis": build["timestamp"] + build["duration"],
            "durationMillis": build["duration"],
            "queueDurationMillis": 5,
            "pauseDurationMillis": 0,
            "stages": [self._wfapi_stage(base, s) for s in stages if self._is_top(s)],
        }

    def _wfapi_node(self, job: _Item, number: int, node_id: str) -> dict[str, Any]:
        """A stage with its steps (a parallel stage also lists its branches' steps).

        wfapi knows no stages nested in a branch: their steps are the branch's.
        """
        stages = job.stages.get(number, [])
        stage = next((s for s in stages if s["id"] == node_id), None)
        if stage is None:
            raise _NotFound
        base = self._build_path(job, number)
        owners = [(stage, stage)] + [
            (branch, owner)
            for branch in stages
            if branch["parallel_of"] == node_id
            for owner in [branch, *(s for s in stages if s["nested_in"] == branch["id"])]
        ]
        flow_nodes = [
            {
                "_links": {
                    "self": {"href": f"{base}execution/node/{step['id']}/wfapi/describe"},
                    "log": {"href": f"{base}execution/node/{step['id']}/wfapi/log"},
                },
                "id": step["id"],
                "name": step["name"],
                "execNode": "",
                "status": self._wfapi_status(step["status"]),
                "parameterDescription": step["description"],
                "startTimeMillis": step["start"],
                "durationMillis": step["duration"],
                "pauseDurationMillis": 0,
                "parentNodes": [branch["id"]],
            }
            for branch, owner in owners
            for step in owner["steps"]
        ]
        return {**self._wfapi_stage(base, stage), "stageFlowNodes": flow_nodes}

    # ---- Blue Ocean ------------------------------------------------------------------------

    def _route_blue(self, segs: list[str]) -> Json:
        if segs[:3] != ["rest", "organizations", "jenkins"]:
            raise _NotFound
        segs = segs[3:]
        org = f"{self.context_path}/blue/rest/organizations/jenkins/"
        if not segs:
            return {
                "_class": f"{_BO}.service.embedded.rest.OrganizationImpl",
                "_links": {"self": {"_class": _BO_LINK, "href": org}},
                "displayName": "Jenkins",
                "name": "jenkins",
            }
        item, i = self._root, 0
        while i + 1 < len(segs) and segs[i] in ("pipelines", "branches"):
            if (segs[i] == "branches") != (item.kind == "multibranch"):
                raise _NotFound  # branch jobs live under branches/, everything else pipelines/
            child = item.children.get(unquote(segs[i + 1]))
            if child is None:
                raise _NotFound
            item = child
            i += 2
        if item is self._root:
            raise _NotFound
        href = org + "".join(
            f"{'branches' if (p.parent and p.parent.kind == 'multibranch') else 'pipelines'}/"
            f"{quote(p.name, safe=_RAW_SAFE)}/"
            for p in self._chain(item)
        )
        rest = segs[i:]
        if not rest:
            return self._blue_pipeline(item, href)
        if rest[0] != "runs" or len(rest) < 2 or item.kind != "pipeline":
            raise _NotFound
        number = self._resolve_build(item, rest[1])
        run_href = f"{href}runs/{number}/"
        sub = rest[2:]
        stages = item.stages.get(number, [])
        if not sub:
            return self._blue_run(item, number, run_href)
        if sub == ["nodes"]:
            return self._blue_nodes(stages, run_href)
        if sub == ["steps"]:
            return [self._blue_step(st, f"{run_href}steps/") for s in stages for st in s["steps"]]
        if len(sub) >= 2 and sub[0] == "nodes":
            nodes = {n["id"]: n for n in self._blue_nodes(stages, run_href)}
            node_id = unquote(sub[1])
            if node_id not in nodes:
                raise _NotFound
            if len(sub) == 2:
                return nodes[node_id]
            if sub[2:] == ["steps"]:
                stage = next(s for s in stages if s["id"] == node_id)
                step_href = f"{run_href}nodes/{node_id}/steps/"
                return [self._blue_step(st, step_href) for st in stage["steps"]]
        raise _NotFound

    @staticmethod
    def _chain(item: _Item) -> list[_Item]:
        chain: list[_Item] = []
        node: _Item | None = item
        while node is not None and node.kind != "root":
            chain.append(node)
            node = node.parent
        return chain[::-1]

    def _blue_pipeline(self, item: _Item, href: str) -> dict[str, Any]:
        if item.kind == "multibranch":
            cls = "io.jenkins.blueocean.rest.impl.pipeline.MultiBranchPipelineImpl"
        elif item.is_container:
            cls = "io.jenkins.blueocean.service.embedded.rest.PipelineFolderImpl"
        elif item.is_branch:
            cls = "io.jenkins.blueocean.rest.impl.pipeline.BranchImpl"
        elif item.kind == "pipeline":
            cls = "io.jenkins.blueocean.rest.impl.pipeline.PipelineImpl"
        else:
            cls = "io.jenkins.blueocean.service.embedded.rest.AbstractPipelineImpl"
        return {
            "_class": cls,
            "_links": {"self": {"_class": _BO_LINK, "href": href}},
            "displayName": item.display_name,
            "fullDisplayName": item.full_display_name.replace(" » ", "/"),
            "fullName": item.full_name,
            "name": item.name,
            "organization": "jenkins",
        }

    def _blue_run(self, job: _Item, number: int, href: str) -> dict[str, Any]:
        build = job.builds[number]
        links = {
            k: {"_class": _BO_LINK, "href": f"{href}{k}/" if k != "self" else href}
            for k in ("self", "nodes", "steps", "log", "artifacts", "changeSet")
        }
        causes: list[dict[str, Any]] = next(
            (a["causes"] for a in build["actions"] if "causes" in a), []
        )
        end = None if build["building"] else build["timestamp"] + build["duration"]
        return {
            "_class": "io.jenkins.blueocean.rest.impl.pipeline.PipelineRunImpl",
            "_links": links,
            "actions": [],
            "causeOfBlockage": None,
            "causes": copy.deepcopy(causes),
            "description": None,
            "durationInMillis": build["duration"],
            "enQueueTime": _iso(build["timestamp"] - 5),
            "endTime": _iso(end),
            "estimatedDurationInMillis": build["estimatedDuration"],
            "id": str(number),
            "name": None,
            "organization": "jenkins",
            "pipeline": job.name,
            "replayable": True,
            "result": "UNKNOWN" if build["building"] else build["result"],
            "runSummary": "stable" if build["result"] == "SUCCESS" else "broken",
            "startTime": _iso(build["timestamp"]),
            "state": "RUNNING" if build["building"] else "FINISHED",
            "type": "WorkflowRun",
            "commitId": None,
        }

    @staticmethod
    def _blue_timing(node: dict[str, Any]) -> dict[str, Any]:
        result, state = _BLUE_STATUS[node["status"]]
        started = node["status"] != "NOT_EXECUTED"
        return {
            "durationInMillis": node["duration"] if started else None,
            "result": result,
            "startTime": _iso(node["start"]) if started else None,
            "state": state,
        }

    def _blue_nodes(self, stages: list[dict[str, Any]], run_href: str) -> list[dict[str, Any]]:
        """Stages, parallel branches and the stages nested in a branch, each a node."""
        top = [s for s in stages if self._is_top(s)]
        edge_cls = "io.jenkins.blueocean.rest.impl.pipeline.PipelineNodeImpl$EdgeImpl"
        edges: dict[str, list[dict[str, str]]] = {}
        first_parent: dict[str, str | None] = {}

        def edge(node: dict[str, Any] | None, kind: str = "STAGE") -> list[dict[str, str]]:
            return [{"_class": edge_cls, "id": node["id"], "type": kind}] if node else []

        for idx, stage in enumerate(top):
            following = top[idx + 1] if idx + 1 < len(top) else None
            first_parent[stage["id"]] = top[idx - 1]["id"] if idx else None
            branches = [s for s in stages if s["parallel_of"] == stage["id"]]
            if not branches:
                edges[stage["id"]] = edge(following)
                continue
            edges[stage["id"]] = [e for b in branches for e in edge(b, "PARALLEL")]
            for branch in branches:
                first_parent[branch["id"]] = stage["id"]
                chain = [branch, *(s for s in stages if s["nested_in"] == branch["id"])]
                for before, after in itertools.pairwise(chain):
                    edges[before["id"]] = edge(after)
                    first_parent[after["id"]] = before["id"]
                edges[chain[-1]["id"]] = edge(following)
        out = []
        for stage in stages:
            href = f"{run_href}nodes/{stage['id']}/"
            out.append(
                {
                    "_class": "io.jenkins.blueocean.rest.impl.pipeline.PipelineNodeImpl",
                    "_links": {
                        "self": {"_class": _BO_LINK, "href": href},
                        "actions": {"_class": _BO_LINK, "href": f"{href}actions/"},
                        "steps": {"_class": _BO_LINK, "href": f"{href}steps/"},
                    },
                    "actions": [],
                    "displayDescription": None,
                    "displayName": stage["name"],
                    **self._blue_timing(stage),
                    "id": stage["id"],
                    "input": None,
                    "type": "PARALLEL" if stage["parallel_of"] is not None else "STAGE",
                    "causeOfBlockage": None,
                    "edges": edges[stage["id"]],
                    "firstParent": first_parent[stage["id"]],
                    "restartable": False,
                }
            )
        return out

    def _blue_step(self, step: dict[str, Any], base: str) -> dict[str, Any]:
        href = f"{base}{step['id']}/"
        return {
            "_class": "io.jenkins.blueocean.rest.impl.pipeline.PipelineStepImpl",
            "_links": {
                "self": {"_class": _BO_LINK, "href": href},
                "actions": {"_class": _BO_LINK, "href": f"{href}actions/"},
            },
            "actions": [],
            "displayDescription": step["description"],
            "displayName": step["name"],
            **self._blue_timing(step),
            "id": step["id"],
            "input": None,
            "type": "STEP",
        }

    # ---- pipeline-graph-view -----------------------------------------------------------

    def _serves_graph_view(self, job: _Item, number: int) -> bool:
        return self.graphview and job.kind == "pipeline" and number not in job.before_graphview

    def _graph_node(self, stage: dict[str, Any]) -> dict[str, Any]:
        """The common fields of PipelineStage and PipelineStep, in the plugin's order.

        Releases since 483 write with Jackson leaving nulls out (PipelineJsonWriter): a running
        node has no totalDurationMillis. Older ones wrote every getter, with 0 while running.
        """
        running = stage["status"] in ("IN_PROGRESS", "PAUSED_PENDING_INPUT")
        never = stage["status"] == "NOT_EXECUTED"
        node: dict[str, Any] = {
            "id": stage["id"],
            "name": stage["name"],
            "state": _GRAPH_STATE[stage["status"]],
            "type": "STAGE",
            "title": stage["name"],
            "pauseDurationMillis": 0,
            "startTimeMillis": 0 if never else stage["start"],
        }
        if not running or self.graphview_paths == "old":
            node["totalDurationMillis"] = 0 if running or never else stage["duration"]
        return node

    def _graph_stage(
        self, job: _Item, number: int, stage: dict[str, Any], children: list[dict[str, Any]]
    ) -> dict[str, Any]:
        _, action, _ = _GRAPH_VIEW[self.graphview_paths]
        run = f"{job.rel_path}{number}/"
        node = self._graph_node(stage)
        node["type"] = "PARALLEL" if stage["parallel_of"] is not None else "STAGE"
        node["children"] = children
        if self.graphview_paths == "old":  # every getter, nulls included; no placeholder yet
            node.update(
                seqContainerName=None,
                nextSibling=None,
                isSequential=False,
                synthetic=False,
                agent="built-in",
                url=f"/{run}{action}?selected-node={stage['id']}",
            )
            return node
        node.update(
            isSequential=False,
            synthetic=False,
            placeholder=False,
            agent="built-in",
            url=f"/{run}{action}/?selected-node={stage['id']}",
        )
        return node

    def _graph_tree(self, job: _Item, number: int) -> dict[str, Any]:
        """`<build>/stages/tree`: top-level stages, a stage's parallel branches as its
        children, a branch's sequential stages as the branch's children (PipelineGraphApi)."""
        stages = job.stages.get(number, [])

        def node(stage: dict[str, Any]) -> dict[str, Any]:
            below = [s for s in stages if stage["id"] in (s["parallel_of"], s["nested_in"])]
            return self._graph_stage(job, number, stage, [node(s) for s in below])

        graph = {
            "stages": [node(s) for s in stages if self._is_top(s)],
            "complete": not job.builds[number]["building"],
        }
        return {"status": "ok", "data": graph}

    def _graph_all_steps(self, job: _Item, number: int) -> dict[str, Any]:
        """`<build>/stages/allSteps`: every step with its stage's id (PipelineStepApi).

        `name` is the step's arguments when it has some (the shell command), and `title` its
        kind then, except that Shell Script and Print Message get no title (release 448 on).
        """
        steps = []
        for stage in job.stages.get(number, []):
            for step in stage["steps"]:
                node = self._graph_node(step)
                node["type"] = "STEP"
                if step["description"]:
                    node["name"] = step["description"]
                    quiet = step["name"] in ("Shell Script", "Print Message")
                    node["title"] = "" if quiet else step["name"]
                else:
                    node["title"] = ""
                node["stageId"] = stage["id"]
                if self.graphview_paths != "old":
                    node["flags"] = {}
                steps.append(node)
        steps.sort(key=lambda n: (int(n["stageId"]), int(n["id"])))
        data: dict[str, Any] = {"steps": steps}
        if self.graphview_paths != "old":
            data["runIsComplete"] = not job.builds[number]["building"]
        return {"status": "ok", "data": data}


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sim: JenkinsSim

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (e.g. on a timeout test) is normal here, not worth a trace."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Every method goes through _handle; the simulator decides the whole answer."""

    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 10
    disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms ACK stalls

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: nothing a request carries (least of all its credentials) reaches the logs."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header: the controller's clock, skewed as the simulator was told."""
        now = time.time() + self.server.sim.skew_ms / 1000
        return super().date_time_string(now if timestamp is None else timestamp)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        sim = self.server.sim
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path, _, query = self.path.partition("?")
        arrived = sim._record(method, path, query)
        try:
            self._answer(sim, method, path, query)
        finally:
            sim._left(arrived)

    def _answer(self, sim: JenkinsSim, method: str, path: str, query: str) -> None:
        if sim.latency > 0:
            time.sleep(sim.latency)
        fault = sim._take_fault(path)
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)
        if fault is not None and not fault.truncate:
            status, headers, body = sim._fault_reply(fault, path)
        else:
            status, headers, body = sim._respond(
                method, path, query, self.headers.get("Authorization")
            )
            if fault is not None and isinstance(body, bytes):
                status, body = 200, body[: len(body) // 2]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if isinstance(body, Streamed):
            self._stream(body, method)
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def _stream(self, body: Streamed, method: str) -> None:
        if body.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(body.size))
        self.end_headers()
        if method == "HEAD":
            return
        left = body.size
        while left > 0:
            chunk = (body.head[body.sent :] + b" " * 65536)[: min(65536, left)]
            try:
                if body.chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    self.wfile.write(chunk)
            except OSError:
                body.hung_up = self.close_connection = True
                return  # the rest is never made
            body.sent += len(chunk)
            left -= len(chunk)
        if body.chunked:
            self.wfile.write(b"0\r\n\r\n")
