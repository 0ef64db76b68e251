"""The one place that wires: one controller's parts (clients, detail reader) and the run built
from them (map context, worker, ledger, state), for `sync`, `backfill`, `run`, `check`, `jobs`
and `register`. Nothing else constructs a client or a run.

The settings end here: what the pipeline needs of them is handed on as plain values.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TextIO

from agent.config import Settings
from agent.jenkins.client import JenkinsClient
from agent.jenkins.details import DetailReader
from agent.jenkins.names import JobNaming
from agent.mapping import MapContext
from agent.pipeline import Observer, Report, Run, RunOptions
from agent.pipeline.backfill import backfill
from agent.pipeline.ledger import Ledger
from agent.pipeline.run import now_ms
from agent.pipeline.sync import sync
from agent.pipeline.worker import Worker
from agent.sei.client import SeiClient
from agent.state import StateFile

# A hook told each SEI request's status and duration (the metrics' latency histogram).
RequestHook = Callable[[str, float], None]


def jenkins_client(
    settings: Settings, *, retries: int | None = None, stop: threading.Event | None = None
) -> JenkinsClient:
    """A Jenkins client; `retries` 0 for a command that reports at once (`check`, `jobs`)."""
    cfg = (
        settings.jenkins
        if retries is None
        else settings.jenkins.model_copy(update={"retries": retries})
    )
    return JenkinsClient(cfg, stop=stop)


def sei_client(
    settings: Settings,
    *,
    retries: int | None = None,
    stop: threading.Event | None = None,
    on_request: RequestHook | None = None,
) -> SeiClient:
    cfg = settings.sei if retries is None else settings.sei.model_copy(update={"retries": retries})
    return SeiClient(cfg, stop=stop, on_request=on_request)


class Controller:
    """One controller's clients and detail reader, open for a command or for the life of `run`
    (so that its stage source is detected, and said, once)."""

    def __init__(
        self,
        settings: Settings,
        *,
        stop: threading.Event | None = None,
        dry_run: bool = False,
        on_sei_request: RequestHook | None = None,
    ) -> None:
        """`dry_run`: no SEI client at all; nothing can be sent."""
        self.settings = settings
        self.stop = stop
        self.jenkins = jenkins_client(settings, stop=stop)
        self.sei = None if dry_run else sei_client(settings, stop=stop, on_request=on_sei_request)
        self.details = DetailReader(
            self.jenkins,
            steps=settings.jenkins.steps,
            upstream_depth=settings.jenkins.upstream_depth,
            stage_source=settings.jenkins.stage_source,
        )

    def close(self) -> None:
        self.jenkins.close()
        if self.sei is not None:
            self.sei.close()

    def __enter__(self) -> Controller:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start_run(
        self,
        state: StateFile,
        *,
        output: TextIO | None = None,
        observers: Sequence[Observer] = (),
        clock: Callable[[], int] = now_ms,
        context: MapContext | None = None,
    ) -> Run:
        """One run of this controller over `state`: a dry run (no SEI client) saves nothing.
        `context`: the map context of an earlier run's discovery, for a run that discovers
        nothing itself (the watch's)."""
        settings = self.settings
        settings.require("sei.instance_guid", "sei.instance_name")
        guid, name = settings.sei.instance_guid or "", settings.sei.instance_name or ""
        agent = settings.agent
        context = context or MapContext(
            instance_guid=guid,
            instance_name=name,
            instance_url=settings.sei.instance_url or settings.jenkins_base,
            naming=JobNaming(agent.job_names),
            cd_jobs=tuple(agent.cd_jobs),
            ci_jobs=tuple(agent.ci_jobs),
            library_repos=tuple(agent.library_repos),
            project_name=agent.project_name,
            rules=tuple(agent.rules),
            max_artifacts=agent.max_artifacts,
        )
        dry_run = self.sei is None
        push = settings.sei.integration_id if settings.sei.push_artifacts else None
        worker = Worker(
            self.details,
            lambda: run.context,  # the context of the run's latest discovery
            self.sei,
            push_to=push,
            halt=threading.Event(),
            stop=self.stop,
        )
        ledger = Ledger(Report(), dry_run=dry_run, output=output, observers=observers)
        options = RunOptions(
            lookback_ms=int(agent.lookback.total_seconds() * 1000),
            page_size=settings.jenkins.page_size,
            folder_depth=settings.jenkins.folder_depth,
            include=tuple(settings.jenkins.include),
            exclude=tuple(settings.jenkins.exclude),
            job_names=agent.job_names,
            senders=settings.sei.concurrency,
            # Twice the Jenkins connections, so that none waits while its reader maps (4, 8
            # and 16 readers measured alike on the WAN bench: the connections are the limit).
            readers=2 * settings.jenkins.concurrency,
            listers=settings.jenkins.concurrency,
            instance_url=settings.sei.instance_url,
            jenkins_base=settings.jenkins_base,
        )
        save = (
            None if dry_run else (lambda: state.snapshot(reuse=True, controller=guid), state.write)
        )
        run = Run(
            self.jenkins,
            worker,
            ledger,
            context,
            state.jobs(guid, settings.jenkins_base),
            options,
            save=save,
            clock=clock,
        )
        return run

    def sync(
        self,
        state: StateFile,
        globs: list[str] | None = None,
        *,
        output: TextIO | None = None,
        observers: Sequence[Observer] = (),
    ) -> Report:
        """`sync` of this controller: every finished build not sent yet."""
        return sync(self.start_run(state, output=output, observers=observers), globs)

    def backfill(
        self,
        state: StateFile,
        since_ms: int,
        until_ms: int,
        globs: list[str] | None = None,
        *,
        output: TextIO | None = None,
        observers: Sequence[Observer] = (),
    ) -> Report:
        """`backfill` of this controller: the builds between two dates not sent yet."""
        run = self.start_run(state, output=output, observers=observers)
        return backfill(run, since_ms, until_ms, globs)
