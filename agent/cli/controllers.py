"""Serving several controllers in one run: each in turn, with its own instance GUID and so its
own section of the state file; the SEI side and every other setting they share."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import fields

from agent.config import Settings
from agent.jenkins.client import JenkinsError
from agent.pipeline import Report

log = logging.getLogger(__name__)


def label(settings: Settings) -> str:
    """How messages name a controller: its URL, and its satellite.yml integration if any."""
    url = settings.jenkins.url or "(no URL)"
    where = settings.integration
    return f"{url} (integration {where.id})" if where is not None and where.id else url


def for_each(controllers: list[Settings], work: Callable[[Settings], Report]) -> Report:
    """Run `work` for every controller and add the reports up.

    One controller that cannot be reached or refuses the credentials does not keep the others
    from being served; its error is raised once they were (exit 3). SEI being down stops the
    run, as it would for one controller: the same SEI serves them all.
    """
    total = Report()
    unreachable: JenkinsError | None = None
    for settings in controllers:
        try:
            report = work(settings)
        except JenkinsError as exc:
            if len(controllers) == 1:
                raise
            log.error("%s: %s; the other controllers go on", label(settings), exc)
            unreachable = unreachable or exc
            continue
        if len(controllers) > 1:
            log.info("%s: %s", label(settings), report.summary())
        _add(total, report)
        if report.sei_down is not None:
            break
    if unreachable is not None:
        raise unreachable
    return total


def _add(total: Report, report: Report) -> None:
    """Counts add up; anything else (why SEI was down) is kept from the first report that has it."""
    for field in fields(Report):
        mine, theirs = getattr(total, field.name), getattr(report, field.name)
        if isinstance(theirs, int) and not isinstance(theirs, bool):
            setattr(total, field.name, mine + theirs)
        elif mine is None:
            setattr(total, field.name, theirs)
