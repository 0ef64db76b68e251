"""Settings: YAML file < environment < command-line flags, validated once at start.

Environment names are the section and the setting joined by '_' (JENKINS_API_TOKEN is
`jenkins.api_token`, AGENT_STATE_FILE is `agent.state_file`), so the YAML file and the
environment describe the same tree.
"""

from __future__ import annotations

import os
import re
import uuid
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from agent.satellite import (
    INTEGRATION_KEYS,
    Integration,
    SatelliteError,
    is_satellite,
    split_controllers,
)

SEI_ENVIRONMENTS: dict[str, str] = {
    "prod0": "https://accounts.harness.io/sei/api",
    "prod1": "https://app.harness.io/prod1/sei/api",
    "prod2": "https://app.harness.io/gratis/sei/api",
    "prod3": "https://app3.harness.io/sei/api",
    "prod4": "https://prod4.harness.io/sei/api",
    "prod6": "https://prod6.harness.io/sei/api",
    "eu1": "https://accounts.eu.harness.io/sei/api",
}

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it."""


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
    return timedelta(seconds=seconds)


def _split_globs(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


Globs = Annotated[list[str], NoDecode]


def _check_http_url(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        shown = re.sub(r"//[^/@\s]*@", "//***@", value)  # never echo credentials back
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


class Rule(BaseModel):
    """Optional payload fields for the builds of matching jobs (and results)."""

    jobs: Globs = Field(default_factory=lambda: ["*"])
    results: list[str] = Field(default_factory=list)  # empty: any result
    cfr_status: bool | None = None
    themes: list[str] | None = None
    project_name: str | None = None

    _globs = field_validator("jobs", mode="before")(_split_globs)


class TransportSettings(BaseModel):
    """TLS, proxy and connecting for one side; HTTPS_PROXY and NO_PROXY apply unless `proxy`
    is set."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a bad value may hold a secret

    ca_bundle: Path | None = None
    insecure: bool = Field(False, description="skip TLS verification (logged at every start)")
    proxy: str | None = None
    connect_timeout: float = Field(10.0, gt=0, description="seconds to open a connection")

    _proxy = field_validator("proxy")(_check_http_url)

    @field_validator("ca_bundle")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"CA bundle {value} is not a readable file")
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
    steps: bool = Field(True, description="read each stage's steps (one request per stage)")
    upstream_depth: int = Field(5, ge=0, le=10, description="levels of upstream causes read")

    _globs = field_validator("include", "exclude", mode="before")(_split_globs)
    _url = field_validator("url")(_check_service_url)

    @model_validator(mode="after")
    def _user_and_token_together(self) -> JenkinsSettings:
        if bool(self.user) != bool(self.api_token and self.api_token.get_secret_value()):
            raise ValueError("JENKINS_USER and JENKINS_API_TOKEN must be set together")
        return self


class SeiSettings(TransportSettings):
    base_url: str | None = None
    environment: str | None = None
    api_key: SecretStr | None = None
    instance_guid: str | None = None
    instance_name: str | None = None
    timeout: float = Field(30.0, gt=0, description="seconds an answer may keep us waiting")
    retries: int = Field(5, ge=0, description="retries of a failed delivery (429, 5xx, timeout)")
    concurrency: int = Field(
        16, ge=1, le=64, description="builds in flight at once; a crash resends at most this many"
    )
    retry_wait: float = Field(1.0, ge=0, description="first wait between retries, seconds")
    retry_max_wait: float = Field(60.0, ge=0, description="longest wait between retries, seconds")
    push_artifacts: bool = Field(
        False, description="also POST artifacts to /v1/cicd/push_artifacts"
    )
    integration_id: str | None = None

    _url = field_validator("base_url")(_check_service_url)

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
        if value is None:
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


