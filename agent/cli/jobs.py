"""`jobs`: the jobs the settings select, each with its name in SEI and what the state knows.

What a user asks before the first sync and when a job seems missing in SEI: is it read at all
(JENKINS_INCLUDE/EXCLUDE, --jobs), under which `job_full_name` does SEI show it (the naming
scheme in force, agent/jenkins/names.py), and what has been sent of it. One discovery, the same
as a sync's (one request for the whole tree up to JENKINS_FOLDER_DEPTH); nothing is sent and
the state file is only read, so it runs beside a running agent.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from agent import app
from agent.cli.controllers import label
from agent.cli.tables import table
from agent.config import Settings
from agent.config.models import PLACEHOLDER_GUID
from agent.jenkins.discover import discover, matches
from agent.jenkins.names import JobNaming
from agent.jenkins.types import Job
from agent.state import StateFile
from agent.state.records import JobState

# The kinds of job users know, by item class (the rest by the class's own name).
KINDS = {
    "hudson.model.FreeStyleProject": "freestyle",
    "org.jenkinsci.plugins.workflow.job.WorkflowJob": "pipeline",
    "hudson.maven.MavenModuleSet": "maven",
    "hudson.maven.MavenModule": "maven module",
    "hudson.matrix.MatrixProject": "matrix",
    "hudson.model.ExternalJob": "external",
}


def main(args: argparse.Namespace, controllers: list[Settings]) -> int:
    for settings in controllers:
        settings.require("jenkins.url")
    with StateFile(controllers[0].agent.state_file, read_only=True) as state:
        listings = [_listing(settings, state, args.jobs) for settings in controllers]
    if args.output == "json":
        print(json.dumps({"controllers": listings}, indent=2, ensure_ascii=False))
        return 0
    for listing in listings:
        if len(listings) > 1:
            print(f"controller {listing['controller']}")
        print("\n".join(_table(listing["jobs"], indent="  " if len(listings) > 1 else "")))
        selected, found, scheme = len(listing["jobs"]), listing["jobs_found"], listing["job_names"]
        print(f"{selected} of {found} jobs selected; names in SEI by AGENT_JOB_NAMES={scheme}")
    return 0


def _listing(settings: Settings, state: StateFile, globs: list[str] | None) -> dict[str, Any]:
    client = app.jenkins_client(settings)
    try:
        inventory = discover(client, settings.jenkins.folder_depth)
    finally:
        client.close()
    scheme = settings.agent.job_names
    naming = JobNaming.of(scheme, ((j.names, j.path_containers) for j in inventory.jobs))
    cfg = settings.jenkins
    selected = [
        job
        for job in inventory.jobs
        if matches(job.full_name, cfg.include, cfg.exclude)
        and matches(job.full_name, globs or [], [])
    ]
    guid = settings.sei.instance_guid
    known = guid is not None and guid != PLACEHOLDER_GUID and guid in state.controllers()
    tracked = state.jobs(guid) if known and guid is not None else {}
    return {
        "controller": label(settings),
        "instance_guid": guid if guid != PLACEHOLDER_GUID else None,
        "job_names": scheme,
        "jobs_found": len(inventory.jobs),
        "jobs": [
            _job(job, naming.full_name(job.names, job.path_containers), tracked.get(job.full_name))
            for job in sorted(selected, key=lambda j: j.full_name)
        ],
    }


def _job(job: Job, sei_name: str, known: JobState | None) -> dict[str, Any]:
    newest = None
    if job.last_build is not None:
        newest = {"number": job.last_build, "start_time": job.last_build_ts}
    return {
        "job": job.full_name,
        "sei_name": sei_name,
        "kind": _kind(job),
        "newest_build": newest,
        "tracked": known is not None,
        "builds_sent": known.sent.count() if known else 0,
        "pending": sorted(known.open) if known else [],
        "dead_letters": len(known.dead) if known else 0,
    }


def _kind(job: Job) -> str:
    if job.is_branch:
        return "branch"
    if job.is_module:
        return "maven module"
    if job.cls is None:
        return "job"
    return KINDS.get(job.cls, job.cls.rsplit(".", 1)[-1])


def _table(jobs: list[dict[str, Any]], indent: str) -> list[str]:
    rows = [
        [
            job["job"],
            job["sei_name"],
            job["kind"],
            _newest(job["newest_build"]),
            "yes" if job["tracked"] else "no",
            str(job["builds_sent"]),
            str(job["dead_letters"]) if job["dead_letters"] else "-",
        ]
        for job in jobs
    ]
    headers = ["JOB", "NAME IN SEI", "KIND", "NEWEST BUILD", "TRACKED", "SENT", "DEAD LETTERS"]
    return table(headers, rows, indent=indent)


def _newest(build: dict[str, Any] | None) -> str:
    if build is None:
        return "-"
    started = build["start_time"]
    if not isinstance(started, int):
        return f"#{build['number']}"
    try:
        when = datetime.fromtimestamp(started / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):  # a start time no calendar holds
        return f"#{build['number']}"
    return f"#{build['number']} ({when})"
