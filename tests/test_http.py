"""What a real network does to the HTTP clients, against real local servers.

Servers that close idle keep-alive connections, a Jenkins that refuses connections for a moment
in the middle of a run, redirects to https on the same host and to another host, gzip answers,
a proxy that wants credentials (explicit and from the environment, NO_PROXY honoured), and
`check` going the same way as `sync`.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jenkins_sim
import pytest
import sei_standin
import trustme
from conftest import JENKINS_TOKEN, JENKINS_USER, SEI_KEY, Cli, accept_each
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

from agent.app import Controller
from agent.cli import check
from agent.config import JenkinsSettings, SeiSettings, Settings
from agent.http.origin import origin_of, same_origin
from agent.jenkins.client import JenkinsClient, JenkinsError, JenkinsUnavailable
from agent.logs import setup_logging
from agent.sei.client import SeiClient, SeiUnavailable
from agent.state import StateFile

BASIC = "Basic " + base64.b64encode(f"{JENKINS_USER}:{JENKINS_TOKEN}".encode()).decode()


def tuned(settings: Settings, **sections: dict[str, Any]) -> Settings:
    return settings.model_copy(
        update={
            name: getattr(settings, name).model_copy(update=fields)
            for name, fields in sections.items()
        }
    )


# -- small servers --------------------------------------------------------------------------


class _Recording(BaseHTTPRequestHandler):
    """Answers every request with JSON naming its path (gzip when asked), and records it;
    or, when the server has `redirect_to`, a redirect there."""

    protocol_version = "HTTP/1.1"
    server: Recorder

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        if self.server.redirect_to is not None:
            self.send_response(307 if self.command == "POST" else 301)
            self.send_header("Location", self.server.redirect_to + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"path": self.path}).encode()
        zipped = "gzip" in (self.headers.get("Accept-Encoding") or "")
        if zipped:
            body = gzip.compress(body)
        self.send_response(202 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Jenkins", "2.462")
        if zipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None, redirect_to: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Recording)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.redirect_to = redirect_to
        self.port = self.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def ca(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 from a CA only this test knows, and the CA's bundle."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    return context, bundle


@pytest.fixture
def servers() -> Iterator[list[Recorder]]:
    """Recorders made in a test, stopped after it."""
    made: list[Recorder] = []
    yield made
    for server in made:
        server.stop()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Proxy:
    """An HTTP proxy that wants `user:password`: CONNECT tunnels, and plain-http requests
    forwarded one per connection. Records each request line and its Proxy-Authorization."""

    def __init__(self, credentials: str) -> None:
        self.expected = "Basic " + base64.b64encode(credentials.encode()).decode()
        self.seen: list[tuple[str, str | None]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        accept_each(self.listener, self._serve)

    def url(self, credentials: str | None) -> str:
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}"

    def _serve(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(65536)
            if not chunk:
                conn.close()
                return
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        auth = next((v for k, v in headers.items() if k.lower() == "proxy-authorization"), None)
        self.seen.append((lines[0], auth))
        method, target, _ = lines[0].split(" ")
        if auth != self.expected:
            conn.sendall(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n'
                b"Connection: close\r\n\r\n"
            )
            conn.close()
            return
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:  # absolute form: one request, then both sides close
            address, _, path = target.removeprefix("http://").partition("/")
            host, port = address.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            kept = [f"{k}: {v}" for k, v in headers.items() if not k.lower().startswith("proxy")]
            kept = [h for h in kept if not h.lower().startswith("connection:")]
            request = [f"{method} /{path} HTTP/1.1", *kept, "Connection: close"]
            upstream.sendall("\r\n".join(request).encode("latin-1") + b"\r\n\r\n" + rest)
            answer = b""
            while chunk := upstream.recv(65536):
                answer += chunk
            status, _, tail = answer.partition(b"\r\n")
            conn.sendall(status + b"\r\nConnection: close\r\n" + tail)
            conn.close()
            upstream.close()
            return
        threading.Thread(target=_pipe, args=(upstream, conn), daemon=True).start()
        _pipe(conn, upstream)

    def stop(self) -> None:
        self.listener.close()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    server = Proxy("scout:pr0xy-pass")
    yield server
    server.stop()


class Forwarder:
    """A TCP port in front of a server that can stop listening (connections refused) and
    come back on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.open: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._start()

    def _start(self) -> None:
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.open += [conn, upstream]
            threading.Thread(target=_pipe, args=(conn, upstream), daemon=True).start()
            threading.Thread(target=_pipe, args=(upstream, conn), daemon=True).start()

    def down(self) -> None:
        """Refuse connections from now on, and drop the ones open."""
        self.listener.close()
        for sock in self.open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.open.clear()

    def up(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._start()


def count_connections(
    monkeypatch: pytest.MonkeyPatch, server_class: type[socketserver.BaseServer]
) -> list[int]:
    """Every connection the servers of `server_class` accept, from now on."""
    accepted: list[int] = []
    original = server_class.process_request

    def process_request(self: Any, request: Any, address: Any) -> None:
        accepted.append(1)
        original(self, request, address)

    monkeypatch.setattr(server_class, "process_request", process_request)
    return accepted


# -- idle connections, connect failures -----------------------------------------------------


def test_idle_connections_closed_by_the_servers_between_cycles_cost_nothing(
    settings: Settings,
    jenkins: JenkinsSim,
    sei: SeiStandIn,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Both servers close a connection idle for 0.2 s, as load balancers do; `run` idles
    between cycles over the same clients. The next cycle reconnects without a word."""
    monkeypatch.setattr(jenkins_sim._Handler, "timeout", 0.2)
    monkeypatch.setattr(sei_standin._Handler, "timeout", 0.2)
    to_jenkins = count_connections(monkeypatch, jenkins_sim._Server)
    to_sei = count_connections(monkeypatch, sei_standin._Server)
    for name in ("a", "b"):
        jenkins.add_job(name)
        jenkins.add_build(name)
    controller = Controller(settings)
    try:
        with StateFile(settings.agent.state_file) as state:
            assert controller.sync(state).exit_code == 0
            time.sleep(0.6)  # idle: the servers close every connection kept alive
            opened = (len(to_jenkins), len(to_sei))
            jenkins.add_build("a")
            jenkins.add_build("b")
            jenkins.reset_requests()
            with caplog.at_level(logging.INFO):
                report = controller.sync(state)
    finally:
        controller.close()
    assert report.exit_code == 0 and report.sent == 2
    assert len(to_jenkins) > opened[0] and len(to_sei) > opened[1]  # the old ones were gone
    assert jenkins.count() == 3  # discovery and two listings: nothing retried
    assert len(sei.requests) == 4 and len(sei.accepted) == 4  # nothing sent twice
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_connect_failure_mid_run_is_retried_and_the_run_continues(
    settings: Settings, jenkins: JenkinsSim, sei: SeiStandIn, tmp_path: Path
) -> None:
    """Jenkins drops its connections and refuses new ones for 0.6 s while job a is read."""
    for name in ("a", "b", "c"):
        jenkins.add_job(name)
        jenkins.add_build(name)
    jenkins.inject_fault(r"^/job/a/api/json", status=503, delay=0.3)  # in flight when it drops
    port = int(jenkins.url.rstrip("/").rsplit(":", 1)[1])
    forwarder = Forwarder(port)
    url = f"http://127.0.0.1:{forwarder.port}/"
    tuned_settings = tuned(settings, jenkins={"url": url, "retry_wait": 0.3})

    def outage() -> None:
        deadline = time.monotonic() + 10
        while not jenkins.count(r"^/job/a/api/json") and time.monotonic() < deadline:
            time.sleep(0.01)
        forwarder.down()
        time.sleep(0.6)
        forwarder.up()

    watcher = threading.Thread(target=outage, daemon=True)
    watcher.start()
    controller = Controller(tuned_settings)
    try:
        with StateFile(tmp_path / "mid-run.json") as state:
            report = controller.sync(state)
    finally:
        controller.close()
        forwarder.down()
    watcher.join(5)
    assert report.exit_code == 0, report.summary()
    assert sorted(p["job_full_name"] for p in sei.accepted) == ["a", "b", "c"]
    assert controller.jenkins.requests["builds"] >= 4  # a's listing was asked again


def test_jenkins_that_never_answers_is_unavailable_after_the_retries(
    settings: Settings,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as free:
        port = free.getsockname()[1]
    cfg = settings.jenkins.model_copy(update={"url": f"http://127.0.0.1:{port}/", "retries": 1})
    client = JenkinsClient(cfg)
    with pytest.raises(JenkinsUnavailable, match=r"cannot be reached .*check JENKINS_URL"):
        client.get_json("api/json", kind="discover")
    assert client.requests["discover"] == 2  # the first try and one retry


# -- redirects ------------------------------------------------------------------------------


def test_redirect_to_https_on_another_port_of_the_same_host_is_refused(
    ca: tuple[ssl.SSLContext, Path], servers: list[Recorder]
) -> None:
    """Another port is another server (issue 24): the credentials stay where they were sent."""
    context, bundle = ca
    secure = Recorder(context)
    plain = Recorder(redirect_to=secure.url)
    servers += [secure, plain]
    cfg = JenkinsSettings(
        url=plain.url + "/", user=JENKINS_USER, api_token=JENKINS_TOKEN, ca_bundle=bundle
    )
    client = JenkinsClient(cfg)
    with pytest.raises(JenkinsUnavailable, match="credentials go nowhere else"):
        client.get_json("api/json", "jobs[name]", kind="discover")
    client.close()
    assert secure.seen == []


@pytest.mark.parametrize(
    ("base", "target", "followed"),
    [
        ("http://ci.example", "http://ci.example/job/", True),
        ("http://ci.example", "https://ci.example/", True),  # to https on the default ports
        ("http://ci.example:80", "https://CI.example:443/", True),
        ("https://ci.example", "https://ci.example:443/a", True),
        ("http://ci.example:8080", "http://ci.example:8080/a", True),
        ("http://ci.example:8080", "https://ci.example/", False),  # not the default port
        ("http://ci.example", "https://ci.example:8443/", False),
        ("http://ci.example", "http://ci.example:8081/", False),  # another port
        ("https://ci.example", "http://ci.example/", False),  # leaves https
        ("http://ci.example", "http://ci.example.evil/", False),  # another host
    ],
)
def test_credentials_follow_redirects_within_the_origin_only(
    base: str, target: str, followed: bool
) -> None:
    assert same_origin(origin_of(httpx.URL(base)), httpx.URL(target)) is followed


def test_redirect_to_another_host_is_refused_and_gets_no_credentials(
    servers: list[Recorder],
) -> None:
    elsewhere = Recorder()
    port = elsewhere.port
    jenkins_side = Recorder(redirect_to=f"http://localhost:{port}")
    sei_side = Recorder(redirect_to=f"http://localhost:{port}")
    servers += [elsewhere, jenkins_side, sei_side]
    cfg = JenkinsSettings(url=jenkins_side.url, user=JENKINS_USER, api_token=JENKINS_TOKEN)
    client = JenkinsClient(cfg)
    with pytest.raises(JenkinsUnavailable) as refused:
        client.get_json("api/json", kind="discover")
    client.close()
    location = f"http://localhost:{port}/api/json"
    assert location in str(refused.value) and "no other host" in str(refused.value)
    sei = SeiClient(SeiSettings(base_url=sei_side.url + "/sei/api", api_key=SEI_KEY))
    with pytest.raises(SeiUnavailable) as refused_post:
        sei.check_key()
    sei.close()
    assert f"http://localhost:{port}/sei/api/v1/custom-cicd" in str(refused_post.value)
    assert refused_post.value.unreachable
    assert elsewhere.seen == []  # neither the token nor the key went there


# -- gzip, TLS, proxies ---------------------------------------------------------------------


def test_gzip_answers_are_asked_for_and_decoded(servers: list[Recorder]) -> None:
    server = Recorder()
    servers.append(server)
    client = JenkinsClient(JenkinsSettings(url=server.url))
    assert client.get_json("api/json", kind="discover") == {"path": "/api/json"}
    client.close()
    [(_, _, headers)] = server.seen
    assert "gzip" in headers["Accept-Encoding"]


def test_jenkins_over_tls_with_a_private_ca(
    ca: tuple[ssl.SSLContext, Path], servers: list[Recorder]
) -> None:
    context, bundle = ca
    server = Recorder(context)
    servers.append(server)
    trusting = JenkinsClient(JenkinsSettings(url=server.url, ca_bundle=bundle))
    assert trusting.get_json("api/json", kind="discover") == {"path": "/api/json"}
    trusting.close()
    system_store = JenkinsClient(JenkinsSettings(url=server.url, retries=0))
    with pytest.raises(JenkinsUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        system_store.get_json("api/json", kind="discover")
    system_store.close()


def test_proxy_that_wants_credentials(
    ca: tuple[ssl.SSLContext, Path], servers: list[Recorder], proxy: Proxy
) -> None:
    context, bundle = ca
    server = Recorder(context)
    servers.append(server)
    base = {"base_url": server.url + "/sei/api", "api_key": SEI_KEY, "ca_bundle": bundle}
    good = SeiClient(SeiSettings(**base, proxy=proxy.url("scout:pr0xy-pass")))
    assert good.check_key().status == 202
    good.close()
    assert proxy.seen == [(f"CONNECT 127.0.0.1:{server.port} HTTP/1.1", proxy.expected)]
    assert all("Proxy-Authorization" not in headers for _, _, headers in server.seen)
    bad = SeiClient(SeiSettings(**base, proxy=proxy.url("scout:wrong"), retries=0))
    with pytest.raises(SeiUnavailable, match="407") as refused:
        bad.check_key()
    bad.close()
    assert refused.value.unreachable
    assert len(server.seen) == 1


def test_proxy_from_the_environment_and_no_proxy(
    servers: list[Recorder], proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Recorder()
    servers.append(server)
    monkeypatch.setenv("HTTP_PROXY", proxy.url("scout:pr0xy-pass"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = JenkinsClient(JenkinsSettings(url=server.url))
    assert client.get_json("api/json", kind="discover") == {"path": "/api/json"}
    client.close()
    assert proxy.seen == [(f"GET {server.url}/api/json HTTP/1.1", proxy.expected)]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = JenkinsClient(JenkinsSettings(url=server.url))
    client.get_json("api/json", kind="discover")
    client.close()
    assert len(proxy.seen) == 1 and len(server.seen) == 2  # straight to the server


def test_check_goes_through_the_proxy_sync_uses(
    settings: Settings, jenkins: JenkinsSim, proxy: Proxy
) -> None:
    jenkins.add_job("app")
    through = tuned(settings, jenkins={"proxy": proxy.url("scout:pr0xy-pass")})
    checks = {c.name: c for c in check.check_controller(through)}
    assert checks["credentials"].result == check.OK
    assert checks["jobs"].result == check.OK, checks["jobs"].detail
    asked = [line.split(" ")[1].removeprefix(jenkins.url) for line, _ in proxy.seen]
    assert asked[0] == "whoAmI/api/json"
    assert any(path.startswith("pluginManager/") for path in asked)  # python-jenkins too
    assert any(path.startswith("api/json?tree=") for path in asked)  # the agent's discovery
    refused = tuned(settings, jenkins={"proxy": proxy.url("scout:wrong")})
    [*_, jenkins_check] = check.check_controller(refused)
    assert jenkins_check.result == check.FAIL and "407" in jenkins_check.detail


@pytest.mark.parametrize("setting", ["HTTP_PROXY", "JENKINS_PROXY"])
def test_a_proxy_that_refuses_connections_is_blamed_not_the_url(cli: Cli, setting: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as free:
        port = free.getsockname()[1]  # closed below: nothing listens there
    cli.env[setting] = f"http://scout:pr0xy-pass@127.0.0.1:{port}"
    if setting == "JENKINS_PROXY":
        cli.env["SEI_PROXY"] = cli.env[setting]
    blamed = f"the proxy http://127.0.0.1:{port} ({setting}) cannot be reached"
    result = cli("sync")
    assert result.code == 3, result.stderr
    assert blamed in result.stderr and f"check {setting}" in result.stderr
    assert "check JENKINS_URL" not in result.stderr and "pr0xy-pass" not in result.stderr
    checked = cli("check")
    assert checked.code == 3, checked.stdout
    sei_setting = "SEI_PROXY" if setting == "JENKINS_PROXY" else setting
    assert f"the proxy failed, not the server: check {sei_setting}" in checked.stdout
    assert f"the proxy failed, not the server: check {setting}" in checked.stdout
    assert "check SEI_BASE_URL" not in checked.stdout and "check JENKINS_URL" not in checked.stdout
    assert "pr0xy-pass" not in checked.stdout


def test_the_http_library_does_not_log_every_request(settings: Settings) -> None:
    """httpx logs each request at INFO; the agent's INFO log is about builds, not requests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging(settings.agent.log_level, settings.agent.log_format, settings.secrets())
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
        assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:], root.level = handlers, level
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.NOTSET)


