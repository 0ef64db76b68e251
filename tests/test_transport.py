"""The HTTP layer's own header reading, against raw answers a real server may send."""

from __future__ import annotations

import http.client
import io
import socket
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from agent.config import TransportSettings
from agent.transport import Answer, Http, _light_headers

CHUNKED = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json;charset=utf-8\r\n"
    b"X-Jenkins: 2.440\r\n"
    b"Set-Cookie: a=1\r\n"
    b"set-cookie: b=2\r\n"
    b"X-Folded: first\r\n"
    b"  second\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
    b"7\r\n"
    b'{"a": 1\r\n'
    b"1\r\n"
    b"}\r\n"
    b"0\r\n"
    b"\r\n"
)
CLOSING = b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 4\r\n\r\ngone"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}"


Server = tuple[str, list[bytes], list[int]]  # URL, answers still to give, connections accepted


@pytest.fixture
def raw_server() -> Iterator[Server]:
    """Answers each request with the next canned bytes; counts the connections it accepted."""
    answers: list[bytes] = []
    connections: list[int] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(1)
            with conn:
                while answers:
                    if not _read_request(conn):
                        break
                    answer = answers.pop(0)
                    conn.sendall(answer)
                    if b"Connection: close" in answer:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/", answers, connections
    listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
    listener.close()
    thread.join(timeout=5)


def _read_request(conn: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    return True


def ask(server: Server, answers: list[bytes], *requests: tuple[str, str]) -> list[Answer]:
    """Make the requests over one Http client while the server gives the canned answers."""
    url, queued, _ = server
    queued.extend(answers)
    client = Http(url, TransportSettings(), side="Jenkins", headers={}, timeout=5, connections=1)
    try:
        return [
            client.request(method, path, body=b"{}" if method == "POST" else None)
            for method, path in requests
        ]
    finally:
        client.close()


def test_chunked_body_repeated_and_folded_headers(raw_server: Server) -> None:
    first, second = ask(raw_server, [CHUNKED, CHUNKED], ("GET", "api/json"), ("GET", "api/json"))
    assert first.status == 200 and first.json() == {"a": 1} == second.json()
    assert first.header("content-type") == "application/json;charset=utf-8"
    assert first.header("X-FOLDED") == "first second"
    assert first.headers["Set-Cookie"] == "a=1" and first.headers["set-cookie"] == "b=2"
    assert raw_server[2] == [1]  # one connection, kept alive across both


def test_connection_close_is_honoured_and_a_new_one_opened(raw_server: Server) -> None:
    gone, again = ask(raw_server, [CLOSING, CHUNKED], ("GET", "missing"), ("GET", "api/json"))
    assert (gone.status, gone.body) == (404, b"gone")
    assert again.json() == {"a": 1}
    assert raw_server[2] == [1, 1]


def test_interim_100_continue_is_skipped(raw_server: Server) -> None:
    [answer] = ask(raw_server, [CONTINUE], ("POST", "v1/custom-cicd"))
    assert (answer.status, answer.body) == (202, b"{}")


def test_light_headers_keep_working_where_begin_takes_a_header_limit() -> None:
    """Newer Pythons give `HTTPResponse.begin` a keyword-only `_max_headers` that it passes on
    to `parse_headers`; the light reader takes it and applies it."""

    def begin(self: Any, *, _max_headers: int | None = None) -> Any:
        return parse_headers(self.fp, _max_headers=_max_headers)  # type: ignore[name-defined]  # noqa: F821

    light = _light_headers(begin)
    answer = SimpleNamespace(fp=io.BytesIO(b"A: 1\r\nB: 2\r\n\r\nbody"))
    assert light(answer).items() == [("A", "1"), ("B", "2")]
    crowded = SimpleNamespace(fp=io.BytesIO(b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n"))
    with pytest.raises(http.client.HTTPException, match="more than 2 headers"):
        light(crowded, _max_headers=2)
