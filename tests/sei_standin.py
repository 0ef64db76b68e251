"""A stand-in for Harness SEI's ingestion API, for tests.

No SEI server runs in tests, so this one imitates what the agent talks to, as described in
/work/shared/sei-api.md: the custom-cicd validation order and messages, first write wins, the
silent drops (202 but discarded), plus scripted gateway failures (503 with Retry-After,
connection resets, slow answers) so retry and error handling can be tested without a network.

It also keeps what the server's tables would keep after the 202 (`kept`, `instance_urls`,
`jobs`), and so what SEI shows after several payloads (sei-api.md, "Keys and overwrites"):
- runs unique on (job, build_number), the first write wins; a later payload for the same key
  stores nothing of its run, parameters or triggers, but upserts its stages into that run on
  (run, stage id) and replaces its artifacts (identical entries collapse into one row);
- stages keyed on their id (a stage without one, or repeating one, abandons every stage of the
  run, and no resend adds them), steps without an id skipped, names cut to 50 characters;
- one trigger row per (run, id, type), a chain written deepest entries first, a later row with
  the same key ignored; a run's upstream links are the rows of its chain's top-level
  `UpstreamCause` entries whose id is a known job_full_name;
- the job row, unique on (instance, job_full_name): every payload overwrites its repository,
  branch, qualified name and scm user; the instance URL overwritten by every run.
Tests compare that with what Jenkins said.
Standard library only, so it works wherever the tests do.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

CUSTOM_CICD = "/v1/custom-cicd"
INSTANCES = "/v1/cicd/instances"
PUSH_ARTIFACTS = "/v1/cicd/push_artifacts"
ROUTES = (CUSTOM_CICD, INSTANCES, PUSH_ARTIFACTS)

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)

# (the server's name for a field, the payload keys it accepts), in the server's checking order.
_REQUIRED_CICD: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("job_name", ("pipeline", "job_name")),
    ("instance_name", ("instance_name", "jenkins_instance_name")),
    ("instance_guid", ("instance_guid", "jenkins_instance_guid")),
    ("job_full_name", ("job_full_name",)),
    ("qualified_name", ("qualified_name", "job_normalized_full_name")),
    ("result", ("result",)),
)
_INTEGER_FIELDS = ("start_time", "duration", "build_number")
_PARAM_KEYS = ("job_run_params", "execution_parameters")
_REQUIRED_INSTANCE = ("integration_id", "name", "type")
_REQUIRED_PUSH = ("integration_id", "repository", "job_name", "job_run_number", "artifacts")
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key"})

Payload = dict[str, Any]
Reply = tuple[int, Any, dict[str, str]]
# A kept run's key: (instance_guid, job_full_name, build_number); build_number is optional.
RunKey = tuple[str, str, int | None]


class _BadBody(Exception):
    """The request body could not be read (bad framing), so the connection is unusable."""


def _field(payload: Payload, keys: tuple[str, ...]) -> Any:
    """Value of a field that has aliases; the last one in the document wins, as in Jackson."""
    value = None
    for key, item in payload.items():
        if key in keys:
            value = item
    return value


def _is_missing(value: Any) -> bool:
    """Null and empty (or blank) strings count as missing, as the server's checks do."""
    return value is None or (isinstance(value, str) and not value.strip())


def _is_int(value: Any) -> bool:
    """A JSON integer: not a float (even 5.0), not a boolean, not a numeric string."""
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_cicd(payload: Payload) -> str | None:
    """The 400 message the server would give for this payload, or None when it is valid."""
    for name, keys in _REQUIRED_CICD:
        value = _field(payload, keys)
        if _is_missing(value):
            return f"{name} field is missing in request"
        if not isinstance(value, str):
            return f"{name} must be a string"
        if name == "instance_guid" and not _UUID_RE.match(value.strip()):
            return "instance_guid is not a valid UUID"
    for name in _INTEGER_FIELDS:
        value = payload.get(name)
        if value is not None and not _is_int(value):
            return f"{name} must be an integer"
    return None


def _null_stage_duration(payload: Payload) -> bool:
    """True when a stage or step lacks durationInMillis, which crashes the server's processing."""
    job_run = payload.get("job_run")
    if not isinstance(job_run, dict):
        return False
    for stage in job_run.get("stages") or []:
        if not isinstance(stage, dict):
            continue
        if stage.get("durationInMillis") is None:
            return True
        for step in stage.get("steps") or []:
            if isinstance(step, dict) and step.get("durationInMillis") is None:
                return True
    return False


