"""Secrets never leak: not in logs (DEBUG, text or JSON), output, state, exceptions or cassettes.

The agent holds three kinds of secret: the SEI API key, the Jenkins API token, and whatever
password, credentials and file parameters builds carry. Each test runs the agent where leaks
are most likely (debug logging, failures on both sides, error messages that name URLs) and then
searches everything the agent wrote or raised for every secret, in clear and base64-encoded
(HTTP basic auth carries the token that way).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import vcr
from conftest import GUID, JENKINS_TOKEN, JENKINS_USER, SEI_KEY, Cli, bare_payload, base_env, now_ms
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn
from test_cassettes import replay

from agent.config import JenkinsSettings, SeiSettings, Settings
from agent.jenkins.client import JenkinsClient, JenkinsError
from agent.jenkins.endpoints import api_json
from agent.sei.client import SeiClient, SeiRefused, SeiUnavailable

PASSWORD = "hunter2-Pa55w0rd-value"
CREDENTIALS = "deploy-creds-id-s3cr3t"
FILE_SECRET = "id_rsa-file-param-s3cr3t"
PARAMETERS = [
    {"_class": "hudson.model.PasswordParameterValue", "name": "DB_PASSWORD", "value": PASSWORD},
    {
        "_class": "com.cloudbees.plugins.credentials.CredentialsParameterValue",
        "name": "DEPLOY",
        "value": CREDENTIALS,
    },
    {"_class": "hudson.model.FileParameterValue", "name": "KEY", "value": FILE_SECRET},
    {"_class": "hudson.model.StringParameterValue", "name": "ENV", "value": "prod"},
]
# What a credential looks like in a recorded HTTP exchange: a header, or a URL's user info.
CREDENTIAL_LOOK = r"(?i)authorization|apikey|basic [a-z0-9+/=]{8}|://[^/@\s]+:[^/@\s]+@"
STAGES = [{"id": "3", "name": "deploy", "duration": 5, "steps": [{"id": "4", "duration": 4}]}]


def encoded(user: str, token: str) -> str:
    return base64.b64encode(f"{user}:{token}".encode()).decode()


SECRETS = [
    SEI_KEY,
    JENKINS_TOKEN,
    encoded(JENKINS_USER, JENKINS_TOKEN),
    PASSWORD,
    CREDENTIALS,
    FILE_SECRET,
]


def leaks(text: str, secrets: list[str]) -> list[str]:
    """The secrets found in `text` (empty when clean)."""
    return [secret for secret in secrets if secret in text]


def written_files(root: Path) -> dict[str, str]:
    """Every file under `root` (state, its lock and temporary files, --output) by name."""
    return {
        str(path.relative_to(root)): path.read_text(encoding="utf-8", errors="replace")
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def builds_with_secret_parameters(jenkins: JenkinsSim) -> None:
    jenkins.add_job("deploy", "pipeline")
    jenkins.add_job("tools/build")
    for _ in range(2):
        jenkins.add_build("deploy", parameters=PARAMETERS, stages=STAGES)
        jenkins.add_build("tools/build", parameters=PARAMETERS)


@pytest.mark.parametrize(
    ("log_format", "wrong"),
    [("text", "SEI_API_KEY"), ("json", "JENKINS_API_TOKEN")],
)
def test_no_secret_in_logs_output_state_or_payloads_under_failures(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, tmp_path: Path, log_format: str, wrong: str
) -> None:
    """DEBUG logs, failures on both sides, --output, dry-run, and a refused credential."""
    builds_with_secret_parameters(jenkins)
    flags = ["--log-level", "DEBUG", "--log-format", log_format]
    out = tmp_path / "sent.jsonl"
    dry = cli(*flags, "backfill", "--since", "2000-01-01", "--dry-run", "--output", "-")
    assert dry.code == 0 and len(dry.lines()) == 4, dry.stderr  # every build shown
    sei.fail_next(1, status=503)  # with the reset, at most 2 of a build's 3 attempts fail
    sei.reset_next(1)
    sei.reject(
        lambda p: p["job_full_name"] == "tools/jobs/build" and p["build_number"] == 2, 400, "no"
    )
    jenkins.inject_fault(r"^/job/tools/job/build/api/json", status=500)
    jenkins.inject_fault(r"^/job/deploy/api/json", truncate=True)
    jenkins.inject_fault(r"/runs/1/nodes/$", status=502)
    faulty = cli(*flags, "sync", "--output", str(out))
    assert faulty.code == 1 and len(sei.runs) == 3, faulty.stderr  # one dead letter
    wrong_value = f"wrong-{wrong.lower()}-0123"
    cli.env[wrong] = wrong_value
    jenkins.add_build("tools/build", parameters=PARAMETERS)  # something to send
    refused = cli(*flags, "sync")
    assert refused.code == 3, refused.stderr
    secrets = [*SECRETS, wrong_value, encoded(JENKINS_USER, wrong_value)]
    for run in (dry, faulty, refused):
        assert not leaks(run.stderr, secrets), run.stderr
        assert not leaks(run.stdout, secrets), run.stdout
        assert "Traceback" not in run.stderr
        if log_format == "json":
            for line in run.stderr.splitlines():
                json.loads(line)  # one event per line, nothing else mixed in
    for name, text in written_files(tmp_path).items():
        assert not leaks(text, secrets), name
    assert len(out.read_text().splitlines()) == 3  # --output: what was sent
    bodies = json.dumps([r["body"] for r in sei.requests])
    assert not leaks(bodies, secrets)  # parameter secrets never sent
    for payload in sei.accepted:
        assert [p["name"] for p in payload["job_run_params"]] == ["ENV"]  # the ordinary one is


def test_exception_messages_carry_no_secret(jenkins: JenkinsSim, sei: SeiStandIn) -> None:
    """What an exception says may end up anywhere (a log, a health answer, a report)."""
    wrong_key, wrong_token = "wrong-sei-key-9876", "wrong-jenkins-token-5432"
    builds_with_secret_parameters(jenkins)
    errors: list[Exception] = []
    bad_jenkins = JenkinsClient(
        JenkinsSettings(url=jenkins.url, user=JENKINS_USER, api_token=wrong_token, retries=0)
    )
    good_jenkins = JenkinsClient(
        JenkinsSettings(url=jenkins.url, user=JENKINS_USER, api_token=JENKINS_TOKEN, retries=0)
    )
    gone = JenkinsClient(JenkinsSettings(url="http://127.0.0.1:9/", retries=0))
    jenkins.inject_fault(r"^/job/deploy/api/json", status=500)
    for client, path in [(bad_jenkins, "api/json"), (good_jenkins, "job/deploy/"), (gone, "")]:
        with pytest.raises(JenkinsError) as caught:
            client.get_json(api_json(path), kind="test")
        errors.append(caught.value)
        client.close()
    payload = bare_payload(job_full_name="x", password=PASSWORD)
    common = {"base_url": sei.url, "instance_guid": GUID, "retries": 1, "retry_wait": 0}
    cases: list[tuple[str, Callable[[], None], type[Exception]]] = [
        (wrong_key, lambda: None, SeiRefused),
        (SEI_KEY, lambda: sei.fail_always(503), SeiUnavailable),
        (SEI_KEY, lambda: sei.reset_next(2), SeiUnavailable),
    ]
    for key, prepare, expected in cases:
        prepare()
        sei_client = SeiClient(SeiSettings(api_key=key, **common))
        with pytest.raises(expected) as raised:
            sei_client.send_build(payload)
        errors.append(raised.value)
        sei_client.close()
        sei.fail_always(None)
    secrets = [*SECRETS, wrong_key, wrong_token, encoded(JENKINS_USER, wrong_token)]
    for error in errors:
        assert not leaks(f"{error!s} {error!r} {error.args}", secrets), repr(error)


@pytest.mark.parametrize("anonymous_read", [False, True], ids=["auth-required", "anonymous"])
def test_jenkins_url_with_credentials_is_used_or_refused_never_leaked(
    tmp_path: Path, sei: SeiStandIn, anonymous_read: bool
) -> None:
    """Either exit 2 naming JENKINS_URL, or a working agent that shows the URL without them."""
    user, token = (None, None) if anonymous_read else (JENKINS_USER, JENKINS_TOKEN)
    with JenkinsSim(user=user, token=token, clock_ms=now_ms() - 3_600_000) as sim:
        builds_with_secret_parameters(sim)
        env = base_env(tmp_path)
        del env["JENKINS_USER"], env["JENKINS_API_TOKEN"]
        env["JENKINS_URL"] = sim.url.replace("http://", f"http://{JENKINS_USER}:{JENKINS_TOKEN}@")
        env["SEI_BASE_URL"] = sei.url
        cli = Cli(env, tmp_path)
        result = cli("--log-level", "DEBUG", "sync", "--output", "-")
        with pytest.raises((JenkinsError, ValueError)) as caught:  # refused, or unused
            JenkinsClient(JenkinsSettings(url=env["JENKINS_URL"], retries=0)).get_json(
                "job/nothing/api/json", kind="test"
            )
    assert result.code in (0, 2), result.stderr
    if result.code == 2:
        assert "JENKINS_URL" in result.stderr
    else:
        assert len(sei.accepted) == 4
    places = {"stderr": result.stderr, "stdout": result.stdout, "error": str(caught.value)}
    places.update(written_files(tmp_path))
    places["sent to SEI"] = json.dumps([r["body"] for r in sei.requests])
    assert {
        where: leaks(text, SECRETS) for where, text in places.items() if leaks(text, SECRETS)
    } == {}


def test_cassettes_hold_no_secret_and_recording_filters_credentials(
    tmp_path: Path, jenkins: JenkinsSim, sei: SeiStandIn
) -> None:
    """The committed cassettes, and one recorded now through the project's vcrpy settings."""
    committed = sorted(Path(replay.cassette_library_dir).glob("*.yaml"))
    assert committed
    for path in committed:
        text = path.read_text(encoding="utf-8")
        assert not leaks(text, SECRETS), path.name
        assert not re.search(
            r"(?i)authorization|apikey|basic [a-z0-9+/=]{8}|://[^/@\s]+:[^/@\s]+@", text
        )
    builds_with_secret_parameters(jenkins)
    recording = tmp_path / "recorded.yaml"
    with replay.use_cassette(str(recording), record_mode=vcr.record_mode.RecordMode.ALL):
        client = JenkinsClient(
            JenkinsSettings(url=jenkins.url, user=JENKINS_USER, api_token=JENKINS_TOKEN)
        )
        client.get_json("job/deploy/api/json", "builds[number,result]", kind="test")
        client.close()
        sei_client = SeiClient(
            SeiSettings(base_url=sei.url, api_key=SEI_KEY, instance_guid=GUID, retries=0)
        )
        sei_client.check_key()
        sei_client.close()
    text = recording.read_text(encoding="utf-8")
    assert "job/deploy/api/json" in text and "custom-cicd" in text  # both were recorded
    assert not leaks(text, [SEI_KEY, JENKINS_TOKEN, encoded(JENKINS_USER, JENKINS_TOKEN)])
    assert "authorization" not in text.lower()


