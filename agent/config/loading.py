"""Loading the settings: YAML file < environment < command-line flags, validated once at start.

The file is read by pydantic-settings' own YAML source; a satellite.yml is first translated to
the same shape (agent/config/satellite.py). Before anything is validated, every key of the file
is checked against the settings: a misspelt key is an error naming the key, its line and the
closest known name, never silently ignored. An AGENT_* or SEI_* variable the agent does not know
is named in a warning; a JENKINS_* one only when it is close to a setting (Jenkins' own
containers set many others), and then as an error if the command needs that setting. Every message
names a setting the way the user wrote it: a path in the file, a variable or a flag.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsError,
    YamlConfigSettingsSource,
)

from agent.config.models import PLACEHOLDER_GUID, ConfigError, Settings, env_name
from agent.config.rules import Rule
from agent.config.satellite import (
    INTEGRATION_KEYS,
    METADATA_KEYS,
    Integration,
    SatelliteError,
    is_satellite,
    split_controllers,
)

log = logging.getLogger(__name__)

# The settings command-line flags set, and how the user typed them.
FLAGS = {
    ("agent", "state_file"): "--state-file",
    ("agent", "lookback"): "--lookback",
    ("agent", "log_level"): "--log-level",
    ("agent", "log_format"): "--log-format",
}
Path_ = tuple[str | int, ...]


class _File:
    """A parsed config file: its data, and the line of every key (for messages)."""

    def __init__(self, path: Path) -> None:
        import yaml  # here: ~15 ms at start, and only a config file needs it

        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        try:
            data = yaml.safe_load(text)
            node = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "syntax error"
            raise ConfigError(f"config file {path}: YAML {problem}{where}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"config file {path}: expected a mapping of settings at the top level"
            )
        self.data: dict[str, Any] = data
        self.lines: dict[Path_, int] = {}
        self._index(node, ())

    def _index(self, node: Any, at: Path_) -> None:
        import yaml  # already loaded by __init__

        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = (*at, str(key.value))
                self.lines[here] = key.start_mark.line + 1
                self._index(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.lines[(*at, index)] = item.start_mark.line + 1
                self._index(item, (*at, index))

    def where(self, at: Path_) -> str:
        dotted = _dotted(at)
        line = self.lines.get(at)
        return f"{dotted} (line {line} of {self.path})" if line else f"{dotted} in {self.path}"


def _dotted(at: Path_) -> str:
    out = ""
    for part in at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _closest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.5)
    return f"; did you mean {close[0]}?" if close else f" (known: {', '.join(sorted(known))})"


def _unknown_keys(data: Mapping[str, Any], file: _File, at: Path_ = ()) -> list[str]:
    """Every key of the settings part of a file that is not a setting."""
    problems = []
    sections = Settings.model_fields
    for name, section in data.items():
        here = (*at, name)
        if name not in sections:
            problems.append(f"unknown setting {file.where(here)}{_closest(name, list(sections))}")
            continue
        model = sections[name].annotation
        if not isinstance(section, dict) or not isinstance(model, type):
            continue
        fields = [f for f in model.model_fields if f != "config"]
        for key, value in section.items():
            if key not in fields:
                where = file.where((*here, key))
                problems.append(f"unknown setting {where}{_closest(str(key), fields)}")
            elif key == "rules" and isinstance(value, list):
                at = (*here, key)
                problems += _unknown_rule_keys(value, lambda i, k, at=at: file.where((*at, i, k)))
    return problems


def _unknown_rule_keys(rules: list[Any], where: Any) -> list[str]:
    fields = list(Rule.model_fields)
    return [
        f"unknown setting {where(index, key)}{_closest(str(key), fields)}"
        for index, rule in enumerate(rules)
        if isinstance(rule, dict)
        for key in rule
        if key not in fields
    ]


def known_variables() -> set[str]:
    """Every AGENT_*, SEI_* and JENKINS_* variable the agent reads."""
    names = {"AGENT_CONFIG"}
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            names |= {env_name((section, name)) for name in model.model_fields}
    return names


# Variables Jenkins itself sets (the controller's image, inbound agents, build steps) and those
# Kubernetes sets for a Service named jenkins: never a misspelt setting of the agent.
_JENKINS_OWN = re.compile(
    r"JENKINS_(HOME|SECRET|NAME|TUNNEL|WEB_?SOCKET|DIRECT_CONNECTION|INSTANCE_IDENTITY|PROTOCOLS"
    r"|AGENT_\w*|SLAVE_AGENT_PORT|JAVA_\w*|OPTS|ARGS|UC\w*|VERSION|SHA|INCREMENTALS_REPO_MIRROR"
    r"|PLUGIN_INFO|ENABLE_FUTURE_JAVA|NODE_COOKIE|SERVER_COOKIE|WAR|REF|WEBROOT|LOG\w*|DEBUG_LEVEL"
    r"|PREFIX|CONFIG_WITH_JCASC|PORT\w*|SERVICE_\w*)"
)
# What users of other Jenkins tools call the agent's settings.
_JENKINS_ALIASES = {
    "USERNAME": "USER",
    "USER_NAME": "USER",
    "LOGIN": "USER",
    "PASSWORD": "API_TOKEN",
    "PASS": "API_TOKEN",
    "TOKEN": "API_TOKEN",
    "APITOKEN": "API_TOKEN",
    "API_KEY": "API_TOKEN",
    "HOST": "URL",
    "SERVER": "URL",
    "BASE_URL": "URL",
    "ROOT_URL": "URL",
}


def _meant_jenkins_setting(name: str, known: set[str]) -> str | None:
    """The JENKINS_* setting a variable the agent does not know was probably meant to be: a
    usual alias, or a name at most a character or two away (difflib's ratio of 0.8 or more)."""
    if name in known or _JENKINS_OWN.fullmatch(name):
        return None
    suffix = name.removeprefix("JENKINS_")
    if suffix in _JENKINS_ALIASES:
        return f"JENKINS_{_JENKINS_ALIASES[suffix]}"
    settings = [k.removeprefix("JENKINS_") for k in known if k.startswith("JENKINS_")]
    close = difflib.get_close_matches(suffix, settings, n=1, cutoff=0.8)
    return f"JENKINS_{close[0]}" if close else None


def _check_unknown_variables(reads: Callable[[str], bool]) -> None:
    """Name every AGENT_*, SEI_* or JENKINS_* variable that is not a setting. A JENKINS_* one
    close to a setting is an error when this command reads that setting and it is not set
    (the run would go on without the value the user meant to give it), else a warning."""
    known = known_variables()
    names = {name.upper(): name for name in os.environ}
    problems = []
    for upper, name in sorted(names.items()):
        if upper.startswith(("AGENT_", "SEI_")) and upper not in known:
            log.warning(
                "%s is not a setting of the agent, ignored%s", name, _closest(upper, sorted(known))
            )
        if not upper.startswith("JENKINS_"):
            continue
        meant = _meant_jenkins_setting(upper, known)
        if meant is None:
            continue
        if meant not in names and reads(meant):
            problems.append(
                f"{name} is not a setting of the agent; did you mean {meant}? This command "
                f"reads {meant}, which is not set: rename the variable"
            )
        else:
            log.warning("%s is not a setting of the agent, ignored; did you mean %s?", name, meant)
    if problems:
        raise ConfigError(*problems)


def _check_rules_variable() -> None:
    """AGENT_RULES must be a JSON list of rules, each with known keys only."""
    raw = next((v for k, v in os.environ.items() if k.upper() == "AGENT_RULES"), None)
    if raw is None:
        return
    try:
        rules = json.loads(raw)
    except ValueError as exc:
        reason = getattr(exc, "msg", str(exc))
        line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        at = f" at line {line}, column {column}" if line else ""
        raise ConfigError(
            f"invalid setting AGENT_RULES: not JSON ({reason}{at}); it is a JSON list such as "
            '[{"jobs": ["*/deploy-*"], "results": ["FAILURE"], "cfr_status": true}]'
        ) from None
    if not isinstance(rules, list):
        raise ConfigError("invalid setting AGENT_RULES: a JSON list of rules, [{...}, ...]")
    problems = _unknown_rule_keys(rules, lambda i, k: f"AGENT_RULES[{i}].{k}")
    if problems:
        raise ConfigError(*problems)


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
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    reads: Callable[[str], bool] | None = None,
) -> list[Settings]:
    """The Settings of every controller this agent serves; raise ConfigError on bad input.
    `reads`: whether the command reads a setting (by variable name); default: every one.

    An agent.yaml or the environment alone is one controller; a satellite.yml is one per
    integration with `application: jenkins`, each with its own instance GUID and so its own
    section of the state file. Everything else the controllers share.
    """
    from_env = os.environ.get("AGENT_CONFIG")
    path = config_file or (Path(from_env) if from_env else None)
    file = _File(path) if path else None
    # a satellite.yml's controllers take these from their integrations, never the environment
    from_file = (
        {env_name(tuple(k.split("."))) for k in INTEGRATION_KEYS}
        if file is not None and is_satellite(file.data)
        else set()
    )
    command_reads = reads or (lambda variable: True)
    _check_unknown_variables(lambda variable: variable not in from_file and command_reads(variable))
    _check_rules_variable()
    init = _deep_merge({"agent": {"config": path}} if path else {}, overrides or {})
    if file is None or path is None:
        return [_build(None, init, None, None)]
    if not is_satellite(file.data):
        problems = _unknown_keys(file.data, file)
        if problems:
            raise ConfigError(*problems)
        return [_build(file, init, None, lambda cls: YamlConfigSettingsSource(cls, path))]
    try:
        shared, own = split_controllers(file.data, path)
    except SatelliteError as exc:
        raise ConfigError(str(exc)) from None
    problems = _unknown_keys({k: v for k, v in shared.items() if k in file.data}, file)
    for where, _ in own:
        metadata = file.data["integrations"][where.index].get("metadata") or {}
        problems += [
            f"unknown setting {file.where(('integrations', where.index, 'metadata', key))}"
            f"{_closest(str(key), list(METADATA_KEYS))}"
            for key in metadata
            if key not in METADATA_KEYS
        ]
    if problems:
        raise ConfigError(*problems)
    controllers = [
        _build(
            file,
            _deep_merge(mine, init),
            where,
            lambda cls, shared=shared: InitSettingsSource(cls, shared),
        )
        for where, mine in own
    ]
    first_with: dict[str, Settings] = {}
    first_at: dict[str, Settings] = {}
    for settings in controllers:
        guid = settings.sei.instance_guid
        if guid == PLACEHOLDER_GUID:  # not registered yet: the commands that send say so
            continue
        if guid in first_with:
            raise ConfigError(
                f"{settings.name_of('sei.instance_guid')} is the instance GUID of "
                f"{first_with[guid].name_of('sei.instance_guid')} too; every controller needs "
                "its own (`jenkins-sei-agent register` creates one)"
            )
        if guid:
            first_with[guid] = settings
        # one controller twice would send every build twice, under two instances
        url = settings.jenkins_base.lower() if settings.jenkins.url else None
        if url in first_at:
            raise ConfigError(
                f"{settings.name_of('jenkins.url')} is the URL of "
                f"{first_at[url].name_of('jenkins.url')} too; list each controller once"
            )
        if url:
            first_at[url] = settings
    return controllers


