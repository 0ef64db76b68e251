"""The retry policy both sides use (tenacity's), and reading the server's Retry-After."""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable
from datetime import UTC

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential,
)


def retry_policy(
    *,
    retries: int,
    first_wait: float,
    max_wait: float,
    retryable: type[Exception],
    log_retry: Callable[[RetryCallState], None],
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Retrying:
    """One side's retries: doubling waits from `first_wait`, or the server's Retry-After
    (an attribute `retry_after` of the failure), never longer than `max_wait`.

    `stop` set ends a wait at once, and the last failure is raised without another attempt: a
    stopping agent waits on no retry. One Retrying serves every thread: tenacity keeps each
    call's attempts per thread, and the last failure is kept per thread too.
    """
    backoff = wait_exponential(multiplier=first_wait, max=max_wait)
    last = threading.local()

    def wait(state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        asked = getattr(failure, "retry_after", None)
        return min(asked, max_wait) if asked is not None else backoff(state)

    def before_sleep(state: RetryCallState) -> None:
        last.failure = state.outcome.exception() if state.outcome else None
        log_retry(state)

    def pause(seconds: float) -> None:
        if stop is None:
            sleep(seconds)
        elif stop.wait(seconds):
            failure: BaseException = last.failure
            raise failure

    limit = stop_after_attempt(retries + 1)
    return Retrying(
        stop=limit if stop is None else limit | stop_when_event_set(stop),
        wait=wait,
        sleep=pause,
        retry=retry_if_exception_type(retryable),
        before_sleep=before_sleep,
        reraise=True,
    )


def retry_after(value: str | None) -> float | None:
    """A Retry-After header in seconds, given as seconds or as an HTTP date."""
    if value and value.strip().isdigit():
        return float(value)
    when = http_date(value)
    return None if when is None else max(when - time.time(), 0.0)


def http_date(value: str | None) -> float | None:
    """An HTTP date (a Date or Retry-After header) in seconds since the epoch, if it is one."""
    try:
        when = email.utils.parsedate_to_datetime((value or "").strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
