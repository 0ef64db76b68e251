"""`check`: what an operator runs before the first sync, a table of results with a hint for each
failure.

Nothing is written anywhere. Jenkins is read over the very client `sync` uses (the same TLS,
proxy and timeouts), so a green check means sync can connect: it asks who we are (and the
version, from the `X-Jenkins` header of that answer), the agent's own detection says where
stages come from, and its own discovery counts the jobs. SEI documents no read-only endpoint,
so it gets an empty object at /v1/custom-cicd: 400 (a missing field) means the key was
accepted, 401/403 that it was refused, and no build data is sent.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from agent import app
from agent.cli.controllers import label
from agent.cli.tables import table
from agent.config import ConfigError, Settings
from agent.config.models import CREATE_INSTANCE
from agent.jenkins.client import JenkinsClient, JenkinsError, JenkinsRefused, JenkinsUnavailable
from agent.jenkins.discover import NotTheRoot, discover_jobs, matches
from agent.jenkins.endpoints import WHO_AM_I
from agent.jenkins.executors import PERMISSION, running_builds
from agent.jenkins.stages.chain import STAGE_PLUGINS, Detection, detect
from agent.logs import redact
from agent.sei.client import Refusal, SeiRefused, SeiUnavailable
from agent.state import StateError, StateFile

# The official Harness SEI plugin (jenkinsci/propelo-job-reporter-plugin): it reports every
# build from inside Jenkins, under the GUID in its folder (JenkinsInstanceGuidService).
OFFICIAL_PLUGIN = "propelo-job-reporter"

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


def main(args: argparse.Namespace, controllers: list[Settings]) -> int:
    """Print the table; the exit code is that of the most basic failure (settings first)."""
    where = controllers[0].agent.config or "the environment"
    count = f"{len(controllers)} Jenkins controller{'s' if len(controllers) > 1 else ''}"
    sections: list[tuple[str | None, list[Check]]] = [
        (
            None,
            [
                Check("configuration", OK, f"{where}: {count}"),
                *check_state(controllers),
                *check_sei(controllers[0]),
            ],
        )
    ]
    sections += [(f"controller {label(s)}", check_controller(s)) for s in controllers]
    return _report(sections, [secret for s in controllers for secret in s.secrets()])


def invalid_settings(error: ConfigError) -> int:
    """The table when the settings cannot even be loaded: one row for each mistake."""
    hint = "every setting is described in config/agent.example.yaml and the README"
    rows = [Check("configuration", FAIL, problem, "", CONFIG) for problem in error.problems]
    rows[-1].hint = hint
    return _report([(None, rows)], [])


def _report(sections: list[tuple[str | None, list[Check]]], secrets: list[str]) -> int:
    rows = [check for _, section in sections for check in section]
    lines = table(["CHECK", "RESULT", "DETAIL"], [[c.name, c.result, c.detail] for c in rows])
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


# -- the state file -------------------------------------------------------------------------


def check_state(controllers: list[Settings]) -> list[Check]:
    """The state file: can `sync` create, lock and write it, can it be read, and was it written
    for these controllers? Nothing is written but the lock file `sync` would take anyway."""
    path = controllers[0].agent.state_file
    name = controllers[0].name_of("agent.state_file")
    try:
        free = StateFile(path).probe()
        with StateFile(path, read_only=True) as state:
            sections = state.controllers()
            sent = {g: sum(j.sent.count() for j in state.jobs(g).values()) for g in sections}
    except StateError as exc:
        hint = f"{name} must be a file on a writable, persistent volume"
        return [Check("state file", FAIL, str(exc), hint, CONFIG)]
    builds = sum(sent.values())
    detail = f"{path}: {builds} builds sent" if path.exists() else f"{path}: new"
    checks = [
        Check("state file", OK, detail)
        if free
        else Check(
            "state file",
            WARN,
            f"{detail}; in use by another agent now",
            "a running `run` holds it: sync and backfill on this file exit 2 at once until it "
            "stops",
        )
    ]
    for settings in controllers:
        guid, url = str(settings.sei.instance_guid), settings.jenkins.url
        if guid in sections:
            written_for = sections[guid]
            if url and written_for and _url_key(written_for) != _url_key(url):
                checks.append(
                    Check(
                        "state file",
                        WARN,
                        f"instance {guid} was last used with {written_for}, not {url}",
                        "if this is another controller, it needs an instance of its own "
                        "(`register`); if the controller moved, nothing needs doing",
                    )
                )
            continue
        for other, written_for in sections.items():
            if url and written_for and _url_key(written_for) == _url_key(url) and sent[other]:
                checks.append(
                    Check(
                        "state file",
                        WARN,
                        f"{url} was sent under instance {other} ({sent[other]} builds); "
                        f"{settings.name_of('sei.instance_guid')} is now {guid}",
                        "with the new instance sync starts over (lookback, then backfill); "
                        "set the old GUID back to go on where it stopped",
                    )
                )
    return checks


def _url_key(url: str) -> str:
    return url.rstrip("/").lower()


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
    client = app.sei_client(settings, retries=0)
    where = client.where()
    try:
        outcome = client.check_key()
    except SeiRefused as exc:
        hint = f"check {key_name} and that the key belongs to this SEI environment ({base_name})"
        return [Check("SEI", FAIL, _first_line(exc), hint, UNREACHABLE)]
    except SeiUnavailable as exc:
        hint = f"check {base_name} / SEI_ENVIRONMENT and that this host may reach it (proxy?)"
        if exc.proxy:
            hint = _proxy_hint(exc.proxy)
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
    detail = f"{where} accepted an empty build (HTTP {outcome.status}), which SEI never does"
    hint = f"{base_name} should be SEI's API base, such as https://app.harness.io/gratis/sei/api"
    return [Check("SEI", FAIL, detail, hint, UNREACHABLE)]


# -- Jenkins --------------------------------------------------------------------------------


def check_controller(settings: Settings) -> list[Check]:
    """Settings, then Jenkins as far as it can be read."""
    try:
        settings.require("jenkins.url", "sei.instance_guid", "sei.instance_name")
    except ConfigError as exc:
        fixes = [p[len(CREATE_INSTANCE) :] for p in exc.problems if p.startswith(CREATE_INSTANCE)]
        detail = "; ".join(p for p in exc.problems if not p.startswith(CREATE_INSTANCE))
        hint = fixes[0] if fixes else "see config/agent.example.yaml"
        checks = [Check("settings", FAIL, detail, hint, CONFIG)]
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
    client = app.jenkins_client(settings, retries=0)
    try:
        identity = _who_am_i(settings, client)
        checks += identity
        if any(c.result == FAIL for c in identity):
            return checks
        try:
            detection: Detection | JenkinsError = detect(client, settings.jenkins.stage_source)
        except JenkinsError as exc:
            detection = exc
        return [
            *checks,
            _stage_source(settings, detection),
            _official_plugin(settings, client, detection),
            _jobs(settings, client),
            _watch(settings, client),
        ]
    finally:
        client.close()


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
        answer = client.get(WHO_AM_I, kind="check")
    except JenkinsUnavailable as exc:  # no connection, or a redirect to another host
        hint = (
            f"check {url_name} and that this host can reach it (a proxy: JENKINS_PROXY, "
            "HTTPS_PROXY, NO_PROXY; a private CA: JENKINS_CA_BUNDLE)"
        )
        if exc.proxy:
            hint = _proxy_hint(exc.proxy)
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
    if not version:
        checks = [Check("Jenkins", WARN, f"no X-Jenkins header from {url}", "is this Jenkins?")]
    elif answer.redirects:
        hint = (
            f"set {url_name} to the address Jenkins redirects to (the warning logged names it): "
            "every request costs one more"
        )
        detail = f"Jenkins {version} at {url}, reached through a redirect"
        checks = [Check("Jenkins", WARN, detail, hint)]
    else:
        checks = [Check("Jenkins", OK, f"Jenkins {version} at {url}")]
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


def _stage_source(settings: Settings, detection: Detection | JenkinsError) -> Check:
    """Where the agent would read stages and steps: the detection `sync` runs, not a copy."""
    if isinstance(detection, JenkinsError):
        return Check("stage source", WARN, f"unknown: {_first_line(detection)}")
    if detection.how == "probe":
        hint = (
            "listing plugins needs Overall/SystemRead; without it the agent tries each source "
            f"on the first pipeline run, or set {settings.name_of('jenkins.stage_source')}"
        )
        return Check("stage source", WARN, detection.describe(), hint)
    if not detection.sources and detection.how != "forced":
        hint = f"install {' or '.join(STAGE_PLUGINS)} to send stages and steps"
        return Check("stage source", WARN, detection.describe(), hint)
    return Check("stage source", OK, detection.describe())


def _official_plugin(
    settings: Settings, client: JenkinsClient, detection: Detection | JenkinsError
) -> Check:
    """The official SEI plugin reporting from inside Jenkins beside the agent: every build
    reported twice, and twice in SEI unless both use one instance GUID and one naming."""
    if isinstance(detection, Detection) and detection.how == "forced":
        try:  # JENKINS_STAGE_SOURCE skipped the plugin list: read it for this check alone
            detection = detect(client)
        except JenkinsError as exc:
            detection = exc
    if isinstance(detection, JenkinsError) or detection.how != "plugins":
        reason = (
            _first_line(detection) if isinstance(detection, JenkinsError) else detection.refused
        )
        hint = f"disable the {OFFICIAL_PLUGIN} plugin, if installed, before the agent sends"
        return Check("official plugin", WARN, f"unknown: {reason}", hint)
    version = detection.plugins.get(OFFICIAL_PLUGIN)
    if version is None:
        return Check("official plugin", OK, f"{OFFICIAL_PLUGIN} not active")
    names = settings.name_of("agent.job_names")
    hint = (
        f"both report every build: disable the plugin once the agent sends; until then give "
        f"the agent the plugin's instance GUID ($JENKINS_HOME/plugins/{OFFICIAL_PLUGIN}/"
        f"jenkins-instance-guid.txt) and {names}={plugin_naming(version)}, so that both write "
        "the same runs (README: Moving from the official plugin)"
    )
    return Check("official plugin", WARN, f"{OFFICIAL_PLUGIN} {version} is active", hint)


def plugin_naming(version: str) -> str:
    """The AGENT_JOB_NAMES whose names the plugin's release wrote (docs in sei-api.md): item
    names from 1.0.46 (`plugin`), directory names up to 1.0.42 (`plugin-legacy`); 1.0.43-1.0.45
    wrote branches by item name, which `plugin` matches best."""
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:3])
    return "plugin-legacy" if numbers and numbers <= (1, 0, 42) else "plugin"


def _jobs(settings: Settings, client: JenkinsClient) -> Check:
    """The agent's own discovery, filtered as sync filters it."""
    cfg = settings.jenkins
    try:
        found = list(discover_jobs(client, cfg.folder_depth))
    except NotTheRoot as exc:
        return Check("jobs", FAIL, str(exc), "", CONFIG)
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


def _watch(settings: Settings, client: JenkinsClient) -> Check:
    """Whether `run`'s watch can read what the executors run (one request, as a look costs)."""
    every = settings.agent.watch_interval
    if not every:
        return Check("watch", OK, f"off ({settings.name_of('agent.watch_interval')}=0)")
    try:
        seen = running_builds(client)
    except JenkinsRefused as exc:
        hint = f"the token needs {PERMISSION}; without it builds are found at each cycle"
        return Check("watch", WARN, f"off: {_first_line(exc)}", hint)
    except JenkinsError as exc:
        return Check("watch", WARN, f"unknown: {_first_line(exc)}")
    return Check("watch", OK, f"every {every}s in `run`; {len(seen)} builds running now")


def _proxy_hint(setting: str) -> str:
    return f"the proxy failed, not the server: check {setting} (and NO_PROXY for direct hosts)"


def _first_line(exc: BaseException) -> str:
    """An error's first line: python-jenkins appends the whole HTML error page."""
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
