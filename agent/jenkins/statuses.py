"""What each HTTP status Jenkins answers means for a read (agent/http/side.py's Action), and
the message it makes; agent/jenkins/client.py raises its own error for each."""

from __future__ import annotations

from agent.http.side import Action, Status, StatusTable

_RETRY = Status(Action.RETRY, "Jenkins answered HTTP {status} on {where}")
_REFUSED = Status(
    Action.REFUSED,
    "Jenkins refused the credentials (HTTP {status} on {where}); check JENKINS_USER and "
    "JENKINS_API_TOKEN and that the user may read jobs",
)
STATUSES = StatusTable(
    {
        "2xx": Status(Action.OK),
        429: _RETRY,
        "5xx": _RETRY,
        401: _REFUSED,
        403: _REFUSED,
        407: Status(
            Action.FATAL,
            "the proxy refused us (HTTP 407 on {where}); check the credentials in "
            "JENKINS_PROXY or HTTP_PROXY",
        ),
        404: Status(Action.GONE, "not found: {where}"),
    },
    otherwise=Status(Action.FAILED, "Jenkins answered HTTP {status} on {where}"),
)
