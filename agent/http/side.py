"""What the Jenkins and the SEI clients do alike: count requests, retry under one policy, say an
outage once, turn the HTTP layer's failures into retries or the side's own errors, and judge an
answer's status by the side's declarative table (status -> what it means, and the message)."""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, NoReturn, Protocol, TypeVar

from tenacity import RetryCallState

from agent.http.answer import Answer
from agent.http.client import Http
from agent.http.errors import Redirected, Retryable, TransportFailure, Unreachable
from agent.http.retry import retry_after, retry_policy
from agent.logs import Outage

T = TypeVar("T")


class RetrySettings(Protocol):
    """What a side's settings say of its retries."""

    retries: int
    retry_wait: float
    retry_max_wait: float


class Action(enum.Enum):
    """What an answer's status means for the request it answers."""

    OK = "ok"  # the caller reads the answer
    RETRY = "retry"  # worth another attempt (Retryable, with the server's Retry-After)
    FATAL = "fatal"  # nothing more can be done with this server until a setting changes
    REFUSED = "refused"  # the credentials were refused
    GONE = "gone"  # what was asked for is not there
    FAILED = "failed"  # this request failed, the next may not
    REJECTED = "rejected"  # the server refused this body alone: the caller keeps its words


@dataclass(frozen=True)
class Status:
    action: Action
    message: str = ""  # formatted with {status} and {where} (the URL asked)


class StatusTable:
    """A side's statuses: a row per status (401), else per class ("5xx"), else `otherwise`."""

    def __init__(self, rows: Mapping[int | str, Status], otherwise: Status) -> None:
        self._rows = dict(rows)
        self._otherwise = otherwise

    def __getitem__(self, status: int) -> Status:
        row = self._rows.get(status) or self._rows.get(f"{min(status // 100, 5)}xx")
        return row or self._otherwise


class SideClient:
    """The base of one side's client over one `Http`. A side names itself (`side`), the setting
    of its URL (`url_setting`), its status table, and the error raised for each Action it does
    not hand back (`errors`)."""

    side: ClassVar[str]
    url_setting: ClassVar[str]
    statuses: ClassVar[StatusTable]
    errors: ClassVar[Mapping[Action, Callable[[str], Exception]]]
    retry_sleep: ClassVar[Callable[[float], None]] = time.sleep  # a wait when nothing can stop it

    def __init__(
        self,
        http: Http,
        settings: RetrySettings,
        log: logging.Logger,
        stop: threading.Event | None,
    ) -> None:
        self.base = http.base
        self._http = http
        self._attempts = settings.retries + 1
        self._outage = Outage(self.side, log)
        self._retry = retry_policy(
            retries=settings.retries,
            first_wait=settings.retry_wait,
            max_wait=settings.retry_max_wait,
            retryable=Retryable,
            log_retry=self._log_retry,
            stop=stop,
            sleep=type(self).retry_sleep,
        )
        self._count_lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def close(self) -> None:
        self._http.close()

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self._outage.retrying(error, state.next_action.sleep if state.next_action else 0)

    def _retrying(self, once: Callable[..., T], *args: object) -> T:
        """`once(*args)` under the retry policy; the last Retryable goes to `_exhausted`."""
        try:
            result = self._retry(once, *args)
        except Retryable as exc:
            self._exhausted(exc)
        self._outage.answered()
        return result

    def _exhausted(self, exc: Retryable) -> NoReturn:
        """The side's error once the retries are spent."""
        raise NotImplementedError

    def _unreachable(self, exc: Unreachable, where: str) -> str:
        blame = f"; check {exc.proxy}" if exc.proxy else ""
        return f"{self.side} cannot be reached at {where}: {exc}{blame}"

    def _request(
        self,
        method: str,
        path: str,
        *,
        kind: str,
        limit: int,
        params: dict[str, str] | None = None,
        body: bytes | None = None,
        elsewhere: bool = False,
    ) -> Answer:
        """One attempt, counted under `kind` (and each redirect followed too): no connection or
        a failed exchange is Retryable, a redirect not followed is FATAL."""
        where = f"{self.base}{path}"
        self._count(kind)
        try:
            answer = self._http.request(
                method, path, params=params, body=body, limit=limit, elsewhere=elsewhere
            )
        except Unreachable as exc:
            message = self._unreachable(exc, where)
            raise Retryable(message, unreachable=True, proxy=exc.proxy) from None
        except TransportFailure as exc:
            raise Retryable(f"{self.side} connection failed on {where}: {exc}") from None
        except Redirected as exc:
            raise self.errors[Action.FATAL](f"{exc}; check {self.url_setting}") from None
        if answer.redirects:
            self._count(kind, answer.redirects)
        return answer

    def _judge(self, answer: Answer, where: str) -> Status:
        """The row of the side's table for this answer: raised as Retryable or as the side's
        error, or handed back (OK, and whatever the side has no error for)."""
        status = self.statuses[answer.status]
        message = status.message.format(status=answer.status, where=where)
        if status.action is Action.RETRY:
            raise Retryable(message, retry_after(answer.header("retry-after")))
        error = self.errors.get(status.action)
        if error is not None:
            raise error(message)
        return status

    def _count(self, kind: str, requests: int = 1) -> None:
        with self._count_lock:
            self.counts[kind] += requests
