"""The design's nevers that an import graph cannot see, held by a test; the floors themselves
(layers, config on the ground floor, mapping pure, state alone) are import-linter's contracts in
pyproject.toml, run by .ci/run and by the test below.

- no module imports another by name at run time (importlib, __import__), which the import
  graph would not see;
- no two modules import each other, directly or through others (type-checking imports too);
- the CLI knows no path of either side;
- every Jenkins request path is in the endpoint table, every SEI path in the SEI client.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import grimp
from conftest import ROOT

AGENT = ROOT / "agent"


def literals_in(path: Path) -> list[str]:
    return [
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_import_linter_keeps_every_contract() -> None:
    lint = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"]
    result = subprocess.run(lint, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_no_module_is_imported_by_name_at_run_time() -> None:
    for path in AGENT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "__import__" not in names and "importlib" not in modules, path


def test_no_import_circle_between_modules() -> None:
    graph = grimp.build_graph("agent")  # imports for type checking are arrows too
    circles = sorted(
        (importer, imported)
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if importer < imported and graph.chain_exists(imported, importer)
    )
    assert circles == []


def test_nothing_but_the_wiring_module_builds_clients_or_runs() -> None:
    # a call, not a class statement (the clients subclass agent/http/side.py's SideClient)
    built = re.compile(r"(?<!class )\b(JenkinsClient|SeiClient|DetailReader|Worker|Ledger|Run)\(")
    for path in AGENT.rglob("*.py"):
        if path.name != "app.py":
            assert not built.search(path.read_text()), path


def test_the_cli_knows_no_path_of_either_side() -> None:
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
