"""When `run` cycles: every AGENT_INTERVAL seconds or on an AGENT_CRON line, one cycle at a time,
a late one run once rather than in a burst."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from agent.config import AgentSettings, ConfigError


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Schedule:
    """When cycles run: every `interval` seconds, or on a crontab line (local time)."""

    trigger: BaseTrigger
    description: str
    interval: timedelta | None = None

    @classmethod
    def from_settings(cls, agent: AgentSettings) -> Schedule:
        """AGENT_CRON wins over AGENT_INTERVAL; a bad crontab line is a ConfigError naming it."""
        if not agent.cron:
            seconds = agent.interval
            return cls(
                IntervalTrigger(seconds=seconds), f"every {seconds}s", timedelta(seconds=seconds)
            )
        try:
            trigger = CronTrigger.from_crontab(agent.cron)
        except ValueError as exc:
            raise ConfigError(
                f"invalid setting AGENT_CRON: '{agent.cron}' is not a crontab schedule ({exc}); "
                "five fields, e.g. '*/5 * * * *'"
            ) from None
        if trigger.get_next_fire_time(None, utcnow()) is None:
            raise ConfigError(f"invalid setting AGENT_CRON: '{agent.cron}' never fires")
        return cls(trigger, f"on cron '{agent.cron}'")

    def deadline(self, since: datetime) -> datetime:
        """Two scheduled cycles after `since`: a success older than that means trouble."""
        if self.interval is not None:
            return since + 2 * self.interval
        moment = since
        for _ in range(2):
            fire = self.trigger.get_next_fire_time(None, moment + timedelta(seconds=1))
            if fire is None:
                return datetime.max.replace(tzinfo=UTC)
            moment = fire
        return moment


def lane_id(index: int) -> str:
    """The scheduler job of the `index`th lane: `sync`, `sync-1`, ..."""
    return "sync" if index == 0 else f"sync-{index}"


def start_scheduler(
    schedule: Schedule,
    cycle: Callable[[], None] | Sequence[Callable[[], None]],
    first: datetime,
    *,
    watches: Sequence[Callable[[], None]] = (),
    watch_every: int = 0,
) -> BackgroundScheduler:
    """Run each cycle at `first`, then on `schedule`, each in a lane of its own (a thread, the
    job `sync` or `sync-<n>`): one cycle of a lane at a time, a late one only once, and a slow
    lane never holding another's cycles. Each of `watches` runs every `watch_every` seconds
    on a thread of its own (`watch`, `watch-<n>`), a late look skipped, never queued."""
    lanes = [cycle] if callable(cycle) else cycle
    threads = len(lanes) + len(watches)
    scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(threads)})
    for index, look in enumerate(watches):
        scheduler.add_job(
            look,
            IntervalTrigger(seconds=watch_every),
            id=lane_id(index).replace("sync", "watch"),
            name="watch",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=1,  # a look that could not run in time is the next one's
        )
    for index, lane in enumerate(lanes):
        scheduler.add_job(
            lane,
            schedule.trigger,
            id=lane_id(index),
            name="sync cycle",
            next_run_time=first,
            max_instances=1,  # a cycle due while one runs is skipped, never run beside it
            coalesce=True,  # cycles missed while the process could not run become one
            misfire_grace_time=None,  # however late, that one runs
        )
    scheduler.start()
    return scheduler
