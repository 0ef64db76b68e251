"""The simulator and the SEI stand-in in a process of their own, loaded with a dataset.

Benchmarks run the servers apart from the collector they measure, so the servers' CPU does not
compete with the collector's for the same interpreter lock.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from jenkins_sim import JenkinsSim
from sei_standin import SeiStandIn

USER, TOKEN, SEI_KEY = "bench", "bench-token", "bench-key"
GUID = "4b1f6c1e-8d0a-4c57-9a1e-2f1d3c4b5a69"


@dataclass(frozen=True)
class Dataset:
    folders: int = 10
    jobs_per_folder: int = 10
    builds_per_job: int = 20
    stages: int = 3
    steps_per_stage: int = 2
    pipelines: bool = True  # every other job a pipeline; False: all freestyle
    graphview: bool = False  # the controller has pipeline-graph-view besides stage view

    @property
    def builds(self) -> int:
        return self.folders * self.jobs_per_folder * self.builds_per_job


def _stages(count: int, steps: int, start: int) -> list[dict[str, object]]:
    stages = []
    node = 3
    for s in range(count):
        stage_id = str(node)
        node += 1
        stage_steps = []
        for t in range(steps):
            stage_steps.append(
                {
                    "id": str(node),
                    "name": "Shell Script",
                    "description": f"make step{t}",
                    "status": "SUCCESS",
                    "start": start + s * 1000 + t * 100,
                    "duration": 90,
                }
            )
            node += 1
        stages.append(
            {
                "id": stage_id,
                "name": f"stage-{s}",
                "status": "SUCCESS",
                "start": start + s * 1000,
                "duration": 900,
                "steps": stage_steps,
            }
        )
    return stages


def load(sim: JenkinsSim, data: Dataset) -> None:
    start = int(time.time() * 1000) - 30 * 86_400_000
    for f in range(data.folders):
        sim.add_folder(f"folder{f}")
        for j in range(data.jobs_per_folder):
            name = f"folder{f}/job{j}"
            pipeline = data.pipelines and j % 2 == 0
            sim.add_job(name, "pipeline" if pipeline else "freestyle")
            for b in range(data.builds_per_job):
                at = start + (f * 1000 + j * 100 + b) * 60_000
                sim.add_build(
                    name,
                    timestamp=at,
                    result="FAILURE" if b % 7 == 0 else "SUCCESS",
                    parameters=[
                        {
                            "_class": "hudson.model.StringParameterValue",
                            "name": "ENV",
                            "value": "staging",
                        }
                    ],
                    build_data=[
                        {
                            "sha": f"{f:02x}{j:02x}{b:04x}".ljust(40, "0"),
                            "branch": "refs/remotes/origin/main",
                            "remote": f"https://git.example/{name}.git",
                        }
                    ],
                    stages=_stages(data.stages, data.steps_per_stage, at) if pipeline else None,
                )


def _serve(conn: Connection, data: Dataset, jenkins_latency: float, sei_latency: float) -> None:
    sim = JenkinsSim(
        user=USER, token=TOKEN, latency=jenkins_latency, blueocean=False, graphview=data.graphview
    )
    sei = SeiStandIn(api_key=SEI_KEY, latency=sei_latency)
    load(sim, data)
    conn.send((sim.start(), sei.start()))
    while True:
        command = conn.recv()
        if command == "counts":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            conn.send(
                {
                    "jenkins": len(sim.requests),
                    "sei": len(sei.requests),
                    "accepted": len(sei.accepted),
                    "cpu": usage.ru_utime + usage.ru_stime,
                }
            )
        elif command == "timeline":
            with sei._lock:
                posts = [
                    (r["arrived"], r["answered"])
                    for r in sei.requests
                    if r["method"] == "POST" and "answered" in r
                ]
            conn.send(Timeline(list(sim.answered), posts))
        elif command == "reset":
            sim.reset_requests()
            with sei._lock:
                sei.requests.clear()
                sei.accepted.clear()
                sei.runs.clear()
            conn.send("ok")
        else:
            sim.stop()
            sei.stop()
            conn.send("stopped")
            return


@dataclass(frozen=True)
class Timeline:
    """When requests came and were answered (time.monotonic(), the same clock in every process
    of the machine): each Jenkins request's, each SEI POST's."""

    jenkins: list[tuple[float, float]]
    posts: list[tuple[float, float]]

    def posts_in_flight(self) -> float:
        """The average number of POSTs in flight from the first POST's arrival to the last
        one's answer: the share of the allowed concurrency the collector kept busy."""
        return _in_flight(self.posts)

    def posts_in_flight_steady(self, allowed: int) -> float:
        """The same between the first moment `allowed` POSTs were in flight and the last: the
        ramp while the first builds are read and the tail of a job's newest (posted after its
        olders) left out, an estimate of "while builds are ready"."""
        events = sorted([(a, 1) for a, _ in self.posts] + [(b, -1) for _, b in self.posts])
        level, full = 0, []
        for moment, step in events:
            level += step
            if level >= allowed:
                full.append(moment)
        if len(full) < 2:
            return 0.0
        start, end = full[0], full[-1]
        inside = sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.posts)
        return inside / (end - start)

    def jenkins_in_flight(self) -> float:
        """The average number of Jenkins requests being answered, first arrival to last answer."""
        return _in_flight(self.jenkins)


def _in_flight(spans: list[tuple[float, float]]) -> float:
    if not spans:
        return 0.0
    window = max(end for _, end in spans) - min(start for start, _ in spans)
    return sum(end - start for start, end in spans) / window if window > 0 else 0.0


class Servers:
    """`with Servers(data, jenkins_latency, sei_latency) as s:` -> s.jenkins_url, s.sei_url,
    s.counts(), s.reset(). Each latency passes before every answer of that side."""

    def __init__(self, data: Dataset, jenkins_latency: float, sei_latency: float) -> None:
        self._conn, child = mp.Pipe()
        self._process = mp.get_context("fork").Process(
            target=_serve, args=(child, data, jenkins_latency, sei_latency), daemon=True
        )
        self.jenkins_url = self.sei_url = ""

    def __enter__(self) -> Servers:
        self._process.start()
        self.jenkins_url, self.sei_url = self._conn.recv()
        return self

    def counts(self) -> dict[str, int]:
        self._conn.send("counts")
        return cast(dict[str, int], self._conn.recv())

    def timeline(self) -> Timeline:
        self._conn.send("timeline")
        return cast(Timeline, self._conn.recv())

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._conn.recv()
        self._process.join(5)
