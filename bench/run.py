"""Backfill benchmark: the agent against a naive python-jenkins collector, side by side.

Both read the same simulated controller and send the same payloads to the SEI stand-in. Each
runs as a process of its own; the servers run in a third. The headline profile is where users
live (`--profile wan`): 10 ms per Jenkins request (controller work plus LAN), 60 ms per SEI POST
(a SaaS over the internet), 500 builds across 50 jobs, half of them pipelines with 3 stages x 2
steps; with `--graphview` the controller also has pipeline-graph-view, which the agent reads
instead of stage view (the naive collector knows only stage view). There the limit is the
request count over the allowed concurrency,
`floor = max(Jenkins requests x 10 ms / JENKINS_CONCURRENCY, POSTs x 60 ms / SEI_CONCURRENCY)`.
`--profile cpu` is the CPU-bound regression guard: 2 ms on every request, 2,000 builds.

With `--repeat N` the two collectors run in turn N times; the summary gives medians and the
spread (min-max) of the runs.

Usage: python bench/run.py [--profile wan|cpu] [--repeat 5] [--skip-naive] [--set NAME=VALUE]
                           [--folders F --jobs J --builds B] [--jenkins-latency S --sei-latency S]
                           [--graphview]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from servers import GUID, SEI_KEY, TOKEN, USER, Dataset, Servers  # noqa: E402


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float, float, int]:
    """Wall seconds, CPU seconds, peak RSS in MB and exit code of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def agent_env(servers: Servers, state: Path, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JENKINS_URL": servers.jenkins_url,
        "JENKINS_USER": USER,
        "JENKINS_API_TOKEN": TOKEN,
        "SEI_BASE_URL": servers.sei_url,
        "SEI_API_KEY": SEI_KEY,
        "SEI_INSTANCE_GUID": GUID,
        "SEI_INSTANCE_NAME": "bench",
        "AGENT_STATE_FILE": str(state),
        "AGENT_LOG_LEVEL": "WARNING",
        **extra,
    }


Row = tuple[str, int, float, float, float, dict[str, int]]


def run_once(servers: Servers, state: Path, naive: bool, extra: dict[str, str]) -> list[Row]:
    """One run of each collector against fresh counters and a fresh state file."""
    runs = []
    if naive:
        runs.append(
            (
                "naive python-jenkins",
                [sys.executable, str(HERE / "naive.py"), servers.jenkins_url, servers.sei_url],
                dict(os.environ, PYTHONPATH=str(ROOT)),
            )
        )
    runs.append(
        (
            "jenkins-sei-agent",
            [sys.executable, "-m", "agent", "backfill", "--since", "2000-01-01"],
            agent_env(servers, state, extra),
        )
    )
    rows: list[Row] = []
    for name, command, env in runs:
        servers.reset()
        state.unlink(missing_ok=True)
        before = servers.counts()["cpu"]
        wall, cpu, rss, code = measure(command, env)
        counts = servers.counts()
        counts["cpu"] -= before
        rows.append((name, code, wall, cpu, rss, counts))
    return rows


@dataclass(frozen=True)
class Profile:
    jenkins_latency: float
    sei_latency: float
    data: Dataset
    floor_factor: float | None  # wall within floor_factor x floor + STARTUP, when given
    naive_ratio: float  # wall at most this share of the naive collector's


STARTUP = 0.7  # seconds: interpreter, imports, settings, state file
PROFILES = {
    "wan": Profile(0.010, 0.060, Dataset(5, 10, 10), 1.25, 0.08),
    "cpu": Profile(0.002, 0.002, Dataset(10, 10, 20), None, 0.3),
}


def concurrency(extra: dict[str, str]) -> tuple[int, int]:
    """JENKINS_CONCURRENCY and SEI_CONCURRENCY as the agent will read them."""
    from agent.config import JenkinsSettings, SeiSettings

    def setting(name: str, default: int) -> int:
        return int(extra.get(name) or os.environ.get(name) or default)

    return (
        setting("JENKINS_CONCURRENCY", JenkinsSettings.model_fields["concurrency"].default),
        setting("SEI_CONCURRENCY", SeiSettings.model_fields["concurrency"].default),
    )


