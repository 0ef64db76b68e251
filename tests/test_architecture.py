"""The design's nevers, held by a test: each layer imports only what its step needs.

- mapping is a pure function of Jenkins JSON: it loads no HTTP client, retry, settings or
  scheduler library (checked in a fresh interpreter, where nothing else was imported first);
- state knows neither Jenkins nor SEI;
- the CLI only wires: it makes no request and knows no path of either side;
- every Jenkins request path is in the endpoint table, every SEI path in the SEI client.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

AGENT = ROOT / "agent"
HEAVY = ("httpx", "httpcore", "tenacity", "pydantic_settings", "apscheduler", "pyrate_limiter")


def imports_of(package: str) -> set[str]:
    """Every module imported by the modules of `package` (agent/<package>/...)."""
    found: set[str] = set()
    for path in (AGENT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
    return found


def literals_in(path: Path) -> list[str]:
    return [
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_mapping_loads_no_http_retry_settings_or_scheduler_library() -> None:
    code = "import sys, agent.mapping; print(__import__('json').dumps(sorted(sys.modules)))"
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout
    )
    roots = {name.split(".")[0] for name in loaded}
    assert not roots & set(HEAVY), roots & set(HEAVY)
    agent_modules = {name for name in loaded if name.startswith("agent.")}
    assert not {m for m in agent_modules if m.startswith(("agent.config", "agent.pipeline"))}
    assert "agent.jenkins.client" not in agent_modules


def test_state_knows_neither_jenkins_nor_sei() -> None:
    imported = imports_of("state")
    assert not {
        m
        for m in imported
        if m.startswith(("agent.jenkins", "agent.sei", "agent.mapping", "httpx"))
    }


def test_the_cli_only_wires() -> None:
    imported = imports_of("cli")
    assert not {m for m in imported if m.split(".")[0] in ("httpx", "httpcore", "tenacity")}
    for path in (AGENT / "cli").rglob("*.py"):
        paths = [
            s
            for s in literals_in(path)
            if re.search(r"/v1/|api/json|blue/rest", s) and " " not in s
        ]
        assert not paths, (path.name, paths)


def test_every_jenkins_path_is_in_the_endpoint_table_and_every_sei_path_in_its_client() -> None:
    jenkins = re.compile(r"api/json|wfapi|blue/rest|pluginManager|stages/|allSteps|whoAmI")
    sei = re.compile(r"^/v1/")
    for path in AGENT.rglob("*.py"):
        where = path.relative_to(AGENT).as_posix()
        for text in literals_in(path):
            if jenkins.search(text) and "/" in text and " " not in text:  # a path, not prose
                assert where == "jenkins/endpoints.py", (where, text)
            if sei.search(text):
                assert where == "sei/client.py", (where, text)
