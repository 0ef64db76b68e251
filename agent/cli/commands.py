"""One parsed command: load settings, run it, turn failures into exit codes.

Exit codes: 0 success; 1 some builds not delivered (they stay unsent); 2 configuration or
usage error; 3 Jenkins or SEI unreachable or refusing the credentials. Messages go to stderr,
results to stdout, and a user's mistake never produces a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.handlers
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from agent.app import Controller
from agent.cli import check, jobs, register
from agent.cli import state as state_commands
from agent.cli.controllers import for_each
from agent.config import ConfigError, Settings, load_controllers
from agent.jenkins.client import JenkinsError, JenkinsUnavailable
from agent.jenkins.discover import NotTheRoot
from agent.logs import setup_logging
from agent.pipeline import Report
from agent.sei.client import SeiRefused
from agent.service.metrics import MetricsFile, label_of
from agent.state import StateError, StateFile
from agent.stopping import Stop, stop_on_signals

log = logging.getLogger("agent")


class UsageError(Exception):
    """A bad argument value: exit 2 with the message."""


def parse_date(text: str, *, end_of_day: bool = False) -> int:
    """`YYYY-MM-DD` (UTC; with end_of_day, the whole day) or ISO 8601 -> epoch milliseconds."""
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            moment = day + timedelta(days=1) - timedelta(milliseconds=1) if end_of_day else day
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise UsageError(f"'{text}' is not a date (YYYY-MM-DD or ISO 8601)") from None
    return int(moment.timestamp() * 1000)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    agent: dict[str, Any] = {}
    for flag in ("state_file", "log_level", "log_format", "lookback"):
        if flag in args:
            agent[flag] = getattr(args, flag)
    return {"agent": agent} if agent else {}


@contextlib.contextmanager
def _output(target: str | None) -> Iterator[TextIO | None]:
    if target is None:
        yield None
    elif target == "-":
        yield sys.stdout
    else:
        try:
            handle = open(target, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"cannot write --output {target}: {exc.strerror}") from None
        with handle:
            yield handle


def _deliver(args: argparse.Namespace, controllers: list[Settings], stop: Stop) -> Report:
    needed = ["jenkins.url", "sei.instance_guid", "sei.instance_name"]
    if not args.dry_run:
        needed += ["sei.base_url", "sei.api_key"]
    for settings in controllers:
        settings.require(*needed)
    until_ms = since_ms = 0
    if args.command == "backfill":
        since_ms = parse_date(args.since)
        until_ms = parse_date(args.until, end_of_day=True) if args.until else 2**62
        if until_ms < since_ms:
            raise UsageError("--until is before --since")
    state_file = StateFile(controllers[0].agent.state_file, read_only=args.dry_run)
    path = controllers[0].agent.metrics_file
    metrics = MetricsFile(path, [label_of(s) for s in controllers]) if path else None
    with state_file as state, _output(args.output) as out:

        def collect(settings: Settings) -> Report:
            label, started, report = label_of(settings), time.monotonic(), None
            observers = [metrics.observer(label)] if metrics else []
            with Controller(settings, stop=stop, dry_run=args.dry_run) as controller:
                try:
                    if args.command == "sync":
                        report = controller.sync(state, args.jobs, output=out, observers=observers)
                    else:
                        report = controller.backfill(
                            state, since_ms, until_ms, args.jobs, output=out, observers=observers
                        )
                    return report
                finally:
                    if metrics:
                        seconds = time.monotonic() - started
                        requests = controller.jenkins.requests
                        stopped = stop.exit_code is not None
                        metrics.ended(label, report, seconds, requests, stopped=stopped)

        try:
            return for_each(controllers, collect)
        finally:
            if metrics:
                _write_metrics(metrics)


def _write_metrics(metrics: MetricsFile) -> None:
    try:
        metrics.write()
    except OSError as exc:
        raise UsageError(
            f"cannot write AGENT_METRICS_FILE {metrics.path}: {exc.strerror or exc}"
        ) from None


# The Jenkins settings a command reads, where not all: a misspelling of one of them is an error.
JENKINS_READ = {"register": {"JENKINS_URL"}, "state": set()}


def _load(args: argparse.Namespace) -> list[Settings]:
    """The settings, and logging set up by them; what loading warned of is held until then, so
    that it comes out in the format the settings ask for (JSON too)."""
    root = logging.getLogger()
    held = logging.handlers.BufferingHandler(capacity=1000)
    root.addHandler(held)
    read = JENKINS_READ.get(args.command)
    try:
        controllers = load_controllers(
            getattr(args, "config", None),
            _overrides(args),
            reads=None if read is None else read.__contains__,
        )
    except ConfigError:  # no settings to format them by: as they are
        root.removeHandler(held)
        for record in held.buffer:
            root.handle(record)
        raise
    root.removeHandler(held)
    agent = controllers[0].agent
    setup_logging(agent.log_level, agent.log_format, [s for c in controllers for s in c.secrets()])
    for record in held.buffer:
        if logging.getLogger(record.name).isEnabledFor(record.levelno):
            root.handle(record)
    return controllers


def run(args: argparse.Namespace) -> int:
    """One parsed command, its exit code."""
    try:
        controllers = _load(args)
    except ConfigError as exc:
        if args.command == "check":
            return check.invalid_settings(exc)
        print(f"jenkins-sei-agent: {exc}", file=sys.stderr)
        return 2
    operator: dict[str, Callable[[argparse.Namespace, list[Settings]], int]] = {
        "check": check.main,
        "jobs": jobs.main,
        "register": register.main,
        "state": state_commands.main,
    }
    stop = Stop()
    try:
        if args.command in operator:
            return operator[args.command](args, controllers)
        if args.command == "run":
            from agent.service.loop import run as run_service  # the scheduler: only `run` needs it

            return run_service(controllers)
        with stop_on_signals() as stop:
            report = _deliver(args, controllers, stop)
    except (ConfigError, UsageError, StateError, NotTheRoot) as exc:
        log.error("%s", exc)
        return 2
    except (JenkinsUnavailable, SeiRefused, JenkinsError) as exc:
        if stop.exit_code is not None:  # the stop ended the retries, not the retries' limit
            log.warning("%s stopped by %s while retrying: %s", args.command, stop.signal, exc)
            return stop.exit_code
        if isinstance(exc, JenkinsUnavailable | SeiRefused):
            log.error("%s", exc)
        else:  # the job list itself could not be read
            log.error("Jenkins could not be read: %s; check JENKINS_URL", exc)
        return 3
    except KeyboardInterrupt:
        log.error("interrupted; what was delivered is recorded")
        return 130
    if stop.exit_code is not None:
        again = "the same backfill" if args.command == "backfill" else "the next sync"
        log.warning(
            "%s stopped by %s: %s; what was sent is recorded, %s sends the rest",
            args.command,
            stop.signal,
            report.summary(),
            again,
        )
        return stop.exit_code
    verb = "would send" if args.dry_run else "done"
    log.info("%s %s: %s", args.command, verb, report.summary())
    if report.sei_down is not None:
        log.error("SEI unavailable: %s", report.sei_down)
    return report.exit_code
