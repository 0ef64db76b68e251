"""Reads Jenkins JSON over HTTP: auth, retries, and errors a user can act on.

URLs are always built from the configured base URL, never from the `url` fields Jenkins returns,
whose host is whatever the controller's root-URL setting says (often wrong behind a proxy).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections import Counter
from typing import Any

from pyrate_limiter import Duration, Limiter, Rate
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from agent.config import JenkinsSettings
from agent.retries import call_with_retries
from agent.transport import Http, TransportFailure, Unreachable

log = logging.getLogger(__name__)


class JenkinsError(Exception):
    """A read failed after retries; the job it belongs to is retried next run."""


class JenkinsNotFound(JenkinsError):
    """404: the item or build is gone (deleted, or removed by log rotation)."""


class JenkinsUnavailable(JenkinsError):
    """Jenkins cannot be reached or refuses the credentials: nothing can be read at all."""


class JenkinsRefused(JenkinsUnavailable):
    """401/403: the credentials were refused, or lack a permission this request needs.

    Fatal like any JenkinsUnavailable; only a request that is optional (the plugin list) may
    catch it and do without.
    """


class _Retryable(JenkinsError):
    pass


class JenkinsClient:
    """Thread-safe: one pool of `concurrency` connections, an optional requests-per-second cap."""

    def __init__(self, settings: JenkinsSettings) -> None:
        assert settings.url is not None
        self.base = settings.url.rstrip("/") + "/"
        headers = {"Accept": "application/json"}
        if settings.user and settings.api_token:
            credentials = f"{settings.user}:{settings.api_token.get_secret_value()}"
            headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        self._http = Http(
            self.base,
            settings,
            side="Jenkins",
            headers=headers,
            timeout=settings.timeout,
            connections=settings.concurrency,
        )
        self._limiter = (
            Limiter(Rate(settings.rate_limit, Duration.SECOND)) if settings.rate_limit else None
        )
        # One policy for every request; tenacity keeps each call's attempts per thread.
        self._retry = Retrying(
            stop=stop_after_attempt(settings.retries + 1),
            wait=wait_exponential(multiplier=settings.retry_wait, max=30),
            retry=retry_if_exception_type(_Retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        self._count_lock = threading.Lock()
        self.requests: Counter[str] = Counter()

    def close(self) -> None:
        self._http.close()

    def get_json(self, path: str, tree: str | None = None, *, kind: str, shape: type = dict) -> Any:
        """GET `path` (relative to the base) as JSON of the given `shape` (dict or list).

        `kind` labels the request in the counters. An answer of another shape is an error, so
        that nothing downstream has to guess what an unexpected answer meant.
        """
        params = {"tree": tree} if tree else None
        answer = self._retrying(self._get_once, path, params, kind, True)
        if not isinstance(answer, shape):
            raise JenkinsError(
                f"Jenkins answered {self.base}{path} with a JSON {type(answer).__name__}, "
                f"not a {shape.__name__}"
            )
        return answer

    def get_bytes(self, path: str, *, kind: str) -> bytes:
        """GET a file, such as an archived artifact."""
        return self._retrying(self._get_once, path, None, kind, False)

    def _retrying(self, *args: Any) -> Any:
        try:
            return call_with_retries(lambda: self._retry, _Retryable, *args)
        except _Retryable as exc:
            raise JenkinsError(str(exc)) from None

    def _get_once(self, url: str, params: dict[str, str] | None, kind: str, as_json: bool) -> Any:
        with self._count_lock:
            self.requests[kind] += 1
        if self._limiter is not None:
            self._limiter.try_acquire("jenkins")
        where = f"{self.base}{url}"
        try:
            response = self._http.request("GET", url, fields=params)
        except Unreachable as exc:
            raise JenkinsUnavailable(
                f"Jenkins at {self.base} cannot be reached ({exc}); check JENKINS_URL"
            ) from None
        except TransportFailure as exc:
            raise _Retryable(f"Jenkins connection failed on {where}: {exc}") from None
        status = response.status
        if status in (401, 403):
            raise JenkinsRefused(
                f"Jenkins refused the credentials (HTTP {status} on {where}); "
                "check JENKINS_USER and JENKINS_API_TOKEN and that the user may read jobs"
            )
        if status == 404:
            raise JenkinsNotFound(f"not found: {where}")
        if status == 429 or status >= 500:
            raise _Retryable(f"Jenkins answered HTTP {status} on {where}")
        if status >= 300:
            raise JenkinsError(f"Jenkins answered HTTP {status} on {where}")
        if not as_json:
            return response.body
        if "html" in (response.header("content-type") or ""):
            raise JenkinsUnavailable(
                f"Jenkins answered {where} with an HTML page instead of JSON (a login page or a "
                "proxy?); check JENKINS_URL, JENKINS_USER and JENKINS_API_TOKEN"
            )
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Retryable(f"Jenkins sent malformed JSON on {where}") from None

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s; retrying (attempt %d)", exc, state.attempt_number + 1)
