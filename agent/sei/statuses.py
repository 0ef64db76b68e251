"""What each HTTP status SEI answers means for a delivery (agent/http/side.py's Action), and
the message it makes; agent/sei/client.py raises its own error for each, and keeps a rejected
build's words as its dead letter."""

from __future__ import annotations

from agent.http.side import Action, Status, StatusTable

# Answers that say the base URL does not lead to SEI's API rather than that one build is wrong.
_WRONG_ENDPOINT = Status(
    Action.FATAL,
    "{where} answered HTTP {status}: that is not SEI's ingestion API; nothing was delivered; "
    "check SEI_BASE_URL",
)
_REFUSED = Status(
    Action.REFUSED,
    "SEI refused the API key (HTTP {status} on {where}); check SEI_API_KEY and SEI_BASE_URL / "
    "SEI_ENVIRONMENT",
)
_RETRY = Status(Action.RETRY, "SEI answered HTTP {status} on {where}")
STATUSES = StatusTable(
    {
        "2xx": Status(Action.OK),
        "3xx": _WRONG_ENDPOINT,
        404: _WRONG_ENDPOINT,
        405: _WRONG_ENDPOINT,
        410: _WRONG_ENDPOINT,
        401: _REFUSED,
        403: _REFUSED,
        407: Status(
            Action.FATAL,
            "the proxy refused us (HTTP 407 on {where}); check the credentials in SEI_PROXY or "
            "HTTPS_PROXY",
        ),
        408: _RETRY,
        429: _RETRY,
        "5xx": _RETRY,
    },
    # A 400 may echo the request's headers, the key among them: the message becomes a dead
    # letter that `state show` prints, so it is redacted like a log line.
    otherwise=Status(Action.REJECTED),
)
