"""Which builds of a job to read, and what to do with each: pure decisions over the job's state.

No I/O: the sync and backfill drivers ask, then act. The rules are those that make delivery
exact: a job is read only when something changed since its last complete read, down to the
oldest build not yet settled, and a tracked job never drops a finished build it has not sent,
whatever the clocks say.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from agent.jenkins.reading import is_int
from agent.jenkins.types import Job, Window
from agent.state import JobState

Anchor = tuple[int, int]


@dataclass(frozen=True)
class Read:
    """Read the builds in `window` (newest first, many a request), and the older open builds
    `one_by_one`, each with a narrow request of its own."""

    window: Window | None
    one_by_one: tuple[int, ...] = ()


# An open build further below the newest than this many is read by itself rather than paged
# down to; past this many open builds, paging is cheaper again.
MAX_ONE_BY_ONE = 5


@dataclass(frozen=True)
class Skip:
    """Nothing to read this time; the job's anchor becomes `anchor` (None: leave it)."""

    anchor: Anchor | None = None


class Disposition(Enum):
    """What a listed build asks for."""

    IGNORE = "ignore"  # before the window, or without a number and start time
    RUNNING = "running"  # still building: remembered, read again next run
    SETTLED = "settled"  # sent, or a dead letter, already
    TAKEN = "taken"  # SEI holds its number for an earlier build of the job: never sent
    DELIVER = "deliver"


def newest_of(job: Job) -> tuple[int, int | None] | None:
    """The job's newest build as discovery saw it: (number, start time or None)."""
    return (job.last_build, job.last_build_ts) if job.last_build is not None else None


def recreated(anchor: Anchor | None, newest: tuple[int, int | None] | None) -> bool:
    """Numbers went backwards, or the same number started at another time: a deleted job was
    created again under the same name."""
    if anchor is None or newest is None:
        return False
    return newest[0] < anchor[0] or (newest[0] == anchor[0] and newest[1] != anchor[1])


def plan_sync(job: Job, state: JobState) -> Read | Skip | None:
    """The builds `sync` must read for `job`: None when nothing changed since the last complete
    read, Skip when nothing inside the lookback needs reading, else what to read down to the
    oldest build not yet settled (the anchor, or a build that was running or failed).

    A build stuck in "building" far below the newest is read by itself: paging down to it would
    load the job's whole recent history on the controller every cycle.
    """
    newest = newest_of(job)
    if newest == state.anchor and not state.open:
        return None  # nothing started or finished since the last complete read
    floor = state.floor_ms or 0
    if newest is None:
        return Skip()
    started = newest[1]
    if started is not None and started < floor and not state.open and state.anchor is None:
        return Skip(anchor=(newest[0], started))  # a job first seen idle: nothing in the lookback
    if state.anchor is None or recreated(state.anchor, newest):
        return Read(Window(since_ms=floor))
    anchor = state.anchor[0]
    below = sorted(n for n in state.open if n < anchor)
    if len(below) > MAX_ONE_BY_ONE:
        return Read(Window(down_to=below[0], expected=newest[0] - below[0] + 1))
    window = (
        None if newest[0] == anchor else Window(down_to=anchor, expected=newest[0] - anchor + 1)
    )
    alone = (anchor,) if window is None and anchor in state.open else ()
    return Read(window, (*below, *alone))


def disposition(
    build: dict[str, Any], state: JobState, floor_ms: int, *, keep_new: bool = True
) -> Disposition:
    """What to do with one listed build.

    Builds older than `floor_ms` are ignored, except (`keep_new`, for sync) that a build
    numbered past the job's anchor is new to the agent whatever its start time says: a
    controller whose clock is behind the agent's never loses a build that finished after the
    job was first seen. Backfill's dates are the user's, and bind every build.
    """
    number, started = build.get("number"), build.get("timestamp")
    if not is_int(number) or not is_int(started):
        return Disposition.IGNORE
    after_anchor = keep_new and state.anchor is not None and number > state.anchor[0]
    if started < floor_ms and not after_anchor and not (keep_new and number in state.open):
        return Disposition.IGNORE
    if build.get("building"):
        return Disposition.RUNNING
    if state.sent.contains(number, started) or state.is_dead(number, started):
        return Disposition.SETTLED
    if state.taken.contains(number, started):
        return Disposition.SETTLED
    if state.sent.holds_another(number, started):
        return Disposition.TAKEN  # sent, its stages and artifacts would land in the old run
    return Disposition.DELIVER


def identified(build: dict[str, Any]) -> bool:
    """A build is known by its number (from 1) and start time; one lacking either cannot be
    tracked, and one numbered 0 would be taken for another build."""
    number = build.get("number")
    return is_int(number) and number > 0 and is_int(build.get("timestamp"))
