"""Reads Jenkins JSON over HTTP: auth, retries, and errors a user can act on.

URLs are always built from the configured base URL, never from the `url` fields Jenkins returns,
whose host is whatever the controller's root-URL setting says (often wrong behind a proxy).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, NoReturn

import httpx

from agent.config import JenkinsSettings
from agent.http.answer import Answer
from agent.http.body import let_go
from agent.http.client import Http
from agent.http.errors import Elsewhere, Retryable, TooLarge, Undecodable, Unreachable
from agent.http.retry import http_date, retry_after
from agent.http.side import Action, SideClient
from agent.jenkins.pace import Pace
from agent.jenkins.statuses import STATUSES

log = logging.getLogger(__name__)
# The most of one answer held in memory. No answer the agent asks for comes near it (a listing
# page of 100 builds with big change sets is a few MB); a larger one, or one that inflates past
# it from gzip, is refused as it arrives rather than filling the agent's memory; a listing page
# over it is read again in smaller pages (agent/jenkins/builds.py). All answers being read at
# once by one client hold at most agent/http/body.py's HELD_MIB.
ANSWER_MAX_MIB = 32
# What a GET gives its caller: JSON, JSON and the Date it was answered at, a file (which may be
# stored on another host), the answer.
Expect = Literal["json", "dated", "file", "answer"]


class JenkinsError(Exception):
    """A read failed after retries; the job it belongs to is retried next run."""


class JenkinsNotFound(JenkinsError):
    """404: the item or build is gone (deleted, or removed by log rotation)."""


class JenkinsTooLarge(JenkinsError):
    """An answer is larger than its reader holds in memory: it was not read to its end."""


class JenkinsStorageError(JenkinsError):
    """An artifact Jenkins redirected to another host (S3 and its kin) could not be read
    there; the retries, each asking Jenkins for a fresh URL, are spent."""


class _StorageRetryable(Retryable):
    """A failure at the storage host worth another attempt (5xx, 429, no connection)."""


class JenkinsUnavailable(JenkinsError):
    """Jenkins cannot be reached or refuses the credentials: nothing can be read at all.
    `proxy` names the proxy's setting when it is the proxy that could not be reached."""

    def __init__(self, message: str, proxy: str | None = None) -> None:
        super().__init__(message)
        self.proxy = proxy


class JenkinsRefused(JenkinsUnavailable):
    """401/403: the credentials were refused, or lack a permission this request needs.

    Fatal like any JenkinsUnavailable; only a request that is optional (the plugin list) may
    catch it and do without.
    """


