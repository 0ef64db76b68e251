"""Fuzz and fault suite (issue 16): mutated Jenkins answers, hostile servers on both sides, a full
disk and skewed clocks, with the promises checked after every run and counted.

After every run of the agent: it ended in bounded time (hangs), no exception escaped and nothing
was logged with a traceback (tracebacks), no build is recorded as sent that SEI does not keep,
and once the fault is gone every build is delivered or is a dead letter with a reason (builds
lost); the state file loads again; and no secret (as it is, percent-encoded, base64, or as
Basic credentials) is in the output, the logs, the state folder, the requests Jenkins got or
anything SEI received (secrets found). At the mapping level, thousands of mutated builds each
give a payload the SEI stand-in keeps whole, or Unmappable / ValidationError: nothing else.

Mutations come from seeded random.Random instances (tests/fuzzing.py); a failure names the
case and its seed, and `FUZZ_SEED=<seed>` runs that case alone. The default run is small; the
big one runs FUZZ_RUNS mutated cases against the agent (each a mutated run and a clean one),
ten times as many through the mapping, and the whole hostile-server matrix; the terminal
summary gives the figures (`-s` prints each test's outcomes too):

    FUZZ_RUNS=5000 python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import base64
import contextlib
import faulthandler
import functools
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from agent_process import AgentProcess, wait_until
from conftest import GUID, Cli, Result, now_ms
from conftest import JENKINS_TOKEN as SIM_TOKEN
from conftest import JENKINS_USER as SIM_USER
from fuzzing import Mutator, serialize
from hostile import SIGNATURE, Front, FullDisk, Storage, gzip_bomb, gzip_of_gzip
from jenkins_sim import JenkinsSim, Reply
from pydantic import ValidationError
from sei_standin import SeiStandIn, _kept_stages, _null_param, _null_stage_duration, _validate_cicd
from test_golden import (
    BLUE_NODE_RECORDINGS,
    BLUE_STEP_RECORDINGS,
    WFAPI_RUN_RECORDINGS,
    load,
    multibranch_runs,
)
from test_mapping_properties import CTX, MULTIBRANCH
from test_operator_e2e import GUID_B, write_satellite

import agent.state.file
from agent.config import JenkinsSettings, SeiSettings
from agent.http.answer import Answer
from agent.http.body import HELD_MIB
from agent.jenkins.client import ANSWER_MAX_MIB, JenkinsClient, JenkinsError
from agent.jenkins.endpoints import CAUSE_FIELDS, builds_tree, job_path
from agent.jenkins.stages.base import StageSource
from agent.jenkins.stages.blueocean import BlueOcean, BlueOceanAnswers
from agent.jenkins.stages.chain import SOURCES
from agent.jenkins.stages.wfapi import Wfapi, WfapiAnswers
from agent.jenkins.types import BuildDetails, Job
from agent.mapping import Unmappable, map_build, parse_manifests
from agent.sei.client import ANSWER_MAX_BYTES, SeiClient, SeiUnavailable
from agent.state import JobState, StateError, StateFile

FUZZ_RUNS = int(os.environ.get("FUZZ_RUNS") or 0)  # the big run's size (see above)
AGENT_CASES = FUZZ_RUNS or 16
MAPPING_CASES = 10 * FUZZ_RUNS or 1200
FUZZ_SEED = os.environ.get("FUZZ_SEED")  # one case again: the seed a failure named
SHARDS = 2  # each fuzz test is split in two, so that xdist's two workers share it
RUN_BOUND = 30.0  # seconds: a run still going then is a hang (every timeout here is 2 s or less)

# Recognisable secrets, with characters that percent-encoding and base64 change.
JENKINS_USER = "fuzz-bot"
JENKINS_TOKEN = "fuzz-jenkins-t0ken/+9f8e=7d"
SEI_KEY = "fuzz-sei-k3y/+1a2b=3c"


def secret_forms() -> list[str]:
    basic = f"{JENKINS_USER}:{JENKINS_TOKEN}".encode()
    found = {base64.b64encode(basic).decode()}
    for secret in (JENKINS_TOKEN, SEI_KEY):
        found |= {
            secret,
            quote(secret, safe=""),
            quote_plus(secret),
            base64.b64encode(secret.encode()).decode(),
        }
    return sorted(found)


SECRETS = secret_forms()


# -- figures -------------------------------------------------------------------------------


@dataclass
class Figures:
    """What one test saw, added up over its runs; `problems` says which case broke what.

    A run is one run of the agent, or for the mapping test one build through the mapping.
    """

    unit: str = "agent runs"
    runs: int = 0
    hangs: int = 0
    tracebacks: int = 0
    lost: int = 0
    secrets: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def problem(self, case: str, what: str) -> None:
        self.problems.append(f"{case}: {what}")

    def publish(self, name: str, record: Callable[[str, object], None], seconds: float) -> None:
        """Into the test's report (conftest adds them up in the terminal summary), and printed."""
        figures = {
            "test": name,
            "unit": self.unit,
            "runs": self.runs,
            "hangs": self.hangs,
            "tracebacks": self.tracebacks,
            "lost": self.lost,
            "secrets": self.secrets,
            "seconds": round(seconds, 1),
            "outcomes": dict(sorted(self.outcomes.items())),
        }
        record("fuzz", figures)
        print(json.dumps(figures))

    def check(self) -> None:
        """Zero of everything; else the kinds of problem seen, counted, and a few in full."""
        kinds = Counter(_kind(problem) for problem in self.problems)
        shown = "\n".join(
            [f"{count:5d} x {kind}" for kind, count in kinds.most_common()] + self.problems[:5]
        )
        assert (self.hangs, self.tracebacks, self.lost, self.secrets) == (0, 0, 0, 0), shown
        assert not self.problems, shown


def _kind(problem: str) -> str:
    """A problem without its case: the last line of a traceback, else what it says."""
    what = problem.split("]: ", 1)[-1]
    lines = what.strip().splitlines()
    errors = [line for line in lines if re.match(r"^([a-z_]+\.)*[A-Z]\w+: ", line)]
    return errors[-1][:120] if errors else re.sub(r"#\d+", "#N", lines[0])[:120]


@pytest.fixture
def figures(request: pytest.FixtureRequest, record_property: Any) -> Iterator[Figures]:
    """The test's figures, published however the test ends; the test checks them last."""
    found = Figures()
    started = time.monotonic()
    yield found
    found.publish(request.node.name, record_property, time.monotonic() - started)


# -- running the CLI in bounded time ---------------------------------------------------------


@dataclass
class Run:
    result: Result
    hung: bool
    seconds: float


def bounded(cli: Cli, *args: str, bound: float = RUN_BOUND) -> Run:
    """The CLI in this process; past `bound` it gets SIGTERM, as a supervisor would send, and
    the run counts as a hang. One that ignores SIGTERM too is killed with a stack dump."""
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        os.kill(os.getpid(), signal.SIGTERM)

    # Outside the agent's own handler (before and after its run), a SIGTERM does nothing.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    timer = threading.Timer(bound, fire)
    timer.daemon = True
    faulthandler.dump_traceback_later(bound + 30, exit=True)
    started = time.monotonic()
    timer.start()
    try:
        result = cli.in_process(*args)
    finally:
        timer.cancel()
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGTERM, previous)
    return Run(result, fired.is_set(), time.monotonic() - started)


