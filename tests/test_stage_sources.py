"""The stage sources as one registry: the settings offer each registered source by its name, and
no module but the source's own names it, so that nothing switches on the names (the sources
themselves are tested against the simulator in tests/test_graphview.py and
tests/test_payload_complete.py)."""

from __future__ import annotations

import ast
from typing import get_args

from conftest import ROOT

from agent.config.models import JenkinsSettings
from agent.jenkins.stages.chain import SOURCES


def test_the_settings_offer_every_registered_source_and_no_other() -> None:
    choices = get_args(JenkinsSettings.model_fields["stage_source"].annotation)
    assert set(choices) == {"auto", "none", *(source.name for source in SOURCES)}


def test_no_module_but_a_source_s_own_and_the_settings_names_it() -> None:
    names = {source.name for source in SOURCES}
    for path in (ROOT / "agent").rglob("*.py"):
        where = path.relative_to(ROOT / "agent").as_posix()
        said = {
            node.value
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and node.value in names
        }
        allowed = {"config/models.py": names}.get(where, {path.stem} & names)
        assert said <= allowed, (where, said - allowed)