def _build(
    file: _File | None,
    init: dict[str, Any],
    where: Integration | None,
    file_source: Any,
) -> Settings:
    """One controller's Settings: `init` beats the environment, which beats the file."""
    cls: type[Settings] = Settings
    if file_source is not None:

        class FromFile(Settings):
            @classmethod
            def settings_customise_sources(
                cls,
                settings_cls: type[BaseSettings],
                init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource,
            ) -> tuple[PydanticBaseSettingsSource, ...]:
                return init_settings, env_settings, file_source(settings_cls)

        cls = FromFile
    try:
        settings = cls(**init)
    except ValidationError as exc:
        raise ConfigError(*_describe(exc, file, init, where)) from None
    except SettingsError as exc:  # a variable that should hold JSON and does not
        raise ConfigError(f"invalid setting: {exc}") from None
    settings._integration = where
    return settings


def _describe(
    exc: ValidationError, file: _File | None, init: dict[str, Any], where: Integration | None
) -> list[str]:
    """Every error, naming each setting as the user set it."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            known = list(Rule.model_fields)
            msg = f"is not a setting{_closest(str(loc[-1]), known)}"
        lines.append(f"invalid setting {_name(loc, file, init, where)}: {msg}")
    return lines


def _name(loc: tuple[Any, ...], file: _File | None, init: dict[str, Any], where: Any) -> str:
    """Where the value at `loc` came from: a flag, a satellite key, a variable or the file."""
    if loc[:2] in FLAGS and _has(init, loc[:2]):
        return FLAGS[loc[:2]]
    setting = ".".join(str(p) for p in loc[:2])
    if where is not None and _has(init, loc[:2]):
        return where.where(setting) if setting in where.keys else setting
    variable = env_name(loc)
    if variable in {k.upper() for k in os.environ}:
        rest = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[2:])
        return variable + rest
    if file is not None and _has(file.data, loc):
        return file.where(loc)
    if file is not None and len(loc) > 2 and _has(file.data, loc[:2]):
        return file.where(loc[:2]) + " " + _dotted(loc[2:])
    return variable


def _has(data: Any, loc: tuple[Any, ...]) -> bool:
    for part in loc:
        if (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and part < len(data)
        ):
            data = data[part]
        else:
            return False
    return True
