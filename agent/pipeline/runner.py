"""A bounded two-stage runner: each task is prepared on a reader thread, then sent on a sender
thread, and its result applied on the caller's thread.

It knows nothing of Jenkins or SEI. Readers work ahead of the senders so that, whenever tasks
are ready, all `senders` sends are in flight: up to `readers` tasks being prepared and
`2 x senders` more prepared, sending or answered may be outstanding (a phase that waited for
another, as one pool doing both did, left 16 allowed POSTs at 10 in flight on average).

A result is "at risk" from the moment its send starts until the state that records it is on
disk: a crash in between repeats the send. A semaphore holds that number to twice `senders` (the
sends in flight, and as many answered but not yet saved); a sender waits for a save before it
starts, the caller never waits for the disk. A crash repeats at most `2 x senders` sends; a
task prepared but not sent is at no risk (it is read again next run). Saving happens on a
writer thread of its own, from a snapshot taken on the caller's thread, once a quarter of
`senders` results are unsaved.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

R = TypeVar("R")


class Gate(Protocol):
    """Something a send waits for without holding a thread: `action` runs once it opens."""

    def when_open(self, action: Callable[[], None]) -> None: ...


@dataclass(frozen=True)
class Prepared(Generic[R]):
    """What a task's first stage gives: its result already (nothing to send), or the send to
    make, once `gate` opens when there is one."""

    result: R | None = None
    send: Callable[[], R] | None = None
    gate: Gate | None = None


class _Permits:
    """Sends started whose results are not yet on disk: at most `limit`. A sender waiting for
    one is let go without sending once the runner closes (a failed save must not hang it)."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._closed = False
        self._changed = threading.Condition()

    def take(self) -> bool:
        """Wait for a permit: True with one, False once closed."""
        with self._changed:
            while not self._free and not self._closed:
                self._changed.wait()
            if self._closed:
                return False
            self._free -= 1
            return True

    def give(self, count: int) -> None:
        if count:
            with self._changed:
                self._free += count
                self._changed.notify(count)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()


class _Task(Generic[R]):
    """One task on its way: `outcome` is set by whichever stage ends it."""

    __slots__ = ("at_risk", "outcome", "then")

    def __init__(self, then: Callable[[R], None]) -> None:
        self.then = then
        self.outcome: Future[R] = Future()
        self.at_risk = False  # its send started: it holds a permit until its result is saved


