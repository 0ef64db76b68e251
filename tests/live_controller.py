"""A live controller: builds starting and ending on a clock in the Jenkins simulator.

Each job runs one build at a time and starts the next a moment (`pause_ms`) after the last
ended; most builds take 15-60 s and a few (`short_share`) 2-5 s, drawn from a seeded
random.Random. Time is stepped: `advance_to(ms)` plays every start and end up to that moment
in time order, so the same seed gives the same builds however the steps are cut. Tests step it
by hand (no sleeps, no wall clock); bench/ drives it from the wall clock with `WallClock`.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from jenkins_sim import JenkinsSim

# How a build ends, and how often: mostly green, now and then red, unstable or aborted.
RESULTS = ("SUCCESS", "FAILURE", "UNSTABLE", "ABORTED")
RESULT_WEIGHTS = (80, 12, 5, 3)


@dataclass(frozen=True)
class LiveBuild:
    """One build the live controller ran; `end_ms` is start + duration, as Jenkins says."""

    job: str
    number: int
    start_ms: int
    end_ms: int
    result: str

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


def live_jobs(count: int) -> list[tuple[str, str]]:
    """`count` jobs, half of them pipelines, the odd ones in a folder `team`: (name, kind)."""
    return [
        (f"team/app-{n}" if n % 2 else f"svc-{n}", "pipeline" if n % 2 == 0 else "freestyle")
        for n in range(count)
    ]


class LiveController:
    """Builds starting and ending on a clock, each job one build at a time (module doc)."""

    def __init__(
        self,
        sim: JenkinsSim,
        *,
        jobs: int = 20,
        seed: int = 0,
        start_ms: int | None = None,
        pause_ms: int = 50,
        short_share: float = 0.04,
    ) -> None:
        self.sim = sim
        self.random = random.Random(seed)
        self.now_ms = sim.clock_ms if start_ms is None else start_ms
        self.pause_ms = pause_ms
        self.short_share = short_share
        self.starting = True  # False: what runs ends, nothing new starts
        self.jobs = [name for name, _ in live_jobs(jobs)]
        self.finished: list[LiveBuild] = []
        self._running: dict[str, LiveBuild] = {}  # job -> the build it runs, end and result drawn
        self._next_start = dict.fromkeys(self.jobs, self.now_ms)  # job -> when it starts next
        self._lock = threading.Lock()
        if any("/" in name for name in self.jobs):
            sim.add_folder("team")
        for name, kind in live_jobs(jobs):
            sim.add_job(name, kind)

    def _duration_ms(self) -> int:
        if self.random.random() < self.short_share:
            return round(self.random.uniform(2, 5) * 1000)
        return round(self.random.uniform(15, 60) * 1000)

    def _next_event(self) -> tuple[int, int] | None:
        """(moment, job index) of the earliest start or end to come, None when all is done."""
        events = [
            (build.end_ms, i)
            for i, job in enumerate(self.jobs)
            if (build := self._running.get(job)) is not None
        ]
        if self.starting:
            events += [
                (self._next_start[job], i)
                for i, job in enumerate(self.jobs)
                if job not in self._running
            ]
        return min(events, default=None)

    def next_event_ms(self) -> int | None:
        """When the next build starts or ends (the wall-clock driver sleeps until then)."""
        with self._lock:
            event = self._next_event()
        return None if event is None else event[0]

    def advance_to(self, moment_ms: int) -> None:
        """Play every start and end up to `moment_ms`, earliest first (ties by job order)."""
        with self._lock:
            while (event := self._next_event()) is not None and event[0] <= moment_ms:
                at, index = event
                job = self.jobs[index]
                running = self._running.pop(job, None)
                if running is not None:
                    self.sim.finish_build(
                        job, running.number, result=running.result, duration=running.duration_ms
                    )
                    self.finished.append(running)
                    self._next_start[job] = at + self.pause_ms
                else:
                    build = self.sim.add_build(job, building=True, timestamp=at)
                    [result] = self.random.choices(RESULTS, RESULT_WEIGHTS)
                    end = at + self._duration_ms()
                    self._running[job] = LiveBuild(job, build["number"], at, end, result)
            self.now_ms = max(self.now_ms, moment_ms)

    def advance(self, seconds: float) -> None:
        """Step the clock `seconds` on (tests)."""
        self.advance_to(self.now_ms + round(seconds * 1000))

    def stop_starting(self) -> None:
        """What runs goes on to its end; no build starts any more."""
        with self._lock:
            self.starting = False

    def running(self) -> list[LiveBuild]:
        """The builds running now, with the end and result they will have."""
        with self._lock:
            return list(self._running.values())

    def idle(self) -> bool:
        with self._lock:
            return not self._running


class WallClock:
    """Drives a LiveController on the wall clock from a daemon thread (bench/): it sleeps until
    the next start or end (at most `tick` s, so a stop is seen soon) and plays it."""

    def __init__(self, live: LiveController, tick: float = 0.5) -> None:
        self.live = live
        self.tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drive, name="live-controller", daemon=True)

    def _drive(self) -> None:
        while not self._stop.is_set():
            self.live.advance_to(int(time.time() * 1000))
            upcoming = self.live.next_event_ms()
            wait = self.tick if upcoming is None else upcoming / 1000 - time.time()
            self._stop.wait(min(self.tick, max(wait, 0.0)))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