class AgentSettings(BaseModel):
    state_file: Path = Path("./state/agent-state.json")
    lookback: timedelta = timedelta(hours=24)
    interval: int = Field(300, gt=0, description="seconds between cycles in `run`")
    cron: str | None = None
    http_port: int = Field(9464, ge=0, le=65535)
    cd_jobs: Globs = Field(default_factory=list)
    library_repos: Globs = Field(default_factory=list)
    project_name: str | None = None
    max_artifacts: int = Field(20, ge=0, description="archived files sent as artifacts per build")
    rules: list[Rule] = Field(default_factory=list)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    config: Path | None = None

    _globs = field_validator("cd_jobs", "library_repos", mode="before")(_split_globs)

    @field_validator("lookback", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _case(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value.lower() in ("debug", "info", "warning", "error"):
            return value.upper()
        return value.lower()


_yaml_data: ContextVar[dict[str, Any] | None] = ContextVar("yaml_data", default=None)


class _YamlSource(PydanticBaseSettingsSource):
    """The already-parsed config file, lowest priority."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return (_yaml_data.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_data.get() or {})


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
        return init_settings, env_settings, _YamlSource(settings_cls)

    @property
    def jenkins_base(self) -> str:
        """Configured Jenkins URL with exactly one trailing slash (context path kept)."""
        assert self.jenkins.url is not None
        return self.jenkins.url.rstrip("/") + "/"

    @property
    def integration(self) -> Integration | None:
        """The satellite.yml integration this controller was read from, if any."""
        return self._integration

    def name_of(self, setting: str) -> str:
        """How the user sets `section.field`: its environment name, or its satellite.yml key."""
        if self._integration is not None and setting in INTEGRATION_KEYS:
            return self._integration.where(setting)
        return env_name(tuple(setting.split(".")))

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
        if missing:
            raise ConfigError(f"missing setting: {', '.join(missing)}")


def env_name(loc: tuple[Any, ...]) -> str:
    """('sei', 'instance_guid') -> 'SEI_INSTANCE_GUID', the name users set."""
    parts = [str(p) for p in loc if not isinstance(p, int)]
    return "_".join(parts[:2]).upper() if parts else "configuration"


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse the YAML file, turning every failure into a ConfigError that names the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"config file {path}: YAML {problem}{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings at the top level")
    return data


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Build Settings from the file, the environment and flags; raise ConfigError on bad input."""
    controllers = load_controllers(config_file, overrides)
    if len(controllers) > 1:
        raise ConfigError(
            f"{controllers[0].agent.config} describes {len(controllers)} Jenkins controllers; "
            "this needs exactly one"
        )
    return controllers[0]


def load_controllers(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> list[Settings]:
    """The Settings of every controller this agent serves; raise ConfigError on bad input.

    An agent.yaml or the environment alone is one controller; a satellite.yml is one per
    integration with `application: jenkins` (agent/satellite.py), each with its own instance
    GUID and so its own section of the state file. Everything else the controllers share.
    """
    from_env = os.environ.get("AGENT_CONFIG")
    path = config_file or (Path(from_env) if from_env else None)
    data = read_config_file(path) if path else {}
    init = _deep_merge({"agent": {"config": path}} if path else {}, overrides or {})
    if path is None or not is_satellite(data):
        return [_build(data, init, None)]
    try:
        shared, own = split_controllers(data, path)
    except SatelliteError as exc:
        raise ConfigError(str(exc)) from None
    controllers = [_build(shared, _deep_merge(mine, init), where) for where, mine in own]
    first_with: dict[str, Settings] = {}
    for settings in controllers:
        guid = settings.sei.instance_guid
        if guid in first_with:
            raise ConfigError(
                f"{settings.name_of('sei.instance_guid')} is the instance GUID of "
                f"{first_with[guid].name_of('sei.instance_guid')} too; every controller needs "
                "its own (`jenkins-sei-agent register` creates one)"
            )
        if guid:
            first_with[guid] = settings
    return controllers


def _build(data: dict[str, Any], init: dict[str, Any], where: Integration | None) -> Settings:
    """One controller's Settings: `data` is the file's part, `init` beats the environment."""
    token = _yaml_data.set(data)
    try:
        settings = Settings(**init)
    except ValidationError as exc:
        message = _describe(exc)
        raise ConfigError(where.rename(message) if where else message) from None
    finally:
        _yaml_data.reset(token)
    settings._integration = where
    return settings


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        name = env_name(loc)
        if name.upper() in msg.upper():
            lines.append(f"invalid setting: {msg}")
        else:
            lines.append(f"invalid setting {name}: {msg}")
    return "; ".join(lines)
