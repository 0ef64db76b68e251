"""`check`: what an operator runs before the first sync, a table of results with a hint for each
failure.

Nothing is written anywhere. Jenkins is read over the very client `sync` uses (the same TLS,
proxy and timeouts), so a green check means sync can connect: it asks who we are (and the
version, from the `X-Jenkins` header of that answer), and the agent's own discovery counts the
jobs. Which plugins give stages is still asked through python-jenkins, set up with the same TLS
and proxy. SEI documents no read-only endpoint, so it gets an empty object at /v1/custom-cicd:
400 (a missing field) means the key was accepted, 401/403 that it was refused, and no build
data is sent.
"""

from __future__ import annotations

import argparse
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.config import ConfigError, Settings
from agent.controllers import label
from agent.deliver import Refusal, SeiClient, SeiRefused, SeiUnavailable
from agent.discover import discover_jobs, matches
from agent.jenkins_client import JenkinsClient, JenkinsError, JenkinsUnavailable
from agent.logs import redact, secrets_of
from agent.tables import table
from agent.transport import proxy_for

if TYPE_CHECKING:
    import jenkins as python_jenkins

CUSTOM_CICD = "/v1/custom-cicd"
STAGE_PLUGINS = (("blueocean-rest", "Blue Ocean"), ("pipeline-stage-view", "wfapi"))

OK, WARN, FAIL = "ok", "warn", "FAIL"
CONFIG, UNREACHABLE = 2, 3  # the exit codes of a failed check


@dataclass
class Check:
    """One line of the table; `code` is the exit code a failure stands for."""

    name: str
    result: str
    detail: str
    hint: str = ""
    code: int = 0


