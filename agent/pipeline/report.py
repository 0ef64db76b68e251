"""What became of each build, and of a whole run: the words the pipeline's parts speak."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from agent.sei.client import SeiUnavailable


class Outcome(Enum):
    """The fate of one build in one run, decided by the worker and applied by the ledger."""

    SENT = "sent"  # SEI accepted it (or a dry run mapped it): recorded as sent
    REFUSED = "refused"  # SEI refused this payload (4xx): a dead letter with its words
    UNMAPPABLE = "unmappable"  # the build cannot make a payload SEI keeps: a dead letter
    UNSENT = "unsent"  # SEI could not be reached: kept for the next run
    UNREADABLE = "unreadable"  # Jenkins could not serve its details now: next run
    FAILED = "failed"  # an unexpected error for this build alone: next run
    GONE = "gone"  # rotated away while it was read
    SKIPPED = "skipped"  # the run was stopping before it started
    FATAL = "fatal"  # credentials refused: nothing more can succeed this run
    TAKEN = "taken"  # a recreated job's build whose number SEI holds: never sent


@dataclass(frozen=True)
class Result:
    """One build's outcome, with what the ledger records of it."""

    outcome: Outcome
    payload: dict[str, Any] | None = None
    status: int | None = None
    message: str = ""
    error: Exception | None = None


@dataclass(frozen=True)
class Delivered:
    """What became of one build, as the ledger applied it: what observers (the metrics) see."""

    job: str
    number: int
    result: str | None  # the build's Jenkins result, as Jenkins gave it
    outcome: Outcome
    error: Exception | None = None
    ended_ms: int | None = None  # when the build ended (start + duration), if Jenkins said


@dataclass
class Report:
    """What one run did; its exit code is the CLI's."""

    jobs: int = 0
    sent: int = 0
    refused: int = 0
    unmappable: int = 0
    unsent: int = 0
    failed: int = 0
    running: int = 0
    taken: int = 0  # builds of recreated jobs not sent: SEI holds their numbers
    failed_jobs: int = 0
    older: int = 0  # finished builds a first sync left to `backfill` (outside the lookback)
    older_jobs: int = 0
    sei_down: SeiUnavailable | None = None

    @property
    def dead(self) -> int:
        """Dead letters: refused by SEI or unmappable; `state retry-dead` sends them again."""
        return self.refused + self.unmappable

    @property
    def exit_code(self) -> int:
        if self.sei_down is not None and self.sei_down.unreachable:
            return 3
        problems = self.dead or self.unsent or self.failed or self.failed_jobs
        return 1 if problems or self.sei_down else 0

    def summary(self) -> str:
        return (
            f"{self.jobs} jobs, {self.sent} builds sent, {self.refused} refused by SEI, "
            f"{self.unmappable} unmappable, {self.unsent + self.failed} left for the next run, "
            f"{self.running} still running, {self.failed_jobs} jobs unreadable"
            + (f", {self.taken} not sent (SEI holds their numbers)" if self.taken else "")
        )


# An observer of a run: told each build's fate as it is applied, then the run's report.
Observer = Callable[[Delivered | Report], None]
