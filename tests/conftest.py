"""Shared fixtures: a Jenkins simulator, an SEI stand-in, and the real CLI as a subprocess."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen  # by name: the method Cli.subprocess hides the module there
from typing import Any

import pytest
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

from agent.app import Controller
from agent.cli import main
from agent.config import Settings, load_settings
from agent.pipeline import Report
from agent.sei.payload import CicdPayload
from agent.state import StateFile

GUID = "0b5c7a5e-2f5d-4a7e-9a41-6f4b0f3c1d2e"
JENKINS_USER, JENKINS_TOKEN = "admin", "jenkins-token-9f8e7d"
SEI_KEY = "sei-key-1a2b3c4d5e"
ROOT = Path(__file__).resolve().parent.parent


def bare_payload(**fields: Any) -> CicdPayload:
    """A payload of only these fields, not validated: what the tests that send one check is how
    the client fares (SEI refusing it, a server failing), not a build."""
    return CicdPayload.model_construct(**fields)


def now_ms() -> int:
    return int(time.time() * 1000)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="rewrite tests/golden/*.json from the current mapping (review the diff!)",
    )


def accept_each(listener: socket.socket, serve: Callable[[socket.socket], None]) -> None:
    """Serve each connection `listener` accepts on a thread of its own, until it is closed."""

    def accepting() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accepting, daemon=True).start()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures of the fuzz and fault suite (tests/test_fuzz.py), test by test and added
    up; each of its tests records them in its report (with xdist too)."""
    rows = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "teardown"
        for name, value in getattr(report, "user_properties", ())
        if name == "fuzz"
    ]
    if not rows:
        return
    counted = {
        "runs": "runs",
        "hangs": "hangs",
        "tracebacks": "tracebacks",
        "lost": "builds lost",
        "secrets": "secrets found",
    }

    def figures(rows: list[dict[str, Any]]) -> str:
        seconds = sum(row["seconds"] for row in rows)
        said = ", ".join(f"{word} {sum(row[key] for row in rows)}" for key, word in counted.items())
        return f"{said} ({seconds:.1f} s)"

    terminalreporter.write_sep("-", "fuzz and fault figures (tests/test_fuzz.py)")
    for row in sorted(rows, key=lambda r: r["test"]):
        terminalreporter.write_line(f"{row['test']}: {figures([row])}")
    for unit in sorted({row["unit"] for row in rows}):
        total = figures([row for row in rows if row["unit"] == unit])
        terminalreporter.write_line(f"total, {unit}: {total}")


def sent(sei: SeiStandIn) -> list[tuple[str, int]]:
    """Every build SEI accepted, once per acceptance (a resend shows twice), sorted."""
    return sorted((p["job_full_name"], p["build_number"]) for p in sei.accepted)


