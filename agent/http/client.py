"""One httpx client per side, built from that side's settings.

Every request gets the base URL and auth, TLS (a CA bundle, else the system store; switched off
only with a warning at every start), a proxy (agent/http/proxy.py), separate connect and
read/write timeouts, at most `connections` connections, gzip, the deadline of
agent/http/deadline.py, same-origin redirects followed by httpx under agent/http/origin.py's
hooks, byte caps (agent/http/body.py), and a response hook that reports each answer's status
and latency.

A pooled connection that the server or a load balancer closed while it was idle is seen to be
closed before it is reused and replaced by httpx, with no error and no retry.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx

from agent import __version__
from agent.config import ConfigError, TransportSettings
from agent.http import deadline
from agent.http.answer import Answer
from agent.http.body import HELD_MIB, NO_LIMIT, Held, read_capped
from agent.http.errors import Elsewhere, TooLarge, TransportFailure, Undecodable, reason
from agent.http.origin import EXCHANGE, MAX_REDIRECTS, Exchange, SameOrigin
from agent.http.proxy import Proxied, bad_proxy_setting, tls

USER_AGENT = f"jenkins-sei-agent/{__version__}"
_STARTED = "jenkins_sei_agent.started"  # request extension: when the request was sent


class Http:
    """An httpx.Client for one server; thread-safe, at most `connections` requests at once."""

    def __init__(
        self,
        base: str,
        settings: TransportSettings,
        *,
        side: str,
        timeout: float,
        connections: int,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
        on_request: Callable[[str, float], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """`stop`, once set, cuts each exchange in flight to STOP_GRACE seconds more."""
        self.base = base
        self._stop = stop
        self._side = side
        self._deadline = settings.deadline or deadline.DEADLINE_TIMEOUTS * timeout
        self._redirects = SameOrigin(base, side)
        self._on_request = on_request
        # Requests wait here, never queued inside httpcore's pool: a queued request can have its
        # connection closed by another thread's pass over the pool (encode/httpcore#1110, "Bad
        # file descriptor" under load), which costs a retry and can send a POST twice.
        self._slots = threading.BoundedSemaphore(connections)
        self._held = Held(HELD_MIB << 20)
        hooks: dict[str, list[Callable[..., Any]]] = {
            "request": [self._redirects.request],
            "response": [self._redirects.response],
        }
        if on_request:
            hooks["request"].append(_stamp)
            hooks["response"].append(self._observe)
        try:
            self._proxied = Proxied(base, side, settings.proxy)
            self._client = httpx.Client(
                auth=auth,
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip", **(headers or {})},
                timeout=httpx.Timeout(timeout, connect=settings.connect_timeout),
                verify=tls(base, settings, side),
                proxy=settings.proxy,
                trust_env=True,  # HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY
                limits=httpx.Limits(
                    max_connections=connections, max_keepalive_connections=connections
                ),
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS + 1,  # the hook refuses the one past MAX_REDIRECTS
                event_hooks=hooks,
            )
        except (ValueError, httpx.InvalidURL) as exc:
            why = re.sub(r"//[^/@\s]*@", "//***@", str(exc))  # never its credentials
            setting = bad_proxy_setting(base, side, settings.proxy)
            raise ConfigError(
                f"invalid setting {setting}: not a proxy URL the agent can use ({why})"
            ) from None
        deadline.bound(self._client)

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: bytes | None = None,
        limit: int | None = None,
        elsewhere: bool = False,
    ) -> Answer:
        """One exchange, and the same-origin redirects of a GET, within the deadline; raises
        Unreachable, TransportFailure or Redirected when there is no answer to give, TooLarge
        when the body passes `limit` bytes (compressed or not), Undecodable. With `elsewhere`, a
        GET follows a redirect to another host too, without credentials; a failure there is
        Elsewhere."""
        with self._slots:
            return self._exchange(method, path, params, body, limit or NO_LIMIT, elsewhere)

    def _exchange(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        body: bytes | None,
        limit: int,
        elsewhere: bool,
    ) -> Answer:
        started = time.monotonic()
        deadline.begin(started + self._deadline, self._stop)
        exchange = Exchange(elsewhere=elsewhere)
        foreign: str | None = None  # the other host a redirect led to
        try:
            # `path` comes percent-encoded (agent/queries.py). The whole URL is given rather than
            # base_url= and params=, which would parse it three times.
            url = self.base + path + (f"?{urlencode(params)}" if params else "")
            request = self._client.build_request(
                method, url, content=body, extensions={EXCHANGE: exchange}
            )
            response = self._client.send(request, stream=True)
            foreign = self._foreign(response.url)
            try:
                content = read_capped(response, limit, self._held)
            finally:
                response.close()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as exc:
            self._observe_error(started)
            if foreign := self._foreign_of(exc):
                why = reason(exc)
                raise Elsewhere(f"{foreign}, which cannot be reached: {why}", True) from None
            raise self._proxied.unreachable(exc) from None
        except (httpx.TransportError, zlib.error) as exc:
            self._observe_error(started)
            if isinstance(exc, httpx.TimeoutException):
                why = deadline.why_timed_out(self._deadline, f"{self._side.upper()}_DEADLINE")
            else:
                why = reason(exc)
            if isinstance(exc, httpx.TransportError):
                foreign = self._foreign_of(exc)
            if foreign:
                raise Elsewhere(f"{foreign}, which failed: {why}", True) from None
            raise TransportFailure(why) from None
        except (TooLarge, Undecodable) as exc:
            if foreign:
                raise Elsewhere(f"{foreign}, whose answer is not read: {exc}", False) from None
            raise
        finally:
            deadline.end()
        return Answer(response.status_code, response.headers, content, exchange.redirects, foreign)

    def _foreign(self, url: httpx.URL) -> str | None:
        """The host of `url` when it is not the server's own."""
        return url.host if url.host != self._redirects.origin[1] else None

    def _foreign_of(self, exc: httpx.TransportError) -> str | None:
        """The other host a failed request went to, if it went to one."""
        try:
            return self._foreign(exc.request.url)
        except RuntimeError:  # httpx knows no request for this failure
            return None

    def _observe(self, response: httpx.Response) -> None:
        """Response hook: the status and the seconds since the request was sent."""
        assert self._on_request is not None
        started = response.request.extensions.get(_STARTED)
        seconds = time.monotonic() - started if started is not None else 0.0
        self._on_request(str(response.status_code), seconds)

    def _observe_error(self, started: float) -> None:
        if self._on_request is not None:
            self._on_request("error", time.monotonic() - started)


def _stamp(request: httpx.Request) -> None:
    """Request hook: remember when the request was sent, for `_observe`."""
    request.extensions[_STARTED] = time.monotonic()
