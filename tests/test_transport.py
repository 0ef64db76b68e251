"""The HTTP layer against raw answers a real server may send, and the retry policy."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from tenacity import RetryCallState

from agent.config import TransportSettings
from agent.transport import Answer, Http, retry_after, retry_policy

CHUNKED = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json;charset=utf-8\r\n"
    b"X-Jenkins: 2.440\r\n"
    b"Set-Cookie: a=1\r\n"
    b"set-cookie: b=2\r\n"
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


def ask(
    server: Server,
    answers: list[bytes],
    *requests: tuple[str, str],
    seen: list[tuple[str, float]] | None = None,
) -> list[Answer]:
    """Make the requests over one Http client while the server gives the canned answers."""
    url, queued, _ = server
    queued.extend(answers)
    observe = None if seen is None else lambda status, seconds: seen.append((status, seconds))
    client = Http(
        url, TransportSettings(), side="Jenkins", timeout=5, connections=1, on_request=observe
    )
    try:
        return [
            client.request(method, path, body=b"{}" if method == "POST" else None)
            for method, path in requests
        ]
    finally:
        client.close()


def test_chunked_body_and_repeated_headers_kept_apart(raw_server: Server) -> None:
    first, second = ask(raw_server, [CHUNKED, CHUNKED], ("GET", "api/json"), ("GET", "api/json"))
    assert first.status == 200 and first.json() == {"a": 1} == second.json()
    assert first.header("content-type") == "application/json;charset=utf-8"
    assert first.headers.get_list("set-cookie") == ["a=1", "b=2"]  # not collapsed into one
    assert raw_server[2] == [1]  # one connection, kept alive across both


def test_connection_close_is_honoured_and_a_new_one_opened(raw_server: Server) -> None:
    gone, again = ask(raw_server, [CLOSING, CHUNKED], ("GET", "missing"), ("GET", "api/json"))
    assert (gone.status, gone.body) == (404, b"gone")
    assert again.json() == {"a": 1}
    assert raw_server[2] == [1, 1]


def test_interim_100_continue_is_skipped(raw_server: Server) -> None:
    [answer] = ask(raw_server, [CONTINUE], ("POST", "v1/custom-cicd"))
    assert (answer.status, answer.body) == (202, b"{}")


def test_the_response_hook_sees_every_answer(raw_server: Server) -> None:
    seen: list[tuple[str, float]] = []
    ask(raw_server, [CLOSING, CHUNKED], ("GET", "missing"), ("GET", "api/json"), seen=seen)
    assert [status for status, _ in seen] == ["404", "200"]
    assert all(0 <= seconds < 5 for _, seconds in seen)


def test_no_answer_is_observed_as_an_error() -> None:
    seen: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as free:
        port = free.getsockname()[1]  # closed below: nothing listens there
    client = Http(
        f"http://127.0.0.1:{port}/",
        TransportSettings(),
        side="SEI",
        timeout=1,
        connections=1,
        on_request=lambda status, _: seen.append(status),
    )
    with pytest.raises(Exception, match="refused"):
        client.request("GET", "x")
    client.close()
    assert seen == ["error"]


# -- the retry policy -----------------------------------------------------------------------


class Flaky(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def run_policy(failures: list[Flaky], retries: int = 3) -> tuple[list[float], int]:
    """The waits the policy chose and the attempts it made while `failures` are raised."""
    slept: list[float] = []
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "done"

    def log_retry(state: RetryCallState) -> None:
        pass

    policy = retry_policy(
        retries=retries,
        first_wait=0.5,
        max_wait=10,
        retryable=Flaky,
        log_retry=log_retry,
        sleep=slept.append,
    )
    assert policy(attempt) == "done"
    return slept, len(calls)


def test_policy_doubles_honours_retry_after_and_caps_it() -> None:
    slept, calls = run_policy([Flaky("a"), Flaky("b", retry_after=7), Flaky("c", 3600)])
    assert slept == [0.5, 7, 10] and calls == 4


def test_policy_gives_up_after_its_retries_with_the_last_failure() -> None:
    with pytest.raises(Flaky, match="third"):
        run_policy([Flaky("first"), Flaky("second"), Flaky("third")], retries=2)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after("120") == 120
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past: at once
    assert retry_after("soon") is None and retry_after(None) is None


def test_json_nested_deeper_than_any_answer_is_refused_before_it_is_parsed() -> None:
    """Found by the fuzz suite (tests/test_fuzz.py): a body nested 900 deep parses, but so
    near Python's recursion limit that a garbage collection inside the parser could not run
    finalizers, and CPython printed their RecursionError tracebacks on stderr."""

    def parsed(body: bytes) -> object:
        return Answer(200, httpx.Headers(), body).json()

    assert parsed(b"[" * 200 + b"]" * 200) is not None
    for deep in (b"[" * 201 + b"]" * 201, b'{"a":' * 900 + b"1" + b"}" * 900):
        with pytest.raises(ValueError, match="nested too deep"):
            parsed(deep)
    assert parsed(b'{"a": "[[[{{{", "b": [[{"c": "]]]"}]]}') == {
        "a": "[[[{{{",
        "b": [[{"c": "]]]"}]],
    }
