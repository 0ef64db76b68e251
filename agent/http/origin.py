"""Same-origin redirects, enforced by httpx event hooks while httpx follows them itself.

A GET follows redirects to the same origin (scheme, host and port; or from http to https on the
default ports: a controller that moves to https or adds a slash), never to another: that is an
error naming the Location, so credentials never go there. A POST follows none. A GET that asks
for it (`elsewhere`, an archived artifact) may follow a redirect to another host, such as S3
holding the artifacts (Artifact Manager on S3: its presigned URL carries its own signature): it
is fetched there without the credentials. Messages name a URL without its query, which holds a
presigned URL's signature.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from agent.http.body import RedirectBody
from agent.http.errors import Redirected

log = logging.getLogger(__name__)
MAX_REDIRECTS = 5
EXCHANGE = "jenkins_sei_agent.exchange"  # request extension: the exchange's Exchange, which
# httpx hands on to each redirect's request


@dataclass
class Exchange:
    """What the hooks know of one exchange: whether it may leave the origin, redirects so far."""

    elsewhere: bool = False
    redirects: int = 0


def bare(url: str) -> str:
    """A URL as messages show it: without credentials, query or fragment (a presigned URL's
    query is its signature)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "") + parts.path


def shown(url: str) -> str:
    """A server's or proxy's URL without the credentials it may hold, nor its path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def origin_of(url: httpx.URL) -> tuple[str, str, int]:
    """Scheme, host and port, the port given or the scheme's default."""
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, url.host.lower(), port


def same_origin(origin: tuple[str, str, int], target: httpx.URL) -> bool:
    """Whether credentials for `origin` may follow a redirect to `target`: the same scheme,
    host and port, or the same host moved from http on port 80 to https on 443."""
    to = origin_of(target)
    return to == origin or (origin[::2] == ("http", 80) and to == ("https", origin[1], 443))


class SameOrigin:
    """The hooks of one side's client: `request` strips credentials from a request that leaves
    the origin; `response` refuses a redirect that may not be followed (Redirected), and reads
    at most REDIRECT_MAX bytes of one that may."""

    def __init__(self, base: str, side: str) -> None:
        self.base = base
        self.origin = origin_of(httpx.URL(base))
        self._side = side
        self._told = False

    def request(self, request: httpx.Request) -> None:
        if not same_origin(self.origin, request.url):
            for header in ("authorization", "cookie"):
                request.headers.pop(header, None)

    def response(self, response: httpx.Response) -> None:
        if not response.has_redirect_location:
            return
        came_from = response.request.url
        target = came_from.join(response.headers["location"])
        exchange = response.request.extensions.get(EXCHANGE) or Exchange()
        why = self._refusal(response.request.method, came_from, target, exchange)
        if why is not None:
            location = bare(response.headers.get("location", str(target)))
            raise Redirected(
                f"{self._side} answered HTTP {response.status_code} on {bare(str(came_from))}, "
                f"redirecting to {location}; not followed: {why}",
                location,
            )
        exchange.redirects += 1
        response.headers.pop("content-encoding", None)  # the body is dropped, never inflated
        response.stream = RedirectBody(response.stream)  # type: ignore[arg-type]
        if not self._told and target.host == self.origin[1]:
            self._told = True
            moved = self._moved_base(came_from, target)
            log.warning(
                "%s redirected %s to %s; every request costs one more until %s_URL is set to %s",
                self._side,
                self.base,
                moved,
                self._side.upper(),
                moved,
            )

    def _refusal(
        self, method: str, came_from: httpx.URL, target: httpx.URL, exchange: Exchange
    ) -> str | None:
        """Why a redirect may not be followed, or None."""
        ours = same_origin(self.origin, target)
        host = self.origin[1]
        if method != "GET":
            return f"a {method} is not redirected"
        if came_from.scheme == "https" and target.scheme != "https":
            return "it leaves https"
        if not ours and target.host == host:
            return f"{shown(str(target))} is not {shown(self.base)}: credentials go nowhere else"
        if not ours and not exchange.elsewhere:
            return f"{target.host} is not {host}: credentials go to no other host"
        if exchange.redirects >= MAX_REDIRECTS:
            return f"more than {MAX_REDIRECTS} redirects"
        return None

    def _moved_base(self, came_from: httpx.URL, target: httpx.URL) -> str:
        """The address to configure instead: the target less the request's own path below the
        base, and never its query (a listing's tree= runs to a thousand characters)."""
        base_path = urlsplit(self.base).path
        below = came_from.path[len(base_path) :] if came_from.path.startswith(base_path) else ""
        moved = str(target.copy_with(query=None))
        return moved[: len(moved) - len(below)] if below and moved.endswith(below) else moved