def add_command(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    sub = command(
        "check",
        "Pre-flight checks of the settings, Jenkins and SEI; sends no build.",
        "jenkins-sei-agent --config satellite.yml check",
    )
    sub.description = (
        "Check the settings, each Jenkins controller (reachable, version, credentials, stage "
        "source, job count) and SEI (reachable, API key) without sending any build, and print "
        "a table with a hint for each failure. Exit 0 when all pass (warnings allowed), 2 when "
        "a setting is missing, 3 when Jenkins or SEI cannot be reached or refuse the credentials."
    )


def main(args: argparse.Namespace, controllers: list[Settings]) -> int:
    """Print the table; the exit code is that of the most basic failure (settings first)."""
    where = controllers[0].agent.config or "the environment"
    count = f"{len(controllers)} Jenkins controller{'s' if len(controllers) > 1 else ''}"
    sections: list[tuple[str | None, list[Check]]] = [
        (None, [Check("configuration", OK, f"{where}: {count}"), *check_sei(controllers[0])])
    ]
    sections += [(f"controller {label(s)}", check_controller(s)) for s in controllers]
    rows = [check for _, section in sections for check in section]
    lines = table(["CHECK", "RESULT", "DETAIL"], [[c.name, c.result, c.detail] for c in rows])
    secrets = [secret for s in controllers for secret in secrets_of(s)]
    out = [lines[0]]
    body = iter(lines[1:])
    for heading, section in sections:
        if heading:
            out.append(heading)
        for check in section:
            out.append(("  " if heading else "") + next(body))
            if check.hint:
                out.append(f"{'    ' if heading else '  '}hint: {check.hint}")
    print(redact("\n".join(out), secrets))  # should an error message ever carry one
    codes = {c.code for c in rows if c.result == FAIL}
    return min(codes) if codes else 0


# -- SEI ------------------------------------------------------------------------------------


def check_sei(settings: Settings) -> list[Check]:
    """The SEI side, the same for every controller."""
    satellite = settings.integration.file if settings.integration else None
    key_name = f"satellite.api_key in {satellite} or SEI_API_KEY" if satellite else "SEI_API_KEY"
    base_name = f"satellite.url in {satellite} or SEI_BASE_URL" if satellite else "SEI_BASE_URL"
    try:
        settings.require("sei.base_url", "sei.api_key")
    except ConfigError as exc:
        hint = f"set {base_name} (or SEI_ENVIRONMENT) and {key_name}"
        return [Check("SEI settings", FAIL, str(exc), hint, CONFIG)]
    client = SeiClient(settings.sei.model_copy(update={"retries": 0}))
    where = f"{client.base}{CUSTOM_CICD}"
    try:
        outcome = client.post(CUSTOM_CICD, {})
    except SeiRefused as exc:
        hint = f"check {key_name} and that the key belongs to this SEI environment ({base_name})"
        return [Check("SEI", FAIL, _first_line(exc), hint, UNREACHABLE)]
    except SeiUnavailable as exc:
        hint = f"check {base_name} / SEI_ENVIRONMENT and that this host may reach it (proxy?)"
        return [Check("SEI", FAIL, _first_line(exc), hint, UNREACHABLE)]
    finally:
        client.close()
    if isinstance(outcome, Refusal) and outcome.status == 400:
        detail = f"API key accepted at {client.base} (an empty build got 400, as it should)"
        return [Check("SEI", OK, detail)]
    if isinstance(outcome, Refusal):
        hint = (
            f"{base_name} should be SEI's API base, such as https://app.harness.io/gratis/sei/api"
        )
        detail = f"HTTP {outcome.status} on {where}: {outcome.message[:100]}"
        return [Check("SEI", FAIL, detail, hint, UNREACHABLE)]
    detail = f"{where} accepted an empty build (HTTP {outcome.status}); is it SEI?"
    return [Check("SEI", WARN, detail, f"check {base_name}")]


# -- Jenkins --------------------------------------------------------------------------------


def check_controller(settings: Settings) -> list[Check]:
    """Settings, then Jenkins as far as it can be read."""
    try:
        settings.require("jenkins.url", "sei.instance_guid", "sei.instance_name")
    except ConfigError as exc:
        if settings.sei.instance_guid is None:
            hint = (
                "create an instance with `jenkins-sei-agent register --integration-id ID "
                "--name NAME --write-config`"
            )
        else:
            hint = "see config/agent.example.yaml"
        checks = [Check("settings", FAIL, str(exc), hint, CONFIG)]
        if settings.jenkins.url is None:
            return checks
    else:
        checks = [
            Check(
                "settings",
                OK,
                f"instance {settings.sei.instance_guid} ({settings.sei.instance_name})",
            )
        ]
    # retries=0: check answers at once; the pre-flight of a sync, not a sync
    client = JenkinsClient(settings.jenkins.model_copy(update={"retries": 0}))
    try:
        identity = _who_am_i(settings, client)
        checks += identity
        if any(c.result == FAIL for c in identity):
            return checks
        return [*checks, _stage_source(_python_jenkins(settings)), _jobs(settings, client)]
    finally:
        client.close()


def _python_jenkins(settings: Settings) -> python_jenkins.Jenkins:
    """python-jenkins for the plugin list, with the trust store and proxy `sync` has."""
    import jenkins as python_jenkins  # only `check` pays for importing these

    cfg = settings.jenkins
    assert cfg.url is not None
    token = cfg.api_token.get_secret_value() if cfg.api_token else None
    server = python_jenkins.Jenkins(cfg.url, username=cfg.user, password=token, timeout=cfg.timeout)
    server.crumb = False  # reads with an API token need no CSRF crumb: skip asking for one
    # python-jenkins has no TLS or proxy parameters; its requests session is where they go.
    # requests would read its own CA and proxy variables and trust certifi's store: not here.
    session = server._session
    session.trust_env = False
    if cfg.insecure:
        session.verify = False
    elif cfg.ca_bundle:
        session.verify = str(cfg.ca_bundle)
    else:  # the system store, as ssl.create_default_context() loads it
        paths = ssl.get_default_verify_paths()
        session.verify = paths.cafile or paths.capath or True
    proxy = proxy_for(cfg.url, cfg.proxy)
    if proxy:
        session.proxies = {"http": proxy, "https": proxy}
    return server


def _who_am_i(settings: Settings, client: JenkinsClient) -> list[Check]:
    """Reachable, version and credentials from one request.

    /whoAmI rather than /me (which some security realms lack), and the version from its
    `X-Jenkins` header rather than from the whole dashboard.
    """
    url = client.base
    user_name, token_name = settings.name_of("jenkins.user"), settings.name_of("jenkins.api_token")
    url_name = settings.name_of("jenkins.url")
    credentials_hint = (
        f"check {user_name} and {token_name} (a token from User > Configure > API Token); "
        "the user needs Overall/Read and Job/Read"
    )
    try:
        answer = client.get("whoAmI/api/json", kind="check")
    except JenkinsUnavailable as exc:  # no connection, or a redirect to another host
        hint = (
            f"check {url_name} and that this host can reach it (a proxy: JENKINS_PROXY, "
            "HTTPS_PROXY, NO_PROXY; a private CA: JENKINS_CA_BUNDLE)"
        )
        return [Check("Jenkins", FAIL, _first_line(exc), hint, UNREACHABLE)]
    except JenkinsError as exc:  # timeouts, resets, 5xx
        hint = ""
        if "timed out" in str(exc):
            hint = "a slow controller or a firewall dropping packets; JENKINS_TIMEOUT is the limit"
        return [Check("Jenkins", FAIL, _first_line(exc), hint, UNREACHABLE)]
    status = answer.status
    if status in (401, 403):
        return [
            Check("Jenkins", OK, f"reachable at {url}"),
            Check("credentials", FAIL, f"refused (HTTP {status})", credentials_hint, UNREACHABLE),
        ]
    if status == 404:
        hint = f"{url_name} must be Jenkins' root, context path included"
        return [Check("Jenkins", FAIL, f"no /whoAmI at {url}: not Jenkins?", hint, UNREACHABLE)]
    if status == 407:
        hint = "the proxy wants credentials: http://user:password@proxy:port"
        return [Check("Jenkins", FAIL, "the proxy refused us (HTTP 407)", hint, UNREACHABLE)]
    if status >= 300:
        return [Check("Jenkins", FAIL, f"{url}: HTTP {status}", "", UNREACHABLE)]
    try:
        me = answer.json()
    except ValueError:
        hint = "a login page or a proxy answered instead of Jenkins' API"
        return [Check("Jenkins", FAIL, f"{url} answered with no JSON", hint, UNREACHABLE)]
    version = answer.header("X-Jenkins")
    checks = [
        Check("Jenkins", OK, f"Jenkins {version} at {url}")
        if version
        else Check("Jenkins", WARN, f"no X-Jenkins header from {url}", "is this Jenkins?")
    ]
    name = me.get("name") if isinstance(me, dict) else None
    anonymous = not isinstance(me, dict) or bool(me.get("anonymous")) or name == "anonymous"
    if settings.jenkins.user and anonymous:
        hint = "a proxy in front of Jenkins may drop the Authorization header"
        checks.append(
            Check("credentials", FAIL, "Jenkins took us for anonymous", hint, UNREACHABLE)
        )
    elif anonymous:
        checks.append(Check("credentials", OK, f"anonymous (no {user_name} set)"))
    else:
        checks.append(Check("credentials", OK, f"authenticated as {name}"))
    return checks


def _stage_source(server: python_jenkins.Jenkins) -> Check:
    """Where stages and steps can come from: Blue Ocean, else wfapi, else none."""
    import jenkins as python_jenkins  # only `check` pays for importing these
    import requests

    try:
        plugins: Any = server.get_plugins(depth=1)
    except (python_jenkins.JenkinsException, requests.RequestException):
        hint = "listing plugins needs Overall/SystemRead; stages are looked up per build anyway"
        return Check("stage source", WARN, "unknown: the plugin list cannot be read", hint)
    found = [
        f"{source} ({short} {plugin['version']})"
        for short, source in STAGE_PLUGINS
        if (plugin := plugins.get(short)) and plugin.get("active") and plugin.get("enabled")
    ]
    if not found:
        hint = "install blueocean-rest or pipeline-stage-view to send stages and steps"
        return Check("stage source", WARN, "none: builds are sent without stages", hint)
    extra = f"; also {found[1]}" if len(found) > 1 else ""
    return Check("stage source", OK, found[0] + extra)


def _jobs(settings: Settings, client: JenkinsClient) -> Check:
    """The agent's own discovery, filtered as sync filters it."""
    cfg = settings.jenkins
    try:
        found = list(discover_jobs(client, cfg.folder_depth))
    except JenkinsError as exc:
        return Check("jobs", FAIL, _first_line(exc), "", UNREACHABLE)
    selected = sum(1 for job in found if matches(job.full_name, cfg.include, cfg.exclude))
    detail = f"{len(found)} jobs, {selected} selected by JENKINS_INCLUDE/JENKINS_EXCLUDE"
    if not found:
        hint = "the user may lack Job/Read, or the controller has no jobs yet"
        return Check("jobs", WARN, detail, hint)
    if not selected:
        return Check("jobs", WARN, detail, "JENKINS_INCLUDE/JENKINS_EXCLUDE leave no job")
    return Check("jobs", OK, detail)


def _first_line(exc: BaseException) -> str:
    """An error's first line: python-jenkins appends the whole HTML error page."""
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
