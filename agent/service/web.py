"""The HTTP side of `run`: /healthz for probes, /metrics for Prometheus, /status for people.

Served by waitress, so that no client can starve the port or the agent: the standard library's
threaded server gave each connection a thread and a descriptor, and 1,023 idle connections
made every cycle fail ("Too many open files") and /healthz time out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import resource
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, Protocol

import waitress
from prometheus_client import CONTENT_TYPE_LATEST
from waitress import wasyncore

from agent.config import ConfigError

log = logging.getLogger(__name__)


class Endpoints(Protocol):
    def health(self) -> tuple[bool, dict[str, Any]]: ...

    def metrics_text(self) -> bytes: ...

    def status(self) -> dict[str, Any]: ...


# How many connections the server holds at once, and the idle seconds after which one is
# closed: a thousand idle connections (a scanner, a stuck client) are held in one poll loop, a
# descriptor each and no thread, beside the agent's own work; past the cap the rest wait in the
# kernel's backlog, unaccepted, until idle ones are closed.
CONNECTIONS = 2000
IDLE_SECONDS = 10
HANDLERS = 2  # requests handled at once: /healthz and a scrape never wait on each other
FDS_KEPT = 256  # descriptors left to the agent's own work (its HTTP pools, the state file, logs)


def connection_budget() -> int:
    """The connection cap, within the descriptors the process may open: the soft limit is
    raised to the hard one first (as Go's runtime does), and FDS_KEPT stay for the agent."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = CONNECTIONS + FDS_KEPT
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return CONNECTIONS
    return max(16, min(CONNECTIONS, soft - FDS_KEPT))


def _app(endpoints: Endpoints) -> Callable[..., Iterable[bytes]]:
    """The WSGI application serving the three paths."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", "")).rstrip("/")
        try:
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                status, body, kind = 405, _json({"error": "GET only"}), "application/json"
            elif path == "/healthz":
                healthy, health = endpoints.health()
                status, body, kind = 200 if healthy else 503, _json(health), "application/json"
            elif path == "/metrics":
                status, body, kind = 200, endpoints.metrics_text(), CONTENT_TYPE_LATEST
            elif path == "/status":
                status, body, kind = 200, _json(endpoints.status()), "application/json"
            else:
                paths = {"error": "not found", "paths": ["/healthz", "/metrics", "/status"]}
                status, body, kind = 404, _json(paths), "application/json"
        except Exception:
            log.exception("%s failed", path)
            status, body, kind = 500, _json({"error": "internal error"}), "application/json"
        headers = [("Content-Type", kind), ("Content-Length", str(len(body)))]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [body]

    return app


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


class StatusServer:
    """Serves the endpoints on `host` (every interface when empty) and `port` (0: a free port,
    see `.port`) in a background thread, with waitress: one poll loop holds the connections,
    HANDLERS threads answer, idle connections are closed after IDLE_SECONDS."""

    def __init__(self, port: int, endpoints: Endpoints, host: str = "") -> None:
        self._map: dict[int, Any] = {}  # waitress's sockets, served and closed by our thread
        try:
            self._server = waitress.create_server(
                _app(endpoints),
                map=self._map,
                host=host or "0.0.0.0",
                port=port,
                threads=HANDLERS,
                connection_limit=connection_budget(),
                channel_timeout=IDLE_SECONDS,
                cleanup_interval=1,
                asyncore_use_poll=True,  # select() stops at descriptor 1024
                ident="jenkins-sei-agent",
            )
        except OSError as exc:
            raise ConfigError(
                f"invalid setting AGENT_HTTP_PORT/AGENT_HTTP_HOST: cannot listen on "
                f"{host or '*'}:{port} ({exc.strerror or exc})"
            ) from None
        self.port = int(self._server.effective_port)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """Waitress's loop, a short poll at a time so that `close` is seen; the sockets are
        closed on this thread, the only one that touches them."""
        while not self._stop.is_set():
            wasyncore.loop(timeout=0.2, map=self._map, use_poll=True, count=1)
        self._server.task_dispatcher.shutdown()
        wasyncore.close_all(self._map)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
