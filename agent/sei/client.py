"""Step 4 of the flow: the one client that talks to SEI, and the only place its paths live.

A build counts as delivered only when SEI answered as SEI answers: a 2xx with its JSON, or the
documented empty 202. Anything else says the endpoint is wrong and stops the run with every
build kept for the next one: an HTML page (a login portal, a proxy, a wrong base URL), a
redirect, a 404 or 405. 429, 5xx, 408, timeouts and dropped connections are retried with
exponential backoff, honouring Retry-After. 401/403 stop everything: no later build can succeed
with the same key. Any other 4xx is this build's problem: it becomes a dead letter carrying the
server's message, and the others go on.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import RetryCallState

from agent.config import SeiSettings
from agent.http.answer import Answer
from agent.http.client import Http
from agent.http.errors import (
    Redirected,
    Retryable,
    TooLarge,
    TransportFailure,
    Undecodable,
    Unreachable,
)
from agent.http.retry import retry_after, retry_policy
from agent.logs import Outage, redact

log = logging.getLogger(__name__)

CUSTOM_CICD = "/v1/custom-cicd"
PUSH_ARTIFACTS = "/v1/cicd/push_artifacts"
INSTANCES = "/v1/cicd/instances"
# Answers that say the base URL does not lead to SEI's API rather than that one build is wrong.
_WRONG_ENDPOINT = {404, 405, 410}
# SEI answers a POST in a few hundred bytes; more than this (or a body that inflates past it) is
# not SEI's answer, and is not read further.
ANSWER_MAX_BYTES = 1 << 20


class SeiRefused(Exception):
    """401/403: the API key is not accepted."""


class SeiUnavailable(Exception):
    """SEI could not be reached (`unreachable`), or kept failing after every retry. `proxy`
    names the proxy's setting when it is the proxy that could not be reached."""

    def __init__(self, message: str, unreachable: bool, proxy: str | None = None) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        self.proxy = proxy


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
        endpoint = settings.endpoint()
        self.base = endpoint.base
        self._settings = settings
        self._secrets = [endpoint.api_key.get_secret_value()]  # kept from what SEI echoes
        self._http = Http(
            self.base,
            settings,
            side="SEI",
            headers={
                "Authorization": f"ApiKey {endpoint.api_key.get_secret_value()}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            timeout=settings.timeout,
            connections=settings.concurrency,
            stop=stop,
            on_request=on_request,
        )
        self._count_lock = threading.Lock()
        self.requests = 0
        self._outage = Outage("SEI", log)
        self._retry = retry_policy(
            retries=settings.retries,
            first_wait=settings.retry_wait,
            max_wait=settings.retry_max_wait,
            retryable=Retryable,
            log_retry=self._log_retry,
            stop=stop,
        )

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self._outage.retrying(error, state.next_action.sleep if state.next_action else 0)

    def close(self) -> None:
        self._http.close()

    def send_build(self, payload: dict[str, Any]) -> Refusal | Answer:
        """POST one build to /v1/custom-cicd; an Answer means SEI accepted it."""
        return self._post(CUSTOM_CICD, payload)

    def push_artifacts(self, body: dict[str, Any]) -> Refusal | Answer:
        """POST a build's artifacts to /v1/cicd/push_artifacts."""
        return self._post(PUSH_ARTIFACTS, body)

    def check_key(self) -> Refusal | Answer:
        """POST `{}` to /v1/custom-cicd: SEI answers 400 naming a missing field when the key is
        accepted (and stores nothing), 401/403 when it is not."""
        return self._post(CUSTOM_CICD, {})

    def create_instance(self, name: str, url: str, integration_id: str) -> Refusal | Answer:
        """POST /v1/cicd/instances; SEI answers the new instance's id."""
        body = {"integration_id": integration_id, "name": name, "url": url, "type": "jenkins"}
        return self._post(INSTANCES, body)

    def where(self, path: str = CUSTOM_CICD) -> str:
        return f"{self.base}{path}"

    def _post(self, path: str, body: dict[str, Any]) -> Refusal | Answer:
        """Deliver `body`; an Answer means 2xx, a Refusal a 4xx for this body alone."""
        data = json.dumps(body, separators=(",", ":")).encode()
        try:
            answer: Refusal | Answer = self._retry(self._post_once, path, data)
            self._outage.answered()
            return answer
        except Retryable as exc:
            attempts = self._settings.retries + 1
            raise SeiUnavailable(
                f"{exc} (after {attempts} attempts)", exc.unreachable, exc.proxy
            ) from None

    def _post_once(self, path: str, data: bytes) -> Refusal | Answer:
        with self._count_lock:
            self.requests += 1
        where = f"{self.base}{path}"
        try:
            response = self._http.request("POST", path, body=data, limit=ANSWER_MAX_BYTES)
        except Unreachable as exc:
            blame = f"; check {exc.proxy}" if exc.proxy else ""
            raise Retryable(
                f"SEI cannot be reached at {where}: {exc}{blame}", unreachable=True, proxy=exc.proxy
            ) from None
        except TransportFailure as exc:
            raise Retryable(f"SEI connection failed on {where}: {exc}") from None
        except Redirected as exc:
            raise SeiUnavailable(f"{exc}; check SEI_BASE_URL", unreachable=True) from None
        except Undecodable as exc:
            raise SeiUnavailable(
                f"{where} answered unreadably ({exc}), not as SEI answers: the build is kept to "
                "be sent again; check SEI_BASE_URL and any proxy in between",
                unreachable=True,
            ) from None
        except TooLarge:
            raise SeiUnavailable(
                f"{where} answered with over {ANSWER_MAX_BYTES >> 10} KiB, not SEI's answer: the "
                "build is kept to be sent again; check SEI_BASE_URL and any proxy in between",
                unreachable=True,
            ) from None
        status = response.status
        if 200 <= status < 300:
            if not _from_sei(response):
                raise SeiUnavailable(
                    f"{where} answered HTTP {status} with {_kind(response)}, not SEI's JSON: "
                    "nothing was delivered; check SEI_BASE_URL (SEI's API base, such as "
                    "https://app.harness.io/gratis/sei/api) and any proxy in between",
                    unreachable=True,
                )
            return response
        if 300 <= status < 400 or status in _WRONG_ENDPOINT:
            raise SeiUnavailable(
                f"{where} answered HTTP {status}: that is not SEI's ingestion API; nothing was "
                "delivered; check SEI_BASE_URL",
                unreachable=True,
            )
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
        if status in (408, 429) or status >= 500:
            wait = retry_after(response.header("retry-after"))
            raise Retryable(f"SEI answered HTTP {status} on {where}", wait)
        # A 400 may echo the request's headers, the key among them: the message becomes a
        # dead letter that `state show` prints, so it is redacted like a log line.
        return Refusal(status=status, message=redact(_server_message(response), self._secrets))


def _from_sei(response: Answer) -> bool:
    """SEI's own answer: its JSON, or the documented empty 202. A page or text from something
    between us and SEI (a login portal, a proxy, a web server at the wrong base URL) is not."""
    if response.status == 202 and not response.body.strip():
        return True
    media = (response.header("content-type") or "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        return False
    try:
        response.json()
    except ValueError:
        return False
    return True


def _kind(response: Answer) -> str:
    media = (response.header("content-type") or "").split(";")[0].strip() or "no content type"
    first = response.body[:60].decode("utf-8", "replace").strip().splitlines()
    return f"{media} ({first[0]!r}...)" if first else media


def _server_message(response: Answer) -> str:
    try:
        data = response.json()
    except ValueError:
        text = response.body.decode("utf-8", "replace").strip()
        return text[:500] or f"HTTP {response.status}"
    if isinstance(data, dict):
        for key in ("payload", "message", "error"):
            if isinstance(said := data.get(key), str):
                return said
    return str(data)[:500]
