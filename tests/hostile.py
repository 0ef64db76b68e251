"""Servers and disks that misbehave, for tests/test_fuzz.py.

`Front` stands in front of a Jenkins simulator or an SEI stand-in and answers the requests its
rule picks in one hostile way (a login page with 200, redirects to the same host and to
another, 404, 408, 413, a reset, a server that accepts and never answers, JSON nested too deep
or cut short); `FullDisk` stands in for `open` where the state file is written and fills up.
Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gzip
import http.client
import os
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

SILENCE = 60.0  # seconds a silent answer holds the connection, unless stopped sooner
LOGIN_PAGE = (
    b"<html><head><title>Sign in</title></head><body><form action=/login></form></body></html>"
)
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
JUNK = b"x" * (20 << 20)  # 20 MiB that is not JSON, under every cap
MOVED = "/.moved"  # where redirect-same sends a request: this server, which passes it on


@functools.cache
def gzip_bomb(mib: int = 80) -> bytes:
    """`mib` MiB of JSON whitespace, gzipped to a few hundred KB: more than any answer may
    inflate to (agent/jenkins/client.py's ANSWER_MAX_MIB, agent/sei/client.py's cap)."""
    return gzip.compress(b" " * (mib << 20), 1)


SIGNATURE = "X-Amz-Signature=5ea1ed5ec2e7feedfacec0ffee0ddba11"  # a presigned URL's query


@functools.cache
def gzip_of_gzip(mib: int = 80) -> bytes:
    """`mib` MiB of JSON whitespace gzipped twice: a few hundred bytes for
    `Content-Encoding: gzip, gzip`, which inflate a thousandfold per layer."""
    return gzip.compress(gzip.compress(b" " * (mib << 20), 9), 9)


class Storage(ThreadingHTTPServer):
    """Where an S3-style artifact manager keeps artifacts: it serves a file to a URL with the
    presigned query (SIGNATURE) and no other credentials, as S3 does (a request with an
    Authorization header too is refused with 400, and counted in `credentials`).

    `mode`: ok, expired (403, the signature's time is up), gzip-bomb (a small gzip answer that
    inflates past the manifest cap), gzip-gzip (gzip of gzip)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StorageHandler)
        self.url = f"http://localhost:{self.server_address[1]}"  # another host than 127.0.0.1
        self.files: dict[str, bytes] = {}
        self.mode = "ok"
        self.served = 0
        self.credentials = 0
        threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def keep(self, data: bytes) -> str:
        """Store `data`; its presigned URL."""
        key = f"/bucket/{len(self.files)}"
        self.files[key] = data
        return f"{self.url}{key}?X-Amz-Expires=60&{SIGNATURE}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hang up on this server when an answer is over their cap."""


class _StorageHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Storage

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        storage = self.server
        headers = {"Content-Type": "application/octet-stream"}
        if self.headers.get("Authorization"):
            storage.credentials += 1
            status, data = 400, b"<Error><Code>InvalidArgument</Code></Error>"
        elif SIGNATURE not in query or path not in storage.files:
            status, data = 403, b"<Error><Code>AccessDenied</Code></Error>"
        elif storage.mode == "expired":
            status, data = 403, b"<Error><Code>AccessDenied</Code><Message>expired</Message>"
        elif storage.mode == "gzip-bomb":
            status, data, headers["Content-Encoding"] = 200, gzip_bomb(), "gzip"
        elif storage.mode == "gzip-gzip":
            status, data, headers["Content-Encoding"] = 200, gzip_of_gzip(), "gzip, gzip"
        else:
            status, data = 200, storage.files[path]
        storage.served += status == 200
        reply(self, status, headers, data)


def reply(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes) -> None:
    h.send_response(status)
    for name, value in headers.items():
        h.send_header(name, value)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


