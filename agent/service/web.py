"""The HTTP side of `run`: /healthz for probes, /metrics for Prometheus, /status for people.

The standard library's threaded server is enough for a few probes and scrapes a minute, and it
keeps the image free of a web framework.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST

from agent.config import ConfigError

log = logging.getLogger(__name__)


class Endpoints(Protocol):
    def health(self) -> tuple[bool, dict[str, Any]]: ...

    def metrics_text(self) -> bytes: ...

    def status(self) -> dict[str, Any]: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, endpoints: Endpoints) -> None:
        super().__init__((host, port), _Handler)
        self.endpoints = endpoints


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "jenkins-sei-agent"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        endpoints = self.server.endpoints
        try:
            if path == "/healthz":
                healthy, body = endpoints.health()
                self._send(200 if healthy else 503, _json(body), "application/json")
            elif path == "/metrics":
                self._send(200, endpoints.metrics_text(), CONTENT_TYPE_LATEST)
            elif path == "/status":
                self._send(200, _json(endpoints.status()), "application/json")
            else:
                body = {"error": "not found", "paths": ["/healthz", "/metrics", "/status"]}
                self._send(404, _json(body), "application/json")
        except Exception:
            log.exception("%s failed", path)
            self._send(500, _json({"error": "internal error"}), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would drown the cycle lines: debug level only."""
        log.debug("%s " + format, self.address_string(), *args)


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


class StatusServer:
    """Serves the endpoints on `host` (every interface when empty) and `port` (0: a free port,
    see `.port`) in a background thread."""

    def __init__(self, port: int, endpoints: Endpoints, host: str = "") -> None:
        try:
            self._server = _Server(host, port, endpoints)
        except OSError as exc:
            raise ConfigError(
                f"invalid setting AGENT_HTTP_PORT/AGENT_HTTP_HOST: cannot listen on "
                f"{host or '*'}:{port} ({exc.strerror or exc})"
            ) from None
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
