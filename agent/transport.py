"""HTTP for both sides: one httpx client per side, built from that side's settings.

Every request gets the base URL and auth, TLS (a CA bundle, else the system store; switched off
only with a warning at every start), a proxy (the side's own setting, else HTTPS_PROXY /
HTTP_PROXY / ALL_PROXY unless NO_PROXY exempts the host), separate connect and read/write
timeouts, at most `concurrency` connections, gzip, immediate reconnects when a connect fails,
and a response hook that reports each answer's status and latency.

A deadline bounds each exchange as a whole: connecting, the answer's headers and its body.
httpx's timeouts are per read, so a server trickling a byte a second would never time out, and a
stop would wait on it for ever; every socket wait is cut to what is left of the deadline.

When a proxy is in the way, a connection that fails short of TLS failed at the proxy: the
message names the proxy (never its credentials) and the setting it came from.

A pooled connection that the server or a load balancer closed while it was idle is seen to be
closed before it is reused and replaced by httpx, with no error and no retry.

Redirects: a GET follows redirects to the same origin (scheme, host and port; or from http to
https on the default ports: a controller that moves to https or adds a slash), never to
another: that is an error naming the Location, so credentials never go there. A POST follows
none. A GET that asks for it (`elsewhere`, an archived artifact) may follow a redirect to another
host, such as S3 holding the artifacts (Artifact Manager on S3: its presigned URL carries its
own signature): it is fetched there without the credentials. Messages name a URL without its
query, which holds a presigned URL's signature.

Byte caps: an answer is read raw and inflated here, a bounded step at a time, so that the cap
bounds the compressed size and what it inflates to alike (httpx inflates a whole chunk at once:
590 bytes of gzip-of-gzip took 561 MB). One content coding at most, gzip, the one asked for.

Retries are tenacity's, one policy per side (`retry_policy`), around the whole exchange.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import re
import ssl
import threading
import time
import traceback
import urllib.request
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpcore
import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential,
)

from agent import __version__
from agent.config import ConfigError, TransportSettings

log = logging.getLogger(__name__)
USER_AGENT = f"jenkins-sei-agent/{__version__}"
CONNECT_RETRIES = 2  # immediate reconnects inside one attempt: a dropped SYN, a DNS hiccup
MAX_REDIRECTS = 5
INFLATE_STEP = 1 << 20  # the most inflated at once (zlib's buffer is briefly twice that)
NO_LIMIT = 1 << 62  # a request without a byte cap (tests only: both clients give one)
DEADLINE_TIMEOUTS = 4  # the default deadline, in read timeouts
# Seconds an exchange in flight may go on once a stop is asked for: within the 60 s that
# Kubernetes, Docker Compose and the systemd unit shipped here give a stop, whatever the deadline.
STOP_GRACE = 15.0
_STARTED = "jenkins_sei_agent.started"  # request extension: when the request was sent


class Unreachable(Exception):
    """No connection could be made (refused, unknown host, TLS failure, proxy failure);
    `proxy` names the proxy's setting when it is the proxy that failed."""

    def __init__(self, message: str, proxy: str | None = None) -> None:
        super().__init__(message)
        self.proxy = proxy


class TransportFailure(Exception):
    """The connection was made but the exchange failed (timeout, reset); worth retrying."""


class Retryable(Exception):
    """A failed attempt worth another (connection failure, 429, 5xx, timeout): what each side's
    retry policy retries. `retry_after` is the server's Retry-After; `unreachable` says no
    connection was made, and `proxy` names the proxy's setting when the proxy failed."""

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        unreachable: bool = False,
        proxy: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.unreachable = unreachable
        self.proxy = proxy


class TooLarge(Exception):
    """The answer is longer than the caller may hold in memory (`limit`), or than is left of
    what all answers being read may hold together (`together`); it was not read to its end."""

    def __init__(self, limit: int, together: bool = False) -> None:
        what = "the answers being read at once are" if together else "the answer is"
        super().__init__(f"{what} over {limit} bytes")
        self.limit = limit
        self.together = together


