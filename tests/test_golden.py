"""Golden files: the complete payload of every recorded real pipeline run, reviewed as JSON.

Regenerate with `python -m pytest tests/test_golden.py --regen-golden` and review the diff.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.jenkins.names import JobNaming
from agent.jenkins.stages.blueocean import BlueOcean, BlueOceanAnswers
from agent.jenkins.stages.wfapi import Wfapi, WfapiAnswers
from agent.jenkins.types import BuildDetails, Job
from agent.mapping import MapContext, map_build, map_job_run

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures" / "jenkins"
GOLDEN = HERE / "golden"
MULTIBRANCH = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
BASE = "https://1457-62-195-68-26.ngrok-free.app/view/all/"
CTX = MapContext(
    instance_guid="666ba79b-3f3d-4236-ac04-4686ce526705",
    instance_name="ngrok-jenkins",
    instance_url=BASE,
)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def check(name: str, actual: Any, regen: bool) -> None:
    path = GOLDEN / name
    text = json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if regen:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {name}: run with --regen-golden"
    assert path.read_text(encoding="utf-8") == text, f"{name} differs: review, then regenerate"


def multibranch_runs() -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """Each recorded multibranch build with the wfapi stages recorded for it."""
    stages: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in load("devlake/_raw_jenkins_api_stages_multibranch.csv.extracted.json"):
        path = row["input"]["JobPath"]
        stages[(path, int(row["input"]["Number"]))].append(row["data"])
    runs = []
    for row in load("devlake/_raw_jenkins_api_builds_multibranch.csv.extracted.json"):
        key = (row["input"]["Path"], row["data"]["number"])
        runs.append((row["input"]["FullName"], row["data"], stages.get(key, [])))
    return runs


@pytest.mark.parametrize(
    ("full_name", "build", "stages"),
    multibranch_runs(),
    ids=lambda v: v.replace("/", "_") if isinstance(v, str) else "",
)
def test_recorded_multibranch_run_payload(
    full_name: str,
    build: dict[str, Any],
    stages: list[dict[str, Any]],
    request: pytest.FixtureRequest,
) -> None:
    job = Job(names=tuple(full_name.split("/")), containers=(MULTIBRANCH,))
    details = BuildDetails(stages=Wfapi.normalize(WfapiAnswers(stages)) if stages else None)
    payload = map_build(build, job, CTX, details).to_json()
    name = f"wfapi_{full_name.replace('/', '_')}_{build['number']}.json"
    check(name, payload, request.config.getoption("--regen-golden"))
    # these branch names are kept whole by NameMangler: plugin-legacy names them alike
    legacy = replace(CTX, naming=JobNaming("plugin-legacy"))
    assert map_build(build, job, legacy, details).to_json() == payload


BLUE_NODE_RECORDINGS = [
    "blueocean/poststagefail.js.extracted.json",
    "blueocean/runNodes-QueuedAborted.js.extracted.json",
    "blueocean/nodesAllNull.js.extracted.json",
    "blueocean/missing-nodes.json",
]


@pytest.mark.parametrize("recording", BLUE_NODE_RECORDINGS)
def test_recorded_blue_ocean_nodes_job_run(recording: str, request: pytest.FixtureRequest) -> None:
    job_run = map_job_run(BlueOcean.normalize(BlueOceanAnswers(load(recording)))).model_dump(
        mode="json", exclude_none=True
    )
    name = "blueocean_" + Path(recording).name.split(".")[0] + ".json"
    check(name, job_run, request.config.getoption("--regen-golden"))


BLUE_STEP_RECORDINGS = [
    "blueocean/failingRunningSteps.js.extracted.json",
    "blueocean/steps-descriptions.js.extracted.json",
    "elastic-apm-pipeline-library/steps-info.json",
    "elastic-apm-pipeline-library/steps-errors.json",
]


@pytest.mark.parametrize("recording", BLUE_STEP_RECORDINGS)
def test_recorded_blue_ocean_steps(recording: str, request: pytest.FixtureRequest) -> None:
    node = {"id": "1", "displayName": "stage", "result": "SUCCESS", "state": "FINISHED"}
    data = BlueOcean.normalize(BlueOceanAnswers([node], steps={"1": load(recording)}))
    steps = map_job_run(data).model_dump(mode="json", exclude_none=True)["stages"][0]["steps"]
    name = "blueocean_steps_" + Path(recording).name.split(".")[0] + ".json"
    check(name, steps, request.config.getoption("--regen-golden"))


WFAPI_RUN_RECORDINGS = [
    "pipeline-stage-view/06_rest_api_runs.json",
    "pipeline-stage-view/04_rest_api_runs_failed.json",
    "pipeline-stage-view/03_rest_api_runs_checkpoint_rerun.json",
    "pipeline-stage-view/08_rest_api_unstable_run.json",
]


@pytest.mark.parametrize("recording", WFAPI_RUN_RECORDINGS)
def test_recorded_wfapi_runs_job_run(recording: str, request: pytest.FixtureRequest) -> None:
    runs = {
        run["name"]: map_job_run(Wfapi.normalize(WfapiAnswers(run["stages"]))).model_dump(
            mode="json", exclude_none=True
        )
        for run in load(recording)
    }
    check(
        "wfapi_" + Path(recording).stem + ".json", runs, request.config.getoption("--regen-golden")
    )


def test_recorded_wfapi_stage_with_steps(request: pytest.FixtureRequest) -> None:
    describe = load("pipeline-stage-view/checkpoint_resumed_stage_description.json")
    stage = {k: v for k, v in describe.items() if k != "stageFlowNodes"}
    data = Wfapi.normalize(WfapiAnswers([stage], describes={describe["id"]: describe}))
    job_run = map_job_run(data).model_dump(mode="json", exclude_none=True)
    check(
        "wfapi_checkpoint_resumed_stage.json", job_run, request.config.getoption("--regen-golden")
    )
