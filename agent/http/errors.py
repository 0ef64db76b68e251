"""The HTTP layer's vocabulary of failures: what each side's client turns into its own errors."""

from __future__ import annotations


class Unreachable(Exception):
    """No connection could be made (refused, unknown host, TLS failure, proxy failure);
    `proxy` names the proxy's setting when it is the proxy that failed."""

    def __init__(self, message: str, proxy: str | None = None) -> None:
        super().__init__(message)
        self.proxy = proxy


class TransportFailure(Exception):
    """The connection was made but the exchange failed (timeout, reset); worth retrying."""


class Retryable(Exception):
    """A failed attempt worth another (connection failure, 429, 5xx, timeout): what each side's
    retry policy retries. `retry_after` is the server's Retry-After; `unreachable` says no
    connection was made, and `proxy` names the proxy's setting when the proxy failed."""

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        unreachable: bool = False,
        proxy: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.unreachable = unreachable
        self.proxy = proxy


class TooLarge(Exception):
    """The answer is longer than the caller may hold in memory (`limit`), or than is left of
    what all answers being read may hold together (`together`); it was not read to its end."""

    def __init__(self, limit: int, together: bool = False) -> None:
        what = "the answers being read at once are" if together else "the answer is"
        super().__init__(f"{what} over {limit} bytes")
        self.limit = limit
        self.together = together


class Redirected(Exception):
    """A redirect the client will not follow: to another origin, to plain http, or of a POST.
    `location` is shown without its query."""

    def __init__(self, message: str, location: str) -> None:
        super().__init__(message)
        self.location = location


class Undecodable(Exception):
    """The answer is in a content coding the agent does not read: not gzip, or several."""


class Elsewhere(Exception):
    """The host a redirect led to (`elsewhere`) gave no answer it can read: no connection or a
    timeout (`retryable`), or one too large or in a coding other than gzip."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def reason(exc: Exception) -> str:
    """A failure in one line of at most 200 characters."""
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