def test_every_form_of_a_secret_is_blanked_tracebacks_included(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A key with a quote and a space, as repr, JSON, percent-encoding and Basic auth show it."""
    import base64
    import logging
    from urllib.parse import quote

    from agent.logs import RedactSecrets, redact

    key, token = 'k3y"with spaces/and%', "tok-en-1234"
    settings = Settings(
        jenkins=JenkinsSettings(url="https://ci.acme.test/", user="bot", api_token=token),
        sei=SeiSettings(api_key=key),
    )
    secrets = settings.secrets()
    basic = base64.b64encode(b"bot:tok-en-1234").decode()
    text = f"{key!r} {json.dumps(key)} {quote(key, safe='')} Basic {basic} {token}"
    assert redact(text, secrets).count("***") == 5
    assert not leaks(redact(text, secrets), [key, quote(key, safe=""), basic, token])

    logger = logging.getLogger("test.redaction")
    handler = logging.StreamHandler()
    handler.addFilter(RedactSecrets(secrets))
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError(f"refused {key!r}")
        except RuntimeError:
            logger.exception("it failed")
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "Traceback" in err and "refused '***'" in err and "spaces" not in err


def test_json_logs_keep_a_traceback_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """The redaction filter formats a traceback into `exc_text`; JSON logs dropped it (the
    image's default format), so every unexpected failure lost its traceback."""
    import logging

    from agent.logs import build_context, setup_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("INFO", "json", ["s3cr3t-key"])
        with build_context("team/app", 7):
            try:
                raise RuntimeError("refused s3cr3t-key")
            except RuntimeError:
                logging.getLogger("agent.test").exception("it failed", extra={"fields": {"n": 1}})
    finally:
        root.handlers[:], root.level = handlers, level
    [line] = capsys.readouterr().err.splitlines()
    event = json.loads(line)
    assert (event["level"], event["logger"], event["message"]) == (
        "error",
        "agent.test",
        "it failed",
    )
    assert (event["job"], event["build"], event["n"]) == ("team/app", 7, 1)
    assert "Traceback" in event["exception"] and "RuntimeError: refused ***" in event["exception"]
    assert "s3cr3t" not in line