def _null_param(payload: Payload) -> bool:
    """True when a build parameter's value is null, which rolls back the whole run."""
    for key in _PARAM_KEYS:
        params = payload.get(key)
        if isinstance(params, list):
            for param in params:
                if isinstance(param, dict) and param.get("value") is None:
                    return True
    return False


# The server's stage and step rows (its 2023 table definitions): ids NOT NULL, at most 50.
_ID_COLUMN = 50
_NAME_COLUMN = 50


def _kept_row(node: dict[str, Any]) -> dict[str, Any]:
    name = node.get("displayName")
    return {
        "id": node["id"],
        "name": name[:_NAME_COLUMN] if isinstance(name, str) else name,
        "result": node.get("result"),
        "state": node.get("state"),
        "duration": node.get("durationInMillis"),
        "start": node.get("startTime"),
    }


def _usable_id(node: Any) -> bool:
    value = node.get("id") if isinstance(node, dict) else None
    return isinstance(value, str) and 0 < len(value) <= _ID_COLUMN


def _kept_stages(job_run: Any) -> list[dict[str, Any]] | str:
    """The stage rows a run keeps. One stage without a usable id, or repeating one, fails the
    insert the handler does not catch: every stage of the run is lost (a string says why)."""
    stages = job_run.get("stages") if isinstance(job_run, dict) else None
    if not isinstance(stages, list):
        return []
    if not all(_usable_id(stage) for stage in stages):
        return "a stage without an id: every stage of the run abandoned"
    if len({stage["id"] for stage in stages}) != len(stages):
        return "a repeated stage id: every stage of the run abandoned"
    kept = []
    for stage in stages:
        row = _kept_row(stage)
        steps: dict[str, dict[str, Any]] = {}
        for step in stage.get("steps") or []:
            if _usable_id(step) and step["id"] not in steps:  # others are skipped
                steps[step["id"]] = _kept_row(step)
        row["steps"] = list(steps.values())
        kept.append(row)
    return kept


def _job_row(payload: Payload, row: Payload | None) -> Payload:
    """The job row, unique on (instance, job_full_name): its name and module as its first
    payload said, and what every payload overwrites (repository, branch, qualified name, scm
    user) as the last one said."""
    row = dict(row or {"job_full_name": payload.get("job_full_name")})
    row.setdefault("name", _field(payload, ("pipeline", "job_name")))
    row.setdefault("module_name", payload.get("module_name"))
    row["qualified_name"] = _field(payload, ("qualified_name", "job_normalized_full_name"))
    row["repo_url"] = payload.get("repo_url")
    row["branch_name"] = payload.get("branch_name")
    row["scm_user_id"] = payload.get("scm_user_id")
    return row


def _trigger_rows(chain: Any) -> dict[tuple[str, str], str | None]:
    """A run's trigger rows, one per (id, type) with its job_run_number: the chain is written
    deepest entries first (an entry's direct parents before it), and a later row with a key
    already written is ignored."""
    rows: dict[tuple[str, str], str | None] = {}

    def write(entries: Any) -> None:
        for trigger in entries if isinstance(entries, list) else []:
            if not isinstance(trigger, dict):
                continue
            write(trigger.get("direct_parents"))
            key = (str(trigger.get("id")), str(trigger.get("type")))
            rows.setdefault(key, trigger.get("job_run_number"))

    write(chain)
    return rows


def _upstream_links(
    chain: Any, rows: dict[tuple[str, str], str | None], known_jobs: set[str]
) -> list[tuple[str, int]]:
    """The runs a run is shown linked to: for each top-level `UpstreamCause` entry whose id is
    the job_full_name of a job the instance knows, the build number its row kept (a deeper
    entry of the same job wrote that row first)."""
    links: list[tuple[str, int]] = []
    for trigger in chain if isinstance(chain, list) else []:
        if not isinstance(trigger, dict) or trigger.get("type") != "UpstreamCause":
            continue
        number = rows.get((str(trigger.get("id")), "UpstreamCause"))
        link = (
            trigger.get("id"),
            int(number) if isinstance(number, str) and number.isdigit() else 0,
        )
        if link[0] in known_jobs and link[1] and link not in links:
            links.append(link)  # type: ignore[arg-type]
    return links


