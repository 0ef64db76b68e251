"""Recorded real answers replayed through the real HTTP client, reader and mapping (vcrpy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import vcr
from make_cassettes import CASSETTES, DEVLAKE, render

from agent.config import JenkinsSettings
from agent.jenkins.builds import read_builds
from agent.jenkins.client import JenkinsClient
from agent.jenkins.types import Job, Window
from agent.mapping import MapContext, map_build

MULTIBRANCH = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
BASE = "https://1457-62-195-68-26.ngrok-free.app/view/all/"
GUID = "666ba79b-3f3d-4236-ac04-4686ce526705"
replay = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="none",
    filter_headers=["authorization"],
    match_on=["method", "scheme", "host", "port", "path", "query"],
)


def recorded_rows() -> list[dict[str, Any]]:
    path = DEVLAKE / "_raw_jenkins_api_builds_multibranch.csv.extracted.json"
    rows: list[dict[str, Any]] = json.loads(path.read_text())
    return rows


def test_cassettes_are_what_the_generator_makes() -> None:
    for name, text in render().items():
        assert (CASSETTES / name).read_text(encoding="utf-8") == text, f"regenerate {name}"


def test_cassettes_hold_no_credentials() -> None:
    for path in Path(CASSETTES).glob("*.yaml"):
        text = path.read_text().lower()
        assert "authorization" not in text
        assert "apikey" not in text


def test_recorded_multibranch_builds_through_the_real_client() -> None:
    rows = recorded_rows()
    jobs = sorted({tuple(r["input"]["FullName"].split("/")) for r in rows})
    settings = JenkinsSettings(url=BASE, user="reader", api_token="t0ken-not-recorded")
    ctx = MapContext(instance_guid=GUID, instance_name="ngrok", instance_url=BASE)
    client = JenkinsClient(settings)
    payloads = {}
    with replay.use_cassette("devlake_multibranch_builds.yaml") as cassette:
        for names in jobs:
            job = Job(names=names, containers=(MULTIBRANCH,))
            for build in read_builds(client, job, Window(since_ms=0), page_size=50):
                payload = map_build(build, job, ctx).to_json()
                payloads[(job.full_name, payload["build_number"])] = payload
        assert cassette.all_played
    assert client.requests["builds"] == len(jobs) == 4  # one page per job, never one per build

    assert len(payloads) == len(rows) == 15
    for row in rows:
        data = row["data"]
        payload = payloads[(row["input"]["FullName"], data["number"])]
        assert payload["start_time"] == data["timestamp"]
        assert payload["duration"] == data["duration"]
        assert payload["result"] == data["result"]
        assert payload["pipeline"] == "devlake-jenkins"
        assert payload["branch_name"] == row["input"]["Name"]
        assert payload["web_url"] == row["input"]["URL"] + f"{data['number']}/"
        revisions = [
            a["lastBuiltRevision"]["SHA1"] for a in data["actions"] if "lastBuiltRevision" in a
        ]
        assert payload["scm_commit_ids"] == revisions
        causes = [
            c["_class"].rsplit(".", 1)[-1]
            for a in data["actions"]
            if a.get("_class") == "hudson.model.CauseAction"
            for c in a["causes"]
        ]
        assert causes  # every recorded build says what started it
        assert [t["type"] for t in payload["trigger_chain"]] == causes
