"""What the agent knows of one job: exactly which builds SEI accepted, never a high-water mark.

A build still running when newer ones finish must still be sent later. A build is identified by
its number *and* its start time, because a job deleted and recreated numbers its builds from 1
again. Contiguous builds are stored as one run `[first, last, first_start_ms, last_start_ms]`,
so 100,000 builds in a row cost a few bytes.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any


class SentRuns:
    """Disjoint, sorted runs of consecutive build numbers with their start-time bounds."""

    def __init__(self, runs: list[list[int]] | None = None) -> None:
        self.runs: list[list[int]] = sorted(runs or [], key=lambda r: r[0])

    def _index(self, number: int) -> int:
        return bisect_right(self.runs, number, key=lambda r: r[0]) - 1

    def contains(self, number: int, start_ms: int) -> bool:
        i = self._index(number)
        if i < 0:
            return False
        first, last, first_ts, last_ts = self.runs[i]
        return first <= number <= last and first_ts <= start_ms <= last_ts

    def add(self, number: int, start_ms: int) -> None:
        if self.contains(number, start_ms):
            return
        self.forget_older_generation(number, start_ms)
        i = self._index(number)
        left = self.runs[i] if i >= 0 else None
        right = self.runs[i + 1] if i + 1 < len(self.runs) else None
        joins_left = left is not None and left[1] == number - 1 and left[3] <= start_ms
        joins_right = right is not None and right[0] == number + 1 and start_ms <= right[2]
        if joins_left and joins_right:
            assert left is not None and right is not None
            left[1], left[3] = right[1], right[3]
            del self.runs[i + 1]
        elif joins_left:
            assert left is not None
            left[1], left[3] = number, start_ms
        elif joins_right:
            assert right is not None
            right[0], right[2] = number, start_ms
        else:
            self.runs.insert(i + 1, [number, number, start_ms, start_ms])

    def forget_older_generation(self, number: int, start_ms: int) -> bool:
        """A sent build with this number but an earlier start belonged to a deleted job.

        Its builds are gone from Jenkins, so every run that ended before this build started
        is dropped; returns whether that happened.
        """
        i = self._index(number)
        if i < 0:
            return False
        first, last, _, last_ts = self.runs[i]
        if not (first <= number <= last and start_ms > last_ts):
            return False
        self.runs = [r for r in self.runs if r[3] >= start_ms]
        return True

    def remove(self, number: int) -> bool:
        """Forget one sent build so that it is sent again; False if it was not recorded.

        The pieces left on either side keep the run's start-time bounds, since the start times
        of the builds beside it are not stored; the bounds still hold for every build in them.
        """
        i = self._index(number)
        if i < 0 or number > self.runs[i][1]:
            return False
        first, last, first_ts, last_ts = self.runs[i]
        pieces = []
        if first < number:
            pieces.append([first, number - 1, first_ts, last_ts])
        if number < last:
            pieces.append([number + 1, last, first_ts, last_ts])
        self.runs[i : i + 1] = pieces
        return True

    def holds_another(self, number: int, start_ms: int) -> bool:
        """A build with this number but another start time was recorded: SEI keeps runs on
        (job, number), so it holds that earlier build's run under this number."""
        return self.run_of(number) is not None and not self.contains(number, start_ms)

    def run_of(self, number: int) -> list[int] | None:
        """The run `[first, last, first_start, last_start]` that holds this number, if any."""
        i = self._index(number)
        return self.runs[i] if i >= 0 and number <= self.runs[i][1] else None

    def count(self) -> int:
        return sum(r[1] - r[0] + 1 for r in self.runs)


@dataclass
class JobState:
    """What the agent knows of one job."""

    floor_ms: int | None = None  # sync ignores builds that started earlier (the lookback)
    sent: SentRuns = field(default_factory=SentRuns)
    open: set[int] = field(default_factory=set)  # seen but not sent: running, or delivery failed
    dead: dict[int, dict[str, Any]] = field(default_factory=dict)  # refused by SEI (4xx)
    # builds of a recreated job never sent: SEI holds their numbers for the deleted job's builds
    taken: SentRuns = field(default_factory=SentRuns)
    anchor: tuple[int, int] | None = None  # newest build (number, start) at the last full read
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def is_dead(self, number: int, start_ms: int) -> bool:
        letter = self.dead.get(number)
        return letter is not None and letter.get("start_time") == start_ms

    def changed(self) -> None:
        """Say this state was modified: the next `StateFile.snapshot(reuse=True)` rewrites it."""
        self._text = None

    def text(self, *, reuse: bool) -> str:
        """This job's part of the file, kept for the next snapshot."""
        if self._text is None or not reuse:
            self._text = dumps(self.to_json())
        return self._text

    def to_json(self) -> dict[str, Any]:
        """What `from_json` reads back: an anchor is written only when it is two integers, so
        a newest build without a start time can never make the file unreadable."""
        data: dict[str, Any] = {"sent": self.sent.runs}
        if self.floor_ms is not None:
            data["floor_ms"] = self.floor_ms
        if self.open:
            data["open"] = sorted(self.open)
        if self.dead:
            data["dead"] = {str(n): letter for n, letter in sorted(self.dead.items())}
        if self.taken.runs:
            data["taken"] = self.taken.runs
        if self.anchor and all(_is_int(x) for x in self.anchor):
            data["anchor"] = list(self.anchor)
        return data

    @classmethod
    def from_json(cls, data: Any) -> JobState:
        """One job's entry; ValueError (or TypeError) when it is not one."""
        anchor = data.get("anchor")
        floor = data.get("floor_ms")
        if floor is not None and not _is_int(floor):
            raise ValueError(f"floor_ms {floor!r} is not an integer")
        if anchor is not None and not (
            isinstance(anchor, list) and len(anchor) == 2 and all(_is_int(x) for x in anchor)
        ):
            raise ValueError(f"anchor {anchor!r} is not [number, start time]")
        runs, taken = data.get("sent", []), data.get("taken", [])
        for name, value in (("sent", runs), ("taken", taken)):
            if not all(isinstance(r, list) and len(r) == 4 and all(map(_is_int, r)) for r in value):
                raise ValueError(f"{name} runs are not [first, last, first start, last start]")
        return cls(
            floor_ms=floor,
            sent=SentRuns([list(run) for run in runs]),
            taken=SentRuns([list(run) for run in taken]),
            open={int(n) for n in data.get("open", [])},
            dead={int(n): dict(letter) for n, letter in data.get("dead", {}).items()},
            anchor=(anchor[0], anchor[1]) if anchor else None,
        )


def dumps(value: Any) -> str:
    """Compact JSON, every non-ASCII character escaped: a job name holding a lone surrogate
    (which no UTF-8 file can hold) is written and read back like any other."""
    return json.dumps(value, separators=(",", ":"))


def _is_int(value: Any) -> bool:
    """As agent/jenkins/reading.py's: the state imports nothing of the agent (import-linter)."""
    return isinstance(value, int) and not isinstance(value, bool)