def _artifact_rows(artifacts: Any) -> list[Any]:
    """A run's artifacts, unique on (type, location, name, qualifier, hash): repeats collapse."""
    rows: dict[tuple[Any, ...], Any] = {}
    for artifact in artifacts if isinstance(artifacts, list) else []:
        if isinstance(artifact, dict):
            key = tuple(artifact.get(k) for k in ("type", "location", "name", "qualifier", "hash"))
            rows.setdefault(key, copy.deepcopy(artifact))
    return list(rows.values())


def _upserted(
    kept: list[dict[str, Any]] | str, new: list[dict[str, Any]] | str
) -> list[dict[str, Any]] | str:
    """A later payload's stages upserted into a run's on (run, stage id). A run whose stages
    were abandoned stays so: no resend adds them."""
    if isinstance(kept, str) or isinstance(new, str):
        return kept
    by_id = {stage["id"]: stage for stage in kept}
    by_id.update((stage["id"], stage) for stage in new)
    return list(by_id.values())


def _canonical_header(name: str) -> str:
    """Title-Case a header name so tests can index headers the same way whatever the client sent."""
    return "-".join(part.capitalize() for part in name.split("-"))


def _reject_nonstandard_constant(name: str) -> Any:
    """Refuse NaN and Infinity: Python's json accepts them, the server's JSON parser does not."""
    raise ValueError(f"invalid JSON constant {name}")


def _parse_json(raw: bytes) -> Any:
    """Parse a body as strict JSON; raises ValueError when it is not."""
    return json.loads(raw.decode("utf-8"), parse_constant=_reject_nonstandard_constant)