@pytest.fixture(autouse=True)
def _no_agent_settings_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the settings they set themselves."""
    for name in list(os.environ):
        if name.startswith(("JENKINS_", "SEI_", "AGENT_")):
            monkeypatch.delenv(name)


@pytest.fixture
def jenkins() -> Iterator[JenkinsSim]:
    sim = JenkinsSim(user=JENKINS_USER, token=JENKINS_TOKEN, clock_ms=now_ms() - 3_600_000)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def sei() -> Iterator[SeiStandIn]:
    server = SeiStandIn(api_key=SEI_KEY, known_guids={GUID})
    server.start()
    yield server
    server.stop()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


@dataclass
class Cli:
    """Runs the real CLI with a complete, valid environment that a test can edit.

    In this process (`agent.cli.main(argv)` with this environment, folder and streams), which
    costs no interpreter start; `run`, which serves until signalled, in a subprocess.
    """

    env: dict[str, str]
    cwd: Path

    def __call__(self, *args: str, timeout: float = 60) -> Result:
        if "run" in args:
            return self.subprocess(*args, timeout=timeout)
        return self.in_process(*args)

    def in_process(self, *args: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        environ, cwd, stdin = dict(os.environ), os.getcwd(), sys.stdin
        hooks = sys.excepthook, threading.excepthook
        os.environ.clear()
        os.environ.update(self.env)
        os.chdir(self.cwd)
        sys.stdin = io.StringIO("")  # not a terminal, as the subprocess's /dev/null
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(list(args))
                except SystemExit as exc:  # argparse: usage errors, --help, --version
                    code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
                except Exception:  # what the interpreter would print before exit 1
                    traceback.print_exc()
                    code = 1
        finally:
            sys.stdin = stdin
            sys.excepthook, threading.excepthook = hooks
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(environ)
            root.handlers[:] = handlers
            root.setLevel(level)
        return Result(code, out.getvalue(), err.getvalue())

    def subprocess(self, *args: str, timeout: float = 60) -> Result:
        """`python -m agent` as a process of its own (signals, locks held by another process)."""
        done = subprocess.run(
            [sys.executable, "-m", "agent", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str) -> Popen[str]:
        """`python -m agent` started and left running, its stderr piped: for a test that
        signals or freezes it mid-run."""
        return Popen(
            [sys.executable, "-m", "agent", *args],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(Path(self.env["AGENT_STATE_FILE"]).read_text())
        return state


def base_env(tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return {
        **keep,
        "PYTHONPATH": str(ROOT),
        "SEI_API_KEY": SEI_KEY,
        "SEI_INSTANCE_GUID": GUID,
        "SEI_INSTANCE_NAME": "ci-main",
        "AGENT_STATE_FILE": str(tmp_path / "state" / "agent-state.json"),
        "JENKINS_USER": JENKINS_USER,
        "JENKINS_API_TOKEN": JENKINS_TOKEN,
        "JENKINS_RETRY_WAIT": "0",
        "JENKINS_RETRIES": "2",
        "SEI_RETRY_WAIT": "0",
        "SEI_RETRY_MAX_WAIT": "0",
        "SEI_RETRIES": "2",
        "SEI_TIMEOUT": "5",
    }


@pytest.fixture
def cli(tmp_path: Path, jenkins: JenkinsSim, sei: SeiStandIn) -> Cli:
    env = base_env(tmp_path)
    env["JENKINS_URL"] = jenkins.url
    env["SEI_BASE_URL"] = sei.url
    return Cli(env=env, cwd=tmp_path)


@pytest.fixture
def settings(tmp_path: Path, jenkins: JenkinsSim, sei: SeiStandIn) -> Settings:
    return load_settings(
        overrides={
            "jenkins": {
                "url": jenkins.url,
                "user": JENKINS_USER,
                "api_token": JENKINS_TOKEN,
                "retry_wait": 0,
                "retries": 2,
            },
            "sei": {
                "base_url": sei.url,
                "api_key": SEI_KEY,
                "instance_guid": GUID,
                "instance_name": "ci",
                "retry_wait": 0,
                "retries": 1,
            },
            "agent": {"state_file": tmp_path / "state.json"},
        }
    )


class CheckedStateFile(StateFile):
    """A state file that proves every snapshot reusing unchanged jobs' text is the whole truth.

    A mutation the collector forgets to mark `changed()` would leave an old job text in a
    save made during a run; every in-process test run fails on it here.
    """

    def snapshot(self, *, reuse: bool = False, controller: str | None = None) -> str:
        text = super().snapshot(reuse=reuse, controller=controller)
        fresh = json.dumps(self.to_json(), separators=(",", ":")) + "\n"
        assert text == fresh, "a job's state changed without being marked changed()"
        return text


class Agent:
    """One agent process's worth of objects, re-created per run like the CLI does."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jenkins_requests = 0
        self.by_kind: dict[str, int] = {}

    def run(self, command: str = "sync", **kwargs: object) -> Report:
        controller = Controller(self.settings)
        try:
            with CheckedStateFile(self.settings.agent.state_file) as state:
                if command == "sync":
                    report = controller.sync(state, kwargs.get("globs"))  # type: ignore[arg-type]
                else:
                    report = controller.backfill(state, 0, 2**62)
        finally:
            self.jenkins_requests = sum(controller.jenkins.requests.values())
            self.by_kind = dict(controller.jenkins.requests)
            controller.close()
        return report


@pytest.fixture
def agent(settings: Settings) -> Iterator[Agent]:
    yield Agent(settings)
