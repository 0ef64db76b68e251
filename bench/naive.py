"""The naive collector the agent is measured against, written the obvious way with python-jenkins.

List every job, read each build with `get_build_info`, read each pipeline run's stages and each
stage's steps from wfapi, POST one payload per build, all in sequence. It maps with the agent's
own pure mapping, so both send the same payloads and only the reading and sending differ.

Usage: python bench/naive.py JENKINS_URL SEI_URL
"""

from __future__ import annotations

import sys
from pathlib import Path

import jenkins
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import GUID, SEI_KEY, TOKEN, USER

from agent.jenkins.stages.wfapi import Wfapi, WfapiAnswers
from agent.jenkins.types import BuildDetails, Job
from agent.mapping import MapContext, map_build


def main(jenkins_url: str, sei_url: str) -> int:
    server = jenkins.Jenkins(jenkins_url, username=USER, password=TOKEN, timeout=30)
    ctx = MapContext(instance_guid=GUID, instance_name="bench", instance_url=jenkins_url)
    session = requests.Session()
    headers = {"Authorization": f"ApiKey {SEI_KEY}", "Content-Type": "application/json"}
    sent = 0
    for entry in server.get_all_jobs():
        if "jobs" in entry:  # a folder
            continue
        full_name = entry["fullname"]
        info = server.get_job_info(full_name)
        pipeline = entry["_class"].endswith("WorkflowJob")
        for ref in info["builds"]:
            build = server.get_build_info(full_name, ref["number"])
            details = BuildDetails()
            if pipeline:
                base = build["url"]
                describe = server.jenkins_request(
                    requests.Request("GET", base + "wfapi/describe")
                ).json()
                children = {}
                for stage in describe["stages"]:
                    url = f"{base}execution/node/{stage['id']}/wfapi/describe"
                    children[stage["id"]] = server.jenkins_request(
                        requests.Request("GET", url)
                    ).json()
                answers = WfapiAnswers(describe["stages"], describes=children)
                details = BuildDetails(stages=Wfapi.normalize(answers))
            job = Job(names=tuple(full_name.split("/")), cls=entry["_class"])
            payload = map_build(build, job, ctx, details).to_json()
            response = session.post(f"{sei_url}/v1/custom-cicd", json=payload, headers=headers)
            response.raise_for_status()
            sent += 1
    print(sent)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
