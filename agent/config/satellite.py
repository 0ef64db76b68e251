"""satellite.yml, the SEI satellite's configuration file, read as it is.

Users who already run the satellite have this file, so they need not describe their controllers
twice. Every integration with `application: jenkins` is one controller: `satellite.url` and
`satellite.api_key` are SEI's base URL and key for all of them; each integration brings its
Jenkins URL, user (`username`), API token (`api_key`), SEI integration (`id`) and, in `metadata`,
its CI/CD instance (`instance_guid`, `instance_name`), which `register --write-config` fills in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# A controller's own settings, and the integration key each is read from.
INTEGRATION_KEYS: dict[str, str] = {
    "jenkins.url": "url",
    "jenkins.user": "username",
    "jenkins.api_token": "api_key",
    "sei.integration_id": "id",
    "sei.instance_guid": "metadata.instance_guid",
    "sei.instance_name": "metadata.instance_name",
}


# What an integration's `metadata` may hold for the agent (register --write-config fills it in).
METADATA_KEYS = ("instance_guid", "instance_name")


class SatelliteError(Exception):
    """The file is a satellite.yml that cannot be used; the message says where."""


@dataclass(frozen=True)
class Integration:
    """The Jenkins integration of a satellite.yml that one controller's settings come from."""

    file: Path
    index: int
    id: str | None

    @property
    def keys(self) -> set[str]:
        """The settings (`section.field`) this integration gives its controller."""
        return set(INTEGRATION_KEYS)

    def where(self, setting: str) -> str:
        """How the user finds one of this controller's settings: `integrations[1].url in FILE`."""
        return f"integrations[{self.index}].{INTEGRATION_KEYS[setting]} in {self.file}"


def is_satellite(data: dict[str, Any]) -> bool:
    return "satellite" in data


def split_controllers(
    data: dict[str, Any], file: Path
) -> tuple[dict[str, Any], list[tuple[Integration, dict[str, Any]]]]:
    """The settings all controllers share, and each Jenkins integration's own.

    The shared part is read like an agent.yaml (so `jenkins:`, `sei:` and `agent:` sections may
    stand beside `satellite:`, and the environment beats it). A controller's own settings beat
    the environment: JENKINS_URL cannot mean every controller at once.
    """
    satellite = data.get("satellite")
    if not isinstance(satellite, dict):
        raise SatelliteError(f"config file {file}: 'satellite' must be a mapping")
    shared = {k: v for k, v in data.items() if k not in ("satellite", "integrations")}
    own_sei = shared.get("sei")
    if own_sei is None or isinstance(own_sei, dict):
        from_satellite = {
            "base_url": _text(satellite.get("url")),
            "api_key": _text(satellite.get("api_key")),
        }
        shared["sei"] = {**{k: v for k, v in from_satellite.items() if v}, **(own_sei or {})}
    items = data.get("integrations") or []
    if not isinstance(items, list):
        raise SatelliteError(f"config file {file}: 'integrations' must be a list")
    controllers = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or _text(item.get("application"), lower=True) != "jenkins":
            continue
        metadata = item.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise SatelliteError(f"integrations[{index}].metadata in {file} must be a mapping")
        url = _text(item.get("url"))
        ident = _text(item.get("id"))
        own = {
            "jenkins": {
                "url": url,
                "user": _text(item.get("username")),
                "api_token": _text(item.get("api_key")),
            },
            "sei": {
                "integration_id": ident,
                "instance_guid": _text(metadata.get("instance_guid")),
                "instance_name": _text(metadata.get("instance_name")) or _host(url),
            },
        }
        controllers.append((Integration(file, index, ident), own))
    if not controllers:
        raise SatelliteError(f"config file {file} has no integration with 'application: jenkins'")
    return shared, controllers


def _text(value: Any, *, lower: bool = False) -> str | None:
    """YAML scalars as stripped text (ids are often numbers); empty is unset."""
    if value is None:
        return None
    text = str(value).strip()
    return (text.lower() if lower else text) or None


def _host(url: str | None) -> str | None:
    """The default instance name: the controller's host name."""
    try:
        return urlsplit(url).hostname if url else None
    except ValueError:
        return None