def _limited(jenkins: JenkinsSim, stop: threading.Event, timeout: float = 30) -> JenkinsClient:
    settings = JenkinsSettings(
        url=jenkins.url, user=JENKINS_USER, api_token=JENKINS_TOKEN, rate_limit=1, timeout=timeout
    )
    return JenkinsClient(settings, stop=stop)


def test_a_stop_ends_the_wait_for_jenkins_rate_limit(jenkins: JenkinsSim) -> None:
    """JENKINS_RATE_LIMIT=1: the second read waits about a second for its permit; a stop asked
    for during the wait ends it, and nothing more is asked of Jenkins."""
    stop = threading.Event()
    client = _limited(jenkins, stop)
    client.get_json("api/json", kind="discover")
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(JenkinsError, match="stopped while waiting for JENKINS_RATE_LIMIT"):
        client.get_json("api/json", kind="discover")
    assert time.monotonic() - started < 0.6  # not the second the permit takes
    client.close()
    assert jenkins.count(r"^/api/json") == 1


def test_the_wait_for_jenkins_rate_limit_is_bounded(jenkins: JenkinsSim) -> None:
    """A permit that takes longer than a read may (JENKINS_TIMEOUT) fails the read, saying why,
    rather than holding the worker."""
    client = _limited(jenkins, threading.Event(), timeout=0.2)
    client.get_json("api/json", kind="discover")
    with pytest.raises(JenkinsError, match=r"no request within JENKINS_RATE_LIMIT after 0\.2 s"):
        client.get_json("api/json", kind="discover")
    client.close()
    assert jenkins.count(r"^/api/json") == 1
