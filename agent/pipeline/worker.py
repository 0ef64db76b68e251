"""One build, in two stages: on a reader thread its details are read and mapped, on a sender
thread it is posted; the worker says what became of it.

The worker touches no state and no report: it returns a Result, which the ledger applies on the
caller's thread. Any failure of one build fails that build only. An unexpected error is logged
with its traceback and the build is tried again next run; only a build that cannot make a
payload at all becomes a dead letter, never one that met a bug.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from agent.jenkins.client import JenkinsError, JenkinsNotFound, JenkinsUnavailable
from agent.jenkins.details import DetailReader
from agent.jenkins.types import Job
from agent.logs import build_context
from agent.mapping import MapContext, Unmappable, map_build, parse_manifests
from agent.pipeline.ledger import Olders
from agent.pipeline.report import Outcome, Result
from agent.pipeline.runner import Prepared
from agent.sei.client import Refusal, SeiClient, SeiRefused, SeiUnavailable
from agent.sei.payload import CicdPayload, push_artifacts_body

log = logging.getLogger(__name__)
T = TypeVar("T")


class Worker:
    """Delivers builds; `halt` is set when nothing more can succeed this run (SEI down, or
    credentials refused), and the builds not yet started are then skipped."""

    def __init__(
        self,
        details: DetailReader,
        context: Callable[[], MapContext],
        sei: SeiClient | None,
        *,
        push_to: str | None = None,
        halt: threading.Event,
        stop: threading.Event | None = None,
    ) -> None:
        """`context` gives the mapping context of the current discovery; `sei` None is a dry
        run; `push_to` is the integration id when artifacts also go to push_artifacts."""
        self.details = details
        self.context = context
        self.sei = sei
        self.push_to = push_to
        self.halt = halt
        self.stop = stop

    def halted(self) -> bool:
        return self.halt.is_set() or (self.stop is not None and self.stop.is_set())

    def prepare(
        self,
        job: Job,
        build: dict[str, Any],
        *,
        after: Olders | None = None,
        done: Callable[[], None] | None = None,
    ) -> Prepared[Result]:
        """On a reader thread: details and mapping, then the send to make, or the Result if
        there is nothing to send. Never raises. `after`: the POST starts once these older
        builds were answered; `done` is called once this build was (whatever the outcome)."""
        prepared = self._guarded(job, build, lambda: self._prepare(job, build))
        if isinstance(prepared, Result):
            if done is not None:
                done()
            return Prepared(result=prepared)
        mapped, payload = prepared
        return Prepared(send=lambda: self.send(job, build, mapped, payload, done), gate=after)

    def send(
        self,
        job: Job,
        build: dict[str, Any],
        mapped: CicdPayload,
        payload: dict[str, Any],
        done: Callable[[], None] | None = None,
    ) -> Result:
        """On a sender thread: post the mapped build. Never raises."""
        try:
            return self._guarded(job, build, lambda: self._send(mapped, payload))
        finally:
            if done is not None:
                done()

    def _guarded(self, job: Job, build: dict[str, Any], stage: Callable[[], T]) -> T | Result:
        """A stage of one build, skipped once the run halted; any failure becomes a Result."""
        try:
            if self.halted():
                return Result(Outcome.SKIPPED)  # sent next run
            with build_context(job.full_name, build.get("number")):
                return stage()
        except Exception as exc:
            log.exception(
                "%s #%s: unexpected failure; tried again next run",
                job.full_name,
                build.get("number"),
            )
            return Result(Outcome.FAILED, error=exc)

    def _prepare(
        self, job: Job, build: dict[str, Any]
    ) -> tuple[CicdPayload, dict[str, Any]] | Result:
        number = build["number"]
        try:
            details = self.details.read(job, build)
        except JenkinsNotFound:
            return Result(Outcome.GONE)
        except JenkinsUnavailable as exc:
            self.halt.set()
            return Result(Outcome.FATAL, error=exc)
        except JenkinsError as exc:
            return Result(Outcome.UNREADABLE, error=exc)
        manifests = parse_manifests(details.manifests)
        for problem in manifests[1]:
            log.warning("%s #%d: artifact manifest %s; skipped", job.full_name, number, problem)
        try:
            mapped = map_build(build, job, self.context(), details, manifests=manifests)
            return mapped, mapped.to_json()
        except (Unmappable, ValidationError) as exc:
            return Result(Outcome.UNMAPPABLE, message=f"cannot be mapped: {exc}")

    def _send(self, mapped: CicdPayload, payload: dict[str, Any]) -> Result:
        if self.sei is None:
            return Result(Outcome.SENT, payload)
        try:
            answer = self.sei.send_build(mapped)
            push = push_artifacts_body(payload, self.push_to) if self.push_to else None
            if push and not isinstance(answer, Refusal):
                answer = self.sei.push_artifacts(push)
        except SeiUnavailable as exc:
            self.halt.set()
            return Result(Outcome.UNSENT, error=exc)
        except SeiRefused as exc:
            self.halt.set()
            return Result(Outcome.FATAL, error=exc)
        if isinstance(answer, Refusal):
            return Result(Outcome.REFUSED, status=answer.status, message=answer.message)
        return Result(Outcome.SENT, payload)
