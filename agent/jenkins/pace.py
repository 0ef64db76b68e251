"""JENKINS_RATE_LIMIT: at most so many requests a second, by pyrate-limiter, with a wait for a
permit that a stop ends and a read timeout bounds: a worker never waits on it for ever."""

from __future__ import annotations

import threading
import time

STEP = 0.1  # how often a wait for a permit looks at the stop


class Pace:
    def __init__(self, per_second: int, most: float, stop: threading.Event | None) -> None:
        # imported here: ~40 ms at start (multiprocessing with it), paid only with a rate limit
        from pyrate_limiter import Duration, Limiter, Rate

        self._limiter = Limiter(Rate(per_second, Duration.SECOND))
        self._most = most
        self._stop = stop or threading.Event()

    def wait(self) -> str | None:
        """Wait for a permit; why there is none: a stop, or more than `most` seconds."""
        until = time.monotonic() + self._most
        while not self._limiter.try_acquire("jenkins", blocking=True, timeout=STEP):
            if self._stop.is_set():
                return "stopped while waiting for JENKINS_RATE_LIMIT's next request"
            if time.monotonic() >= until:
                return (
                    f"no request within JENKINS_RATE_LIMIT after {self._most:g} s "
                    "(JENKINS_TIMEOUT): more workers wait than the limit lets through"
                )
        return None
