"""A bounded runner: tasks on worker threads, their results applied on the caller's thread, and
never more results at risk than twice its workers.

It knows nothing of Jenkins or SEI. A result is "at risk" from the moment its task starts until
the state that records it is on disk: a crash in between repeats the task. Tasks in flight never
exceed `workers`, and applied-but-unsaved results with results being written never exceed
`workers` either, each bound on its own: a result waiting for the disk never holds a worker idle
(counted together, they left 16 allowed POSTs at 9.9 in flight on average). A crash repeats at
most 2 x `workers`. Saving happens on a writer thread of its own, from a snapshot taken on the
caller's thread, once a quarter of the allowance is unsaved: a save every few results, and never
a wait for the disk on the caller's thread.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any, Generic, TypeVar

R = TypeVar("R")


class BoundedRunner(Generic[R]):
    """Run tasks `workers` at a time; `then(result)` runs on the caller's thread.

    `snapshot()` (on the caller's thread) and `write(text)` (on the writer thread) save the state
    the results were applied to; without them nothing is saved (a dry run).
    """

    def __init__(
        self,
        workers: int,
        snapshot: Callable[[], str] | None = None,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.workers = workers
        self._snapshot = snapshot
        self._write = write
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="deliver")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="state")
        self._inflight: dict[Future[R], Callable[[R], None]] = {}
        self._done: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()  # finished futures
        self._unsaved = 0  # results applied since the last snapshot
        self._writing: Future[None] | None = None
        self._writing_count = 0  # the results that save records

    def submit(self, task: Callable[[], R], then: Callable[[R], None]) -> None:
        """Start `task` once there is room; results that came back meanwhile are applied."""
        self._make_room()
        future = self._pool.submit(task)
        self._inflight[future] = then
        future.add_done_callback(self._done.put)

    def drain(self) -> None:
        """Wait for every task in flight and apply its result."""
        while self._inflight:
            self._collect()

    def save(self) -> None:
        """Write what was applied, at once (after waiting for a save in progress)."""
        if self._writing is not None:
            self._written()
        if self._snapshot is not None and self._write is not None:
            self._write(self._snapshot())
        self._unsaved = 0

    def close(self) -> None:
        self._pool.shutdown()
        self._writer.shutdown()

    def _make_room(self) -> None:
        while (
            len(self._inflight) >= self.workers
            or self._unsaved + self._writing_count >= self.workers
        ):
            if self._writing is not None and self._writing.done():
                self._written()
            elif (
                self._writing is None
                and self._unsaved
                and (self._unsaved * 4 >= self.workers or not self._inflight)
            ):
                self._save_in_background()
            else:
                self._collect()

    def _save_in_background(self) -> None:
        if self._snapshot is None or self._write is None:
            self._unsaved = 0
            return
        self._writing = self._writer.submit(self._write, self._snapshot())
        self._writing.add_done_callback(self._done.put)
        self._writing_count, self._unsaved = self._unsaved, 0

    def _written(self) -> None:
        assert self._writing is not None
        writing, self._writing, self._writing_count = self._writing, None, 0
        writing.result()  # a failed write stops the run, as a failed save would

    def _collect(self) -> None:
        """Apply every result that came back, waiting for at least one (or for the save).

        Finished futures arrive on a queue (a done-callback each): cheaper at thousands of
        tasks than `concurrent.futures.wait` over everything in flight every time.
        """
        done = [self._done.get()]
        with suppress(queue.Empty):
            while True:
                done.append(self._done.get_nowait())
        failure: BaseException | None = None
        for future in done:  # every one, even after a failure: none may be left unapplied
            try:
                then = self._inflight.pop(future, None)
                if then is None:
                    if future is self._writing:
                        self._written()
                    continue  # a save that `_make_room` already saw finish
                self._unsaved += 1
                then(future.result())
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure


@contextmanager
def running(runner: BoundedRunner[Any]) -> Iterator[BoundedRunner[Any]]:
    """The runner for a block; leaving waits for every task in flight and saves, even when the
    block failed, so what was accepted is never lost."""
    try:
        yield runner
    finally:
        try:
            runner.drain()
            runner.save()
        finally:
            runner.close()
