"""`jenkins-sei-agent run` as a subprocess, for the run-mode and container tests.

Its JSON log lines are collected as they come (the bound HTTP port is read from them), and
every wait is a bounded poll, never a fixed sleep.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")


def wait_until(check: Callable[[], T | Literal[False] | None], timeout: float, what: str) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` s.

    Checks are often `cond and value`, so False and None (never returned) leave the type."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class AgentProcess:
    """A running `run` command; a context manager that kills it if a test left it running."""

    def __init__(self, env: dict[str, str], cwd: Path, command: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(
            command or [sys.executable, "-m", "agent", "run"],
            env={"AGENT_INTERVAL": "1", "AGENT_HTTP_PORT": "0", "AGENT_LOG_FORMAT": "json", **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def events(self) -> list[dict[str, Any]]:
        events = []
        for line in list(self.lines):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    @property
    def port(self) -> int:
        def bound() -> int | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"the agent exited ({self.proc.returncode}):\n{self.stderr}")
            return next((e["port"] for e in self.events if "port" in e), None)

        return wait_until(bound, 15, "the agent's HTTP port in its log")

    def get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.port}{path}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def health(self) -> tuple[int, dict[str, Any]]:
        status, body = self.get("/healthz")
        return status, json.loads(body)

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        assert code == 200
        return json.loads(body)  # type: ignore[no-any-return]

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics keyed by (name, sorted labels)."""
        status, body = self.get("/metrics")
        assert status == 200
        samples = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 10) -> float:
        """Send `sig`, wait for the exit; returns how long the agent took to exit."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return time.monotonic() - started

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def sample(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """One sample's value, 0 when the series does not exist yet."""
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)
