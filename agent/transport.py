"""HTTP for both sides: one pooled, thread-safe urllib3 connection pool per server.

urllib3 rather than httpx because the agent is CPU-bound at the request rates of a backfill:
measured against the simulator on this project's machines, a keep-alive GET costs about 0.38 ms
of client CPU with urllib3, 0.99 ms with httpx and 0.26 ms with bare http.client (which has no
pooling, proxies or thread safety). See bench/ and the README's performance section.

TLS is verified unless switched off, which is logged at every start. Proxies come from an
explicit setting, else from HTTPS_PROXY / HTTP_PROXY / NO_PROXY as every HTTP tool reads them.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    InsecureRequestWarning,
    NameResolutionError,
    NewConnectionError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from agent import __version__
from agent.config import TransportSettings

log = logging.getLogger(__name__)
USER_AGENT = f"jenkins-sei-agent/{__version__}"


class Unreachable(Exception):
    """No connection could be made (refused, unknown host, TLS failure, proxy failure)."""


class TransportFailure(Exception):
    """The connection was made but the exchange failed (timeout, reset); worth retrying."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class Http:
    """A pool of keep-alive connections to one server, safe to share between threads."""

    def __init__(
        self,
        base: str,
        settings: TransportSettings,
        *,
        side: str,
        headers: dict[str, str],
        timeout: float,
        connections: int,
        on_request: Callable[[str, float], None] | None = None,
    ) -> None:
        self.base = base
        self._headers = {"User-Agent": USER_AGENT, **headers}
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._on_request = on_request
        tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"}
        if settings.insecure:
            log.warning(
                "TLS certificates of %s are NOT verified (%s_INSECURE=true); anyone on the path "
                "can read the credentials",
                side,
                side.upper(),
            )
            tls = {"cert_reqs": "CERT_NONE", "assert_hostname": False}
            urllib3.disable_warnings(InsecureRequestWarning)  # said once above, not per request
        elif settings.ca_bundle is not None:
            tls["ca_certs"] = str(settings.ca_bundle)
        common = {"maxsize": connections, "block": True, "retries": False, **tls}
        proxy = proxy_for(base, settings.proxy)
        self._manager: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, **common) if proxy else urllib3.PoolManager(**common)
        )
        # Without a proxy every request goes to the one host of `base`: its pool directly,
        # which skips the manager's per-request URL parsing and pool lookup.
        self._pool: urllib3.PoolManager | urllib3.HTTPConnectionPool = (
            self._manager if proxy else self._manager.connection_from_url(base)
        )
        self._prefix = base if proxy else urlsplit(base).path

    def close(self) -> None:
        self._manager.clear()

    def request(
        self,
        method: str,
        path: str,
        *,
        fields: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Answer:
        """One exchange; raises Unreachable or TransportFailure when there is no answer."""
        url = self._prefix + path
        started = time.monotonic()
        status = "error"
        try:
            response = self._pool.request(
                method,
                url,
                fields=fields,
                body=body,
                headers=self._headers,
                timeout=self._timeout,
                redirect=False,
                preload_content=True,
            )
            status = str(response.status)
            return Answer(response.status, dict(response.headers), response.data)
        except (
            NewConnectionError,
            NameResolutionError,
            ConnectTimeoutError,
            ProxyError,
            SSLError,
        ) as exc:
            raise Unreachable(_reason(exc)) from None
        except ReadTimeoutError:
            raise TransportFailure("timed out") from None
        except HTTPError as exc:
            raise TransportFailure(_reason(exc)) from None
        finally:
            if self._on_request is not None:
                self._on_request(status, time.monotonic() - started)


def proxy_for(url: str, configured: str | None) -> str | None:
    """The explicit proxy, else the environment's for this URL unless NO_PROXY exempts it."""
    if configured:
        return configured
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    return text.splitlines()[0][:200]
