"""Build the vcrpy cassettes in tests/cassettes/ from recorded Jenkins answers.

Source: the devlake captures in tests/fixtures/jenkins/devlake/ (see PROVENANCE.md), each row a
real build object with the URL of the request that fetched it. For every job the cassette holds
one interaction: the request exactly as the agent's client makes it (its own `tree=` query on
`builds`), answered with that job's recorded builds, newest first, filtered by that same `tree=`
the way Jenkins filters (tests/jenkins_sim.tree_filter). No value is changed; only fields the
agent did not ask for are dropped. The recorded host and path (a `/view/all/` prefix included)
are kept, and no credentials are stored.

Run `python tests/make_cassettes.py` to regenerate; test_cassettes.py checks the files match.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from jenkins_sim import tree_filter  # noqa: E402

from agent.jenkins.endpoints import builds_tree, job_path  # noqa: E402

DEVLAKE = HERE / "fixtures" / "jenkins" / "devlake"
CASSETTES = HERE / "cassettes"
PAGE = 50


def _multibranch_jobs() -> tuple[str, dict[tuple[str, ...], list[dict[str, Any]]]]:
    rows = json.loads(
        (DEVLAKE / "_raw_jenkins_api_builds_multibranch.csv.extracted.json").read_text()
    )
    jobs: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    base = ""
    for row in rows:
        url = row["input"]["URL"]
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}/view/all/"
        jobs[tuple(row["input"]["FullName"].split("/"))].append(row["data"])
    return base, jobs


def _interaction(base: str, names: tuple[str, ...], builds: list[dict[str, Any]]) -> dict[str, Any]:
    tree = builds_tree(0, PAGE)
    newest_first = sorted(builds, key=lambda b: b["number"], reverse=True)
    body = tree_filter(
        {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob", "builds": newest_first}, tree
    )
    return {
        "request": {
            "body": None,
            "headers": {"Accept": ["application/json"]},
            "method": "GET",
            "uri": f"{base}{job_path(names)}api/json?{urlencode({'tree': tree})}",
        },
        "response": {
            "status": {"code": 200, "message": "OK"},
            "headers": {
                "Content-Type": ["application/json;charset=utf-8"],
                "X-Jenkins": ["2.440.1"],
            },
            "body": {"string": json.dumps(body, ensure_ascii=False, sort_keys=True)},
        },
    }


def render() -> dict[str, str]:
    """Cassette file name -> YAML text."""
    base, jobs = _multibranch_jobs()
    interactions = [_interaction(base, names, builds) for names, builds in sorted(jobs.items())]
    text = yaml.safe_dump(
        {"interactions": interactions, "version": 1}, allow_unicode=True, width=100
    )
    return {"devlake_multibranch_builds.yaml": text}


def main() -> None:
    CASSETTES.mkdir(exist_ok=True)
    for name, text in render().items():
        (CASSETTES / name).write_text(text, encoding="utf-8")
        print(f"wrote {CASSETTES / name}")


if __name__ == "__main__":
    main()
