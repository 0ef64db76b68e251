"""Retries with tenacity, entered only once a first attempt has failed.

Nearly every request succeeds at once, and a call through `tenacity.Retrying` costs about
100,000 instructions (measured with callgrind), a fifth of a whole Jenkins request. So the first
attempt is made directly; when it fails with a retryable error, tenacity takes over and counts
that failure as its own first attempt, so that waits, logging and the attempt limit are exactly
what the policy says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import Retrying

T = TypeVar("T")


def call_with_retries(
    policy: Callable[[], Retrying],
    retryable: type[Exception],
    attempt: Callable[..., T],
    *args: Any,
) -> T:
    """`attempt(*args)`, retried under `policy()` if it raised `retryable`."""
    try:
        return attempt(*args)
    except retryable as failure:
        seen: list[Exception] = [failure]

    def replayed(*again: Any) -> T:
        if seen:
            raise seen.pop()  # the failure above, as tenacity's attempt 1
        return attempt(*again)

    return policy()(replayed, *args)
