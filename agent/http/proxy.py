"""TLS and proxies as the settings say: which store verifies a server, which proxy is in the way
and the setting it comes from, for the messages that name it.

httpx reads the environment's proxies itself (`trust_env`: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY
unless NO_PROXY exempts the host); the side's own setting (JENKINS_PROXY, SEI_PROXY) comes
first. When a proxy is in the way, a connection that fails short of TLS failed at the proxy: the
message names the proxy (never its credentials) and the setting it came from.
"""

from __future__ import annotations

import functools
import logging
import ssl
import urllib.request
from urllib.parse import urlsplit

import httpx

from agent.config import TransportSettings
from agent.http.errors import Unreachable, reason
from agent.http.origin import shown

log = logging.getLogger(__name__)


def proxy_for(url: str, configured: str | None) -> str | None:
    """The explicit proxy, else the environment's for this URL unless NO_PROXY exempts it:
    the one messages name (the environment read by the standard library, as httpx reads it)."""
    if configured:
        return configured
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    found = urllib.request.getproxies()
    return found.get(parts.scheme) or found.get("all")


def proxy_setting(url: str, side: str, configured: str | None) -> str:
    """The setting the proxy of `url` comes from, as a message names it."""
    if configured:
        return f"{side.upper()}_PROXY"
    scheme = urlsplit(url).scheme
    return f"{scheme.upper()}_PROXY" if scheme in urllib.request.getproxies() else "ALL_PROXY"


def bad_proxy_setting(url: str, side: str, configured: str | None) -> str:
    """The setting of a proxy httpx cannot use: the side's own, else the first of the
    environment's that is no proxy URL (httpx reads them all, whatever the URL's scheme)."""
    if not configured:
        for scheme, proxy in urllib.request.getproxies().items():
            if scheme not in ("http", "https", "all"):
                continue
            try:
                httpx.Proxy(proxy if "://" in proxy else f"http://{proxy}")
            except (ValueError, httpx.InvalidURL):
                return f"{scheme.upper()}_PROXY"
    return proxy_setting(url, side, configured)


class Proxied:
    """How one client's messages name its proxy: never with its credentials, always with its
    setting; None when the client goes straight to its server."""

    def __init__(self, base: str, side: str, configured: str | None) -> None:
        proxy = proxy_for(base, configured)
        self.shown = shown(proxy) if proxy else None
        self.setting = proxy_setting(base, side, configured)

    def unreachable(self, exc: httpx.TransportError) -> Unreachable:
        """No connection: the proxy's fault when it is one and the failure is not TLS (which
        only the server past the proxy speaks)."""
        if self.shown is None or _tls_failure(exc):
            return Unreachable(reason(exc))
        what = "answered" if isinstance(exc, httpx.ProxyError) else "cannot be reached:"
        return Unreachable(
            f"the proxy {self.shown} ({self.setting}) {what} {reason(exc)}", self.setting
        )


def _tls_failure(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, ssl.SSLError):
            return True
        exc = exc.__cause__
    return False


def tls(base: str, settings: TransportSettings, side: str) -> ssl.SSLContext:
    """The system store or the configured bundle; no verification only if asked, loudly."""
    if settings.insecure:
        if urlsplit(base).scheme != "https":
            log.warning("%s_INSECURE=true has no effect: %s is plain http", side.upper(), base)
        else:
            log.warning(
                "TLS certificates of %s are NOT verified (%s_INSECURE=true); anyone on the path "
                "can read the credentials",
                side,
                side.upper(),
            )
    return _context(str(settings.ca_bundle) if settings.ca_bundle else None, settings.insecure)


@functools.cache
def _context(cafile: str | None, insecure: bool) -> ssl.SSLContext:
    """One context per trust setting and process: loading a store costs about 0.1 s, and a
    context serves any number of connections and threads."""
    context = ssl.create_default_context(cafile=cafile)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