class Front(ThreadingHTTPServer):
    """An HTTP server in front of another (`backend`) that passes requests on, except those its
    rule picks, which it answers in one hostile way:

    html (a login page with 200), redirect-same (to this server: the same origin),
    redirect-port (to the backend: the same host, another port), redirect-cross (to `trap`,
    another host), 404, 408, 413, reset (a TCP reset instead of an answer),
    stored-reset (the backend gets the request, the client a reset), silent (accepts and never
    answers), deep-json (JSON nested deeper than any parser goes), truncated (JSON cut short),
    gzip-bomb (a small gzipped body that inflates past every answer's cap), gzip-gzip (the same
    in `Content-Encoding: gzip, gzip`), junk (20 MiB that is not JSON), storage (the answer
    moved to `storage`, an S3-style server, and a redirect to its presigned URL).
    """

    daemon_threads = True

    def __init__(
        self, backend: str | None = None, trap: str = "", storage: Storage | None = None
    ) -> None:
        super().__init__(("127.0.0.1", 0), _FrontHandler)
        self.backend = urlsplit(backend) if backend else None
        self.trap = trap
        self.storage = storage
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.seen = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._rule: tuple[str, re.Pattern[str], int | None] | None = None
        threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hang up on this server on purpose."""

    @contextlib.contextmanager
    def hostile(self, mode: str, path: str = "", times: int | None = None) -> Iterator[list[str]]:
        """For the block, the first `times` requests whose path matches (all: None) get `mode`."""
        with self._lock:
            self._rule = (mode, re.compile(path), times)
        try:
            yield []
        finally:
            with self._lock:
                self._rule = None

    def _mode(self, path: str) -> str:
        with self._lock:
            self.seen += 1
            if self._rule is None or not self._rule[1].search(path):
                return "pass"
            mode, pattern, times = self._rule
            if times is not None:
                if times <= 0:
                    return "pass"
                self._rule = (mode, pattern, times - 1)
            return mode

    def answer(self, h: _FrontHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if h.path.startswith(MOVED):  # where redirect-same sent it: passed on as it was
            h.path = h.path[len(MOVED) :]
            mode = "pass"
        else:
            mode = self._mode(h.path.split("?", 1)[0])
        if mode in ("reset", "stored-reset"):
            if mode == "stored-reset":
                self._forward(h, body)
            h.close_connection = True
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if mode == "silent":
            self.stopping.wait(SILENCE)
            h.close_connection = True
            return
        ok = 202 if h.command == "POST" else 200
        json_type = {"Content-Type": "application/json"}
        answers: dict[str, Callable[[], tuple[int, dict[str, str], bytes]]] = {
            "html": lambda: (200, {"Content-Type": "text/html"}, LOGIN_PAGE),
            "redirect-same": lambda: (302, {"Location": self.url + MOVED + h.path}, b""),
            "redirect-port": lambda: (302, {"Location": self._backend_url(h.path)}, b""),
            "redirect-cross": lambda: (302, {"Location": self.trap + h.path}, b""),
            "deep-json": lambda: (ok, json_type, DEEP_JSON),
            "truncated": lambda: (ok, json_type, b'{"payload": "acc'),
            "gzip-bomb": lambda: (ok, {**json_type, "Content-Encoding": "gzip"}, gzip_bomb()),
            "gzip-gzip": lambda: (
                ok,
                {**json_type, "Content-Encoding": "gzip, gzip"},
                gzip_of_gzip(),
            ),
            "junk": lambda: (ok, json_type, JUNK),
            "storage": lambda: self._stored(h, body),
            "pass": lambda: self._forward(h, body),
        }
        status, headers, data = answers.get(
            mode, lambda: (int(mode), {"Content-Type": "text/html"}, b"<html>no</html>")
        )()
        reply(h, status, headers, data)

    def _stored(self, h: _FrontHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """The backend's answer moved to the storage: a redirect to its presigned URL."""
        assert self.storage is not None
        status, headers, data = self._forward(h, body)
        if status != 200:
            return status, headers, data
        return 302, {"Location": self.storage.keep(data)}, b""

    def _backend_url(self, path: str) -> str:
        assert self.backend is not None
        return f"{self.backend.scheme}://{self.backend.netloc}{path}"

    def _forward(self, h: _FrontHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.backend is None:
            return 200, {"Content-Type": "text/html"}, LOGIN_PAGE
        assert self.backend.hostname is not None, "the backend URL names no host"
        conn = http.client.HTTPConnection(self.backend.hostname, self.backend.port, timeout=10)
        skip = {"host", "connection", "content-length", "accept-encoding"}
        headers = {k: v for k, v in h.headers.items() if k.lower() not in skip}
        try:
            conn.request(h.command, h.path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        kept = ("content-type", "location", "retry-after", "x-jenkins")
        return response.status, {k: v for k, v in response.getheaders() if k.lower() in kept}, data


class _FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms ACK stalls
    server: Front

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self.server.answer(self)

    do_POST = do_GET


class FullDisk:
    """The state file's disk, full once `room` more files were written (never full: None).

    Stands in for `open` in agent/state/file.py: a file opened for writing on the full disk
    takes the first half of what is written, then fails with ENOSPC, as a real one does.
    """

    def __init__(self) -> None:
        self.room: int | None = None

    def open(self, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = open(file, mode, *args, **kwargs)  # noqa: SIM115 - the caller closes it
        if "w" not in mode or self.room is None:
            return handle
        if self.room > 0:
            self.room -= 1
            return handle
        return _OnFullDisk(handle)

    @contextlib.contextmanager
    def full_after(self, room: int) -> Iterator[list[str]]:
        self.room = room
        try:
            yield []
        finally:
            self.room = None


class _OnFullDisk:
    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def __enter__(self) -> _OnFullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

    def write(self, text: str) -> int:
        self.handle.write(text[: len(text) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self) -> None:
        self.handle.flush()

    def fileno(self) -> int:
        return int(self.handle.fileno())
