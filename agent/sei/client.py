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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, NoReturn

from agent.config import SeiSettings
from agent.http.answer import Answer
from agent.http.client import Http
from agent.http.errors import Retryable, TooLarge, Undecodable
from agent.http.side import Action, SideClient
from agent.logs import redact
from agent.sei.payload import CicdPayload
from agent.sei.statuses import STATUSES

log = logging.getLogger(__name__)

CUSTOM_CICD = "/v1/custom-cicd"
PUSH_ARTIFACTS = "/v1/cicd/push_artifacts"
INSTANCES = "/v1/cicd/instances"
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
class Accepted:
    """SEI took the body (2xx): its status, and its JSON (None for the documented empty 202)."""

    status: int
    said: Any = None


@dataclass(frozen=True)
class Refusal:
    """SEI refused this one payload (4xx): kept as a dead letter with the server's words."""

    status: int
    message: str


class SeiClient(SideClient):
    """Thread-safe: `concurrency` deliveries may share one client."""

    side = "SEI"
    url_setting = "SEI_BASE_URL"
    statuses = STATUSES
    errors: ClassVar[Mapping[Action, Callable[[str], Exception]]] = {
        Action.FATAL: partial(SeiUnavailable, unreachable=True),
        Action.REFUSED: SeiRefused,
    }

    def __init__(
        self,
        settings: SeiSettings,
        *,
        stop: threading.Event | None = None,
        on_request: Callable[[str, float], None] | None = None,
    ) -> None:
        """`stop` cuts retry waits short; `on_request(status, seconds)` sees every request."""
        endpoint = settings.endpoint()
        self._secrets = [endpoint.api_key.get_secret_value()]  # kept from what SEI echoes
        http = Http(
            endpoint.base,
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
        super().__init__(http, settings, log, stop)

    @property
    def requests(self) -> int:
        """POSTs made so far, retries included."""
        return self.counts.total()

    def send_build(self, payload: CicdPayload) -> Refusal | Accepted:
        """POST one build to /v1/custom-cicd."""
        return self._post(CUSTOM_CICD, payload.to_json())

    def push_artifacts(self, body: dict[str, Any]) -> Refusal | Accepted:
        """POST a build's artifacts to /v1/cicd/push_artifacts."""
        return self._post(PUSH_ARTIFACTS, body)

    def check_key(self) -> Refusal | Accepted:
        """POST `{}` to /v1/custom-cicd: SEI answers 400 naming a missing field when the key is
        accepted (and stores nothing), 401/403 when it is not."""
        return self._post(CUSTOM_CICD, {})

    def create_instance(self, name: str, url: str, integration_id: str) -> Refusal | Accepted:
        """POST /v1/cicd/instances; SEI answers the new instance's id."""
        body = {"integration_id": integration_id, "name": name, "url": url, "type": "jenkins"}
        return self._post(INSTANCES, body)

    def where(self, path: str = CUSTOM_CICD) -> str:
        return f"{self.base}{path}"

    def _post(self, path: str, body: dict[str, Any]) -> Refusal | Accepted:
        """Deliver `body`: Accepted on 2xx, a Refusal on a 4xx for this body alone."""
        data = json.dumps(body, separators=(",", ":")).encode()
        return self._retrying(self._post_once, path, data)

    def _exhausted(self, exc: Retryable) -> NoReturn:
        message = f"{exc} (after {self._attempts} attempts)"
        raise SeiUnavailable(message, exc.unreachable, exc.proxy) from None

    def _post_once(self, path: str, data: bytes) -> Refusal | Accepted:
        where = f"{self.base}{path}"
        try:
            response = self._request("POST", path, kind="post", body=data, limit=ANSWER_MAX_BYTES)
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
        if self._judge(response, where).action is Action.REJECTED:
            message = redact(_server_message(response), self._secrets)
            return Refusal(status=response.status, message=message)
        if response.status == 202 and not response.body.strip():
            return Accepted(202)  # the documented empty 202
        return Accepted(response.status, _sei_json(response, where))


def _sei_json(response: Answer, where: str) -> Any:
    """SEI's JSON; a page or text from something between us and SEI (a login portal, a proxy, a
    web server at the wrong base URL) is SeiUnavailable: nothing was delivered."""
    media = (response.header("content-type") or "").split(";")[0].strip().lower()
    try:
        if media == "application/json" or media.endswith("+json"):
            return response.json()
    except ValueError:
        pass
    raise SeiUnavailable(
        f"{where} answered HTTP {response.status} with {_kind(response)}, not SEI's JSON: "
        "nothing was delivered; check SEI_BASE_URL (SEI's API base, such as "
        "https://app.harness.io/gratis/sei/api) and any proxy in between",
        unreachable=True,
    )


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