class BoundedRunner(Generic[R]):
    """Prepare tasks `readers` at a time and send them `senders` at a time; `then(result)` runs
    on the caller's thread.

    `snapshot()` (on the caller's thread) and `write(text)` (on the writer thread) save the state
    the results were applied to; without them nothing is saved (a dry run).
    """

    def __init__(
        self,
        senders: int,
        *,
        readers: int = 1,
        snapshot: Callable[[], str] | None = None,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.senders = senders
        self._snapshot = snapshot
        self._write = write
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="read")
        self._sending = ThreadPoolExecutor(senders, thread_name_prefix="send")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="state")
        self._at_risk = _Permits(2 * senders)
        self._ahead = readers + 2 * senders  # tasks submitted and not yet applied, at most
        self._pending: dict[Future[R], _Task[R]] = {}
        self._done: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()  # finished futures
        self._unsaved = 0  # results applied since the last snapshot
        self._unsaved_at_risk = 0  # of which sent: permits to give back once they are saved
        self._writing: Future[None] | None = None
        self._writing_at_risk = 0  # the permits that save gives back

    def submit(self, prepare: Callable[[], Prepared[R]], then: Callable[[R], None]) -> None:
        """Start `prepare` once there is room; results that came back meanwhile are applied."""
        self._apply_ready()
        while len(self._pending) >= self._ahead:
            self._collect()
        task: _Task[R] = _Task(then)
        self._pending[task.outcome] = task
        task.outcome.add_done_callback(self._done.put)
        self._readers.submit(self._prepare, prepare, task)

    def drain(self) -> None:
        """Wait for every task and apply its result."""
        while self._pending:
            self._collect()

    def save(self) -> None:
        """Write what was applied, at once (after waiting for a save in progress)."""
        if self._writing is not None:
            self._written(self._writing)
        if self._snapshot is not None and self._write is not None:
            self._write(self._snapshot())
        self._saved(self._unsaved_at_risk)
        self._unsaved = self._unsaved_at_risk = 0

    def close(self) -> None:
        self._at_risk.close()
        self._readers.shutdown()
        self._sending.shutdown()
        self._writer.shutdown()

    # -- the stages, on their threads ------------------------------------------------------

    def _prepare(self, prepare: Callable[[], Prepared[R]], task: _Task[R]) -> None:
        try:
            prepared = prepare()
        except BaseException as exc:
            task.outcome.set_exception(exc)
            return
        send = prepared.send
        if send is None:
            task.outcome.set_result(prepared.result)  # type: ignore[arg-type]
            return

        def start() -> None:
            self._sending.submit(self._send, send, task)

        if prepared.gate is None:
            start()
        else:
            prepared.gate.when_open(start)

    def _send(self, send: Callable[[], R], task: _Task[R]) -> None:
        if not self._at_risk.take():  # given back once the result is on disk
            task.outcome.cancel()  # the runner closed first: never sent
            return
        task.at_risk = True
        try:
            task.outcome.set_result(send())
        except BaseException as exc:
            task.outcome.set_exception(exc)

    # -- the caller's side -----------------------------------------------------------------

    def _apply_ready(self) -> None:
        """Apply what already came back without waiting, and start a save when due."""
        self._apply(self._came_back([]))
        self._save_if_due()

    def _collect(self) -> None:
        """Apply every result that came back, waiting for at least one (or for a save)."""
        self._save_if_due()  # senders waiting for permits wait for this save
        self._apply(self._came_back([self._done.get()]))

    def _came_back(self, done: list[Future[Any]]) -> list[Future[Any]]:
        """`done` and every finished future on the queue now. They arrive there by a
        done-callback each: cheaper at thousands of tasks than `concurrent.futures.wait` over
        everything pending every time."""
        with suppress(queue.Empty):
            while True:
                done.append(self._done.get_nowait())
        return done

    def _apply(self, done: list[Future[Any]]) -> None:
        failure: BaseException | None = None
        for future in done:  # every one, even after a failure: none may be left unapplied
            try:
                task = self._pending.pop(future, None)
                if task is None:
                    if future is self._writing:
                        self._written(future)
                    continue  # a save that was already seen to finish
                self._unsaved += 1
                self._unsaved_at_risk += task.at_risk
                task.then(future.result())
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def _save_if_due(self) -> None:
        if self._writing is not None and self._writing.done():
            self._written(self._writing)
        if self._writing is None and self._unsaved and self._unsaved * 4 >= self.senders:
            if self._snapshot is None or self._write is None:
                self._saved(self._unsaved_at_risk)
            else:
                self._writing = self._writer.submit(self._write, self._snapshot())
                self._writing.add_done_callback(self._done.put)
                self._writing_at_risk = self._unsaved_at_risk
            self._unsaved = self._unsaved_at_risk = 0

    def _written(self, writing: Future[None]) -> None:
        self._writing, at_risk, self._writing_at_risk = None, self._writing_at_risk, 0
        writing.result()  # a failed write stops the run; its sends stay at risk till then
        self._saved(at_risk)

    def _saved(self, permits: int) -> None:
        self._at_risk.give(permits)


@contextmanager
def running(runner: BoundedRunner[Any]) -> Iterator[BoundedRunner[Any]]:
    """The runner for a block; leaving waits for every task and saves, even when the block
    failed, so what was accepted is never lost."""
    try:
        yield runner
    finally:
        try:
            runner.drain()
            runner.save()
        finally:
            runner.close()
