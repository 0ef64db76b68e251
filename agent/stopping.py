"""SIGTERM, SIGINT and SIGHUP (a closed terminal, a supervisor's reload) as a request to stop:
nothing more is started, what is in flight finishes, the state is saved, and the command says
what was kept. Every mode handles them alike."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)

# The conventional exit code of a command stopped by a signal: 128 + its number.
EXIT_CODES = {"SIGHUP": 129, "SIGINT": 130, "SIGTERM": 143}
SLICE = 0.25  # seconds: how late a signal may be seen at worst


class Stop(threading.Event):
    """Set by the first SIGTERM, SIGINT or SIGHUP; `signal` names it."""

    signal: str | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """Event.wait in slices of at most SLICE seconds. The kernel hands a process's signal
        to any of its threads, and Python then runs the handler on the main thread only once
        that thread runs Python code again, which a wait without end never does: `run` waiting
        for its stop could miss SIGTERM for ever."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = SLICE if end is None else min(SLICE, end - time.monotonic())
            if left <= 0:
                return self.is_set()
            if super().wait(left):
                return True

    @property
    def exit_code(self) -> int | None:
        return EXIT_CODES.get(self.signal or "")


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """Turn SIGTERM, SIGINT and SIGHUP into a Stop for the block (main thread only), then
    restore."""
    stop = Stop()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: already stopping, waiting for what is in flight", name)
            return
        stop.signal = name
        stop.set()
        log.warning("%s: stopping; the builds in flight finish and the state is saved", name)

    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
