"""The whole-request deadline: connecting, the answer's headers and its body, within one bound.

httpx's timeouts are per read, so a server trickling a byte a second would never time out, and a
stop would wait on it for ever; every socket wait is cut to what is left of the deadline.

This is the one module that reaches into httpx and httpcore: httpx makes httpcore's pools itself
(one per transport: the direct one, and one per proxy it reads from the environment) and passes
them no network backend, so each pool's own backend is wrapped before any connection exists.
`check_internals` says plainly when those attributes change (tests/test_transport.py).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

DEADLINE_TIMEOUTS = 4  # the default deadline, in read timeouts
# Seconds an exchange in flight may go on once a stop is asked for: within the 60 s that
# Kubernetes, Docker Compose and the systemd unit shipped here give a stop, whatever the deadline.
STOP_GRACE = 15.0


class _Deadline(threading.local):
    """When the exchange running on this thread must be over (time.monotonic()), if one is; the
    stop that cuts it short, and whether it did."""

    until: float | None = None
    stop: threading.Event | None = None
    cut: bool = False


_DEADLINE = _Deadline()


def begin(until: float, stop: threading.Event | None) -> None:
    """This thread's exchange must be over at `until`, or STOP_GRACE after `stop` is set."""
    _DEADLINE.until, _DEADLINE.stop, _DEADLINE.cut = until, stop, False


def end() -> None:
    _DEADLINE.until, _DEADLINE.stop = None, None


def why_timed_out(seconds: float, setting: str) -> str:
    """What a timeout of this thread's exchange was: one wait's, the deadline's or the stop's."""
    until = _DEADLINE.until
    if until is None or time.monotonic() < until - 0.01:
        return "timed out"  # one wait's timeout, before the deadline
    if _DEADLINE.cut:
        return f"cut short by the stop: no complete answer {STOP_GRACE:g} s after it"
    return (
        f"no complete answer within {seconds:g} s ({setting});"
        " a server trickling its answer, or one too large for the link"
    )


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


def _pools(client: httpx.Client) -> list[httpcore.ConnectionPool]:
    """httpcore's pools behind `client`: its own transport's and each proxy's."""
    transports = [client._transport, *(t for t in client._mounts.values() if t is not None)]
    pools = []
    for transport in transports:
        if not isinstance(transport, httpx.HTTPTransport):
            raise TypeError(f"not httpx's own transport: {type(transport).__name__}")
        pools.append(transport._pool)
    return pools


def check_internals(client: httpx.Client) -> None:
    """RuntimeError, saying what changed, unless `client` has what `bound` wraps: httpx's
    transports (`_transport`, `_mounts`), each with httpcore's pool (`_pool`) and its backend
    (`_network_backend`, a NetworkBackend)."""
    try:
        pools = _pools(client)
        backends = [pool._network_backend for pool in pools]
    except (AttributeError, TypeError) as exc:
        raise RuntimeError(
            f"httpx {httpx.__version__} / httpcore {httpcore.__version__} changed the internals "
            f"the request deadline wraps (agent/http/deadline.py): {exc}"
        ) from None
    for backend in backends:
        if not isinstance(backend, httpcore.NetworkBackend):
            raise RuntimeError(
                f"httpcore {httpcore.__version__}: a pool's _network_backend is a "
                f"{type(backend).__name__}, not a NetworkBackend: the request deadline "
                "(agent/http/deadline.py) cannot wrap it"
            )


def bound(client: httpx.Client) -> int:
    """Every connection `client` makes, through any of its transports, waits within the
    deadline of the exchange it serves; how many pools that is."""
    check_internals(client)
    pools = _pools(client)
    for pool in pools:
        if not isinstance(pool._network_backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(pool._network_backend)
    return len(pools)
