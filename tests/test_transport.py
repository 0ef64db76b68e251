"""The HTTP layer against raw answers a real server may send, hostile servers (a trickle, no
answer at all), and the retry policy."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator

import httpx
import pytest
from conftest import accept_each, bare_payload
from hostile import Front, gzip_bomb, gzip_of_gzip
from tenacity import RetryCallState

from agent.config import JenkinsSettings, SeiSettings, TransportSettings
from agent.http import deadline
from agent.http.answer import Answer
from agent.http.client import Http
from agent.http.errors import TooLarge, TransportFailure
from agent.http.retry import http_date, retry_after, retry_policy
from agent.jenkins import client as jenkins_client
from agent.jenkins.client import JenkinsClient, JenkinsError, JenkinsTooLarge, JenkinsUnavailable
from agent.sei.client import SeiClient, SeiUnavailable

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


def test_a_followed_redirects_body_is_dropped_unread_and_never_inflated(
    raw_server: Server,
) -> None:
    """httpx reads a redirect's body whole before following it; the agent lets it read 64 KiB
    raw at most, never inflated: a redirect carrying a gzip bomb costs nothing, one carrying
    more is refused, and the body of neither is the answer."""
    bomb = gzip_of_gzip(1)  # 1 MiB of JSON whitespace twice gzipped: a few hundred bytes
    moved = (
        b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Encoding: gzip, gzip\r\n"
        b"Content-Length: %d\r\n\r\n" % len(bomb) + bomb
    )
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    [answer] = ask(raw_server, [moved, ok], ("GET", "first"))
    assert (answer.status, answer.body, answer.redirects) == (200, b"{}", 1)
    large = b"x" * (65 << 10)
    too_large = b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: %d\r\n\r\n" % len(large)
    with pytest.raises(TooLarge):
        ask(raw_server, [too_large + large, ok], ("GET", "first"))


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


# -- hostile servers: a total deadline ------------------------------------------------------

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
Behaviour = Callable[[socket.socket, threading.Event], None]


class Hostile:
    """A server that reads each request, then behaves as it was told; counts the connections it
    accepted and the bytes it trickled."""

    def __init__(self) -> None:
        self.behave: Behaviour = lambda conn, stopping: None
        self.connections = 0
        self.trickled = 0
        self.stopping = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        accept_each(self.listener, self._serve)

    def _serve(self, conn: socket.socket) -> None:
        self.connections += 1
        with conn:
            if _read_request(conn):
                with contextlib.suppress(OSError):  # the client hung up
                    self.behave(conn, self.stopping)

    def trickle(self, head: bytes, rest: bytes, every: float) -> Behaviour:
        """Send `head` at once, then `rest` a byte every `every` seconds."""

        def behave(conn: socket.socket, stopping: threading.Event) -> None:
            conn.sendall(head)
            for byte in rest:
                if stopping.wait(every):
                    return
                conn.sendall(bytes([byte]))
                self.trickled += 1

        return behave

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()


def silent(conn: socket.socket, stopping: threading.Event) -> None:
    stopping.wait(30)  # connected, the request read, never a byte back


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    yield server
    server.stop()


@pytest.mark.parametrize("answer", ["body trickled", "headers trickled", "none"])
def test_an_answer_that_takes_longer_than_the_deadline_fails_at_the_deadline(
    hostile: Hostile, answer: str
) -> None:
    """A byte every 0.2 s never trips the 5 s read timeout; the 1 s deadline ends it."""
    hostile.behave = {
        "body trickled": hostile.trickle(HEAD, b"x" * 100, 0.2),
        "headers trickled": hostile.trickle(b"", HEAD, 0.2),
        "none": silent,
    }[answer]
    settings = TransportSettings(deadline=1)
    client = Http(hostile.url, settings, side="Jenkins", timeout=5, connections=1)
    started = time.monotonic()
    with pytest.raises(TransportFailure) as failure:
        client.request("GET", "api/json")
    took = time.monotonic() - started
    client.close()
    assert 1 <= took < 1.5, took
    assert str(failure.value).startswith("no complete answer within 1 s (JENKINS_DEADLINE)")
    assert hostile.trickled <= 5  # a byte every 0.2 s, for a second


@pytest.mark.parametrize("side", ["Jenkins", "SEI"])
def test_a_stop_cuts_an_exchange_in_flight_to_the_stop_grace(
    hostile: Hostile, side: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trickled answer may take the whole deadline (120 s by default, more than the 60 s a
    container gets to stop); once a stop is asked for, it gets STOP_GRACE seconds more (0.5 s
    here), fails saying why, and is not attempted again."""
    monkeypatch.setattr(deadline, "STOP_GRACE", 0.5)
    hostile.behave = hostile.trickle(HEAD, b"x" * 100, 0.05)
    stop = threading.Event()
    client: JenkinsClient | SeiClient
    call: Callable[[], object]
    failure: type[Exception]
    if side == "Jenkins":
        settings = JenkinsSettings(url=hostile.url, deadline=60, retry_wait=0)
        jenkins = client = JenkinsClient(settings, stop=stop)
        call, failure = lambda: jenkins.get_json("api/json", kind="x"), JenkinsError
    else:
        settings_sei = SeiSettings(base_url=hostile.url, api_key="k", deadline=60, retry_wait=0)
        client = SeiClient(settings_sei, stop=stop)
        call, failure = client.check_key, SeiUnavailable
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(failure, match=r"cut short by the stop: no complete answer 0\.5 s after"):
        call()
    took = time.monotonic() - started
    client.close()
    assert 0.75 <= took < 1.2, took
    assert hostile.connections == 1  # no attempt after the stop


