"""How `run` is doing, as /healthz and /status say it: the cycles kept, and the health verdict."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.pipeline import Report
from agent.service.schedule import Schedule
from agent.state import JobState

KEPT_CYCLES = 10
MIN_GRACE = timedelta(seconds=60)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


@dataclass(frozen=True)
class Cycle:
    """One finished cycle, as /status and /healthz show it."""

    started: datetime
    ended: datetime
    outcome: str  # ok, failed, interrupted
    report: Report
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        r = self.report
        return {
            "started": iso(self.started),
            "ended": iso(self.ended),
            "duration_s": round((self.ended - self.started).total_seconds(), 3),
            "outcome": self.outcome,
            "jobs": r.jobs,
            "sent": r.sent,
            "dead_lettered": r.dead,
            "unsent": r.unsent,
            "running": r.running,
            "number_taken": r.taken,
            "jobs_unreadable": r.failed_jobs,
            "error": self.error,
        }


def evaluate_health(
    *,
    now: datetime,
    started: datetime,
    schedule: Schedule,
    last: Cycle | None,
    last_success: datetime | None,
    running_since: datetime | None,
    last_accepted: datetime | None,
    stopping: bool = False,
) -> tuple[bool, dict[str, Any]]:
    """Healthy while the last cycle succeeded within two intervals, or in the start-up grace.

    A long cycle (a big first sync) that keeps delivering builds is healthy too, so a probe
    never kills an agent that is working through a backlog.
    """
    body: dict[str, Any] = {
        "last_success": iso(last_success),
        "last_cycle": last.to_json() if last else None,
    }

    def answer(healthy: bool, status: str, reason: str) -> tuple[bool, dict[str, Any]]:
        return healthy, {"status": status, "reason": reason, **body}

    if stopping:
        return answer(False, "stopping", "the agent is shutting down")
    if (
        running_since is not None
        and last_accepted is not None
        and last_accepted >= running_since
        and now <= schedule.deadline(last_accepted)
    ):
        return answer(True, "ok", "a cycle is delivering builds")
    if last is None:
        grace_end = max(schedule.deadline(started), started + MIN_GRACE)
        if now <= grace_end:
            return answer(True, "starting", "the first cycle has not finished yet")
        return answer(False, "stale", f"the first cycle has not finished by {iso(grace_end)}")
    if last.outcome == "failed":
        return answer(False, "failing", f"the last cycle failed: {last.error}")
    if last_success is not None and now <= schedule.deadline(last_success):
        return answer(True, "ok", "the last cycle succeeded")
    since = iso(last_success) or "start-up"
    return answer(False, "stale", f"no cycle has succeeded for two intervals (since {since})")


def summarize(jobs: dict[str, JobState]) -> dict[str, int]:
    """The state file in figures, for /status and the gauges."""
    return {
        "jobs_tracked": len(jobs),
        "builds_sent": sum(job.sent.count() for job in jobs.values()),
        "builds_open": sum(len(job.open) for job in jobs.values()),
        "dead_letters": sum(len(job.dead) for job in jobs.values()),
        "builds_number_taken": sum(job.taken.count() for job in jobs.values()),
    }
