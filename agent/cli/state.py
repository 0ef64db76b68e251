"""`state`: look into the state file and repair it.

Every subcommand takes the state file's lock (so it refuses to run beside an agent that is
sending) and writes through StateFile, atomically. To have builds sent again, `forget --build`
and `retry-dead` put their numbers in the job's `open` set: the next `sync` then reads the job
down to them even when nothing new started, and sends them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, TextIO

from agent.cli.tables import table
from agent.config import ConfigError, Settings
from agent.logs import redact
from agent.state import JobState, StateFile

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, StateFile], int]


def main(args: argparse.Namespace, controllers: list[Settings]) -> int:
    handlers: dict[str, Handler] = {
        "show": _show,
        "forget": _forget,
        "retry-dead": _retry_dead,
        "reset": _reset,
        "export": _export,
        "import": _import,
    }
    read_only = args.state_command in ("show", "export")  # beside a running service, too
    # A dead letter written before refusals were redacted may hold a key SEI echoed back:
    # what these commands print is redacted like a log line.
    secrets = [secret for c in controllers for secret in c.secrets()]
    with (
        StateFile(controllers[0].agent.state_file, read_only=read_only) as state,
        contextlib.redirect_stdout(_Redacting(sys.stdout, secrets)),
    ):
        return handlers[args.state_command](args, state)


class _Redacting(io.TextIOBase):
    """A text stream that blanks the configured secrets in what is written to it."""

    def __init__(self, stream: TextIO, secrets: list[str]) -> None:
        self._stream = stream
        self._secrets = secrets

    def write(self, text: str) -> int:
        self._stream.write(redact(text, self._secrets))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


# -- show -----------------------------------------------------------------------------------


def _show(args: argparse.Namespace, state: StateFile) -> int:
    sections = _sections(state, args.instance)
    if args.json:
        body = {
            "state_file": str(state.path),
            "controllers": [
                {
                    "instance_guid": guid,
                    "url": url,
                    "jobs": [_job_json(name, job) for name, job in sorted(jobs.items())],
                }
                for guid, url, jobs in sections
            ],
        }
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return 0
    if not sections:
        print(f"nothing recorded in {state.path}")
    for guid, url, jobs in sections:
        print(f"instance {guid} ({url or 'no URL'})")
        rows = [
            [
                name,
                str(job.sent.count()),
                _last_sent(job),
                " ".join(f"#{n}" for n in sorted(job.open)) or "-",
                str(len(job.dead)) if job.dead else "-",
                _taken(job) or "-",
            ]
            for name, job in sorted(jobs.items())
        ]
        headers = ["JOB", "SENT", "LAST SENT", "PENDING", "DEAD LETTERS", "NUMBER TAKEN"]
        print("\n".join(table(headers, rows, indent="  ")))
        letters = [
            (name, n, letter)
            for name, job in sorted(jobs.items())
            for n, letter in sorted(job.dead.items())
        ]
        if letters:
            print("  dead letters (`state retry-dead` sends them again):")
        for name, number, letter in letters:
            status = f"HTTP {letter['status']}" if letter.get("status") else "not mappable"
            print(f"    {name} #{number} ({status}, {letter.get('at')}): {letter.get('message')}")
        if any(job.taken.runs for job in jobs.values()):
            print(
                "  NUMBER TAKEN: builds of a recreated job never sent, since SEI holds their "
                "numbers for the deleted job's builds (rename the job to send them)"
            )
    return 0


def _job_json(name: str, job: JobState) -> dict[str, Any]:
    newest = job.sent.runs[-1] if job.sent.runs else None
    return {
        "job": name,
        "builds_sent": job.sent.count(),
        "last_sent": {"build": newest[1], "start_time": newest[3]} if newest else None,
        "pending": sorted(job.open),
        "dead_letters": [{"build": n, **letter} for n, letter in sorted(job.dead.items())],
        "number_taken": [{"first": r[0], "last": r[1]} for r in job.taken.runs],
    }


def _taken(job: JobState) -> str:
    """The numbers SEI holds for a deleted job's builds, as ranges: `#1-#4 #9`."""
    return " ".join(f"#{a}" if a == b else f"#{a}-#{b}" for a, b, _, _ in job.taken.runs)


def _last_sent(job: JobState) -> str:
    if not job.sent.runs:
        return "-"
    _, number, _, start_ms = job.sent.runs[-1]
    try:
        started = datetime.fromtimestamp(start_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):  # a start time no calendar holds
        started = f"{start_ms} ms"
    return f"#{number} (started {started})"


# -- repairs --------------------------------------------------------------------------------