class _Held:
    """The bytes of the answers one client is reading, all its threads together, kept within
    `budget`: each read may hold its own cap, not every worker at once (8 Jenkins workers each
    inflating a bomb to a 64 MiB cap held 1.2 GB; the shipped pod has 256 Mi). One per client,
    so that a hostile controller's answers never fail another controller's reads."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.held = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> None:
        with self._lock:
            if self.held + size > self.budget:
                raise TooLarge(self.budget, together=True)
            self.held += size

    def give(self, size: int) -> None:
        with self._lock:
            self.held -= size


HELD_MIB = 48  # what all answers one client is reading may hold at once


class Redirected(Exception):
    """A redirect the client will not follow: to another origin, to plain http, or of a POST.
    `location` is shown without its query."""

    def __init__(self, message: str, location: str) -> None:
        super().__init__(message)
        self.location = location


class Undecodable(Exception):
    """The answer is in a content coding the agent does not read: not gzip, or several."""


class Elsewhere(Exception):
    """The host a redirect led to (`elsewhere`) gave no answer it can read: no connection or a
    timeout (`retryable`), or one too large or in a coding other than gzip."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


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
    elsewhere: str | None = None  # the other host a redirect led to, which answered this

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not, or is nested deeper than any answer
        of Jenkins or SEI (see MAX_NESTING), or than the parser goes."""
        if not nested_within(self.body, MAX_NESTING):
            raise ValueError("JSON nested too deep")
        try:
            return json.loads(self.body)
        except RecursionError:
            problem = "JSON nested too deep"
        except ValueError as exc:
            problem = str(exc)
        # raised out here: a JSONDecodeError keeps the whole document, decoded (`doc`), and as
        # the context of what is raised from it, it outlived the read
        raise ValueError(problem)

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
        stop: threading.Event | None = None,
    ) -> None:
        """`stop`, once set, cuts each exchange in flight to STOP_GRACE seconds more."""
        self.base = base
        self._stop = stop
        self._side = side
        self._origin = origin_of(httpx.URL(base))
        self._deadline = settings.deadline or DEADLINE_TIMEOUTS * timeout
        proxy = proxy_for(base, settings.proxy)
        try:
            # how messages name the proxy: never with its credentials, always with its setting
            self._proxy = (
                (_shown(proxy), _proxy_setting(base, side, settings.proxy)) if proxy else None
            )
            transport = httpx.HTTPTransport(
                verify=_tls(base, settings, side),
                proxy=proxy,
                limits=httpx.Limits(
                    max_connections=connections, max_keepalive_connections=connections
                ),
                retries=CONNECT_RETRIES,
            )
        except (ValueError, httpx.InvalidURL) as exc:
            if not proxy:
                raise
            why = re.sub(r"//[^/@\s]*@", "//***@", str(exc))  # never its credentials
            raise ConfigError(
                f"invalid setting {_proxy_setting(base, side, settings.proxy)}: not a proxy "
                f"URL the agent can use ({why})"
            ) from None
        self._on_request = on_request
        self._told_redirect = False
        # Requests wait here, never queued inside httpcore's pool: a queued request can have its
        # connection closed by another thread's pass over the pool (encode/httpcore#1110, "Bad
        # file descriptor" under load), which costs a retry and can send a POST twice.
        self._slots = threading.BoundedSemaphore(connections)
        self._held = _Held(HELD_MIB << 20)
        hooks: dict[str, list[Callable[..., Any]]] = (
            {"request": [_stamp], "response": [self._observe]} if on_request else {}
        )
        # httpx makes httpcore's pool itself and passes it no network backend: the pool's own
        # is wrapped, before any connection exists.
        pool = transport._pool
        pool._network_backend = _DeadlineBackend(pool._network_backend)
        self._client = httpx.Client(
            auth=auth,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip", **(headers or {})},
            timeout=httpx.Timeout(timeout, connect=settings.connect_timeout),
            transport=transport,
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
        _DEADLINE.until = started + self._deadline
        _DEADLINE.stop, _DEADLINE.cut = self._stop, False
        foreign: str | None = None  # the other host a redirect led to
        try:
            # `path` comes percent-encoded (agent/queries.py). The whole URL is given rather than
            # base_url= and params=, which would parse it three times.
            url = self.base + path + (f"?{urlencode(params)}" if params else "")
            request = self._client.build_request(method, url, content=body)
            response, content = self._send(request, limit)
            redirects = 0
            while response.is_redirect and response.next_request is not None:
                target = self._follow(method, response, redirects, elsewhere)
                redirects += 1
                request = self._client.build_request("GET", target)
                foreign = target.host if target.host != self._origin[1] else None
                response, content = self._send(request, limit, credentials=not foreign)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as exc:
            self._observe_error(started)
            if foreign:
                why = _reason(exc)
                raise Elsewhere(f"{foreign}, which cannot be reached: {why}", True) from None
            raise self._unreachable(exc) from None
        except (httpx.TransportError, zlib.error) as exc:
            self._observe_error(started)
            why = self._failure(exc) if isinstance(exc, httpx.TimeoutException) else _reason(exc)
            if foreign:
                raise Elsewhere(f"{foreign}, which failed: {why}", True) from None
            raise TransportFailure(why) from None
        except (TooLarge, Undecodable) as exc:
            if foreign:
                raise Elsewhere(f"{foreign}, whose answer is not read: {exc}", False) from None
            raise
        finally:
            _DEADLINE.until, _DEADLINE.stop = None, None
        return Answer(response.status_code, response.headers, content, redirects, foreign)

    def _send(
        self, request: httpx.Request, limit: int, credentials: bool = True
    ) -> tuple[httpx.Response, bytes]:
        """The answer and its body, read to its end unless it passes `limit` bytes: then the
        connection is closed with the rest unread, and TooLarge raised. Without `credentials`
        (another host) neither the client's auth nor an Authorization or Cookie header goes."""
        if credentials:
            response = self._client.send(request, stream=True)
        else:
            for header in ("authorization", "cookie"):
                request.headers.pop(header, None)
            response = self._client.send(request, stream=True, auth=None)
        try:
            return response, read_capped(response, limit, self._held)
        finally:
            response.close()

    def _unreachable(self, exc: httpx.TransportError) -> Unreachable:
        """No connection: the proxy's fault when it is one and the failure is not TLS (which
        only the server past the proxy speaks)."""
        if self._proxy is None or _tls_failure(exc):
            return Unreachable(_reason(exc))
        shown, setting = self._proxy
        what = "answered" if isinstance(exc, httpx.ProxyError) else "cannot be reached:"
        return Unreachable(f"the proxy {shown} ({setting}) {what} {_reason(exc)}", setting)

    def _failure(self, exc: httpx.TimeoutException) -> str:
        until = _DEADLINE.until
        if until is None or time.monotonic() < until - 0.01:
            return "timed out"  # one wait's timeout, before the deadline
        if _DEADLINE.cut:
            return f"cut short by the stop: no complete answer {STOP_GRACE:g} s after it"
        return (
            f"no complete answer within {self._deadline:g} s ({self._side.upper()}_DEADLINE);"
            " a server trickling its answer, or one too large for the link"
        )

    def _follow(
        self, method: str, response: httpx.Response, done: int, elsewhere: bool
    ) -> httpx.URL:
        """Where a redirect may be followed to, or Redirected saying why not."""
        assert response.next_request is not None
        target = response.next_request.url
        location = bare(response.headers.get("location", str(target)))
        came_from = response.request.url
        ours = same_origin(self._origin, target)
        why = None
        if method != "GET":
            why = f"a {method} is not redirected"
        elif came_from.scheme == "https" and target.scheme != "https":
            why = "it leaves https"
        elif not ours and target.host == self._origin[1]:
            why = f"{_shown(str(target))} is not {_shown(self.base)}: credentials go nowhere else"
        elif not ours and not elsewhere:
            why = f"{target.host} is not {self._origin[1]}: credentials go to no other host"
        elif done >= MAX_REDIRECTS:
            why = f"more than {MAX_REDIRECTS} redirects"
        if why is not None:
            raise Redirected(
                f"{self._side} answered HTTP {response.status_code} on {bare(str(came_from))}, "
                f"redirecting to {location}; not followed: {why}",
                location,
            )
        if not self._told_redirect and target.host == self._origin[1]:
            self._told_redirect = True
            moved = self._moved_base(came_from, target)
            log.warning(
                "%s redirected %s to %s; every request costs one more until %s_URL is set to %s",
                self._side,
                self.base,
                moved,
                self._side.upper(),
                moved,
            )
        return target

    def _moved_base(self, came_from: httpx.URL, target: httpx.URL) -> str:
        """The address to configure instead: the target less the request's own path below the
        base, and never its query (a listing's tree= runs to a thousand characters)."""
        base_path = urlsplit(self.base).path
        below = came_from.path[len(base_path) :] if came_from.path.startswith(base_path) else ""
        moved = str(target.copy_with(query=None))
        return moved[: len(moved) - len(below)] if below and moved.endswith(below) else moved

    def _observe(self, response: httpx.Response) -> None:
        """Response hook: the status and the seconds since the request was sent."""
        assert self._on_request is not None
        started = response.request.extensions.get(_STARTED)
        seconds = time.monotonic() - started if started is not None else 0.0
        self._on_request(str(response.status_code), seconds)

    def _observe_error(self, started: float) -> None:
        if self._on_request is not None:
            self._on_request("error", time.monotonic() - started)