def cli_env(
    folder: Path, jenkins_url: str, sei_url: str, guid: str, **extra: str
) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return {
        **keep,
        "JENKINS_URL": jenkins_url,
        "JENKINS_USER": JENKINS_USER,
        "JENKINS_API_TOKEN": JENKINS_TOKEN,
        "JENKINS_RETRIES": "1",
        "JENKINS_RETRY_WAIT": "0",
        "JENKINS_TIMEOUT": "2",
        "JENKINS_CONNECT_TIMEOUT": "2",
        "SEI_BASE_URL": sei_url,
        "SEI_API_KEY": SEI_KEY,
        "SEI_INSTANCE_GUID": guid,
        "SEI_INSTANCE_NAME": "fuzz",
        "SEI_RETRIES": "1",
        "SEI_RETRY_WAIT": "0",
        "SEI_RETRY_MAX_WAIT": "0",
        "SEI_TIMEOUT": "2",
        "AGENT_STATE_FILE": str(folder / "state" / "agent-state.json"),
        "AGENT_LOG_LEVEL": "DEBUG",
        **extra,
    }


# -- what a case is checked for ------------------------------------------------------------

Build = tuple[str, int]  # SEI's job_full_name, build number


def kept_by_sei(sei: SeiStandIn, guid: str) -> set[Build]:
    """The runs SEI keeps for one instance (first write of each), not the ones it dropped."""
    with sei._lock:
        keys = list(sei.runs)
    kept: set[Build] = set()
    for g, name, number in keys:
        if g == guid:
            assert number is not None, f"SEI kept a run of {name} without a build number"
            kept.add((name, number))
    return kept


def dropped_by_sei(sei: SeiStandIn, guid: str) -> list[str]:
    with sei._lock:
        dropped = list(sei.dropped)
    return [why for payload, why in dropped if payload.get("instance_guid") == guid]


def state_jobs(path: Path, guid: str) -> dict[str, JobState] | str:
    """Every job record of the state file, each loaded on its own; a string says what did not."""
    try:
        with StateFile(path, read_only=True):
            pass
    except StateError as exc:
        return f"the state file does not load: {exc}"
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    jobs = {}
    for name, record in data["controllers"].get(guid, {"jobs": {}})["jobs"].items():
        try:
            jobs[name] = JobState.from_json(record)
        except Exception as exc:
            return f"the record of {name} does not load: {exc!r}"
    return jobs


@dataclass
class Verdict:
    """What one case's runs did to the figures."""

    case: str
    figures: Figures

    def run(self, run: Run, label: str) -> None:
        self.figures.runs += 1
        if run.hung:
            self.figures.hangs += 1
            self.figures.problem(self.case, f"{label} hung ({run.seconds:.1f} s)")
        if "Traceback" in run.result.stderr:
            self.figures.tracebacks += 1
            tail = run.result.stderr[run.result.stderr.index("Traceback") :][-4000:]
            self.figures.problem(self.case, f"{label} traceback:\n{tail}")

    def state(
        self, path: Path, guid: str, kept: set[Build], names: dict[str, str]
    ) -> dict[str, JobState]:
        """The state loads, and records nothing as sent that SEI does not keep."""
        jobs = state_jobs(path, guid)
        if isinstance(jobs, str):
            self.figures.lost += 1
            self.figures.problem(self.case, jobs)
            return {}
        for name, job in jobs.items():
            for first, last, *_ in job.sent.runs:
                for number in range(first, min(last, first + 1000) + 1):
                    if (names.get(name, name), number) not in kept:
                        self.figures.lost += 1
                        self.figures.problem(self.case, f"{name} #{number} recorded, SEI lacks it")
        return jobs

    def missing(
        self,
        truth: list[tuple[str, int]],
        kept: set[Build],
        jobs: dict[str, JobState],
        names: dict[str, str],
    ) -> list[tuple[str, int]]:
        """The builds SEI does not keep and that are no dead letter with a reason."""
        left = []
        for name, number in truth:
            letter = jobs[name].dead.get(number) if name in jobs else None
            if (names[name], number) not in kept and not (letter and letter.get("message")):
                left.append((name, number))
        return left

    def lost(self, missing: list[tuple[str, int]]) -> None:
        for name, number in missing:
            self.figures.lost += 1
            self.figures.problem(self.case, f"{name} #{number} neither delivered nor dead")

    def secrets(self, places: dict[str, str]) -> None:
        for where, text in places.items():
            found = [s for s in SECRETS if s in text]
            if found:
                self.figures.secrets += len(found)
                self.figures.problem(self.case, f"secret {found} in {where}")


