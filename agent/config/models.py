"""The settings' models: every setting, its default, and what makes a value wrong.

Environment names are the section and the setting joined by '_' (JENKINS_API_TOKEN is
`jenkins.api_token`, AGENT_STATE_FILE is `agent.state_file`), so the YAML file and the
environment describe the same tree. A value that would change what SEI receives without
saying so is refused: a placeholder left from an example, a secret with a control character,
a rule that can never match.
"""

from __future__ import annotations

import base64
import re
import ssl
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from agent.config.environments import SEI_ENVIRONMENTS
from agent.config.hints import guid_in_environment, register_command
from agent.config.rules import Rule, split_globs
from agent.config.satellite import INTEGRATION_KEYS, Integration

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def env_name(loc: tuple[Any, ...]) -> str:
    """('sei', 'instance_guid') -> 'SEI_INSTANCE_GUID', the name users set."""
    parts = [str(p) for p in loc if not isinstance(p, int)]
    return "_".join(parts[:2]).upper() if parts else "configuration"


@dataclass(frozen=True)
class JenkinsEndpoint:
    """The controller as a client needs it, every required part present."""

    base: str  # with exactly one trailing slash, context path kept
    auth: tuple[str, SecretStr] | None


@dataclass(frozen=True)
class SeiEndpoint:
    """SEI's ingestion API as a client needs it, every required part present."""

    base: str  # what '/v1/...' is appended to
    api_key: SecretStr


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it. `problems` keeps each mistake on
    its own, for `check` to show one row each."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# What the example files ship in place of real values: a setting still holding one was copied
# and not filled in.
PLACEHOLDER_GUID = "00000000-0000-0000-0000-000000000000"
CREATE_INSTANCE = "create the instance with: "  # how a missing GUID's fix starts
_PLACEHOLDER = re.compile(r"replace-with|<[A-Z][A-Z0-9_]*>|//[^/]*\bexample\.com\b", re.IGNORECASE)


def _not_placeholder(value: Any) -> Any:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(text, str) and _PLACEHOLDER.search(text):
        raise ValueError("still holds the example's placeholder; put the real value in")
    return value


def _strip_secret(value: Any) -> Any:
    """A secret with the white space around it stripped (a YAML `|` block, a CRLF file, a
    Kubernetes secret made from a file); a control character inside is refused, and the value
    is never shown."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str):
        return value
    value = value.strip()
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("holds a control character (a line break inside?); the value is not shown")
    return value


def _glob_list(value: Any) -> list[str]:
    """Globs separated by commas; a JSON list in a variable would be taken for one glob."""
    if isinstance(value, str) and value.strip().startswith("["):
        raise ValueError(
            "write the globs separated by commas (deploy-*,release/*), not as a JSON list"
        )
    return split_globs(value)


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """'24h', '7d', '90m', '1d12h' or a number of seconds."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        raw = text.strip().lower()
        if re.fullmatch(r"\d+", raw):
            seconds = float(raw)
        else:
            parts = _DURATION.findall(raw)
            if not parts or _DURATION.sub("", raw).strip():
                raise ValueError(f"'{text}' is not a duration such as 24h, 7d or 90m")
            seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"'{text}' must be a positive duration")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"'{text}' is longer than any duration the agent can count") from None


Globs = Annotated[list[str], NoDecode]