def read_capped(response: httpx.Response, limit: int, held: _Held) -> bytes:
    """The body of a streamed answer, inflated here from gzip if it is in gzip: TooLarge once
    its compressed size or any inflated step would pass `limit` bytes, or what the answers its
    client is reading hold together would pass `held`'s budget; Undecodable when it is in a
    coding other than gzip, or several (gzip-of-gzip inflates a thousandfold per layer). The
    body grows in one buffer: what is held is the body and one inflated step (INFLATE_STEP)."""
    codings = [
        c.strip().lower()
        for c in response.headers.get("content-encoding", "").split(",")
        if c.strip().lower() not in ("", "identity")
    ]
    if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip")):
        raise Undecodable(f"the answer is in {', '.join(codings)}; only gzip alone is read")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(limit)  # known before a byte of it is read
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if codings else None
    body = bytearray()
    raw = 0
    read = False
    try:
        for chunk in response.iter_raw():
            raw += len(chunk)
            if raw > limit:
                raise TooLarge(limit)
            while chunk:
                if inflater is None:
                    piece, chunk = chunk, b""
                else:  # a step at a time: 64 KiB of gzip can inflate to 64 MiB
                    # at most one byte past what is left: that byte means too large
                    piece = inflater.decompress(chunk, min(INFLATE_STEP, limit - len(body) + 1))
                    chunk = inflater.unconsumed_tail
                if len(body) + len(piece) > limit:
                    raise TooLarge(limit)
                held.take(len(piece))
                body += piece
        if inflater is not None and not inflater.eof and raw:
            raise zlib.error("the gzip stream is cut short")
        read = True
    finally:
        held.give(len(body))
        if not read:  # the failure's traceback keeps this frame: not the bytes read
            body.clear()
    return bytes(body)


