"""HTTP for both sides: keep-alive http.client connections, one per thread.

At backfill rates the agent is CPU-bound, not latency-bound, so the HTTP client's CPU per
request decides its speed. Instructions per keep-alive GET of a 1 KB JSON answer, counted with
callgrind against the simulator: httpx 1,940k, urllib3 831k, http.client 482k, and 304k here,
where `_Response` reads the headers without the email package (a third of http.client's cost).
The backfill benchmark (bench/run.py, 2,000 builds) took 34 s with httpx and sequential
delivery, 10.1 s with urllib3 and concurrent delivery, 8.0-8.5 s with http.client.

TLS is verified unless switched off, which is logged at every start. Proxies come from an
explicit setting, else from HTTPS_PROXY / HTTP_PROXY / NO_PROXY as every HTTP tool reads them.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import ssl
import threading
import time
import types
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote, urlencode, urlsplit

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
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


class _Headers:
    """A response's header lines with the reads of `email.message.Message` that http.client
    (`get`, `get_all`, `items`) and vcrpy (`keys`, `get_all`) make. Names match
    case-insensitively; `get` returns the first, as `Message.get` does.
    """

    __slots__ = ("_first", "_items")

    def __init__(self, lines: list[bytes]) -> None:
        items: list[tuple[str, str]] = []
        for raw in lines:
            line = raw.decode("iso-8859-1").rstrip("\r\n")
            if line[:1] in (" ", "\t") and items:  # an obsolete folded continuation line
                items[-1] = (items[-1][0], f"{items[-1][1]} {line.strip()}")
                continue
            name, colon, value = line.partition(":")
            if colon:
                items.append((name.strip(), value.strip()))
        self._items = items
        self._first: dict[str, str] = {}
        for name, value in items:
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    def get_all(self, name: str, default: Any = None) -> Any:
        wanted = name.lower()
        return [v for k, v in self._items if k.lower() == wanted] or default

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def keys(self) -> list[str]:
        return [k for k, _ in self._items]


MAX_HEADER_LINE = 65536  # the limits http.client applies
MAX_HEADERS = 100


def _read_header_lines(fp: Any, _class: Any = None, *, _max_headers: int | None = None) -> _Headers:
    """What `http.client.parse_headers` reads, with its limits, into `_Headers`."""
    lines: list[bytes] = []
    limit = _max_headers or MAX_HEADERS
    while True:
        line = fp.readline(MAX_HEADER_LINE + 1)
        if len(line) > MAX_HEADER_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return _Headers(lines)
        lines.append(line)
        if len(lines) > limit:
            raise http.client.HTTPException(f"got more than {limit} headers")


def _light_headers(begin: Callable[..., None]) -> Callable[..., None]:
    """`HTTPResponse.begin` as the running Python has it, reading headers with
    `_read_header_lines` in place of `http.client.parse_headers`."""
    light = types.FunctionType(
        begin.__code__,
        {**vars(http.client), "parse_headers": _read_header_lines},
        begin.__name__,
        begin.__defaults__,
        begin.__closure__,
    )
    light.__kwdefaults__ = begin.__kwdefaults__
    return light


class _Response(http.client.HTTPResponse):
    """http.client's response, its headers read without the email package.

    `begin` is the standard library's own code, run with `_read_header_lines` in place of
    `http.client.parse_headers`; status line, chunked bodies and keep-alive rules are unchanged.
    """

    begin = _light_headers(http.client.HTTPResponse.begin)  # type: ignore[assignment]


class Http:
    """Keep-alive connections to one server: one per thread, at most `connections` busy at once.

    A connection belongs to the thread that opened it, so no pool bookkeeping or locking is
    needed per request; a semaphore bounds how many requests run at the same time.
    """

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
        self._headers = {"User-Agent": USER_AGENT, "Connection": "keep-alive", **headers}
        self._timeout = timeout
        self._on_request = on_request
        self._slots = threading.BoundedSemaphore(connections)
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._opened_lock = threading.Lock()
        target = urlsplit(base)
        self._https = target.scheme == "https"
        self._host, self._port = target.hostname or "", target.port
        self._prefix = target.path
        self._context: ssl.SSLContext | None = None
        if self._https:
            self._context = ssl.create_default_context(
                cafile=str(settings.ca_bundle) if settings.ca_bundle else None
            )
            if settings.insecure:
                log.warning(
                    "TLS certificates of %s are NOT verified (%s_INSECURE=true); anyone on "
                    "the path can read the credentials",
                    side,
                    side.upper(),
                )
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE
        elif settings.insecure:
            log.warning("%s_INSECURE=true has no effect: %s is plain http", side.upper(), base)
        proxy = proxy_for(base, settings.proxy)
        self._proxy = urlsplit(proxy) if proxy else None
        if self._proxy and not self._https:
            self._prefix = f"{target.scheme}://{target.netloc}{target.path}"  # absolute form

    def close(self) -> None:
        with self._opened_lock:
            for connection in self._opened:
                connection.close()
            self._opened.clear()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        if self._proxy is not None:
            proxy_port = self._proxy.port or (443 if self._proxy.scheme == "https" else 80)
            via = self._proxy.hostname or ""
            if self._https:
                connection = http.client.HTTPSConnection(
                    via, proxy_port, timeout=self._timeout, context=self._context
                )
                connection.set_tunnel(self._host, self._port, headers=_proxy_auth(self._proxy))
            else:
                connection = http.client.HTTPConnection(via, proxy_port, timeout=self._timeout)
        elif self._https:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._context
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        connection.response_class = _Response
        try:
            connection.connect()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise Unreachable(_reason(exc)) from None
        self._local.connection = connection
        with self._opened_lock:
            self._opened.append(connection)
        return connection

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        self._local.connection = None
        with self._opened_lock, contextlib.suppress(ValueError):
            self._opened.remove(connection)

    def request(
        self,
        method: str,
        path: str,
        *,
        fields: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Answer:
        """One exchange; raises Unreachable or TransportFailure when there is no answer."""
        url = self._prefix + path  # paths come percent-encoded from agent/queries.py
        if fields:
            url += "?" + urlencode(fields)
        started = time.monotonic()
        status = "error"
        try:
            with self._slots:
                connection = self._connection()
                try:
                    connection.request(method, url, body=body, headers=self._headers)
                    response = connection.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    self._drop(connection)
                    reason = "timed out" if isinstance(exc, TimeoutError) else _reason(exc)
                    raise TransportFailure(reason) from None
                if getattr(response, "will_close", False):  # recording stubs lack it
                    self._drop(connection)
            status = str(response.status)
            return Answer(response.status, dict(response.getheaders()), data)
        finally:
            if self._on_request is not None:
                self._on_request(status, time.monotonic() - started)


def _proxy_auth(proxy: SplitResult) -> dict[str, str] | None:
    if not proxy.username:
        return None
    credentials = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}"
    return {"Proxy-Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


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