def folder_texts(folder: Path) -> dict[str, str]:
    return {
        str(path): path.read_text(encoding="utf-8", errors="replace")
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# -- the Jenkins the agent runs against ------------------------------------------------------

SHA = "0123456789abcdef0123456789abcdef01234567"
LIB_SHA = "fedcba9876543210fedcba9876543210fedcba98"
STAGES: list[dict[str, Any]] = [
    {"id": "3", "name": "build", "duration": 40, "steps": [{"id": "4", "duration": 30}]},
    {"id": "6", "name": "tests", "duration": 50, "steps": []},
    {"id": "8", "name": "unit", "parallel_of": "6", "steps": [{"id": "9", "duration": 9}]},
    {"id": "10", "name": "e2e", "parallel_of": "6", "steps": [{"id": "11", "duration": 7}]},
    {"id": "12", "name": "deploy", "status": "SKIPPED"},
]
MANIFEST = {
    "artifacts": [
        {
            "type": "container",
            "location": "registry.acme.test/app",
            "name": "app",
            "qualifier": "1.2.3",
            "metadata": {"arch": "amd64", "layers": 7},
        }
    ]
}
UPSTREAM = {
    "_class": "hudson.model.Cause$UpstreamCause",
    "shortDescription": "Started by upstream project lib build number 1",
    "upstreamBuild": 1,
    "upstreamProject": "lib",
    "upstreamUrl": "job/lib/",
}
PARAMETERS = [
    {"_class": "hudson.model.StringParameterValue", "name": "ENV", "value": "prod"},
    {"_class": "hudson.model.PasswordParameterValue", "name": "DB_PASSWORD", "value": "pw-0"},
]
# Jenkins full name -> SEI job_full_name (folders are named as the official plugin names them).
NAMES = {"lib": "lib", "app": "app", "svc": "svc", "tools/other": "tools/jobs/other"}
ALL_BUILDS = [("lib", 1), ("app", 1), ("app", 2), ("svc", 1), ("tools/other", 1)]


def populate(sim: JenkinsSim) -> None:
    """The jobs every case runs against (ALL_BUILDS): `app`, the one whose answers are mutated,
    has everything the agent reads (stages, parameters, git, an upstream build, a manifest);
    the others are bystanders."""
    sim.add_job("lib")
    sim.add_build("lib", build_data=[{"sha": LIB_SHA}], changeset=[LIB_SHA])
    sim.add_job("app", "pipeline")
    for number in (1, 2):
        sim.add_build(
            "app",
            causes=[UPSTREAM],
            parameters=PARAMETERS,
            build_data=[{"sha": SHA}],
            changeset=[SHA],
            artifacts=["artifact-manifest.json", "dist/app.tar.gz"],
            stages=STAGES,
        )
        sim.artifact_content[("app", number, "artifact-manifest.json")] = json.dumps(
            MANIFEST
        ).encode()
    sim.add_job("svc", "pipeline")
    sim.add_build("svc", stages=STAGES[:2])
    sim.add_folder("tools")
    sim.add_job("tools/other")
    sim.add_build("tools/other")


# The answers a case may mutate, and the stage source that makes the agent read them.
TARGETS: dict[str, tuple[str, str]] = {
    "discovery": (r"^/api/json$", "auto"),
    "plugins": (r"^/pluginManager/api/json$", "auto"),
    "listing": (r"^/job/app/api/json$", "auto"),
    "upstream": (r"^/job/lib/1/api/json$", "auto"),
    "manifest": (r"^/job/app/\d+/artifact/", "auto"),
    "graph-tree": (r"^/job/app/\d+/stages/tree$", "graphview"),
    "graph-steps": (r"^/job/app/\d+/stages/allSteps$", "graphview"),
    "blue-nodes": (r"/pipelines/app/runs/\d+/nodes/$", "blueocean"),
    "blue-steps": (r"/pipelines/app/runs/\d+/nodes/[^/]+/steps/$", "blueocean"),
    "wfapi-run": (r"^/job/app/\d+/wfapi/describe$", "wfapi"),
    "wfapi-node": (r"^/job/app/\d+/execution/node/[^/]+/wfapi/describe$", "wfapi"),
}
# Whose answers a mutation of the target may keep from SEI for this run (the rest must arrive).
REACH = {"discovery": set(NAMES), "plugins": {"app", "svc"}}


class MutatingJenkins(JenkinsSim):
    """The simulator, with the answers of one target mutated: the same mutation for the same
    path and query whatever the order of requests, so a seed reproduces a case."""

    mutation: tuple[re.Pattern[str], int, list[str]] | None = None

    def _respond(self, method: str, path: str, query: str, authorization: str | None) -> Reply:
        status, headers, body = super()._respond(method, path, query, authorization)
        mutation = self.mutation
        # a Streamed body (an artifact too large to hold) is no JSON document to mutate
        if (
            mutation is not None
            and status == 200
            and isinstance(body, bytes)
            and mutation[0].search(path)
        ):
            mutator = Mutator(random.Random(f"{mutation[1]}|{path}|{query}"))
            body = mutator.body(body)
            mutation[2].extend(f"{path}: {said}" for said in mutator.said)
        return status, headers, body


@pytest.fixture(scope="module")
def rig() -> Iterator[tuple[MutatingJenkins, SeiStandIn]]:
    """One Jenkins and one SEI for every mutated case: each case has an instance GUID and a
    state file of its own, so it is a first run, and what SEI keeps is told apart by GUID."""
    jenkins = MutatingJenkins(
        user=JENKINS_USER, token=JENKINS_TOKEN, clock_ms=now_ms() - 3_600_000, graphview=True
    )
    populate(jenkins)
    sei = SeiStandIn(api_key=SEI_KEY, known_guids=None)
    with jenkins, sei:
        yield jenkins, sei


def seeds_of(shard: int, cases: int) -> list[int]:
    """This shard's seeds; with FUZZ_SEED, that one alone."""
    if FUZZ_SEED:
        return [int(FUZZ_SEED)] if shard == 0 else []
    return list(range(shard, cases, SHARDS))


def guid_of(seed: int | str) -> str:
    return str(uuid.UUID(int=random.Random(seed).getrandbits(128), version=4))


@dataclass
class Case:
    """A sync with a fault, then a sync without it, each checked; its own GUID and state file.

    `reach`: the jobs whose builds the fault may keep from SEI in the faulted run (the others
    must arrive all the same, unless the run stopped on purpose, exit 3).
    """

    label: str
    folder: Path
    jenkins: JenkinsSim
    sei: SeiStandIn
    env: dict[str, str]
    reach: set[str]
    truth: list[tuple[str, int]] = field(default_factory=lambda: list(ALL_BUILDS))
    names: dict[str, str] = field(default_factory=lambda: dict(NAMES))

    @property
    def guid(self) -> str:
        return self.env["SEI_INSTANCE_GUID"]

    @property
    def state(self) -> Path:
        return Path(self.env["AGENT_STATE_FILE"])


def checked(
    case: Case, fault: Callable[[], contextlib.AbstractContextManager[Any]], figures: Figures
) -> tuple[Run, dict[str, JobState]]:
    """Run `case` with `fault` on, then off; the faulted run and the state it left."""
    case.folder.mkdir(parents=True, exist_ok=True)
    verdict = Verdict(case.label, figures)
    cli = Cli(case.env, case.folder)
    sei, jenkins = case.sei, case.jenkins
    requests = len(sei.requests), len(jenkins.requests)
    with fault() as said:
        first = bounded(cli, "sync")
    if said:
        verdict.case += f" [{'; '.join(said)[:300]}]"
    figures.outcomes[f"exit {first.result.code}"] += 1
    verdict.run(first, "faulted run")
    kept = kept_by_sei(sei, case.guid)
    after_fault = verdict.state(case.state, case.guid, kept, case.names)
    if first.result.code != 3:  # not a run that stopped everything on purpose
        for name, number in case.truth:
            if name not in case.reach and (case.names[name], number) not in kept:
                figures.lost += 1
                figures.problem(verdict.case, f"bystander {name} #{number} not delivered")
    outputs = [first, bounded(cli, "sync")]
    verdict.run(outputs[-1], "clean run")
    kept = kept_by_sei(sei, case.guid)
    jobs = verdict.state(case.state, case.guid, kept, case.names)
    missing = verdict.missing(case.truth, kept, jobs, case.names)
    if missing and "started before the lookback" in first.result.stderr:
        # Jenkins said they started before the lookback: the agent said so and left them to
        # `backfill`, as documented; it must send them.
        outputs.append(bounded(cli, "backfill", "--since", "1970-01-01"))
        verdict.run(outputs[-1], "backfill")
        kept = kept_by_sei(sei, case.guid)
        jobs = verdict.state(case.state, case.guid, kept, case.names)
        figures.outcomes["left to backfill"] += len(missing)
        missing = verdict.missing(case.truth, kept, jobs, case.names)
    verdict.lost(missing)
    figures.outcomes["dead letters"] += sum(len(job.dead) for job in jobs.values())
    for why in dropped_by_sei(sei, case.guid):
        figures.lost += 1
        figures.problem(verdict.case, f"SEI dropped a payload: {why}")
    verdict.secrets(
        {
            **{
                f"output of run {i}": r.result.stdout + r.result.stderr
                for i, r in enumerate(outputs)
            },
            **folder_texts(case.folder),
            "SEI requests": json.dumps(sei.requests[requests[0] :], default=str),
            "Jenkins requests": json.dumps(jenkins.requests[requests[1] :]),
        }
    )
    return first, after_fault


def mutated_case(
    jenkins: MutatingJenkins, sei: SeiStandIn, folder: Path, seed: int, figures: Figures
) -> None:
    """A sync against mutated answers of one target, then a sync against the real ones."""
    target = random.Random(seed).choice(sorted(TARGETS))
    pattern, source = TARGETS[target]
    env = cli_env(folder, jenkins.url, sei.url, guid_of(seed), JENKINS_STAGE_SOURCE=source)
    case = Case(f"seed {seed} ({target})", folder, jenkins, sei, env, REACH.get(target, {"app"}))

    @contextlib.contextmanager
    def mutation() -> Iterator[list[str]]:
        said: list[str] = []
        jenkins.mutation = (re.compile(pattern), seed, said)
        try:
            yield said
        finally:
            jenkins.mutation = None

    checked(case, mutation, figures)


def test_unmutated_case_delivers_everything_named_as_expected(
    rig: tuple[MutatingJenkins, SeiStandIn], tmp_path: Path, figures: Figures
) -> None:
    """The baseline every mutated case is compared with: all five builds, under NAMES."""
    jenkins, sei = rig
    guid = guid_of(-1)
    cli = Cli(cli_env(tmp_path, jenkins.url, sei.url, guid), tmp_path)
    run = bounded(cli, "sync")
    Verdict("baseline", figures).run(run, "run")
    assert run.result.code == 0, run.result.stderr
    assert kept_by_sei(sei, guid) == {(NAMES[name], n) for name, n in ALL_BUILDS}
    app = sei.kept("app", 2, guid)
    assert len(app["stages"]) == 5 and app["upstream"] == [("lib", 1)]
    assert [a["name"] for a in app["artifacts"]] == ["app", "dist/app.tar.gz"]
    figures.check()


def test_the_checks_count_what_they_look_for(
    rig: tuple[MutatingJenkins, SeiStandIn], tmp_path: Path
) -> None:
    """Zeros mean something only if the checks would count: a run past its bound is a hang
    (and its SIGTERM ends it), a traceback in the output counts, a build recorded as sent that
    SEI lacks is lost, and every form of a secret is found."""
    jenkins, sei = rig
    probe = Figures()
    verdict = Verdict("probe", probe)
    guid = guid_of("probe")
    cli = Cli(cli_env(tmp_path, jenkins.url, sei.url, guid), tmp_path)
    jenkins.inject_fault(r"^/api/json$", delay=1.0)  # a 500 after 1 s, then a retry
    slow = bounded(cli, "sync", bound=0.3)
    verdict.run(slow, "slow run")
    assert slow.result.code == 143 and probe.hangs == 1, slow.result.stderr
    verdict.run(
        Run(Result(1, "", "Traceback (most recent call last):\nValueError\n"), False, 0), ""
    )
    assert probe.tracebacks == 1
    state = tmp_path / "recorded.json"
    with StateFile(state) as written:
        written.jobs(guid)["app"] = JobState()
        written.jobs(guid)["app"].sent.add(7, 1000)
        written.save()
    verdict.state(state, guid, kept_by_sei(sei, guid), NAMES)
    assert probe.lost == 1
    verdict.secrets({f"place {i}": f"<{form}>" for i, form in enumerate(SECRETS)})
    assert probe.secrets >= len(SECRETS) >= 7


@pytest.mark.parametrize("shard", range(SHARDS))
def test_mutated_jenkins_answers(
    rig: tuple[MutatingJenkins, SeiStandIn], tmp_path: Path, figures: Figures, shard: int
) -> None:
    """Each case mutates one kind of answer of one job; every promise is checked per run."""
    jenkins, sei = rig
    for seed in seeds_of(shard, AGENT_CASES):
        mutated_case(jenkins, sei, tmp_path / f"case-{seed}", seed, figures)
    figures.check()


# -- hostile servers on both sides -----------------------------------------------------------


@pytest.fixture(scope="module")
def fronts(
    rig: tuple[MutatingJenkins, SeiStandIn],
) -> Iterator[tuple[Front, Front, Front]]:
    """Hostile fronts for the rig's Jenkins and SEI, and the other host their cross-host
    redirects lead to (any request it gets is a credential sent where it must not go)."""
    jenkins, sei = rig
    gzip_bomb(), gzip_of_gzip()  # made once, before any run's timeouts count
    trap = Front()
    elsewhere = f"http://localhost:{trap.server_address[1]}"
    before_jenkins = Front(jenkins.url, elsewhere)
    before_sei = Front(sei.url, elsewhere)
    yield before_jenkins, before_sei, trap
    for front in (before_jenkins, before_sei, trap):
        front.stop()


JENKINS_MODES = (
    "html",
    "redirect-same",
    "redirect-port",
    "redirect-cross",
    "404",
    "408",
    "413",
    "reset",
    "silent",
    "deep-json",
    "truncated",
    "gzip-bomb",
    "gzip-gzip",
)
SEI_MODES = (*JENKINS_MODES, "stored-reset")
# Which answer of Jenkins is hostile, and whose builds it may keep from SEI in that run.
JENKINS_PATHS = {
    "discovery": (r"^/api/json$", set(NAMES)),
    "listing": (r"^/job/app/api/json$", {"app"}),
    "stages": (r"^/job/app/\d+/stages/tree$", {"app"}),
}
MATRIX = [
    ("jenkins", mode, where, times)
    for mode in JENKINS_MODES
    for where in JENKINS_PATHS
    for times in (1, None)
] + [("sei", mode, "custom-cicd", times) for mode in SEI_MODES for times in (1, None)]
# What the issue asks of the faulted run: SEI answering other than SEI stops the run, keeps
# every build (exit 3, nothing recorded when every answer is so); a 408 is retried; a Jenkins
# login page stops the run; a same-origin redirect of a GET is followed, one to another port or
# host is not.
EXPECTED_EXIT = {
    ("sei", "html"): 3,
    ("sei", "redirect-same"): 3,
    ("sei", "redirect-port"): 3,
    ("sei", "redirect-cross"): 3,
    ("sei", "404"): 3,
    ("sei", "deep-json"): 3,
    ("sei", "truncated"): 3,
    ("sei", "gzip-bomb"): 3,
    ("sei", "gzip-gzip"): 3,
    ("jenkins", "html"): 3,
    ("jenkins", "redirect-port"): 3,
    ("jenkins", "redirect-cross"): 3,
}
ENDS_CLEAN = {
    ("sei", "408", 1),
    ("jenkins", "redirect-same", 1),
    ("jenkins", "redirect-same", None),
}


def hostile_case(
    rig: tuple[MutatingJenkins, SeiStandIn],
    fronts: tuple[Front, Front, Front],
    cell: tuple[str, str, str, int | None],
    folder: Path,
    figures: Figures,
) -> None:
    side, mode, where, times = cell
    jenkins, sei = rig
    before_jenkins, before_sei, trap = fronts
    label = f"{side} {mode} on {where} {'once' if times else 'always'}"
    env = cli_env(
        folder,
        before_jenkins.url + "/",
        before_sei.url + "/sei/api",
        guid_of(label),
        JENKINS_TIMEOUT="0.3",
        SEI_TIMEOUT="0.3",
        JENKINS_STAGE_SOURCE="graphview",
    )
    if side == "jenkins":
        path, reach = JENKINS_PATHS[where]
        front = before_jenkins
    else:
        path, reach, front = r"/v1/custom-cicd$", set(NAMES), before_sei
    trapped = trap.seen
    first, state = checked(
        Case(label, folder, jenkins, sei, env, reach),
        lambda: front.hostile(mode, path, times),
        figures,
    )
    code = first.result.code
    figures.outcomes[f"{side} {mode} {'once' if times else 'always'}: exit {code}"] += 1
    expected = EXPECTED_EXIT.get((side, mode), 0 if (side, mode, times) in ENDS_CLEAN else None)
    if expected is not None and code != expected:
        figures.problem(label, f"exit {code}, not {expected}: {first.result.stderr[-600:]}")
    if (
        side == "sei"
        and expected == 3
        and times is None
        and any(j.sent.runs for j in state.values())
    ):
        figures.lost += 1
        figures.problem(label, "builds recorded as sent though SEI never answered as SEI")
    if trap.seen != trapped:
        figures.secrets += 1
        figures.problem(label, "a request (and its credentials) went to another host")


# The default run: every mode of each side once, where and how often taking turns.
MATRIX_CELLS = (
    MATRIX
    if FUZZ_RUNS
    else [
        *(
            ("jenkins", m, list(JENKINS_PATHS)[i % 3], (1, None)[i % 2])
            for i, m in enumerate(JENKINS_MODES)
        ),
        *(("sei", m, "custom-cicd", (None, 1)[i % 2]) for i, m in enumerate(SEI_MODES)),
    ]
)


@pytest.mark.parametrize("shard", range(SHARDS))
def test_hostile_servers_matrix(
    rig: tuple[MutatingJenkins, SeiStandIn],
    fronts: tuple[Front, Front, Front],
    tmp_path: Path,
    figures: Figures,
    shard: int,
) -> None:
    """Every hostile answer, once and always, from Jenkins (discovery, a listing, stages) and
    from SEI: each cell a faulted sync and a clean one, every promise checked, outcomes counted."""
    for index, cell in enumerate(MATRIX_CELLS):
        if index // 2 % SHARDS == shard:
            hostile_case(rig, fronts, cell, tmp_path / f"cell-{index}", figures)
    figures.check()


BOMBS = [(side, bomb) for side in ("jenkins", "sei") for bomb in ("gzip-bomb", "gzip-gzip")]


def test_peak_memory_under_compression_bombs(
    fronts: tuple[Front, Front, Front], figures: Figures
) -> None:
    """What a worker holds while it reads a compressed bomb stays within twice its side's cap
    (Jenkins 64 MiB, SEI 1 MiB), gzip-of-gzip (80 MiB in 300 bytes) refused unread. Measured
    with tracemalloc, which sees every buffer Python holds (zlib's own state is ~300 KB)."""
    before_jenkins, before_sei, _ = fronts
    for side, bomb in BOMBS:
        read: Callable[[], object]
        if side == "jenkins":
            jenkins = JenkinsClient(JenkinsSettings(url=before_jenkins.url + "/", retries=0))
            client: JenkinsClient | SeiClient = jenkins
            read = functools.partial(jenkins.get_json, "api/json", kind="discover")
            cap, front = ANSWER_MAX_MIB << 20, before_jenkins
        else:
            sei = SeiSettings(base_url=before_sei.url + "/sei/api", api_key=SEI_KEY, retries=0)
            client = SeiClient(sei)
            read, cap, front = client.check_key, ANSWER_MAX_BYTES, before_sei
        with front.hostile(bomb, ""):
            tracemalloc.start()
            try:
                read()
                figures.problem(f"{side} {bomb}", "the bomb was read as an answer")
            except (JenkinsError, SeiUnavailable) as exc:
                figures.outcomes[f"{side} {bomb}: {type(exc).__name__}"] += 1
            finally:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                client.close()
        figures.runs += 1
        figures.outcomes[f"{side} {bomb}: peak KiB"] = peak >> 10
        if peak > 2 * cap + (1 << 20):
            figures.problem(f"{side} {bomb}", f"peak {peak >> 10} KiB over twice the cap")
    figures.check()


def test_a_sync_under_bombs_on_every_listing_stays_within_its_pod(
    rig: tuple[MutatingJenkins, SeiStandIn],
    fronts: tuple[Front, Front, Front],
    tmp_path: Path,
    figures: Figures,
) -> None:
    """Every listing a gzip bomb, 8 Jenkins workers: the answers being read hold HELD_MIB at
    most together, and a refused one is let go at once (a traceback's frame kept each 32 MiB
    until the cyclic collector ran: 630 MiB). Peak resident memory of the `sync` process."""
    sei = rig[1]
    before_jenkins, _, _ = fronts
    env = cli_env(tmp_path, before_jenkins.url + "/", sei.url, guid_of("bombs"))
    env.update(JENKINS_CONCURRENCY="8", JENKINS_RETRIES="0", PYTHONPATH=str(Path.cwd()))
    with before_jenkins.hostile("gzip-bomb", r"^/(job|pluginManager)/"):
        done = subprocess.run(
            [sys.executable, "-c", MAXRSS, "sync"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    peak_mib = int(done.stderr.rsplit("maxrss", 1)[1].split()[0]) >> 10
    figures.runs += 1
    figures.outcomes[f"sync peak RSS MiB, a gzip bomb on every listing, exit {done.returncode}"] = (
        peak_mib
    )
    if peak_mib > 2 * HELD_MIB + 64 or "Traceback" in done.stderr:
        figures.problem("bombs everywhere", f"peak {peak_mib} MiB: {done.stderr[-1500:]}")
    figures.check()


def test_failed_reads_let_their_answers_go(
    fronts: tuple[Front, Front, Front], figures: Figures
) -> None:
    """20 MiB that is not JSON, read three times with its retries: nothing of it outlives the
    read (a JSONDecodeError kept the decoded document, and the failures' frames the answer,
    until the cyclic collector ran: 120 MiB held after each read)."""
    before_jenkins = fronts[0]
    client = JenkinsClient(JenkinsSettings(url=before_jenkins.url + "/", retry_wait=0))
    held = []
    with before_jenkins.hostile("junk", ""):
        tracemalloc.start()
        try:
            for _ in range(3):
                with contextlib.suppress(JenkinsError):
                    client.get_json("api/json", kind="discover")
                held.append(tracemalloc.get_traced_memory()[0] >> 20)
            peak = tracemalloc.get_traced_memory()[1] >> 20
        finally:
            tracemalloc.stop()
            client.close()
    figures.runs += 1
    figures.outcomes["MiB held after each of 3 failed reads of 20 MiB"] = max(held)
    figures.outcomes["peak MiB while reading"] = peak
    if max(held) > 1 or peak > 3 * 20:
        figures.problem("junk", f"held {held} MiB after the reads, peak {peak} MiB")
    figures.check()


# -- a state folder anyone may write to ----------------------------------------------------


def test_world_writable_state_folder_with_a_planted_symlink(
    rig: tuple[MutatingJenkins, SeiStandIn], tmp_path: Path, figures: Figures
) -> None:
    """Another user (`nobody`) plants symlinks where the state file, its lock and its old
    temporary name go, in a folder anyone may write to: the agent refuses the folder (exit 2,
    naming it) and writes nothing anywhere."""
    jenkins, sei = rig
    folder = tmp_path / "state"
    folder.mkdir()
    folder.chmod(0o777)
    victim = tmp_path / "root-owned"
    victim.write_text("root's own")
    for name in ("agent-state.json.lock", *(f".agent-state.json.{p}.tmp" for p in range(9))):
        (folder / name).symlink_to(victim)
        if os.geteuid() == 0:
            os.lchown(folder / name, 65534, 65534)
    env = cli_env(tmp_path, jenkins.url, sei.url, guid_of("world-writable"))
    verdict = Verdict("world-writable state folder", figures)
    for command in ("sync", "run"):
        ran = bounded(Cli(env, tmp_path), command)
        verdict.run(ran, command)
        figures.outcomes[f"{command}: exit {ran.result.code}"] += 1
        if ran.result.code != 2 or f"{folder}, the folder of the state" not in ran.result.stderr:
            figures.problem(verdict.case, f"{command} exit {ran.result.code}: {ran.result.stderr}")
    if victim.read_text() != "root's own" or kept_by_sei(sei, env["SEI_INSTANCE_GUID"]):
        figures.problem(verdict.case, "written through the planted symlink, or sent unrecorded")
    figures.check()


# -- builds that archive thousands of files, parameters too large for a page -----------------

ARTIFACTS_A_BUILD = 8000
ARCHIVING_BUILDS = 12
# `python -m agent` that says its peak resident memory (VmHWM, kB) as it exits: the process's
# own, where ru_maxrss would carry the forking test process's
MAXRSS = (
    "import atexit, re, runpy, sys;"
    "atexit.register(lambda: print('maxrss', re.search(r'VmHWM:\\s+(\\d+)',"
    " open('/proc/self/status').read())[1], file=sys.stderr));"
    "sys.argv[0] = 'agent'; runpy.run_module('agent', run_name='__main__')"
)


def test_listings_of_builds_archiving_8000_files_each(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, figures: Figures
) -> None:
    """A listing asks only for the files the payload can send (ARTIFACTS_LISTED a build, not
    8,000); the manifest archived past the cut is still read. Peak memory of the sync process
    measured (50 such builds a page took 294 MB before)."""
    jenkins.add_job("big")
    files = [f"dist/part-{i:05d}.bin" for i in range(ARTIFACTS_A_BUILD)] + [
        "artifact-manifest.json"  # Jenkins lists by path: after dist/, past the cut
    ]
    for number in range(1, ARCHIVING_BUILDS + 1):
        jenkins.add_build("big", artifacts=files)
        jenkins.artifact_content[("big", number, "artifact-manifest.json")] = json.dumps(
            MANIFEST
        ).encode()
    done = subprocess.run(
        [sys.executable, "-c", MAXRSS, "sync"],
        env=cli.env,
        cwd=cli.cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    peak_kib = int(done.stderr.rsplit("maxrss", 1)[1].split()[0])
    figures.runs += 1
    figures.outcomes[f"sync peak RSS MiB, {ARTIFACTS_A_BUILD} artifacts a build"] = peak_kib >> 10
    sent = {p["build_number"]: p for p in sei.accepted}
    if done.returncode != 0 or sorted(sent) != list(range(1, ARCHIVING_BUILDS + 1)):
        figures.lost += ARCHIVING_BUILDS - len(sent)
        figures.problem("8,000 artifacts", f"exit {done.returncode}: {done.stderr[-1500:]}")
    for number, payload in sent.items():
        names = [a["name"] for a in payload.get("artifacts") or []]
        if names[:1] != ["app"] or len(names) != 1 + 20:  # the manifest's, then 20 files
            figures.problem("8,000 artifacts", f"#{number} sent artifacts {names[:3]}...")
    figures.check()


def test_a_page_over_the_cap_is_read_in_smaller_pages(
    cli: Cli,
    jenkins: JenkinsSim,
    sei: SeiStandIn,
    figures: Figures,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Huge parameter values make a page of 8 builds larger than the answer cap (here 1 MiB):
    the page is asked again at half the size, and every build is delivered, with one warning
    naming JENKINS_PAGE_SIZE; a build alone over the cap fails its job for the run, named."""
    monkeypatch.setattr("agent.jenkins.client.ANSWER_MAX_MIB", 1)
    jenkins.add_job("params")
    value = "x" * 200_000
    for _ in range(8):
        jenkins.add_build("params", parameters=[{"name": "BLOB", "value": value}])
    first = bounded(cli, "sync")
    figures.runs += 1
    delivered = len(sei.accepted)
    figures.outcomes[f"builds delivered of 8, pages over the cap: {delivered}"] += 1
    if first.result.code != 0 or delivered != 8 or "JENKINS_PAGE_SIZE" not in first.result.stderr:
        figures.problem("page over the cap", f"{delivered} sent: {first.result.stderr[-1500:]}")
    jenkins.add_build("params", parameters=[{"name": "BLOB", "value": "y" * (2 << 20)}])
    second = bounded(cli, "sync")
    if second.result.code == 0 or "#1 from the newest alone" not in second.result.stderr:
        figures.problem("one build over the cap", second.result.stderr[-1500:])
    figures.check()


# -- a slow controller beside a healthy one in `run` ------------------------------------------

HEALTHY_BUILDS = 3


def test_a_slow_controller_never_holds_a_healthy_one_in_run(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, tmp_path: Path, figures: Figures
) -> None:
    """The first controller of satellite.yml never answers its discovery (it held every
    controller after it: 0 of 99 new builds in 200 s); the second, in a lane of its own,
    delivers each new build within a cycle or two and stays healthy."""
    slow_jenkins = JenkinsSim(user="reader", token="token-b-5678", clock_ms=now_ms())
    slow_jenkins.start()
    slow = Front(slow_jenkins.url)
    assert sei.known_guids is not None  # the fixture's stand-in drops unknown GUIDs
    sei.known_guids.add(GUID_B)
    env = {k: v for k, v in cli.env.items() if k != "SEI_API_KEY"}
    controllers: list[dict[str, Any]] = [  # the slow one first: the old loop served them in turn
        dict(id="4712", url=slow.url + "/", username="reader", api_key="token-b-5678"),
        dict(id="4711", url=jenkins.url, username=SIM_USER, api_key=SIM_TOKEN),
    ]
    for controller, guid, name in zip(
        controllers, (GUID_B, GUID), ("slow", "healthy"), strict=True
    ):
        controller["metadata"] = {"instance_guid": guid, "instance_name": name}
    env["AGENT_CONFIG"] = str(write_satellite(tmp_path / "satellite.yml", sei, *controllers))
    jenkins.add_job("app")
    delivered = 0

    def accepted(n: int) -> bool:
        return len(sei.accepted) >= n

    try:
        with slow.hostile("silent", r"^/api/json$"), AgentProcess(env, cli.cwd) as agent:
            for number in range(1, HEALTHY_BUILDS + 1):
                jenkins.add_build("app")
                with contextlib.suppress(AssertionError):
                    wait_until(functools.partial(accepted, number), 5, f"healthy #{number}")
                    delivered += 1
            verdict = agent.health()[1]["controllers"]["healthy"]["status"]
            lanes = agent.status()["controllers"]
            running = lanes[0]["cycle_running_since"] and lanes[1]["next_cycle"]
            slow.stop()  # its silent answer ends, so that the stop is not kept waiting
            agent.stop()
    finally:
        slow_jenkins.stop()
    figures.runs += 1
    figures.outcomes[f"healthy builds delivered while the other is slow, of {HEALTHY_BUILDS}"] = (
        delivered
    )
    if delivered != HEALTHY_BUILDS or verdict != "ok" or running is None:
        figures.problem("slow controller", f"{delivered} delivered, healthy {verdict}, {running}")
    figures.lost += HEALTHY_BUILDS - delivered
    figures.check()


# -- the status port under idle connections --------------------------------------------------

IDLE_CONNECTIONS = 1020  # all but a few of the descriptors the old server had (soft 1,024)


def test_status_port_under_a_thousand_idle_connections(
    cli: Cli, jenkins: JenkinsSim, sei: SeiStandIn, figures: Figures
) -> None:
    """1,000 connections that never send a request (1,023 starved the old threaded server:
    every cycle failed with "Too many open files" and /healthz timed out): /healthz answers,
    cycles go on delivering, and the descriptors are given back when the clients go."""
    jenkins.add_job("app")
    jenkins.add_build("app")
    # a usual host's descriptor limits (soft 1,024, hard 4,096), which the old server ran out of
    limits = ["prlimit", "--nofile=1024:4096"] if shutil.which("prlimit") else []
    command = [*limits, sys.executable, "-m", "agent", "run"]
    with AgentProcess(cli.env, cli.cwd, command) as agent:
        wait_until(lambda: len(sei.accepted) == 1, 10, "the first build")
        descriptors = len(os.listdir(f"/proc/{agent.proc.pid}/fd"))
        idle = [
            socket.create_connection(("127.0.0.1", agent.port)) for _ in range(IDLE_CONNECTIONS)
        ]
        try:
            started = time.monotonic()
            code, health = agent.health()  # behind every idle one in the backlog
            first = time.monotonic() - started
            started = time.monotonic()
            code, health = agent.health()
            latency = time.monotonic() - started
            jenkins.add_build("app")  # the agent's own work goes on beside them
            wait_until(lambda: len(sei.accepted) == 2, 10, "a build sent beside the idle ones")
            held = len(os.listdir(f"/proc/{agent.proc.pid}/fd")) - descriptors
        finally:
            for connection in idle:
                connection.close()
        wait_until(
            lambda: len(os.listdir(f"/proc/{agent.proc.pid}/fd")) <= descriptors + 2,
            10,
            "the idle connections' descriptors given back",
        )
        figures.runs += 1
        under = f"/healthz under {IDLE_CONNECTIONS} idle connections"
        figures.outcomes[f"{under}, first: ms"] = round(first * 1000)
        figures.outcomes[f"{under}, then: ms"] = round(latency * 1000)
        figures.outcomes["descriptors held for them"] = held
        if code != 200 or health["status"] != "ok":
            figures.problem("idle connections", f"/healthz {code}: {health}")
        assert agent.stop() < 10
        if "Traceback" in agent.stderr or "Too many open files" in agent.stderr:
            figures.problem("idle connections", agent.stderr[-2000:])
    figures.check()


# -- a full disk -----------------------------------------------------------------------------


def test_full_disk_for_the_state_file(
    tmp_path: Path, figures: Figures, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up before the first save, or after a few: the run stops with exit 2 and
    a message, the file on disk is the last one written whole, no temporary file is left, and
    once there is room again everything is delivered, at most SEI_CONCURRENCY builds twice."""
    disk = FullDisk()
    monkeypatch.setattr(agent.state.file, "open", disk.open, raising=False)
    concurrency = 4
    jenkins = JenkinsSim(user=JENKINS_USER, token=JENKINS_TOKEN, clock_ms=now_ms() - 3_600_000)
    names = {f"job-{i}": f"job-{i}" for i in range(3)}
    for name in names:
        jenkins.add_job(name)
        for _ in range(8):
            jenkins.add_build(name)
    truth = [(name, n) for name in names for n in range(1, 9)]
    with jenkins, SeiStandIn(api_key=SEI_KEY, known_guids=None) as sei:
        for room in (0, 1, 2, 4, 6):
            label = f"disk full after {room} writes"
            folder = tmp_path / f"room-{room}"
            env = cli_env(
                folder, jenkins.url, sei.url, guid_of(label), SEI_CONCURRENCY=str(concurrency)
            )
            case = Case(label, folder, jenkins, sei, env, set(names), truth, names)
            first, _ = checked(case, lambda: disk.full_after(room), figures)  # noqa: B023
            said = first.result.stderr
            if first.result.code != 2 or "No space left on device" not in said:
                figures.problem(label, f"exit {first.result.code}: {said[-600:]}")
            if str(case.state) not in said:
                figures.problem(label, "the message does not name the state file")
            leftovers = [p.name for p in case.state.parent.glob("*.tmp")]
            if leftovers:
                figures.problem(label, f"temporary files left: {leftovers}")
            posts = Counter(
                (p["job_full_name"], p["build_number"])
                for p in sei.accepted
                if p["instance_guid"] == case.guid
            )
            twice = sum(count - 1 for count in posts.values())
            figures.outcomes["sent twice"] += twice
            if twice > 2 * concurrency:  # in flight, plus accepted but not yet on disk
                figures.problem(label, f"{twice} builds sent twice, more than 2 x {concurrency}")
    figures.check()


# -- skewed clocks ----------------------------------------------------------------------------

HOUR = 3_600_000


@pytest.mark.parametrize("skew_hours", [-72, -25, -1, 1, 25, 72])
def test_skewed_jenkins_clock(tmp_path: Path, figures: Figures, skew_hours: int) -> None:
    """Jenkins' clock off the agent's by hours or days, around the 24 h lookback: a tracked job
    never drops a build that finished after it was first seen, and a build left out as older
    than the lookback is said to be so, and `backfill` sends it."""
    jenkins = JenkinsSim(
        user=JENKINS_USER, token=JENKINS_TOKEN, clock_ms=now_ms() + skew_hours * HOUR
    )
    label = f"Jenkins clock {skew_hours:+d} h"
    verdict = Verdict(label, figures)
    env = cli_env(tmp_path, "", "", guid_of(label))
    jenkins.add_job("tracked")
    for _ in range(2):
        jenkins.add_build("tracked")
    first_seen = [("tracked", 1), ("tracked", 2)]
    after: list[tuple[str, int]] = []
    outputs: list[Run] = []
    with jenkins, SeiStandIn(api_key=SEI_KEY, known_guids=None) as sei:
        cli = Cli({**env, "JENKINS_URL": jenkins.url, "SEI_BASE_URL": sei.url}, tmp_path)
        for step in range(3):
            if step:  # a build of the tracked job; a job first seen, then tracked
                after.append(("tracked", jenkins.add_build("tracked")["number"]))
                jenkins.add_job("new")
                seen = after if step == 2 else first_seen
                seen.append(("new", jenkins.add_build("new")["number"]))
            outputs.append(bounded(cli, "sync"))
            verdict.run(outputs[-1], f"sync {step + 1}")
        names = {"tracked": "tracked", "new": "new"}
        kept = kept_by_sei(sei, env["SEI_INSTANCE_GUID"])
        jobs = verdict.state(Path(env["AGENT_STATE_FILE"]), env["SEI_INSTANCE_GUID"], kept, names)
        verdict.lost(verdict.missing(after, kept, jobs, names))  # tracked: sync sends them
        missing = verdict.missing(first_seen, kept, jobs, names)
        figures.outcomes["sent by sync"] = len(kept)
        said = any("started before the lookback" in r.result.stderr for r in outputs)
        if missing and said:
            figures.outcomes["left to backfill"] += len(missing)
            outputs.append(bounded(cli, "backfill", "--since", "1970-01-01"))
            verdict.run(outputs[-1], "backfill")
            kept = kept_by_sei(sei, env["SEI_INSTANCE_GUID"])
            missing = verdict.missing(first_seen, kept, jobs, names)
        verdict.lost(missing)
        verdict.secrets(
            {f"output of run {i}": r.result.stdout + r.result.stderr for i, r in enumerate(outputs)}
            | folder_texts(tmp_path)
            | {"SEI requests": json.dumps(sei.requests, default=str)}
        )
    figures.check()


# -- the mapping, directly -------------------------------------------------------------------

JOBS = [
    Job(names=("app",), cls="org.jenkinsci.plugins.workflow.job.WorkflowJob"),
    Job(names=("team", "deploy-api"), cls="hudson.model.FreeStyleProject"),
    Job(names=("shop", "feature%2Flogin"), containers=(MULTIBRANCH,)),
    Job(names=("mvn", "com.acme$core"), containers=("hudson.maven.MavenModuleSet",)),
]


# A stage source and a run's answers, as its `fetch` hands them to its `normalize`.
StageSeed = tuple[type[StageSource[Any]], Any]


@dataclass(frozen=True)
class Seeds:
    """Real answers to mutate: builds as listed, stages as each source's reader hands them on,
    upstream builds' actions, manifests."""

    builds: list[dict[str, Any]]
    stages: list[StageSeed]
    upstream: dict[tuple[str, int], list[dict[str, Any]]]
    manifests: list[Any]


def recorded_seeds() -> tuple[list[dict[str, Any]], list[StageSeed]]:
    """The captures under tests/fixtures/jenkins (the ones tests/test_golden.py maps)."""
    builds = [
        load(name)
        for name in (
            "jenkins-rest/build-info.json",
            "jenkins-rest/build-info-git-commit.json",
            "jenkins-rest/build-info-no-params.json",
            "hygieia/buildDetails_full.json",
            "hygieia/buildDetails_withMultipleSCM.json",
            "hygieia/buildDetails_pipeline-duplicate_changeSets.json",
        )
    ]
    stages: list[StageSeed] = []
    for _, build, nodes in multibranch_runs():
        builds.append(build)
        if nodes:
            stages.append((Wfapi, WfapiAnswers(nodes)))
    stages += [(BlueOcean, BlueOceanAnswers(load(name))) for name in BLUE_NODE_RECORDINGS]
    node = {"id": "1", "displayName": "stage", "result": "SUCCESS", "state": "FINISHED"}
    stages += [
        (BlueOcean, BlueOceanAnswers([node], steps={"1": load(name)}))
        for name in BLUE_STEP_RECORDINGS
    ]
    stages += [
        (Wfapi, WfapiAnswers(run["stages"])) for name in WFAPI_RUN_RECORDINGS for run in load(name)
    ]
    describe = load("pipeline-stage-view/checkpoint_resumed_stage_description.json")
    stage = {k: v for k, v in describe.items() if k != "stageFlowNodes"}
    stages.append((Wfapi, WfapiAnswers([stage], describes={describe["id"]: describe})))
    return builds, stages


@pytest.fixture(scope="module")
def seeds(rig: tuple[MutatingJenkins, SeiStandIn]) -> Seeds:
    """The simulator's answers, read as the agent reads them, and the recorded captures."""
    jenkins, _ = rig
    client = JenkinsClient(
        JenkinsSettings(url=jenkins.url, user=JENKINS_USER, api_token=JENKINS_TOKEN)
    )
    try:
        builds = [
            build
            for name in ("app", "lib", "svc", "tools/other")
            for build in client.get_json(
                job_path(tuple(name.split("/"))) + "api/json", builds_tree(0, 50), kind="builds"
            )["builds"]
        ]
        stages: list[StageSeed] = []
        for source in SOURCES:
            reader = source(client, steps=True, version=None, listed=True)
            for name, number in (("app", 1), ("svc", 1)):
                stages.append((source, reader.fetch(Job(names=(name,)), number)))
        lib = client.get_json("job/lib/1/api/json", CAUSE_FIELDS, kind="upstream")
    finally:
        client.close()
    recorded_builds, recorded_stages = recorded_seeds()
    return Seeds(
        builds=builds + recorded_builds,
        stages=stages + recorded_stages,
        upstream={("lib", 1): lib["actions"]},
        manifests=[MANIFEST, MANIFEST["artifacts"][0], {"artifact": MANIFEST["artifacts"][0]}],
    )


def as_delivered(value: Any) -> Any:
    """A mutated document as the agent gets it: JSON text read by its HTTP clients' parser."""
    return Answer(200, httpx.Headers(), serialize(value)).json()


def mutated_stages(mutator: Mutator, seed: StageSeed) -> StageSeed:
    """Mutated stage answers. Each field keeps the shape its source's `fetch` guarantees
    whatever was answered (a list, or a node id -> answer map); what is in it is any junk the
    mutations make."""
    source, answers = seed
    original = {f.name: getattr(answers, f.name) for f in fields(answers)}
    doc = as_delivered(mutator.document(original))
    doc = doc if isinstance(doc, dict) else {}
    kept = {
        name: doc[name] if isinstance(doc.get(name), type(value)) else type(value)()
        for name, value in original.items()
    }
    return source, replace(answers, **kept)


def mapping_case(seeds: Seeds, seed: int, figures: Figures) -> None:
    """One build with what was read beside it, some of it mutated, through the mapping: a
    payload SEI keeps whole, or Unmappable / ValidationError, and nothing else."""
    rng = random.Random(seed)
    mutator = Mutator(rng)
    build: Any = rng.choice(seeds.builds)  # a mutation may make it any JSON value
    stage_seed = rng.choice([*seeds.stages, None])
    manifest = rng.choice([*seeds.manifests, None])
    upstream = seeds.upstream
    parts = rng.sample(["build", "build", "stages", "manifest", "upstream"], rng.choice((1, 1, 2)))
    try:
        if "build" in parts:
            build = as_delivered(mutator.document(build))
        if "stages" in parts and stage_seed is not None:
            stage_seed = mutated_stages(mutator, stage_seed)
        if "manifest" in parts:
            manifest = as_delivered(mutator.document(manifest))
        if "upstream" in parts:
            actions = as_delivered(mutator.document(upstream[("lib", 1)]))
            upstream = {("lib", 1): [a for a in actions if isinstance(a, dict)]}
    except ValueError:  # nested too deep: the agent's clients refuse it, as malformed JSON
        figures.outcomes["refused as too deep"] += 1
        return
    figures.runs += 1
    case = f"mapping seed {seed} ({', '.join(parts)}: {'; '.join(mutator.said)[:300]})"
    if not isinstance(build, dict):
        build = {"value": build}  # the listing keeps only objects
    try:  # the stages' reading is as much under test as the mapping
        stages = None if stage_seed is None else stage_seed[0].normalize(stage_seed[1])
        details = BuildDetails(
            stages=stages, upstream=upstream, manifests=() if manifest is None else (manifest,)
        )
        parse_manifests(details.manifests)
        payload = map_build(build, rng.choice(JOBS), CTX, details).to_json()
    except Unmappable:
        figures.outcomes["unmappable"] += 1
        return
    except ValidationError:
        figures.outcomes["invalid payload"] += 1
        return
    except Exception as exc:
        figures.tracebacks += 1
        figures.problem(case, f"{type(exc).__name__}: {exc}"[:300])
        return
    try:
        body = json.loads(json.dumps(payload, allow_nan=False))
    except ValueError as exc:
        figures.lost += 1
        figures.problem(case, f"a payload no JSON parser takes: {exc}")
        return
    why = _validate_cicd(body) or (
        ("a null parameter" if _null_param(body) else None)
        or ("a stage without a duration" if _null_stage_duration(body) else None)
        or (kept if isinstance(kept := _kept_stages(body.get("job_run")), str) else None)
    )
    if why:
        figures.lost += 1
        figures.problem(case, f"SEI would refuse or drop the payload: {why}")
    else:
        figures.outcomes["payload"] += 1


@pytest.mark.parametrize("shard", range(SHARDS))
def test_mutated_builds_through_the_mapping(seeds: Seeds, figures: Figures, shard: int) -> None:
    figures.unit = "mapping cases"
    for seed in seeds_of(shard, MAPPING_CASES):
        mapping_case(seeds, seed, figures)
    if not FUZZ_SEED:  # the mutations leave most builds mappable: the mapping was exercised
        assert figures.outcomes["payload"] > figures.runs // 2
    figures.check()


# -- artifacts kept in external storage (Artifact Manager on S3 and its kin) -----------------

STORAGE_MODES = ("ok", "expired", "gzip-bomb", "gzip-gzip")


@pytest.fixture(scope="module")
def storage_front(rig: tuple[MutatingJenkins, SeiStandIn]) -> Iterator[tuple[Front, Storage]]:
    """A front for the rig's Jenkins that moves the artifacts it is asked for to an S3-style
    storage host and redirects there."""
    jenkins, _ = rig
    storage = Storage()
    front = Front(jenkins.url, storage=storage)
    yield front, storage
    front.stop()
    storage.stop()


@pytest.mark.parametrize("mode", STORAGE_MODES)
def test_artifacts_in_external_storage(
    rig: tuple[MutatingJenkins, SeiStandIn],
    storage_front: tuple[Front, Storage],
    tmp_path: Path,
    figures: Figures,
    mode: str,
) -> None:
    """A manifest's download answers 302 to a presigned URL on another host: it is read there
    without the Jenkins credentials; when it cannot be (an expired signature, a bomb), every
    build is delivered all the same, without it, and one warning a build says why. The
    presigned URL's signature is never shown."""
    jenkins, sei = rig
    front, storage = storage_front
    storage.mode = mode
    label = f"storage {mode}"
    served, credentials = storage.served, storage.credentials
    case = Case(
        label, tmp_path, jenkins, sei, cli_env(tmp_path, front.url, sei.url, guid_of(label)), set()
    )
    first, _ = checked(case, lambda: front.hostile("storage", r"/artifact/"), figures)
    figures.check()
    output = first.result.stdout + first.result.stderr
    assert first.result.code == 0, output[-2000:]
    assert storage.credentials == credentials  # no request reached it with credentials
    assert SIGNATURE not in output + json.dumps(folder_texts(tmp_path))
    with sei._lock:
        manifests = [
            "registry.acme.test/app" in json.dumps(sei.runs[(case.guid, "app", n)]) for n in (1, 2)
        ]
    lines = output.splitlines()
    warnings = sorted(w.split("WARNING ")[1] for w in lines if "WARNING app #" in w)
    if mode == "ok":
        assert storage.served == served + 2 and manifests == [True, True]
        assert warnings == []
    else:
        assert manifests == [False, False]  # delivered without it, as the warning says
        assert [w[:6] for w in warnings] == ["app #1", "app #2"], output
        assert all("localhost" in w for w in warnings), warnings