def let_go(failure: BaseException) -> None:
    """Clear the finished frames a failure's traceback keeps, and those of the failures it was
    raised from, so that what they held (an answer's body) is freed now rather than when the
    cyclic collector runs."""
    seen: set[int] = set()
    while failure is not None and id(failure) not in seen:
        seen.add(id(failure))
        traceback.clear_frames(failure.__traceback__)
        failure = failure.__cause__ or failure.__context__  # type: ignore[assignment]


def bare(url: str) -> str:
    """A URL as messages show it: without credentials, query or fragment (a presigned URL's
    query is its signature)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "") + parts.path


def origin_of(url: httpx.URL) -> tuple[str, str, int]:
    """Scheme, host and port, the port given or the scheme's default."""
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, url.host.lower(), port


def same_origin(origin: tuple[str, str, int], target: httpx.URL) -> bool:
    """Whether credentials for `origin` may follow a redirect to `target`: the same scheme,
    host and port, or the same host moved from http on port 80 to https on 443."""
    to = origin_of(target)
    return to == origin or (origin[::2] == ("http", 80) and to == ("https", origin[1], 443))


class _Deadline(threading.local):
    """When the exchange running on this thread must be over (time.monotonic()), if one is; the
    stop that cuts it short, and whether it did."""

    until: float | None = None
    stop: threading.Event | None = None
    cut: bool = False


