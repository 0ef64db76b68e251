"""`register`: create the SEI CI/CD instance a controller's builds are sent under and print its
GUID; with --write-config also write it into the config file, leaving the rest of the file
(comments, order, quoting) as it was.

The POST is not retried: a retry after a lost answer would create a second instance.
"""

from __future__ import annotations

import argparse
import difflib
import io
import itertools
import logging
import re
import stat
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import app
from agent.config import ConfigError, Settings
from agent.config.models import PLACEHOLDER_GUID
from agent.sei.client import INSTANCES, Accepted, Refusal, SeiUnavailable
from agent.state.file import write_atomically

if TYPE_CHECKING:
    from ruamel.yaml.comments import CommentedMap

log = logging.getLogger(__name__)


def main(args: argparse.Namespace, controllers: list[Settings]) -> int:
    settings = _choose(controllers, args.integration_id)
    integration_id = args.integration_id or settings.sei.integration_id
    if not integration_id:
        raise ConfigError(
            f"give --integration-id (the SEI integration's id) or set "
            f"{settings.name_of('sei.integration_id')}"
        )
    name = args.name or settings.sei.instance_name
    if not name:
        name_setting = settings.name_of("sei.instance_name")
        raise ConfigError(f"give --name (the instance's name in SEI) or set {name_setting}")
    url = args.url or settings.jenkins.url
    if not url or not re.match(r"https?://[^/]+", url):
        raise ConfigError(f"give --url or set {settings.name_of('jenkins.url')} (an http(s) URL)")
    settings.require("sei.base_url", "sei.api_key")
    edit = None
    if args.write_config:  # every reason not to write is found before the instance is made
        edit = _ConfigEdit(settings)
        edit.check(name, integration_id, args.force)
    client = app.sei_client(settings, retries=0)
    try:
        outcome = client.create_instance(name, url, integration_id)
    except SeiUnavailable as exc:
        log.error("%s", exc)
        return 3
    finally:
        client.close()
    if isinstance(outcome, Refusal):
        log.error("SEI refused the registration (HTTP %d): %s", outcome.status, outcome.message)
        return 2
    guid = _instance_id(outcome)
    if guid is None:
        log.error("SEI answered %s without an instance id", client.where(INSTANCES))
        return 3
    log.info("registered instance %s for %s: %s", name, url, guid)
    if edit is not None:
        edit.write(guid, name, integration_id)
        log.info("wrote it into %s", edit.path)
    print(guid)
    return 0


def _choose(controllers: list[Settings], integration_id: str | None) -> Settings:
    """The controller to register: the only one, or the integration with that id."""
    if len(controllers) == 1:
        return controllers[0]
    ids = [s.sei.integration_id for s in controllers]
    for settings in controllers:
        if integration_id and settings.sei.integration_id == integration_id:
            return settings
    raise ConfigError(
        f"{controllers[0].agent.config} has {len(controllers)} Jenkins integrations; choose one "
        f"with --integration-id ({', '.join(str(i) for i in ids)})"
    )


def _instance_id(accepted: Accepted) -> str | None:
    try:
        return str(uuid.UUID(str(accepted.said["id"])))
    except (ValueError, KeyError, TypeError):
        return None


