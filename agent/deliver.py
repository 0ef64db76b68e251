"""Step 4 of the flow: POST one payload to SEI and say what became of it.

202 (any 2xx) is delivered. 429, 5xx, timeouts and dropped connections are retried with
exponential backoff, honouring Retry-After. 401/403 stop everything: no later build can succeed
with the same key. Any other 4xx is this build's problem: it becomes a dead letter carrying the
server's message, and the others go on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import RetryCallState, stop_when_event_set

from agent.config import SeiSettings
from agent.transport import (
    Answer,
    Http,
    Redirected,
    TransportFailure,
    Unreachable,
    retry_after,
    retry_policy,
)

log = logging.getLogger(__name__)


class SeiRefused(Exception):
    """401/403: the API key is not accepted."""


class SeiUnavailable(Exception):
    """SEI could not be reached (`unreachable`), or kept failing after every retry."""

    def __init__(self, message: str, unreachable: bool) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class _Retry(Exception):
    def __init__(
        self, message: str, retry_after: float | None = None, unreachable: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.unreachable = unreachable


@dataclass(frozen=True)
class Refusal:
    """SEI refused this one payload (4xx): kept as a dead letter with the server's words."""

    status: int
    message: str


class SeiClient:
    """Thread-safe: `concurrency` deliveries may share one client."""

    def __init__(
        self,
        settings: SeiSettings,
        *,
        stop: threading.Event | None = None,
        on_request: Callable[[str, float], None] | None = None,
    ) -> None:
        """`stop` cuts retry waits short; `on_request(status, seconds)` sees every request."""
        assert settings.api_base and settings.api_key
        self.base = settings.api_base
        self._settings = settings
        self._http = Http(
            self.base,
            settings,
            side="SEI",
            headers={
                "Authorization": f"ApiKey {settings.api_key.get_secret_value()}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            timeout=settings.timeout,
            connections=settings.concurrency,
            on_request=on_request,
        )
        self._count_lock = threading.Lock()
        self.requests = 0
        self._stop = stop
        self._retry = retry_policy(
            retries=settings.retries,
            first_wait=settings.retry_wait,
            max_wait=settings.retry_max_wait,
            retryable=_Retry,
            log_retry=_log_retry,
            # asked to stop: one more try at most, then give up
            stop=stop_when_event_set(stop) if stop is not None else None,
            sleep=lambda seconds: self._sleep(seconds),
        )

    def close(self) -> None:
        self._http.close()

    def post(self, path: str, body: dict[str, Any]) -> Refusal | Answer:
        """Deliver `body`; an Answer means 2xx, a Refusal a 4xx for this body alone."""
        data = json.dumps(body, separators=(",", ":")).encode()
        try:
            return self._retry(self._post_once, path, data)  # type: ignore[no-any-return]
        except _Retry as exc:
            attempts = self._settings.retries + 1
            raise SeiUnavailable(f"{exc} (after {attempts} attempts)", exc.unreachable) from None

    def _post_once(self, path: str, data: bytes) -> Refusal | Answer:
        with self._count_lock:
            self.requests += 1
        where = f"{self.base}{path}"
        try:
            response = self._http.request("POST", path, body=data)
        except Unreachable as exc:
            raise _Retry(f"SEI cannot be reached at {where}: {exc}", unreachable=True) from None
        except TransportFailure as exc:
            raise _Retry(f"SEI connection failed on {where}: {exc}") from None
        except Redirected as exc:
            raise SeiUnavailable(f"{exc}; check SEI_BASE_URL", unreachable=True) from None
        status = response.status
        if 200 <= status < 300:
            return response
        if status in (401, 403):
            raise SeiRefused(
                f"SEI refused the API key (HTTP {status} on {where}); check SEI_API_KEY and "
                "SEI_BASE_URL / SEI_ENVIRONMENT"
            )
        if status == 407:
            raise SeiUnavailable(
                f"the proxy refused us (HTTP 407 on {where}); check the credentials in SEI_PROXY "
                "or HTTPS_PROXY",
                unreachable=True,
            )
        if status == 429 or status >= 500:
            wait = retry_after(response.header("retry-after"))
            raise _Retry(f"SEI answered HTTP {status} on {where}", wait)
        return Refusal(status=status, message=_server_message(response))

    def _sleep(self, seconds: float) -> None:
        """Wait between retries; a stop ends the wait at once."""
        if self._stop is None:
            time.sleep(seconds)
        else:
            self._stop.wait(seconds)


def _server_message(response: Answer) -> str:
    try:
        data = response.json()
    except ValueError:
        text = response.body.decode("utf-8", "replace").strip()
        return text[:500] or f"HTTP {response.status}"
    if isinstance(data, dict):
        for key in ("payload", "message", "error"):
            if isinstance(data.get(key), str):
                return data[key]
    return str(data)[:500]


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0
    log.warning("%s; retrying in %.1fs", exc, wait)