_DEADLINE = _Deadline()


def _left(timeout: float | None, expired: type[Exception]) -> float | None:
    """A socket wait's timeout, cut to what is left of this thread's deadline; `expired` is
    raised when nothing is left."""
    until = _DEADLINE.until
    if until is None:
        return timeout
    now = time.monotonic()
    stop = _DEADLINE.stop
    if stop is not None and stop.is_set() and not _DEADLINE.cut and until > now + STOP_GRACE:
        _DEADLINE.until = until = now + STOP_GRACE  # seen at the next socket wait: a stop
        _DEADLINE.cut = True  # asked for during one waits at most a read timeout more
    left = until - now
    if left <= 0:
        raise expired("the deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits no longer than the deadline of the
    exchange it serves (a pooled connection serves several, on any thread)."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sockets, connecting and waiting within the deadline."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    def sleep(self, seconds: float) -> None:
        """The pause between immediate reconnects."""
        self._backend.sleep(_left(seconds, httpcore.ConnectTimeout) or 0)


def _tls_failure(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, ssl.SSLError):
            return True
        exc = exc.__cause__
    return False


def _shown(url: str) -> str:
    """A proxy URL without the credentials it may hold."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _proxy_setting(url: str, side: str, configured: str | None) -> str:
    """The setting the proxy of `url` comes from, as a message names it."""
    if configured:
        return f"{side.upper()}_PROXY"
    scheme = urlsplit(url).scheme
    return f"{scheme.upper()}_PROXY" if scheme in urllib.request.getproxies() else "ALL_PROXY"


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
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Retrying:
    """One side's retries: doubling waits from `first_wait`, or the server's Retry-After
    (an attribute `retry_after` of the failure), never longer than `max_wait`.

    `stop` set ends a wait at once, and the last failure is raised without another attempt: a
    stopping agent waits on no retry. One Retrying serves every thread: tenacity keeps each
    call's attempts per thread, and the last failure is kept per thread too.
    """
    backoff = wait_exponential(multiplier=first_wait, max=max_wait)
    last = threading.local()

    def wait(state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        asked = getattr(failure, "retry_after", None)
        return min(asked, max_wait) if asked is not None else backoff(state)

    def before_sleep(state: RetryCallState) -> None:
        last.failure = state.outcome.exception() if state.outcome else None
        log_retry(state)

    def pause(seconds: float) -> None:
        if stop is None:
            sleep(seconds)
        elif stop.wait(seconds):
            failure: BaseException = last.failure
            raise failure

    limit = stop_after_attempt(retries + 1)
    return Retrying(
        stop=limit if stop is None else limit | stop_when_event_set(stop),
        wait=wait,
        sleep=pause,
        retry=retry_if_exception_type(retryable),
        before_sleep=before_sleep,
        reraise=True,
    )


def retry_after(value: str | None) -> float | None:
    """A Retry-After header in seconds, given as seconds or as an HTTP date."""
    if value and value.strip().isdigit():
        return float(value)
    when = http_date(value)
    return None if when is None else max(when - time.time(), 0.0)


def http_date(value: str | None) -> float | None:
    """An HTTP date (a Date or Retry-After header) in seconds since the epoch, if it is one."""
    try:
        when = email.utils.parsedate_to_datetime((value or "").strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