def _forget(args: argparse.Namespace, state: StateFile) -> int:
    guid, jobs = _section_of(state, args.instance, args.job)
    job = jobs[args.job]
    if not args.build:
        del jobs[args.job]
        state.save()
        print(f"forgot {args.job} ({guid}): the next sync treats it as a new job")
        return 0
    for number in args.build:
        if job.sent.run_of(number) is None and number not in job.dead:
            raise ConfigError(f"{args.job} #{number} is recorded neither as sent nor as refused")
    for number in args.build:
        run = job.sent.run_of(number)
        letter = job.dead.pop(number, None)
        _send_again(job, number, run[2] if run else (letter or {}).get("start_time"))
        job.sent.remove(number)
    state.save()
    numbers = ", ".join(f"#{n}" for n in args.build)
    print(f"forgot {args.job} {numbers} ({guid}): the next sync sends them again")
    return 0


def _retry_dead(args: argparse.Namespace, state: StateFile) -> int:
    count, names = 0, set()
    for _, _, jobs in _sections(state, args.instance):
        for name, job in jobs.items():
            if args.job and not fnmatchcase(name, args.job):
                continue
            for number, letter in sorted(job.dead.items()):
                _send_again(job, number, letter.get("start_time"))
                count += 1
                names.add(name)
            job.dead.clear()
    if count:
        state.save()
    print(f"{count} dead letters in {len(names)} jobs: the next sync sends them again")
    return 0


def _send_again(job: JobState, number: int, start_bound: Any) -> None:
    """Make the next sync read the job down to this build, and its window include it."""
    job.open.add(number)
    if isinstance(start_bound, int):
        job.floor_ms = start_bound if job.floor_ms is None else min(job.floor_ms, start_bound)


def _reset(args: argparse.Namespace, state: StateFile) -> int:
    sections = _sections(state, args.instance)
    if not sections:
        print(f"nothing recorded in {state.path}")
        return 0
    jobs = sum(len(jobs) for _, _, jobs in sections)
    what = f"what was sent for {jobs} jobs of {len(sections)} controllers in {state.path}"
    refused = 0 if args.yes else _ask(f"Forget {what}? The next sync starts afresh.")
    if refused:
        return refused
    for guid, _, _ in sections:
        state.remove(guid)
    state.save()
    print(f"forgot {what}")
    return 0


# -- export and import ----------------------------------------------------------------------


def _export(args: argparse.Namespace, state: StateFile) -> int:
    text = json.dumps(state.to_json(), indent=2, ensure_ascii=False) + "\n"
    if args.file == "-":
        sys.stdout.write(text)
        return 0
    try:
        Path(args.file).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {args.file}: {exc.strerror}") from None
    log.info("exported %s to %s", state.path, args.file)
    return 0


def _import(args: argparse.Namespace, state: StateFile) -> int:
    source = "stdin" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        data = json.loads(text)
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{source} is not JSON: {exc}") from None
    had = sum(len(jobs) for _, _, jobs in _sections(state, None))
    state.replace(data, source)
    question = f"Replace what {state.path} says was sent for {had} jobs with {source}?"
    refused = 0 if args.yes or not had else _ask(question)
    if refused:
        return refused
    state.save()
    jobs = sum(len(jobs) for _, _, jobs in _sections(state, None))
    print(f"imported {jobs} jobs into {state.path}")
    return 0


# -- helpers --------------------------------------------------------------------------------


def _sections(
    state: StateFile, instance: str | None
) -> list[tuple[str, str | None, dict[str, JobState]]]:
    """(GUID, URL, jobs) of every controller section, or only `instance`'s."""
    known = state.controllers()
    if instance is not None and instance not in known:
        raise ConfigError(
            f"no instance {instance} in {state.path} (it has: {', '.join(known) or 'none'})"
        )
    return [
        (guid, url, state.jobs(guid))
        for guid, url in known.items()
        if instance is None or guid == instance
    ]


def _section_of(
    state: StateFile, instance: str | None, job: str
) -> tuple[str, dict[str, JobState]]:
    """The one section that records `job`."""
    found = [(guid, jobs) for guid, _, jobs in _sections(state, instance) if job in jobs]
    if not found:
        raise ConfigError(f"no job '{job}' in {state.path} (`state show` lists the jobs)")
    if len(found) > 1:
        guids = ", ".join(guid for guid, _ in found)
        raise ConfigError(f"'{job}' is recorded for several instances ({guids}); use --instance")
    return found[0]


def _ask(question: str) -> int:
    """0 when the user confirms on the terminal, 1 when not; 2 without a terminal to ask on."""
    if not sys.stdin.isatty():
        log.error("%s Refused: no terminal to ask on; add --yes to do it anyway", question)
        return 2
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() in ("y", "yes"):
        return 0
    print("nothing changed", file=sys.stderr)
    return 1
