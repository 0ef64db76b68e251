"""Crash safety: SIGKILL the real CLI at random moments of `sync` and `backfill`, then rerun.

The README promises that a crash at any moment can cause a resend of the build in flight, never
a loss, and that the state file is always readable. The only convincing test of that is to kill
the agent many times at points nobody chose by hand, while Jenkins keeps producing builds, and
then count: builds lost (must be 0), builds re-sent (at most what was in flight at each kill),
and whether the state file could be read after every single kill.

Kill points come from a seeded random.Random, so the choices are the same on every run; what
the agent had done by then depends on timing, which is the point. Each agent is a process of
its own running `python -m agent`, forked from one that imported the agent once (see
ForkServer) so that many kills fit in the time; the reruns at the end are plain subprocesses.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import GUID, Cli
from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

from agent.config import SeiSettings
from agent.state import StateFile

SEED = 20_251_122
# SIGKILLs per test: 20 keep the suite fast; CRASH_KILLS=100 for a longer hunt.
KILLS = int(os.environ.get("CRASH_KILLS", "20"))
BuildKey = tuple[str, int, int]  # job full name, number, start time (ms)

# Imports the agent once, then per line of stdin forks a child that is `python -m agent LINE`
# (stdout and stderr to a log file) and reports "pid N", then "exit N CODE", on its own pipe.
_FORK_SERVER = """
import os, runpy, sys
import agent.cli.commands  # the commands and all they import, not only the parser
report = os.fdopen(os.dup(1), "w")
logs = sys.argv[1]
count = 0
while line := sys.stdin.readline():
    count += 1
    pid = os.fork()
    if pid == 0:
        log = os.open(os.path.join(logs, f"agent-{count}.log"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.argv = ["agent", *line.split()]
        code = 1
        try:
            runpy.run_module("agent", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print("pid", pid, file=report, flush=True)
    _, status = os.waitpid(pid, 0)
    print("exit", pid, os.waitstatus_to_exitcode(status), file=report, flush=True)
"""


def sei_concurrency(env: dict[str, str]) -> int:
    """SEI requests one agent can have in flight: `sei.concurrency`, 1 if it has none."""
    setting = SeiSettings.model_fields.get("concurrency")
    default = setting.default if setting is not None else 1
    return int(env.get("SEI_CONCURRENCY", default))


def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    """Poll `check` every half millisecond until true or `timeout` s have passed."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


def settle(sei: SeiStandIn, jenkins: JenkinsSim) -> None:
    """Let requests a killed agent left in the sockets reach the servers before counting."""
    deadline = time.monotonic() + 3
    seen, quiet_since = (-1, -1), time.monotonic()
    while time.monotonic() < deadline:
        now = (len(sei.requests), len(jenkins.requests))
        answering = any(r["status"] is None for r in sei.requests[-4:])
        if now != seen or answering:
            seen, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since > 0.03:
            return
        time.sleep(0.002)


class ForkServer:
    """Runs `python -m agent ARGS` as fresh processes forked from one that imported the agent.

    Each run is a real process with nothing shared with the test (SIGKILL kills it alone);
    forking skips the interpreter start and imports (~0.7 s), so many more kills fit the time.
    """

    def __init__(self, cli: Cli, logs: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _FORK_SERVER, str(logs)],
            env=cli.env,
            cwd=cli.cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._pids: queue.Queue[int] = queue.Queue()
        self._exits: dict[int, int] = {}
        self._started: list[int] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            word, pid, *code = line.split()
            if word == "pid":
                self._pids.put(int(pid))
            else:
                self._exits[int(pid)] = int(code[0])

    def start(self, *args: str) -> int:
        """Start one run; returns its process id."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(args) + "\n")
        self.proc.stdin.flush()
        pid = self._pids.get(timeout=15)
        self._started.append(pid)
        return pid

    def exit_code(self, pid: int) -> int | None:
        """None while the run is alive."""
        return self._exits.get(pid)

    def wait(self, pid: int, timeout: float = 30) -> int:
        assert wait_for(lambda: pid in self._exits, timeout), f"run {pid} did not exit"
        return self._exits[pid]

    def kill(self, pid: int) -> bool:
        """SIGKILL the run; False when it had exited on its own an instant before."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return self.wait(pid) == -signal.SIGKILL

    def close(self) -> None:
        """Stop the server; a run still going (a failed test) is killed first."""
        for pid in self._started:
            if pid not in self._exits:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Tally:
    """What the iterations did, printed at the end and asserted on."""

    iterations: int = 0
    kills: int = 0
    triggers: Counter[str] = field(default_factory=Counter)
    in_state_write: int = 0
    finished_first: Counter[int] = field(default_factory=Counter)  # exit code -> runs
    unrecorded_at_kill: Counter[BuildKey] = field(default_factory=Counter)  # SEI had it, state not

    def line(self, command: str, lost: int, resent: int, delivered: int, bound: int) -> str:
        return (
            f"crash[{command}]: {self.iterations} iterations, {self.kills} SIGKILLs injected "
            f"(triggers {dict(self.triggers)}), {self.in_state_write} inside the state write, "
            f"{sum(self.finished_first.values())} runs ended before their kill point "
            f"{dict(self.finished_first)}; {delivered} builds delivered, {lost} lost, "
            f"{resent} re-sent (bound {bound}), "
            f"{self.unrecorded_at_kill.total()} unrecorded at a kill"
        )


class Controller:
    """The simulator's builds as the test made them, so nothing has to be read back."""

    def __init__(self, jenkins: JenkinsSim, rng: random.Random) -> None:
        self.jenkins = jenkins
        self.rng = rng
        self.jobs: list[str] = []
        self.kinds: dict[str, str] = {}
        self.finished: set[BuildKey] = set()
        self.running: list[tuple[str, int, int]] = []

    def add_job(self, name: str, kind: str = "freestyle") -> None:
        self.jenkins.add_job(name, kind)
        self.jobs.append(name)
        self.kinds[name] = kind

    def add_build(self, name: str, *, building: bool = False, timestamp: int | None = None) -> None:
        pipeline = self.kinds[name] == "pipeline"
        stages = [{"id": "3", "name": "build", "duration": 7, "steps": [{"id": "4"}]}]
        build = self.jenkins.add_build(
            name,
            building=building,
            timestamp=timestamp,
            stages=stages if pipeline and not building else None,
        )
        key = (name, build["number"], build["timestamp"])
        if building:
            self.running.append(key)
        else:
            self.finished.add(key)

    def activity(self) -> None:
        """Between two agent runs Jenkins goes on: new builds, and running ones finish."""
        for _ in range(self.rng.randint(0, 3)):
            self.add_build(self.rng.choice(self.jobs))
        if self.running and self.rng.random() < 0.2:
            name, number, started = self.running.pop(0)
            self.jenkins.finish_build(name, number)
            self.finished.add((name, number, started))


def read_state(path: Path) -> Callable[[BuildKey], bool]:
    """Whether the state file records a build; asserts it is JSON that StateFile can open.

    A missing file (killed before the first save) records nothing. Opening it also takes the
    lock, which proves the killed agent did not leave it held.
    """
    if not path.exists():
        return lambda key: False
    json.loads(path.read_text(encoding="utf-8"))  # raises on a torn or empty write
    with StateFile(path) as state:
        jobs = state.jobs(GUID)

    def sent(key: BuildKey) -> bool:
        job = jobs.get(key[0])
        return job is not None and job.sent.contains(key[1], key[2])

    return sent


def jenkins_name(job_full_name: str) -> str:
    """The Jenkins name the state file keys on, from the plugin-style name SEI is sent (these
    tests' jobs are all in plain folders)."""
    return job_full_name.replace("/jobs/", "/")


def key_of(payload: dict[str, Any]) -> BuildKey:
    return jenkins_name(payload["job_full_name"]), payload["build_number"], payload["start_time"]


TRIGGERS = ("sei", "jenkins", "clock", "write")
TRIGGER_WEIGHTS = (5, 2, 2, 2)


def reach_kill_point(
    exited: Callable[[], int | None],
    trigger: str,
    fraction: float,
    pending: int,
    sei: SeiStandIn,
    jenkins: JenkinsSim,
    tmp_file: Path,
) -> float:
    """Wait for the drawn kill point (or the agent's exit); returns seconds still to wait.

    sei: the agent's 1st to 6th POST reached SEI; jenkins: its 1st to 12th request reached
    Jenkins; clock: up to 0.3 s after its first request; write: its temporary state file exists.
    """
    sei_base, jenkins_base = len(sei.requests), len(jenkins.requests)
    check: Callable[[], bool]
    if trigger == "sei":
        target = sei_base + 1 + int(fraction * min(6, max(pending, 1)))
        check = lambda: len(sei.requests) >= target  # noqa: E731
    elif trigger == "jenkins":
        target = jenkins_base + 1 + int(fraction * 12)
        check = lambda: len(jenkins.requests) >= target  # noqa: E731
    elif trigger == "clock":
        check = lambda: len(jenkins.requests) > jenkins_base  # noqa: E731
    else:
        check = tmp_file.exists
    assert wait_for(lambda: check() or exited() is not None, 20), f"no {trigger} kill point"
    return fraction * 0.3 if trigger == "clock" else 0.0


def crash_loop(
    command: list[str],
    cli: Cli,
    controller: Controller,
    sei: SeiStandIn,
    rng: random.Random,
    iterations: int,
    tmp_path: Path,
) -> Tally:
    """Start the command, SIGKILL it at a random point, check the state file; repeat."""
    tally = Tally()
    logs = tmp_path / "logs"
    logs.mkdir()
    server = ForkServer(cli, logs)
    try:
        for i in range(iterations):
            kill_once(i, command, cli, controller, sei, rng, server, tally)
    finally:
        server.close()
    return tally


def kill_once(
    i: int,
    command: list[str],
    cli: Cli,
    controller: Controller,
    sei: SeiStandIn,
    rng: random.Random,
    server: ForkServer,
    tally: Tally,
) -> None:
    """One iteration: Jenkins moves on, a run starts and is killed at the drawn point."""
    jenkins = controller.jenkins
    state_path = Path(cli.env["AGENT_STATE_FILE"])
    controller.activity()
    trigger = rng.choices(TRIGGERS, weights=TRIGGER_WEIGHTS)[0]
    fraction, jitter = rng.random(), rng.uniform(0.0, 0.003)
    settle(sei, jenkins)
    accepted_base = len(sei.accepted)
    sent_before = read_state(state_path)
    pending = sum(1 for k in controller.finished if not sent_before(k))
    pid = server.start(*command)
    exited = functools.partial(server.exit_code, pid)
    tmp_file = state_path.with_name(f".{state_path.name}.{pid}.tmp")
    delay = reach_kill_point(exited, trigger, fraction, pending, sei, jenkins, tmp_file)
    if trigger != "write":
        delay += jitter
    if delay:
        wait_for(lambda: exited() is not None, delay)
    tally.iterations += 1
    if exited() is not None or not server.kill(pid):
        tally.finished_first[server.wait(pid)] += 1
        return
    tally.kills += 1
    tally.triggers[trigger] += 1
    tally.in_state_write += tmp_file.exists()
    settle(sei, jenkins)
    posted = [key_of(p) for p in sei.accepted[accepted_base:]]
    assert not [k for k in posted if sent_before(k)], f"kill {i}: a recorded build was re-sent"
    sent = read_state(state_path)  # after every kill: valid JSON that StateFile opens
    unrecorded = {k for k in posted if not sent(k)}
    # POSTs in flight, and as many answered but not yet on disk (agent/pipeline/runner.py)
    assert len(unrecorded) <= 2 * sei_concurrency(cli.env), (i, trigger, unrecorded)
    tally.unrecorded_at_kill.update(unrecorded)


def finish_and_count(
    command: list[str], cli: Cli, sei: SeiStandIn, controller: Controller, tally: Tally
) -> str:
    """Rerun without killing until exit 0, then count lost and re-sent builds."""
    for running in controller.running:
        controller.jenkins.finish_build(running[0], running[1])
        controller.finished.add(running)
    controller.running.clear()
    for _ in range(3):
        result = cli(*command)
        if result.code == 0:
            break
    assert result.code == 0, result.stderr
    state_path = Path(cli.env["AGENT_STATE_FILE"])
    sent = read_state(state_path)
    delivered = {(jenkins_name(job), number) for _, job, number in sei.runs}
    lost = {(job, number) for job, number, _ in controller.finished} - delivered
    posts = Counter(key_of(p) for p in sei.accepted)
    resent = sum(count - 1 for count in posts.values())
    bound = tally.kills * 2 * sei_concurrency(cli.env)  # in flight, and accepted unsaved
    summary = tally.line(command[0], len(lost), resent, len(delivered), bound)
    print(summary)
    assert not lost, f"builds lost: {sorted(lost)}"
    assert set(posts) == controller.finished  # nothing delivered that Jenkins did not finish
    assert resent <= bound, summary
    # every resend is of a build SEI had taken but the state had not recorded when killed
    unexplained = {k: c - 1 for k, c in posts.items() if c - 1 > tally.unrecorded_at_kill[k]}
    assert not unexplained, (unexplained, summary)
    assert sei.dropped == []
    for key in controller.finished:
        assert sent(key), key
        ids = {p["execution_id"] for p in sei.accepted if key_of(p) == key}
        assert len(ids) == 1, (key, ids)  # a resend is the same execution
    leftovers = [p.name for p in state_path.parent.iterdir() if p.suffix == ".tmp"]
    assert len(leftovers) <= tally.in_state_write  # only a kill inside a write leaves one
    assert tally.kills >= tally.iterations // 2, summary
    assert set(tally.finished_first) <= {0}, summary
    return summary


@pytest.fixture
def slow_jenkins(jenkins: JenkinsSim) -> JenkinsSim:
    """A few milliseconds per request, so that a run lasts long enough to be cut anywhere."""
    jenkins.latency = 0.002
    return jenkins


@pytest.mark.slow
def test_sigkill_during_sync_loses_nothing(
    cli: Cli, slow_jenkins: JenkinsSim, sei: SeiStandIn, tmp_path: Path
) -> None:
    """48 jobs (a quarter pipelines with stages), 3 builds each, 2 running, more arriving."""
    rng = random.Random(SEED)
    controller = Controller(slow_jenkins, rng)
    for folder in range(6):
        for job in range(8):
            controller.add_job(
                f"team{folder}/svc{job}", "pipeline" if job % 4 == 0 else "freestyle"
            )
    for name in controller.jobs:
        for _ in range(3):
            controller.add_build(name)
    controller.add_build(controller.jobs[1], building=True)
    controller.add_build(controller.jobs[9], building=True)
    tally = crash_loop(["sync"], cli, controller, sei, rng, KILLS, tmp_path)
    finish_and_count(["sync"], cli, sei, controller, tally)


@pytest.mark.slow
def test_sigkill_during_backfill_loses_nothing(
    cli: Cli, slow_jenkins: JenkinsSim, sei: SeiStandIn, tmp_path: Path
) -> None:
    """400-day-old history: one job of 110 builds (paged into allBuilds) and 16 small ones."""
    rng = random.Random(SEED + 1)
    controller = Controller(slow_jenkins, rng)
    start = int(time.time() * 1000) - 400 * 86_400_000
    for job in range(16):
        controller.add_job(f"history/job{job}", "pipeline" if job % 4 == 0 else "freestyle")
    controller.add_job("history/busy")
    for i in range(110):  # more than the 100 of `builds`: backfill pages into `allBuilds`
        controller.add_build("history/busy", timestamp=start + i * 3_600_000)
    for j, name in enumerate(controller.jobs[:-1]):
        for b in range(3):
            controller.add_build(name, timestamp=start + 200 * 3_600_000 + (j * 3 + b) * 60_000)
    controller.add_build(controller.jobs[2], building=True)
    cli.env["SEI_CONCURRENCY"] = "1"  # one POST in flight: at most two resends per kill
    command = ["backfill", "--since", "2000-01-01"]
    tally = crash_loop(command, cli, controller, sei, rng, KILLS, tmp_path)
    finish_and_count(command, cli, sei, controller, tally)
