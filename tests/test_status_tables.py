"""Each side's status table (agent/http/side.py) says what an answer's status means: the rows
the clients' docstrings promise, looked up by status, then by class, then the default."""

from __future__ import annotations

import pytest

from agent.http.side import Action
from agent.jenkins.statuses import STATUSES as JENKINS
from agent.sei.statuses import STATUSES as SEI


@pytest.mark.parametrize(
    ("status", "jenkins", "sei"),
    [
        (200, Action.OK, Action.OK),
        (202, Action.OK, Action.OK),
        (302, Action.FAILED, Action.FATAL),  # a redirect httpx did not follow (no Location)
        (400, Action.FAILED, Action.REJECTED),  # SEI: this build's dead letter
        (401, Action.REFUSED, Action.REFUSED),
        (403, Action.REFUSED, Action.REFUSED),
        (404, Action.GONE, Action.FATAL),  # SEI: the base URL is not SEI's API
        (405, Action.FAILED, Action.FATAL),
        (407, Action.FATAL, Action.FATAL),
        (408, Action.FAILED, Action.RETRY),
        (410, Action.FAILED, Action.FATAL),
        (422, Action.FAILED, Action.REJECTED),
        (429, Action.RETRY, Action.RETRY),
        (500, Action.RETRY, Action.RETRY),
        (503, Action.RETRY, Action.RETRY),
        (599, Action.RETRY, Action.RETRY),
        (999, Action.RETRY, Action.RETRY),  # past 5xx counts as 5xx, as it did before the tables
    ],
)
def test_each_status_means_what_the_clients_promise(
    status: int, jenkins: Action, sei: Action
) -> None:
    assert JENKINS[status].action is jenkins
    assert SEI[status].action is sei


def test_every_message_names_the_status_or_the_url() -> None:
    for table in (JENKINS, SEI):
        for status in (302, 401, 404, 407, 429, 503):
            row = table[status]
            if row.message:
                said = row.message.format(status=status, where="http://x/p")
                assert str(status) in said or "http://x/p" in said