def spread(values: list[float], unit: str = "s", digits: int = 2) -> str:
    """The median and, over several runs, the range: `4.10 s (3.95-4.30)`."""
    median = f"{statistics.median(values):.{digits}f} {unit}".rstrip()
    if len(values) < 2:
        return median
    return f"{median} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=PROFILES, default="wan")
    parser.add_argument("--jenkins-latency", type=float, help="seconds per Jenkins request")
    parser.add_argument("--sei-latency", type=float, help="seconds per SEI request")
    parser.add_argument("--folders", type=int)
    parser.add_argument("--jobs", type=int, help="jobs per folder")
    parser.add_argument("--builds", type=int, help="builds per job")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument(
        "--graphview", action="store_true", help="the controller has pipeline-graph-view too"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run both collectors this many times, in turn; timings here drift between minutes",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra agent setting, e.g. --set SEI_CONCURRENCY=8",
    )
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    base = profile.data
    data = Dataset(
        args.folders or base.folders,
        args.jobs or base.jobs_per_folder,
        args.builds or base.builds_per_job,
        graphview=args.graphview,
    )
    jenkins_latency = (
        profile.jenkins_latency if args.jenkins_latency is None else args.jenkins_latency
    )
    sei_latency = profile.sei_latency if args.sei_latency is None else args.sei_latency
    extra = dict(item.split("=", 1) for item in args.set)
    rows: list[Row] = []
    pairs: list[tuple[Row | None, Row]] = []
    with (
        Servers(data, jenkins_latency, sei_latency) as servers,
        tempfile.TemporaryDirectory() as tmp,
    ):
        state = Path(tmp) / "state.json"
        for _ in range(args.repeat):
            pair = run_once(servers, state, not args.skip_naive, extra)
            rows.extend(pair)
            pairs.append((pair[0] if len(pair) == 2 else None, pair[-1]))
        state_bytes = state.stat().st_size
    print(
        f"dataset: {data.builds} builds in {data.folders * data.jobs_per_folder} jobs; "
        f"{jenkins_latency * 1000:.0f} ms per Jenkins request, "
        f"{sei_latency * 1000:.0f} ms per SEI request"
    )
    print(
        f"{'collector':22} {'exit':>4} {'wall s':>7} {'CPU s':>6} {'peak MB':>7} "
        f"{'Jenkins req':>11} {'SEI req':>7} {'delivered':>9} {'server CPU s':>12}"
    )
    for name, code, wall, cpu, rss, counts in rows:
        print(
            f"{name:22} {code:>4} {wall:7.2f} {cpu:6.2f} {rss:7.1f} {counts['jenkins']:>11} "
            f"{counts['sei']:>7} {counts['accepted']:>9} {counts['cpu']:12.2f}"
        )
    agents = [agent for _, agent in pairs]
    jenkins_at_once, sei_at_once = concurrency(extra)
    floors = [
        max(
            a[5]["jenkins"] * jenkins_latency / jenkins_at_once,
            a[5]["sei"] * sei_latency / sei_at_once,
        )
        for a in agents
    ]
    walls = [a[2] for a in agents]
    print(f"\nsummary of {len(agents)} run(s): median (min-max)")
    print(
        f"floor max(Jenkins req x {jenkins_latency * 1000:.0f} ms / {jenkins_at_once}, "
        f"POSTs x {sei_latency * 1000:.0f} ms / {sei_at_once}): {spread(floors)}"
    )
    print(f"agent wall: {spread(walls)}")
    print(f"agent wall / floor: {spread([w / f for w, f in zip(walls, floors, strict=True)], 'x')}")
    if profile.floor_factor is not None:
        limits = [profile.floor_factor * f + STARTUP for f in floors]
        met = all(w <= limit for w, limit in zip(walls, limits, strict=True))
        print(
            f"target {profile.floor_factor} x floor + {STARTUP} s = {spread(limits)}: "
            f"{'met' if statistics.median(walls) <= statistics.median(limits) else 'MISSED'}"
            f" by the median, {'met' if met else 'not met'} by every run"
        )
    cpu_ms = [a[3] / max(a[5]["accepted"], 1) * 1000 for a in agents]
    print(f"agent CPU: {spread([a[3] for a in agents])}, per build {spread(cpu_ms, 'ms')}")
    naive = [(n, a) for n, a in pairs if n is not None]
    if naive:
        ratios = [a[2] / n[2] for n, a in naive]
        print(f"naive wall: {spread([n[2] for n, _ in naive])}")
        verdict = "met" if statistics.median(ratios) <= profile.naive_ratio else "MISSED"
        print(
            f"agent wall / naive wall: {spread(ratios, 'x', 3)} "
            f"(target at most {profile.naive_ratio}: {verdict})"
        )
    print(f"agent state file: {state_bytes} bytes")
    return 0 if all(row[1] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