def test_the_deadline_still_wraps_what_httpx_and_httpcore_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deadline wraps httpcore's pools inside httpx's transports (agent/http/deadline.py):
    a release of either that moves them fails here, saying so, not as a silent loss of the
    deadline. The environment's proxies are transports of their own, wrapped too."""
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3129")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = httpx.Client(trust_env=True)
    try:
        deadline.check_internals(client)
    except RuntimeError as changed:
        pytest.fail(str(changed))
    assert deadline.bound(client) == 3  # the direct pool and one per proxy
    assert deadline.bound(client) == 3  # wrapped once, whatever calls it again
    client.close()


def test_internals_that_moved_are_named_not_ignored() -> None:
    renamed = httpx.HTTPTransport()
    pool = renamed._pool
    del renamed._pool  # as if httpx had renamed it
    for transport in (renamed, httpx.MockTransport(lambda _: httpx.Response(200))):
        with pytest.raises(RuntimeError, match="changed the internals the request deadline wraps"):
            deadline.bound(httpx.Client(transport=transport))
    pool.close()


def test_the_deadline_is_a_failure_worth_retrying(hostile: Hostile) -> None:
    hostile.behave = silent
    client = JenkinsClient(JenkinsSettings(url=hostile.url, deadline=0.3, retries=1, retry_wait=0))
    with pytest.raises(JenkinsError, match=r"no complete answer within 0\.3 s") as failure:
        client.get_json("api/json", kind="discover")
    client.close()
    assert not isinstance(failure.value, JenkinsUnavailable)  # a read failed; Jenkins is there
    assert hostile.connections == 2 and client.requests["discover"] == 2


def test_the_deadline_defaults_to_four_read_timeouts(hostile: Hostile) -> None:
    hostile.behave = hostile.trickle(HEAD, b"x" * 100, 0.05)
    client = Http(hostile.url, TransportSettings(), side="SEI", timeout=0.1, connections=1)
    started = time.monotonic()
    with pytest.raises(TransportFailure, match=r"within 0\.4 s \(SEI_DEADLINE\)"):
        client.request("GET", "x")
    client.close()
    assert time.monotonic() - started < 0.8


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


def test_a_stop_ends_a_retry_wait_at_once_with_the_last_failure() -> None:
    stop = threading.Event()
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        raise Flaky(f"failure {len(calls)}")

    policy = retry_policy(
        retries=3,
        first_wait=30,
        max_wait=30,
        retryable=Flaky,
        log_retry=lambda state: None,
        stop=stop,
    )
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Flaky, match="failure 1"):
        policy(attempt)
    assert time.monotonic() - started < 1
    assert len(calls) == 1  # no attempt after the stop


UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize("side", ["Jenkins", "SEI"])
def test_a_stop_during_a_retry_wait_ends_the_request_at_once(hostile: Hostile, side: str) -> None:
    hostile.behave = lambda conn, stopping: conn.sendall(UNAVAILABLE)
    stop = threading.Event()
    client: JenkinsClient | SeiClient
    call: Callable[[], object]
    failure: type[Exception]
    if side == "Jenkins":
        jenkins = client = JenkinsClient(JenkinsSettings(url=hostile.url, retry_wait=30), stop=stop)
        call, failure = lambda: jenkins.get_json("api/json", kind="x"), JenkinsError
    else:
        client = SeiClient(SeiSettings(base_url=hostile.url, api_key="k", retry_wait=30), stop=stop)
        call, failure = client.check_key, SeiUnavailable
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(failure, match="503"):
        call()
    client.close()
    assert time.monotonic() - started < 1
    assert hostile.connections == 1


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after("120") == 120
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past: at once
    assert retry_after("soon") is None and retry_after(None) is None


def test_http_dates_as_a_date_header_gives_them() -> None:
    assert http_date("Wed, 21 Oct 2015 07:28:00 GMT") == 1_445_412_480
    assert http_date("Wed, 21 Oct 2015 07:28:00 -0000") == 1_445_412_480  # no zone: UTC
    assert http_date("yesterday") is None and http_date("") is None and http_date(None) is None


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


@pytest.fixture
def front() -> Iterator[Front]:
    server = Front()
    yield server
    server.stop()


def test_a_jenkins_answer_inflating_past_the_cap_is_refused_as_it_arrives(
    front: Front, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A few hundred KB of gzip that inflate to 80 MiB: read whole, it would take twice that in
    memory; the cap (1 MiB here, 64 MiB by default) ends the read after the chunk that passed it."""
    monkeypatch.setattr(jenkins_client, "ANSWER_MAX_MIB", 1)
    client = JenkinsClient(JenkinsSettings(url=front.url, retries=0))
    gzip_bomb()  # made before memory is traced: the server runs in this process
    tracemalloc.start()
    try:
        with front.hostile("gzip-bomb"), pytest.raises(JenkinsTooLarge) as failure:
            client.get_json("api/json", kind="discover")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        client.close()
    assert str(failure.value) == (
        f"Jenkins answered {front.url}/api/json with over 1 MiB; not read further"
    )
    # One raw chunk inflated (15 MiB, held twice while zlib grows its buffer), not 80 MiB whole.
    assert peak < 64 << 20, peak


def test_an_sei_answer_inflating_past_its_cap_is_not_seis_and_keeps_the_build(
    front: Front,
) -> None:
    client = SeiClient(SeiSettings(base_url=front.url, api_key="k3y", retries=0))
    try:
        with front.hostile("gzip-bomb"), pytest.raises(SeiUnavailable) as failure:
            client.send_build(bare_payload(job_full_name="app"))
    finally:
        client.close()
    assert failure.value.unreachable  # the run stops: every build stays pending
    assert "answered with over 1024 KiB, not SEI's answer" in str(failure.value)
    assert "check SEI_BASE_URL" in str(failure.value)
