"""Reads Jenkins JSON over HTTP: auth, retries, and errors a user can act on.

URLs are always built from the configured base URL, never from the `url` fields Jenkins returns,
whose host is whatever the controller's root-URL setting says (often wrong behind a proxy).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from agent import __version__
from agent.config import JenkinsSettings

log = logging.getLogger(__name__)


class JenkinsError(Exception):
    """A read failed after retries; the job it belongs to is retried next run."""


class JenkinsNotFound(JenkinsError):
    """404: the item or build is gone (deleted, or removed by log rotation)."""


class JenkinsUnavailable(JenkinsError):
    """Jenkins cannot be reached or refuses the credentials: nothing can be read at all."""


class _Retryable(JenkinsError):
    pass


class JenkinsClient:
    def __init__(
        self,
        settings: JenkinsSettings,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        assert settings.url is not None
        self.base = settings.url.rstrip("/") + "/"
        auth = None
        if settings.user and settings.api_token:
            auth = httpx.BasicAuth(settings.user, settings.api_token.get_secret_value())
        self._http = httpx.Client(
            base_url=self.base,
            auth=auth,
            timeout=settings.timeout,
            headers={
                "Accept": "application/json",
                "User-Agent": f"jenkins-sei-agent/{__version__}",
            },
            transport=transport,
            follow_redirects=False,
        )
        self._attempts = settings.retries + 1
        self._retry_wait = settings.retry_wait
        self.requests: Counter[str] = Counter()

    def close(self) -> None:
        self._http.close()

    def get_json(self, path: str, tree: str | None, *, kind: str) -> Any:
        """GET `<path>api/json?tree=...`; `kind` labels the request in the counters."""
        params = {"tree": tree} if tree else None
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._retry_wait, max=30),
            retry=retry_if_exception_type(_Retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._get_once, f"{path}api/json", params, kind)
        except _Retryable as exc:
            raise JenkinsError(str(exc)) from None

    def _get_once(self, url: str, params: dict[str, str] | None, kind: str) -> Any:
        self.requests[kind] += 1
        where = f"{self.base}{url}"
        try:
            response = self._http.get(url, params=params)
        except httpx.ConnectError as exc:
            raise JenkinsUnavailable(
                f"Jenkins at {self.base} cannot be reached ({_reason(exc)}); check JENKINS_URL"
            ) from None
        except httpx.TimeoutException:
            raise _Retryable(f"Jenkins timed out on {where}") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"Jenkins connection failed on {where}: {_reason(exc)}") from None
        status = response.status_code
        if status in (401, 403):
            raise JenkinsUnavailable(
                f"Jenkins refused the credentials (HTTP {status} on {where}); "
                "check JENKINS_USER and JENKINS_API_TOKEN and that the user may read jobs"
            )
        if status == 404:
            raise JenkinsNotFound(f"not found: {where}")
        if status == 429 or status >= 500:
            raise _Retryable(f"Jenkins answered HTTP {status} on {where}")
        if status >= 300:
            raise JenkinsError(f"Jenkins answered HTTP {status} on {where}")
        content_type = response.headers.get("content-type", "")
        if "html" in content_type:
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


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