class JenkinsClient(SideClient):
    """Thread-safe: one pool of `concurrency` connections, an optional requests-per-second cap."""

    side = "Jenkins"
    url_setting = "JENKINS_URL"
    statuses = STATUSES
    errors: ClassVar[Mapping[Action, Callable[[str], Exception]]] = {
        Action.FATAL: JenkinsUnavailable,
        Action.REFUSED: JenkinsRefused,
        Action.GONE: JenkinsNotFound,
        Action.FAILED: JenkinsError,
    }

    def __init__(self, settings: JenkinsSettings, *, stop: threading.Event | None = None) -> None:
        """`stop` ends retry waits and a wait for JENKINS_RATE_LIMIT: the read then fails."""
        endpoint = settings.endpoint()
        auth = None
        if endpoint.auth is not None:
            user, token = endpoint.auth
            auth = httpx.BasicAuth(user, token.get_secret_value())
        http = Http(
            endpoint.base,
            settings,
            side="Jenkins",
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=settings.timeout,
            connections=settings.concurrency,
            stop=stop,
        )
        super().__init__(http, settings, log, stop)
        self._pace = (
            Pace(settings.rate_limit, settings.timeout, stop) if settings.rate_limit else None
        )

    @property
    def requests(self) -> Counter[str]:
        """Requests made so far, by kind (discover, builds, stages, ...), retries included."""
        return self.counts

    def request_counts(self) -> Counter[str]:
        return self.counts

    def get_json(self, path: str, tree: str | None = None, *, kind: str, shape: type = dict) -> Any:
        """GET `path` (relative to the base) as JSON of the given `shape` (dict or list).

        `kind` labels the request in the counters. An answer of another shape is an error, so
        that nothing downstream has to guess what an unexpected answer meant.
        """
        answer = self._read(path, {"tree": tree} if tree else None, kind, "json")
        return self._shaped(path, answer, shape)

    def get_json_dated(
        self, path: str, tree: str | None = None, *, kind: str
    ) -> tuple[dict[str, Any], int | None]:
        """A JSON object as get_json gives it, and the controller's clock when it answered:
        its Date header, in ms since the epoch (None without one)."""
        answer, date = self._read(path, {"tree": tree} if tree else None, kind, "dated")
        return self._shaped(path, answer, dict), date

    def _shaped(self, path: str, answer: Any, shape: type) -> Any:
        if not isinstance(answer, shape):
            raise JenkinsError(
                f"Jenkins answered {self.base}{path} with a JSON {type(answer).__name__}, "
                f"not a {shape.__name__}"
            )
        return answer

    def get_bytes(self, path: str, *, kind: str, limit: int) -> bytes:
        """GET a file, such as an archived artifact; JenkinsTooLarge, without reading the rest,
        once it passes `limit` bytes. Jenkins may redirect it to the host that stores the
        artifacts: it is read there without the credentials, and JenkinsStorageError says when
        it cannot be."""
        return self._read(path, None, kind, "file", limit)  # type: ignore[no-any-return]

    def get(self, path: str, *, kind: str) -> Answer:
        """GET `path` and give the answer whatever its status, after the retries of
        connection failures, 429 and 5xx (for `check`, which reads headers and statuses)."""
        return self._read(path, None, kind, "answer")  # type: ignore[no-any-return]

    def _read(
        self,
        path: str,
        params: dict[str, str] | None,
        kind: str,
        expect: Expect,
        limit: int | None = None,
    ) -> Any:
        """One read with its retries; at most `limit` bytes of answer (default ANSWER_MAX_MIB)."""
        limit = ANSWER_MAX_MIB << 20 if limit is None else limit
        return self._retrying(self._get_once, path, params, kind, expect, limit)

    def _exhausted(self, exc: Retryable) -> NoReturn:
        if isinstance(exc, _StorageRetryable):
            raise JenkinsStorageError(str(exc)) from None
        if exc.unreachable:
            raise JenkinsUnavailable(str(exc), exc.proxy) from None
        raise JenkinsError(str(exc)) from None

    def _unreachable(self, exc: Unreachable, where: str) -> str:
        return (
            f"Jenkins at {self.base} cannot be reached ({exc}); check {exc.proxy or 'JENKINS_URL'}"
        )

    def _get_once(
        self, path: str, params: dict[str, str] | None, kind: str, expect: Expect, limit: int
    ) -> Any:
        if self._pace is not None and (no_permit := self._pace.wait()):
            raise JenkinsError(no_permit)
        where = f"{self.base}{path}"
        try:
            response = self._request(
                "GET", path, kind=kind, params=params, limit=limit, elsewhere=expect == "file"
            )
        except Elsewhere as exc:
            if exc.retryable:
                raise _StorageRetryable(f"{where} is stored at {exc}") from None
            raise JenkinsStorageError(f"{where} is stored at {exc}") from None
        except TooLarge as exc:
            beside = " with the answers read beside it" if exc.together else ""
            raise JenkinsTooLarge(
                f"Jenkins answered {where} with over {exc.limit >> 20} MiB{beside}; not read "
                "further"
            ) from None
        except Undecodable as exc:
            raise JenkinsError(f"Jenkins answered {where} unreadably: {exc}") from None
        except httpx.InvalidURL as exc:  # a name or an id from an answer, too long for a URL
            raise JenkinsError(f"cannot ask Jenkins for {where[:200]}: {exc}") from None
        try:
            return self._judged(response, where, expect)
        except BaseException as exc:
            # A failure's traceback keeps the frames it passed, and with them this answer (up
            # to the cap), until the cyclic collector runs: 30 MiB of junk JSON, tried three
            # times, held 120 MiB a read. The answer is let go now.
            let_go(exc)
            del response
            raise

    def _judged(self, response: Answer, where: str, expect: Expect) -> Any:
        """What the answer gives the caller, or the failure it is."""
        status = response.status
        if response.elsewhere and not 200 <= status < 300:
            failed = f"{where} is stored at {response.elsewhere}, which answered HTTP {status}"
            if self.statuses[status].action is Action.RETRY:
                raise _StorageRetryable(failed, retry_after(response.header("retry-after")))
            raise JenkinsStorageError(failed)
        if expect == "answer":
            if self.statuses[status].action is Action.RETRY:
                self._judge(response, where)
            return response
        self._judge(response, where)
        if expect == "file":
            return response.body
        if "html" in (response.header("content-type") or ""):
            raise JenkinsUnavailable(
                f"Jenkins answered {where} with an HTML page instead of JSON (a login page or a "
                "proxy?); check JENKINS_URL, JENKINS_USER and JENKINS_API_TOKEN"
            )
        try:
            data = response.json()
        except ValueError:  # not JSON, not UTF-8, or nested deeper than any answer
            raise Retryable(f"Jenkins sent malformed JSON on {where}") from None
        if expect == "dated":
            date = http_date(response.header("date"))
            return data, None if date is None else int(date * 1000)
        return data