def _message(status: int) -> dict[str, str]:
    """Default body for a status without a more specific one."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {"message": phrase}


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its stand-in and does not log handler errors to stderr."""

    daemon_threads = True
    standin: SeiStandIn

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-answer are expected here (timeouts, resets)."""


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the stand-in; HTTP/1.1 so clients keep connections alive."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: test output should show the test, not an access log."""

    def setup(self) -> None:
        """Answer without Nagle delays; track the connection so stop() can close it."""
        super().setup()
        # Without TCP_NODELAY, headers and body in two sends cost ~40 ms (Nagle + delayed ACK).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.standin._track(self.connection, add=True)

    def finish(self) -> None:
        """Untrack the connection whatever happened."""
        try:
            super().finish()
        finally:
            self.server.standin._track(self.connection, add=False)

    def _dispatch(self) -> None:
        """Every method goes through one place so wrong methods get JSON answers too."""
        self.server.standin._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class SeiStandIn:
    """Local HTTP server imitating SEI's ingestion endpoints and recording what arrives.

    Use as a context manager, or call start() and stop(). All methods are thread-safe.
    """

    def __init__(
        self,
        *,
        api_key: str = "sei-api-key",
        known_guids: set[str] | None = None,
        prefix: str = "/sei/api",
        latency: float = 0.0,
    ) -> None:
        """known_guids=None accepts any instance_guid; a set makes other GUIDs silent drops.

        `latency` seconds pass before every answer, like a server far away (benchmarks).
        """
        self.api_key = api_key
        self.latency = latency
        self.known_guids: set[str] | None = None if known_guids is None else set(known_guids)
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.url = ""
        self.requests: list[dict[str, Any]] = []
        self.accepted: list[Payload] = []
        self.dropped: list[tuple[Payload, str]] = []
        self.runs: dict[RunKey, Payload] = {}
        self.stages: dict[RunKey, list[dict[str, Any]] | str] = {}
        self.jobs: dict[tuple[str, str], Payload] = {}
        self.triggers: dict[RunKey, dict[tuple[str, str], str | None]] = {}
        self.instance_urls: dict[str, str] = {}
        self.instances: list[Payload] = []
        self.artifact_pushes: list[Payload] = []
        self._lock = threading.RLock()
        self._script: list[dict[str, Any]] = []
        self._rejects: list[tuple[Callable[[Payload], bool], int, str]] = []
        self._fail_always: int | None = None
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on a free 127.0.0.1 port; returns the base URL without /v1, as users configure."""
        if self._server is not None:
            return self.url
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.standin = self
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}{self.prefix}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="sei-standin",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving, close open connections and release delayed answers, so tests end fast."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SeiStandIn:
        """Start on entry so `with SeiStandIn() as sei:` is ready to use."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on exit, even when the test failed."""
        self.stop()

    # -- what arrived -------------------------------------------------------------------------

    def posts_for(self, job_full_name: str, build_number: int) -> list[Payload]:
        """Every custom-cicd POST body for one build, whatever it was answered: counts resends."""
        with self._lock:
            records = list(self.requests)
        bodies = []
        for record in records:
            body = record["body"]
            if (
                record["method"] == "POST"
                and record.get("route") == CUSTOM_CICD
                and isinstance(body, dict)
                and body.get("job_full_name") == job_full_name
                and body.get("build_number") == build_number
                and _is_int(body.get("build_number"))
            ):
                bodies.append(body)
        return bodies

    # -- scripting failures -------------------------------------------------------------------

    def _route_arg(self, path: str) -> str:
        """Accept a route given as /v1/..., with the prefix, or as a full URL."""
        path = path.split("?", 1)[0]
        if "://" in path:
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        if self.prefix and path.startswith(self.prefix + "/"):
            path = path[len(self.prefix) :]
        return path

    def _add_script(self, n: int, entry: dict[str, Any]) -> None:
        """Queue n copies of a scripted behaviour, to be consumed in the order scripted."""
        if n < 0:
            raise ValueError("n must be >= 0")
        entry["path"] = self._route_arg(entry["path"])
        with self._lock:
            self._script.extend(dict(entry) for _ in range(n))

    def fail_next(
        self,
        n: int,
        *,
        status: int = 503,
        retry_after: str | None = None,
        body: str | None = None,
        path: str = CUSTOM_CICD,
    ) -> None:
        """Answer the next n requests to path with status, as a gateway would before the app."""
        self._add_script(
            n,
            {
                "kind": "fail",
                "path": path,
                "status": status,
                "retry_after": retry_after,
                "body": body,
            },
        )

    def reset_next(self, n: int, path: str = CUSTOM_CICD) -> None:
        """Reset the connection (RST, no answer) on the next n requests; nothing is stored."""
        self._add_script(n, {"kind": "reset", "path": path})

    def delay_next(self, n: int, seconds: float, path: str = CUSTOM_CICD) -> None:
        """Process the next n requests at once but answer after `seconds`, to cause timeouts.

        The payload is stored before the wait, as when a real server is slow to answer: a client
        that times out and resends exercises first write wins. stop() cuts waits short.
        """
        self._add_script(n, {"kind": "delay", "path": path, "seconds": seconds})

    def reject(
        self, predicate: Callable[[Payload], bool], status: int = 400, message: str = "rejected"
    ) -> None:
        """Answer status {"payload": message} to every custom-cicd payload matching predicate."""
        with self._lock:
            self._rejects.append((predicate, status, message))

    def clear_script(self) -> None:
        """Forget every scripted behaviour not yet used (fail_next, reset_next, delay_next)."""
        with self._lock:
            self._script.clear()

    def clear_rejects(self) -> None:
        """Remove every reject() rule."""
        with self._lock:
            self._rejects.clear()

    def fail_always(self, status: int | None) -> None:
        """Answer every custom-cicd POST with status (an SEI outage); None ends the outage."""
        with self._lock:
            self._fail_always = status

    # -- serving ------------------------------------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        """Remember open connections so stop() can close them."""
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _redacted_headers(self, h: _Handler) -> dict[str, str]:
        """Headers as received, with credentials redacted so no key is ever kept."""
        headers: dict[str, str] = {}
        for name, value in h.headers.items():
            key = _canonical_header(name)
            if name.lower() == "authorization":
                value = "ApiKey ***"
            elif name.lower() in _SECRET_HEADERS:
                value = "***"
            elif self.api_key and self.api_key in value:
                value = value.replace(self.api_key, "***")
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return headers

    def _read_body(self, h: _Handler) -> bytes:
        """Read the whole body (Content-Length or chunked) so keep-alive stays in step."""
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                line = h.rfile.readline(65537)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError as exc:
                    raise _BadBody("bad chunk size") from exc
                if size == 0:
                    while h.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(h.rfile.read(size))
                h.rfile.readline(65537)
        length = h.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError as exc:
            raise _BadBody("bad Content-Length") from exc
        if size < 0:
            raise _BadBody("bad Content-Length")
        return h.rfile.read(size)

    def _route(self, path: str) -> str | None:
        """Path relative to the prefix, or None when the request is outside it."""
        if not self.prefix:
            return path
        if path.startswith(self.prefix + "/"):
            return path[len(self.prefix) :]
        return None

    def _pop_script(self, route: str | None) -> dict[str, Any] | None:
        """Take the oldest scripted behaviour for this route, if any."""
        with self._lock:
            for index, entry in enumerate(self._script):
                if entry["path"] == route:
                    return self._script.pop(index)
        return None

    def _authorized(self, value: str | None) -> bool:
        """`ApiKey <key>`: scheme compared case-insensitively, key exactly."""
        if not value:
            return False
        parts = value.strip().split(None, 1)
        return len(parts) == 2 and parts[0].lower() == "apikey" and parts[1].strip() == self.api_key

    def _handle(self, h: _Handler) -> None:
        """Record the request, apply scripted behaviour, then answer as the server would."""
        arrived = time.monotonic()
        if self.latency:
            time.sleep(self.latency)
        path = h.path.split("?", 1)[0]
        route = self._route(path)
        bad_body: str | None
        try:
            raw = self._read_body(h)
        except _BadBody as exc:
            h.close_connection = True
            raw, bad_body = b"", str(exc)
        else:
            bad_body = None
        try:
            body: Any = _parse_json(raw)
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        record: dict[str, Any] = {
            "method": h.command,
            "path": path,
            "route": route,
            "headers": self._redacted_headers(h),
            "body": body,
            "status": None,
            "arrived": arrived,  # time.monotonic(): benchmarks read how many were in flight
        }
        with self._lock:
            self.requests.append(record)
        if bad_body is not None:
            self._send(h, record, (400, {"message": bad_body}, {}))
            return
        script = self._pop_script(route)
        if script is not None and script["kind"] == "reset":
            self._reset(h)
            return
        if script is not None and script["kind"] == "fail":
            self._send(h, record, self._scripted_failure(script))
            return
        reply = self._answer(h, route, raw)
        if script is not None and script["kind"] == "delay":
            with self._lock:
                record["status"] = reply[0]
            self._stopping.wait(script["seconds"])
        self._send(h, record, reply)

    def _scripted_failure(self, script: dict[str, Any]) -> Reply:
        """The answer fail_next() asked for; a text body is sent as text, JSON as JSON."""
        headers = {}
        if script["retry_after"] is not None:
            headers["Retry-After"] = str(script["retry_after"])
        body = script["body"]
        if body is None:
            return script["status"], _message(script["status"]), headers
        return script["status"], body, headers

    def _answer(self, h: _Handler, route: str | None, raw: bytes) -> Reply:
        """Normal processing: routing, outage, auth, content type, JSON, then the endpoint."""
        if route not in ROUTES:
            return 404, {"message": "Not Found", "path": h.path.split("?", 1)[0]}, {}
        if h.command != "POST":
            return 405, _message(405), {"Allow": "POST"}
        with self._lock:
            outage = self._fail_always
        if route == CUSTOM_CICD and outage is not None:
            return outage, _message(outage), {}
        if not self._authorized(h.headers.get("Authorization")):
            return 401, {"message": "Unauthorized"}, {}
        content_type = h.headers.get_content_type()
        if content_type != "application/json" and not content_type.endswith("+json"):
            return 415, _message(415), {}
        try:
            payload = _parse_json(raw)
        except ValueError:
            return 400, {"payload": "invalid json"}, {}
        if not isinstance(payload, dict):
            return 400, {"payload": "invalid json"}, {}
        if route == CUSTOM_CICD:
            return self._custom_cicd(payload)
        if route == INSTANCES:
            return self._create_instance(payload)
        return self._push_artifacts(payload)

    def _custom_cicd(self, payload: Payload) -> Reply:
        """Reject rules, validation, silent drops, then first write wins."""
        with self._lock:
            rejects = list(self._rejects)
        for predicate, status, message in rejects:
            try:
                matched = bool(predicate(payload))
            except Exception:
                matched = False
            if matched:
                return status, {"payload": message}, {}
        error = _validate_cicd(payload)
        if error is not None:
            return 400, {"payload": error}, {}
        guid = str(_field(payload, ("instance_guid", "jenkins_instance_guid"))).strip().lower()
        with self._lock:
            reason = None
            if self.known_guids is not None and guid not in {
                g.strip().lower() for g in self.known_guids
            }:
                reason = "unknown instance_guid"
            elif _null_param(payload):
                reason = "null parameter value"
            elif _null_stage_duration(payload):
                reason = "null stage duration"
            if reason is not None:
                self.dropped.append((payload, reason))
                return 202, {}, {}
            self.accepted.append(payload)
            key = (guid, payload["job_full_name"], payload.get("build_number"))
            stored = self.runs.get(key)
            stages = _kept_stages(payload.get("job_run"))
            if stored is None:
                self.runs[key] = stored = copy.deepcopy(payload)
                stored["artifacts"] = _artifact_rows(payload.get("artifacts"))
                self.stages[key] = stages
                self.triggers[key] = _trigger_rows(payload.get("trigger_chain"))
            else:  # first write wins, but stages upsert and artifacts are replaced
                self.stages[key] = _upserted(self.stages[key], stages)
                if payload.get("artifacts") is not None:
                    stored["artifacts"] = _artifact_rows(payload["artifacts"])
            self.jobs[key[:2]] = _job_row(payload, self.jobs.get(key[:2]))
            url = _field(payload, ("instance_url", "jenkins_instance_url"))
            if isinstance(url, str):
                self.instance_urls[guid] = url
        return 202, {}, {}

    def kept(self, job_full_name: str, build_number: int, guid: str | None = None) -> Payload:
        """What the server keeps of one run: its fields, its stages (or why they were all
        abandoned, as a string), its upstream links, its artifacts."""
        with self._lock:
            matches = [
                key
                for key in self.runs
                if key[1:] == (job_full_name, build_number) and guid in (None, key[0])
            ]
            if len(matches) != 1:
                raise KeyError(f"{len(matches)} runs of {job_full_name} #{build_number} kept")
            key = matches[0]
            run = copy.deepcopy(self.runs[key])
            known = {job for g, job in self.jobs if g == key[0]}
            return {
                "result": run.get("result"),
                "start_time": run.get("start_time"),
                "duration": run.get("duration"),
                "user_id": _field(run, ("user_id", "triggered_by")),
                "stages": copy.deepcopy(self.stages[key]),
                "upstream": _upstream_links(run.get("trigger_chain"), self.triggers[key], known),
                "artifacts": run["artifacts"],
                "scm_commit_ids": run.get("scm_commit_ids") or [],
                "job": copy.deepcopy(self.jobs[key[:2]]),
            }

    def _create_instance(self, payload: Payload) -> Reply:
        """Create an instance GUID and make it known, so builds sent with it are kept."""
        for name in _REQUIRED_INSTANCE:
            if _is_missing(payload.get(name)):
                return 400, {"payload": f"{name} field is missing in request"}, {}
        new_id = str(uuid.uuid4())
        with self._lock:
            self.instances.append({**payload, "id": new_id})
            if self.known_guids is not None:
                self.known_guids.add(new_id)
        return 200, {"id": new_id}, {}

    def _push_artifacts(self, payload: Payload) -> Reply:
        """Accept an artifact push (the server matches these to GitHub Actions runs only)."""
        for name in _REQUIRED_PUSH:
            if _is_missing(payload.get(name)):
                return 400, {"payload": f"{name} field is missing in request"}, {}
        if not isinstance(payload["artifacts"], list):
            return 400, {"payload": "artifacts must be a list"}, {}
        with self._lock:
            self.artifact_pushes.append(payload)
        return 202, {}, {}

    def _send(self, h: _Handler, record: dict[str, Any], reply: Reply) -> None:
        """Record the status, then write the answer; a client that went away is not an error."""
        status, body, headers = reply
        with self._lock:
            record["status"] = status
        if isinstance(body, str):
            data = body.encode("utf-8")
            try:
                json.loads(body)
                content_type = "application/json"
            except RecursionError:  # JSON nested deeper than the parser goes
                content_type = "application/json"
            except ValueError:
                content_type = "text/plain; charset=utf-8"
        else:
            data = json.dumps(body).encode("utf-8")
            content_type = "application/json"
        try:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                h.send_header(name, value)
            if h.close_connection:
                h.send_header("Connection", "close")
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(data)
            h.wfile.flush()
        except OSError:
            h.close_connection = True
        record["answered"] = time.monotonic()

    def _reset(self, h: _Handler) -> None:
        """Close with SO_LINGER 0 so the client gets a TCP reset instead of an answer."""
        h.close_connection = True
        try:
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
        except OSError:
            pass
