"""HTTP for both sides: one httpx client per side, built from that side's settings.

Every request gets the base URL and auth, TLS (a CA bundle, else the system store; switched off
only with a warning at every start), a proxy (the side's own setting, else HTTPS_PROXY /
HTTP_PROXY / ALL_PROXY unless NO_PROXY exempts the host), separate connect and read/write
timeouts, at most `concurrency` connections, gzip, immediate reconnects when a connect fails,
and a response hook that reports each answer's status and latency.

A pooled connection that the server or a load balancer closed while it was idle is seen to be
closed before it is reused and replaced by httpx, with no error and no retry.

Redirects: a GET follows redirects to the same host (a controller that moves http to https or
adds a slash), never to another: that is an error naming the Location, so credentials never go
there. A POST follows none.

Retries are tenacity's, one policy per side (`retry_policy`), around the whole exchange.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)
from tenacity.stop import stop_base

from agent import __version__
from agent.config import TransportSettings

log = logging.getLogger(__name__)
USER_AGENT = f"jenkins-sei-agent/{__version__}"
CONNECT_RETRIES = 2  # immediate reconnects inside one attempt: a dropped SYN, a DNS hiccup
MAX_REDIRECTS = 5
_STARTED = "jenkins_sei_agent.started"  # request extension: when the request was sent


class Unreachable(Exception):
    """No connection could be made (refused, unknown host, TLS failure, proxy failure)."""


class TransportFailure(Exception):
    """The connection was made but the exchange failed (timeout, reset); worth retrying."""


class Redirected(Exception):
    """A redirect the client will not follow: to another host, to plain http, or of a POST."""

    def __init__(self, message: str, location: str) -> None:
        super().__init__(message)
        self.location = location


# No answer of Jenkins or SEI nests more than a few dozen levels. A deeper one is refused
# before it is parsed: near Python's recursion limit the garbage collector, running inside the
# parser, cannot call finalizers, and CPython prints their RecursionError tracebacks.
MAX_NESTING = 200
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nested_within(body: bytes, levels: int) -> bool:
    """Whether the brackets of `body` nest at most `levels` deep (up to twice that where [ and
    { alternate, one pass removing both). Brackets inside strings count too: a text of balanced
    brackets nested 200 deep costs its answer, and the check costs a tenth of a parse."""
    brackets = body.translate(None, _NOT_BRACKETS)
    for _ in range(levels):
        inner = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if len(inner) == len(brackets):
            return True
        brackets = inner
    return not brackets


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes
    redirects: int = 0  # redirects followed to get here, each one request more

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not, or is nested deeper than any answer
        of Jenkins or SEI (see MAX_NESTING), or than the parser goes."""
        if not nested_within(self.body, MAX_NESTING):
            raise ValueError("JSON nested too deep")
        try:
            return json.loads(self.body)
        except RecursionError:
            raise ValueError("JSON nested too deep") from None

    def header(self, name: str) -> str | None:
        value: str | None = self.headers.get(name)
        return value


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
    ) -> None:
        self.base = base
        self._side = side
        self._host = urlsplit(base).hostname or ""
        self._on_request = on_request
        self._told_redirect = False
        # Requests wait here, never queued inside httpcore's pool: a queued request can have its
        # connection closed by another thread's pass over the pool (encode/httpcore#1110, "Bad
        # file descriptor" under load), which costs a retry and can send a POST twice.
        self._slots = threading.BoundedSemaphore(connections)
        hooks: dict[str, list[Callable[..., Any]]] = (
            {"request": [_stamp], "response": [self._observe]} if on_request else {}
        )
        connections_limit = httpx.Limits(
            max_connections=connections, max_keepalive_connections=connections
        )
        self._client = httpx.Client(
            auth=auth,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            timeout=httpx.Timeout(timeout, connect=settings.connect_timeout),
            transport=httpx.HTTPTransport(
                verify=_tls(base, settings, side),
                proxy=proxy_for(base, settings.proxy),
                limits=connections_limit,
                retries=CONNECT_RETRIES,
            ),
            event_hooks=hooks,
            trust_env=False,  # the environment's proxy is chosen by proxy_for, as for the rest
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Answer:
        """One exchange, and the same-host redirects of a GET; raises Unreachable,
        TransportFailure or Redirected when there is no answer to give."""
        with self._slots:
            return self._exchange(method, path, params, body)

    def _exchange(
        self, method: str, path: str, params: dict[str, str] | None, body: bytes | None
    ) -> Answer:
        started = time.monotonic()
        try:
            # `path` comes percent-encoded (agent/queries.py). The whole URL is given rather than
            # base_url= and params=, which would parse it three times.
            url = self.base + path + (f"?{urlencode(params)}" if params else "")
            response = self._client.request(method, url, content=body)
            redirects = 0
            while response.is_redirect and response.next_request is not None:
                target = self._follow(method, response, redirects)
                redirects += 1
                response = self._client.send(self._client.build_request("GET", target))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as exc:
            self._observe_error(started)
            raise Unreachable(_reason(exc)) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            self._observe_error(started)
            reason = "timed out" if isinstance(exc, httpx.TimeoutException) else _reason(exc)
            raise TransportFailure(reason) from None
        return Answer(response.status_code, response.headers, response.content, redirects)

    def _follow(self, method: str, response: httpx.Response, done: int) -> httpx.URL:
        """Where a redirect may be followed to, or Redirected saying why not."""
        assert response.next_request is not None
        target = response.next_request.url
        location = response.headers.get("location", str(target))
        came_from = response.request.url
        why = None
        if method != "GET":
            why = f"a {method} is not redirected"
        elif target.host.lower() != self._host.lower():
            why = f"{target.host} is not {self._host}: credentials are not sent to another host"
        elif came_from.scheme == "https" and target.scheme != "https":
            why = "it leaves https"
        elif done >= MAX_REDIRECTS:
            why = f"more than {MAX_REDIRECTS} redirects"
        if why is not None:
            raise Redirected(
                f"{self._side} answered HTTP {response.status_code} on {came_from}, redirecting "
                f"to {location}; not followed: {why}",
                location,
            )
        if not self._told_redirect:
            self._told_redirect = True
            log.warning(
                "%s redirected %s to %s; every request costs one more until %s_URL is set to "
                "the address it redirects to",
                self._side,
                came_from,
                target,
                self._side.upper(),
            )
        return target

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


def _tls(base: str, settings: TransportSettings, side: str) -> ssl.SSLContext:
    """The system store or the configured bundle; no verification only if asked, loudly."""
    if settings.insecure:
        if urlsplit(base).scheme != "https":
            log.warning("%s_INSECURE=true has no effect: %s is plain http", side.upper(), base)
        else:
            log.warning(
                "TLS certificates of %s are NOT verified (%s_INSECURE=true); anyone on the path "
                "can read the credentials",
                side,
                side.upper(),
            )
    return _context(str(settings.ca_bundle) if settings.ca_bundle else None, settings.insecure)


@functools.cache
def _context(cafile: str | None, insecure: bool) -> ssl.SSLContext:
    """One context per trust setting and process: loading a store costs about 0.1 s, and a
    context serves any number of connections and threads."""
    context = ssl.create_default_context(cafile=cafile)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def proxy_for(url: str, configured: str | None) -> str | None:
    """The explicit proxy, else the environment's for this URL unless NO_PROXY exempts it.

    The environment is read by the standard library, as requests and httpx read it.
    """
    if configured:
        return configured
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    found = urllib.request.getproxies()
    return found.get(parts.scheme) or found.get("all")


def retry_policy(
    *,
    retries: int,
    first_wait: float,
    max_wait: float,
    retryable: type[Exception],
    log_retry: Callable[[RetryCallState], None],
    stop: stop_base | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Retrying:
    """One side's retries: doubling waits from `first_wait`, or the server's Retry-After
    (an attribute `retry_after` of the failure), never longer than `max_wait`.

    One Retrying serves every thread: tenacity keeps each call's attempts per thread.
    """
    backoff = wait_exponential(multiplier=first_wait, max=max_wait)

    def wait(state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        asked = getattr(failure, "retry_after", None)
        return min(asked, max_wait) if asked is not None else backoff(state)

    limit = stop_after_attempt(retries + 1)
    return Retrying(
        stop=limit if stop is None else limit | stop,
        wait=wait,
        sleep=sleep,
        retry=retry_if_exception_type(retryable),
        before_sleep=log_retry,
        reraise=True,
    )


def retry_after(value: str | None) -> float | None:
    """A Retry-After header in seconds, given as seconds or as an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