class _ConfigEdit:
    """The config file parsed for a round trip, and the mapping the instance is written into.

    ruamel's round trip normalises what it does not keep (spacing after a colon, inside flow
    mappings); rendering the file once untouched and once with the instance shows which lines
    the instance changes, and only those lines replace the user's own.
    """

    def __init__(self, settings: Settings) -> None:
        # here: ruamel costs ~15 ms at every command's start, and only --write-config needs it
        from ruamel.yaml import YAML
        from ruamel.yaml.comments import CommentedMap
        from ruamel.yaml.error import YAMLError
        from ruamel.yaml.util import load_yaml_guess_indent

        path = settings.agent.config
        if path is None:
            raise ConfigError("--write-config needs --config FILE (or AGENT_CONFIG)")
        self.path = Path(path)
        self.satellite = settings.integration
        try:
            self._text = self.path.read_text(encoding="utf-8")
            _, sequence_indent, offset = load_yaml_guess_indent(self._text)
            self._yaml = YAML()
            self._yaml.preserve_quotes = True
            self._yaml.width = 4096  # never fold a long line the user wrote on one
            self._yaml.indent(
                mapping=_mapping_indent(self._text), sequence=sequence_indent, offset=offset or 0
            )
            self._doc: Any = self._yaml.load(self._text)
        except (OSError, YAMLError) as exc:
            raise ConfigError(f"cannot edit config file {self.path}: {exc}") from None
        if self._doc is None:
            self._doc = CommentedMap()
        self._baseline = self._dump()
        self._target()  # an integration missing from the file is found out before the POST

    def _target(self) -> CommentedMap:
        from ruamel.yaml.comments import CommentedMap  # already loaded by __init__

        if self.satellite is None:
            parent, key = self._doc, "sei"
        else:
            parent, key = self._doc["integrations"][self.satellite.index], "metadata"
        section = parent.get(key)
        if not isinstance(section, dict) or not section:
            section = CommentedMap()
            if self.satellite is not None:
                section.fa.set_flow_style()  # `metadata: {}` stays on its line
            parent[key] = section
        target: CommentedMap = section
        return target

    def check(self, name: str, integration_id: str, force: bool) -> None:
        """Refuse, before SEI is asked, to replace a GUID without --force or to touch any line
        but the instance's own."""
        held = self._target().get("instance_guid")
        if held and str(held).strip() != PLACEHOLDER_GUID and not force:
            raise ConfigError(
                f"{self.path} already holds instance_guid {held} for this controller; "
                "give --force to replace it (builds sent under the old instance stay there)"
            )
        self._render(PLACEHOLDER_GUID, name, integration_id)  # a GUID has one length

    def write(self, guid: str, name: str, integration_id: str) -> None:
        """Write atomically, keeping the file's permissions (it holds keys)."""
        text = self._render(guid, name, integration_id)
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
            write_atomically(self.path.resolve(), text, mode)
        except OSError as exc:
            raise ConfigError(f"cannot write config file {self.path}: {exc.strerror}") from None

    def _dump(self) -> list[str]:
        out = io.StringIO()
        self._yaml.dump(self._doc, out)
        return out.getvalue().splitlines()

    def _render(self, guid: str, name: str, integration_id: str) -> str:
        """The user's text with the instance's lines changed, or a refusal naming the line that
        would change too."""
        section = self._target()
        section.update({"instance_guid": guid, "instance_name": name})
        if self.satellite is None:
            section["integration_id"] = integration_id
        if not self._text.strip():
            return "\n".join(self._dump()) + "\n"
        original = self._text.splitlines()
        if len(original) != len(self._baseline):
            raise self._refusal("its layout")
        edited = self._dump()
        lines: list[str] = []
        matcher = difflib.SequenceMatcher(a=self._baseline, b=edited, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                lines += original[i1:i2]
                continue
            for number in range(i1, i2):
                if not _INSTANCE_LINE.search(original[number]):
                    raise self._refusal(f"line {number + 1} ({original[number].strip()!r})")
            lines += edited[j1:j2]
        return "\n".join(lines) + ("\n" if self._text.endswith("\n") else "")

    def _refusal(self, what: str) -> ConfigError:
        return ConfigError(
            f"cannot write into {self.path} without changing {what}; add instance_guid, "
            "instance_name and integration_id under its SEI settings yourself"
        )


_INSTANCE_LINE = re.compile(r"\b(instance_guid|instance_name|integration_id|sei|metadata)\s*:")


def _mapping_indent(text: str) -> int:
    """The file's mapping indentation, from the first key nested under a top-level key."""
    lines = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    for above, line in itertools.pairwise(lines):
        indent = len(line) - len(line.lstrip(" "))
        nested = not above.startswith(" ") and above.rstrip().endswith(":")
        if nested and indent and not line.lstrip().startswith("-"):
            return indent
    return 2
