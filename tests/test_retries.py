"""The first attempt outside tenacity: the policy still decides every attempt after it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from agent.retries import call_with_retries


class Flaky(Exception):
    pass


def failing(times: int, calls: list[int]) -> Callable[[int], int]:
    def attempt(value: int) -> int:
        calls.append(value)
        if len(calls) <= times:
            raise Flaky(f"failure {len(calls)}")
        return value * 2

    return attempt


def policy(built: list[int], slept: list[int]) -> Callable[[], Retrying]:
    def before_sleep(state: RetryCallState) -> None:
        slept.append(state.attempt_number)

    def make() -> Retrying:
        built.append(1)
        return Retrying(
            stop=stop_after_attempt(3),
            retry=retry_if_exception_type(Flaky),
            sleep=lambda _: None,
            before_sleep=before_sleep,
            reraise=True,
        )

    return make


def test_success_at_once_never_builds_the_policy() -> None:
    calls: list[int] = []
    built: list[int] = []
    assert call_with_retries(policy(built, []), Flaky, failing(0, calls), 4) == 8
    assert calls == [4] and built == []


def test_the_first_failure_counts_as_the_policys_first_attempt() -> None:
    calls: list[int] = []
    slept: list[int] = []
    assert call_with_retries(policy([], slept), Flaky, failing(2, calls), 5) == 10
    assert calls == [5, 5, 5]  # three attempts in all, as stop_after_attempt(3) says
    assert slept == [1, 2]  # waits after attempts 1 and 2, the first made outside tenacity


def test_failing_past_the_limit_raises_the_last_failure_after_the_limit() -> None:
    calls: list[int] = []
    with pytest.raises(Flaky, match="failure 3"):
        call_with_retries(policy([], []), Flaky, failing(9, calls), 1)
    assert len(calls) == 3


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def broken(value: int) -> int:
        calls.append(value)
        raise KeyError(value)

    with pytest.raises(KeyError):
        call_with_retries(policy([], []), Flaky, broken, 1)
    assert calls == [1]
