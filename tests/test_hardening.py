"""The low findings of the last hostile-input round (issue 24), each held: secret parameter
names, dead letters that echo the key, control characters in text logs, `.`/`..` job names,
bad proxy settings, a controller listed twice, a Date far ahead, unbounded metric labels."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import GUID, SEI_KEY, Cli, now_ms
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

from agent.config import ConfigError, SeiSettings, load_settings
from agent.logs import TextFormatter
from agent.mapping.parameters import parameters
from agent.pipeline import Delivered, Outcome
from agent.sei.client import Refusal, SeiClient
from agent.service.metrics import Deliveries, Metrics

# -- parameters without a class: the name is all there is to go by ---------------------------


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("SSH_PASSPHRASE", False),
        ("DB_PASS", False),
        ("DB_PASSWORD", False),
        ("PASSWD", False),
        ("PWD", False),
        ("AUTH", False),
        ("BASIC_AUTH_HEADER", False),
        ("GITHUB_TOKEN", False),
        ("API_KEY", False),
        ("ssh-key", False),
        ("client_secret", False),
        ("CREDENTIALS_ID", False),
        ("ENV", True),
        ("BRANCH", True),
        ("VERSION", True),
        ("DEPLOY_TARGET", True),
    ],
)
def test_a_classless_parameter_named_like_a_secret_is_never_sent(name: str, sent: bool) -> None:
    actions = [{"parameters": [{"name": name, "value": "hunter2"}]}]  # Jenkins 1.x: no _class
    assert [p.name for p in parameters(actions)] == ([name] if sent else [])


# -- what SEI echoes into a dead letter -------------------------------------------------------


class _Echo(BaseHTTPRequestHandler):
    """A 400 that echoes the request's headers, as some gateways do."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = f'{{"message": "bad request; headers were: {self.headers}"}}'.replace("\n", " ")
        data = body.replace("\r", "").encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def echo() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sei/api"
    server.shutdown()
    server.server_close()


def test_a_refusal_that_echoes_the_key_keeps_no_key(echo: str) -> None:
    client = SeiClient(SeiSettings(base_url=echo, api_key=SEI_KEY, retries=0))
    refusal = client.check_key()
    client.close()
    assert isinstance(refusal, Refusal) and refusal.status == 400
    assert "headers were" in refusal.message and "ApiKey ***" in refusal.message
    assert SEI_KEY not in refusal.message


def test_an_old_dead_letter_holding_the_key_is_shown_and_exported_redacted(cli: Cli) -> None:
    path = Path(cli.env["AGENT_STATE_FILE"])
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    letter = {"status": 400, "at": "2026-01-01T00:00:00Z", "message": f"echo: ApiKey {SEI_KEY}"}
    job = {"sent": [], "dead": {"3": letter}}
    state = {"version": 1, "controllers": {GUID: {"url": None, "jobs": {"app": job}}}}
    path.write_text(json.dumps(state))
    for command in (["state", "show"], ["state", "show", "--json"], ["state", "export", "-"]):
        shown = cli(*command)
        assert shown.code == 0 and "echo: ApiKey ***" in shown.stdout, shown.stderr
        assert SEI_KEY not in shown.stdout


# -- text logs -------------------------------------------------------------------------------


def test_control_characters_in_a_message_cannot_forge_a_text_log_line() -> None:
    formatter = TextFormatter("%(levelname)s %(message)s")
    name = "app\n2026-01-01 00:00:00 ERROR forged\r\x1b[2K"
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "job %s failed", (name,), None)
    line = formatter.format(record)
    assert line == "WARNING job app\\n2026-01-01 00:00:00 ERROR forged\\r\\x1b[2K failed"
    assert record.getMessage().count("\n") == 1  # the record itself is left as it was


# -- names and settings ----------------------------------------------------------------------


def test_items_named_dot_or_dot_dot_are_skipped_with_a_warning(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    jenkins.add_job("app")
    jenkins.add_build("app")
    for name in (".", ".."):
        jenkins.add_job(name)
    result = cli("sync")
    assert result.code == 0, result.stderr
    assert "an item named '..' in the root is skipped" in result.stderr
    assert "an item named '.' in the root is skipped" in result.stderr
    assert [p["job_full_name"] for p in sei.accepted] == ["app"]


@pytest.mark.parametrize("proxy", ["http://[::1", "socks9://user:pw@proxy", "http://p:port"])
def test_a_bad_proxy_from_the_environment_is_exit_2_naming_it(cli: Cli, proxy: str) -> None:
    cli.env.update(HTTP_PROXY=proxy, JENKINS_RETRIES="0")
    result = cli("sync")
    assert result.code == 2 and "invalid setting HTTP_PROXY" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "pw@" not in result.stderr


def test_one_controller_listed_twice_in_satellite_yml_is_refused(tmp_path: Path) -> None:
    jenkins = {"application": "jenkins", "username": "u", "api_key": "t0ken-1234"}
    body = {
        "satellite": {"tenant": "acct", "api_key": SEI_KEY, "url": "https://sei.example/api"},
        "integrations": [
            {
                **jenkins,
                "id": "1",
                "url": "https://ci.example/",
                "metadata": {"instance_guid": GUID},
            },
            {**jenkins, "id": "2", "url": "https://CI.example", "metadata": {}},
        ],
    }
    path = tmp_path / "satellite.yml"
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(ConfigError, match=r"integrations\[1\]\.url .* too; list each controller"):
        load_settings(config_file=path)


# -- a Date far ahead ------------------------------------------------------------------------


def test_a_date_two_days_ahead_does_not_hide_a_new_jobs_recent_builds(
    cli: Cli, sei: SeiStandIn
) -> None:
    """A proxy dates its answers two days ahead; the builds are on the true clock. The lookback
    floor of a new job follows that Date at most an hour ahead, with a warning."""
    ahead = JenkinsSim(user="admin", token="jenkins-token-9f8e7d", skew_ms=48 * 3_600_000)
    ahead.start()
    try:
        ahead.add_job("new")
        for minutes in (30, 20, 10):
            ahead.add_build("new", timestamp=now_ms() - minutes * 60_000)
        cli.env["JENKINS_URL"] = ahead.url
        result = cli("sync")
    finally:
        ahead.stop()
    assert result.code == 0, result.stderr
    assert "48.0 h ahead" in result.stderr
    assert sorted(p["build_number"] for p in sei.accepted) == [1, 2, 3]


# -- metric labels ---------------------------------------------------------------------------


def test_the_result_label_is_one_of_a_closed_set() -> None:
    metrics = Metrics({"ci": lambda: {}})
    deliveries = Deliveries(metrics, "ci")
    for number, result in enumerate(["SUCCESS", "weird-1", "weird-2", "FAILURE\n"], 1):
        deliveries(Delivered("app", number, result, Outcome.REFUSED))
    text = metrics.render().decode()
    counted = [  # refused by SEI: each a dead letter, counted by result
        line
        for line in text.splitlines()
        if line.startswith("jenkins_sei_agent_builds_") and not line.endswith(" 0.0")
    ]
    assert sorted(counted) == [
        'jenkins_sei_agent_builds_dead_lettered_total{controller="ci",result="SUCCESS"} 1.0',
        'jenkins_sei_agent_builds_dead_lettered_total{controller="ci",result="UNKNOWN"} 3.0',
    ]
