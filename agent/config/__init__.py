"""The settings: their models (models), where they come from (loading), and the SEI satellite's
file read as it is (satellite)."""

from agent.config.loading import known_variables, load_controllers, load_settings
from agent.config.models import (
    AgentSettings,
    ConfigError,
    JenkinsSettings,
    SeiSettings,
    Settings,
    TransportSettings,
    env_name,
    parse_duration,
)
from agent.config.rules import RESULTS, Rule, split_globs

__all__ = [
    "RESULTS",
    "AgentSettings",
    "ConfigError",
    "JenkinsSettings",
    "Rule",
    "SeiSettings",
    "Settings",
    "TransportSettings",
    "env_name",
    "known_variables",
    "load_controllers",
    "load_settings",
    "parse_duration",
    "split_globs",
]