def _check_http_url(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    shown = re.sub(r"//[^/@\s]*@", "//***@", value)  # never echo credentials back
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise ValueError(f"'{shown}' is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"'{shown}' is not an http(s) URL")
    return value


def _check_service_url(value: str | None) -> str | None:
    """A Jenkins or SEI URL: credentials in it would end up in logs, state and payloads."""
    value = _check_http_url(value)
    if value and "@" in urlsplit(value).netloc:
        raise ValueError(
            "must not contain credentials; set JENKINS_USER and JENKINS_API_TOKEN, or "
            "SEI_API_KEY, instead"
        )
    return value


# The path segment only an item's URL has: Jenkins' own URL scheme (Item.getUrl: `job/<name>/`
# under the root and under every folder). A view's URL (`view/all/`) lists the same items with
# their full names, so it is left alone.
_INSIDE = re.compile(r"/job/")


def _controller_root(value: str | None) -> str | None:
    """JENKINS_URL must be the controller's root: discovery from a folder's URL would send its
    jobs under names relative to the folder, and links in SEI would point nowhere."""
    if value is None:
        return None
    parts = urlsplit(value)
    inside = _INSIDE.search(parts.path + "/")
    if inside:
        root = f"{parts.scheme}://{parts.netloc}{parts.path[: inside.start()]}/"
        raise ValueError(
            f"{value} is the URL of a job or folder, not of the controller; set it to "
            f"{root} (Jenkins' root, context path included) and choose jobs with JENKINS_INCLUDE"
        )
    return value


class TransportSettings(BaseModel):
    """TLS, proxy and connecting for one side; HTTPS_PROXY and NO_PROXY apply unless `proxy`
    is set."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a bad value may hold a secret

    ca_bundle: Path | None = None
    insecure: bool = Field(False, description="skip TLS verification (logged at every start)")
    proxy: str | None = None
    connect_timeout: float = Field(10.0, gt=0, description="seconds to open a connection")
    deadline: float | None = Field(
        None,
        gt=0,
        description="seconds a whole request may take, connecting and the answer's headers and "
        "body included; default: 4 x timeout",
    )

    _proxy = field_validator("proxy")(_check_http_url)

    @field_validator("ca_bundle")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        """A file of PEM certificates, loaded once here, where a bad one is this setting's
        error, rather than deep in the first client made."""
        if value is None:
            return None
        if not value.is_file():
            raise ValueError(f"CA bundle {value} is not a readable file")
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=value)
        except OSError as exc:  # ssl.SSLError included
            raise ValueError(
                f"CA bundle {value} is not a PEM file of certificates ({exc})"
            ) from None
        return value


class JenkinsSettings(TransportSettings):
    url: str | None = None
    user: str | None = None
    api_token: SecretStr | None = None
    timeout: float = Field(30.0, gt=0, description="seconds an answer may keep us waiting")
    retries: int = Field(4, ge=0, description="retries of a failed read (5xx, timeout)")
    retry_wait: float = Field(0.5, ge=0, description="first wait between retries, seconds")
    retry_max_wait: float = Field(30.0, ge=0, description="longest wait between retries, seconds")
    include: Globs = Field(default_factory=lambda: ["*"])
    exclude: Globs = Field(default_factory=list)
    folder_depth: int = Field(4, ge=1, le=20, description="folder levels per discovery request")
    page_size: int = Field(50, ge=1, le=100, description="builds per listing request")
    concurrency: int = Field(4, ge=1, le=64, description="requests to Jenkins at once")
    rate_limit: int | None = Field(None, ge=1, description="requests per second at most")
    steps: bool = Field(
        True, description="read steps: one request a run with pipeline-graph-view, else a stage"
    )
    stage_source: Literal["auto", "graphview", "blueocean", "wfapi", "none"] = Field(
        "auto", description="where stages come from; auto: detected once per controller"
    )
    upstream_depth: int = Field(
        25, ge=0, le=100, description="levels of upstream builds read to find who started a chain"
    )

    _globs = field_validator("include", "exclude", mode="before")(_glob_list)
    _url = field_validator("url")(_check_service_url)
    _root = field_validator("url")(_controller_root)
    _secret = field_validator("api_token", "user", mode="before")(_strip_secret)
    _placeholder = field_validator("url", "user", "api_token")(_not_placeholder)

    @field_validator("stage_source", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _user_and_token_together(self) -> JenkinsSettings:
        if bool(self.user) != bool(self.api_token and self.api_token.get_secret_value()):
            raise ValueError("JENKINS_USER and JENKINS_API_TOKEN must be set together")
        return self

    def endpoint(self) -> JenkinsEndpoint:
        """Resolved for a client; ConfigError when JENKINS_URL is missing (commands name every
        missing setting first, with Settings.require)."""
        if not self.url:
            raise ConfigError("missing setting: JENKINS_URL")
        auth = (self.user, self.api_token) if self.user and self.api_token else None
        return JenkinsEndpoint(self.url.rstrip("/") + "/", auth)


class SeiSettings(TransportSettings):
    base_url: str | None = None
    environment: str | None = None
    api_key: SecretStr | None = None
    instance_guid: str | None = None
    instance_name: str | None = None
    instance_url: str | None = Field(
        None,
        description="the controller's public URL in SEI; default: the root URL Jenkins reports",
    )
    timeout: float = Field(30.0, gt=0, description="seconds an answer may keep us waiting")
    retries: int = Field(5, ge=0, description="retries of a failed delivery (429, 5xx, timeout)")
    concurrency: int = Field(
        16,
        ge=1,
        le=64,
        description="builds in flight at once; a crash resends at most twice this many",
    )
    retry_wait: float = Field(1.0, ge=0, description="first wait between retries, seconds")
    retry_max_wait: float = Field(60.0, ge=0, description="longest wait between retries, seconds")
    push_artifacts: bool = Field(
        False, description="also POST artifacts to /v1/cicd/push_artifacts"
    )
    integration_id: str | None = None

    _url = field_validator("base_url", "instance_url")(_check_service_url)
    _secret = field_validator("api_key", mode="before")(_strip_secret)
    _placeholder = field_validator(
        "base_url", "instance_url", "api_key", "instance_name", "integration_id"
    )(_not_placeholder)

    @field_validator("environment")
    @classmethod
    def _known_environment(cls, value: str | None) -> str | None:
        if value is None:
            return None
        key = value.strip().lower()
        key = "eu1" if key == "eu" else key
        if key not in SEI_ENVIRONMENTS:
            raise ValueError(
                f"unknown environment '{value}' (one of {', '.join(SEI_ENVIRONMENTS)})"
            )
        return key

    @field_validator("instance_guid")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        """Empty is unset, and the examples' all-zero placeholder is kept as it is: `register`
        runs with either, and every command that sends refuses them (Settings.require), with
        the command that creates the instance."""
        if value is None or not value.strip():
            return None
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            raise ValueError(f"'{value}' is not a UUID") from None

    @model_validator(mode="after")
    def _integration_for_artifacts(self) -> SeiSettings:
        if self.push_artifacts and not self.integration_id:
            raise ValueError("SEI_PUSH_ARTIFACTS needs SEI_INTEGRATION_ID")
        return self

    @property
    def api_base(self) -> str | None:
        """The base that '/v1/...' is appended to, whether configured with or without '/v1'."""
        base = self.base_url or (SEI_ENVIRONMENTS[self.environment] if self.environment else None)
        if base is None:
            return None
        base = base.rstrip("/")
        return base[: -len("/v1")] if base.endswith("/v1") else base

    def endpoint(self) -> SeiEndpoint:
        """Resolved for a client; ConfigError naming what is missing (commands name every
        missing setting first, with Settings.require)."""
        base, key = self.api_base, self.api_key
        if base is None or key is None or not key.get_secret_value():
            missing = [] if base else ["SEI_BASE_URL or SEI_ENVIRONMENT"]
            missing += [] if key and key.get_secret_value() else ["SEI_API_KEY"]
            raise ConfigError(f"missing setting: {', '.join(missing)}")
        return SeiEndpoint(base, key)


class AgentSettings(BaseModel):
    state_file: Path = Path("./state/agent-state.json")
    lookback: timedelta = timedelta(hours=24)
    interval: int = Field(300, gt=0, description="seconds between cycles in `run`")
    watch_interval: int = Field(
        10, ge=0, description="seconds between two looks at what runs, in `run`; 0: off"
    )
    cron: str | None = None
    metrics_file: Path | None = Field(
        None,
        description="`sync`, `backfill`: the run's metrics written here at its end, in "
        "Prometheus' text format (node_exporter's textfile collector)",
    )
    http_port: int = Field(9464, ge=0, le=65535)
    http_host: str = Field(
        "", description="address /healthz, /metrics and /status listen on; empty: every interface"
    )
    job_names: Literal["plugin", "plugin-legacy", "jenkins"] = Field(
        "plugin",
        description="job_full_name as the official plugin names jobs (1.0.46 on), as it did up "
        "to 1.0.42 (plugin-legacy), or Jenkins fullName",
    )
    cd_jobs: Globs = Field(default_factory=list)
    ci_jobs: Globs = Field(default_factory=list)
    library_repos: Globs = Field(default_factory=list)
    project_name: str | None = None
    max_artifacts: int = Field(
        20, ge=0, le=100, description="archived files sent as artifacts per build (at most 100)"
    )
    rules: list[Rule] = Field(default_factory=list)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    config: Path | None = None

    _globs = field_validator("cd_jobs", "ci_jobs", "library_repos", mode="before")(_glob_list)

    @field_validator("lookback", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_validator("log_level", "log_format", "job_names", mode="before")
    @classmethod
    def _case(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value.lower() in ("debug", "info", "warning", "error"):
            return value.upper()
        return value.strip().lower()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    jenkins: JenkinsSettings = Field(default_factory=JenkinsSettings)
    sei: SeiSettings = Field(default_factory=SeiSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)

    _integration: Integration | None = PrivateAttr(default=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (and a satellite controller's own settings) beat the environment; a file comes
        below both (agent/config/loading.py adds it)."""
        return init_settings, env_settings

    @property
    def jenkins_base(self) -> str:
        """Configured Jenkins URL with exactly one trailing slash (context path kept)."""
        if self.jenkins.url is None:
            raise ConfigError(f"missing setting: {self.name_of('jenkins.url')}")
        return self.jenkins.endpoint().base

    @property
    def integration(self) -> Integration | None:
        """The satellite.yml integration this controller was read from, if any."""
        return self._integration

    def name_of(self, setting: str) -> str:
        """How the user sets `section.field`: its environment name, or its satellite.yml key."""
        if self._integration is not None and setting in INTEGRATION_KEYS:
            return self._integration.where(setting)
        return env_name(tuple(setting.split(".")))

    def secrets(self) -> list[str]:
        """The configured secrets, which nothing the agent writes or serves may contain: the
        token and the key, and the Basic credentials the token travels in."""
        found = [
            s.get_secret_value()
            for s in (self.jenkins.api_token, self.sei.api_key)
            if s is not None
        ]
        token, user = self.jenkins.api_token, self.jenkins.user
        if token is not None and user:
            basic = f"{user}:{token.get_secret_value()}".encode()
            found.append(base64.b64encode(basic).decode())
        return found

    def require(self, *names: str) -> None:
        """Fail with a message naming every required setting that is missing."""
        missing = []
        for name in names:
            section, _, field = name.partition(".")
            if name == "sei.base_url":
                if self.sei.api_base is None:
                    missing.append("SEI_BASE_URL or SEI_ENVIRONMENT")
                continue
            value = getattr(getattr(self, section), field)
            if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()):
                missing.append(self.name_of(name))
        problems = [f"missing setting: {', '.join(missing)}"] if missing else []
        guid = self.name_of("sei.instance_guid")
        placeholder = "sei.instance_guid" in names and self.sei.instance_guid == PLACEHOLDER_GUID
        if placeholder:
            in_file = self.agent.config is not None and self._integration is None
            if in_file and not guid_in_environment():
                guid = f"sei.instance_guid in {self.agent.config}"
            problems.append(f"{guid} holds the example's all-zero placeholder")
        if placeholder or guid in missing:
            command = register_command(
                self.sei.instance_name,
                self.sei.integration_id,
                self.agent.config,
                self.integration is not None,
            )
            problems.append(CREATE_INSTANCE + command)
        if problems:
            raise ConfigError(*problems)
