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


@dataclass(frozen=True)
class Measured:
    """One collector's run: the process alone (wait4), and what the servers saw of it."""

    name: str
    code: int
    wall: float  # seconds from the process's start to its exit
    cpu: float  # its user + system seconds
    rss: float  # its peak, MB
    counts: dict[str, int]
    startup: float  # seconds to its first Jenkins request
    posting: tuple[float, float]  # first POST's arrival and last POST's answer, from its start
    in_flight: float  # POSTs in flight on average between those two
    steady: float  # the same from the first moment all allowed were in flight to the last
    jenkins_in_flight: float  # Jenkins requests being answered on average, first to last


def measure(
    name: str, command: list[str], env: dict[str, str], servers: Servers, allowed: int = 16
) -> Measured:
    servers.reset()
    before = servers.counts()["cpu"]
    started = time.perf_counter()
    since = time.monotonic()
    child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    counts = servers.counts()
    counts["cpu"] -= before
    line = servers.timeline()
    posts = line.posts or [(since, since)]
    return Measured(
        name,
        os.waitstatus_to_exitcode(status),
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        counts,
        min((start for start, _ in line.jenkins), default=since) - since,
        (min(a for a, _ in posts) - since, max(b for _, b in posts) - since),
        line.posts_in_flight(),
        line.posts_in_flight_steady(allowed),
        line.jenkins_in_flight(),
    )


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


def run_once(servers: Servers, state: Path, naive: bool, extra: dict[str, str]) -> list[Measured]:
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
    rows: list[Measured] = []
    for name, command, env in runs:
        state.unlink(missing_ok=True)
        rows.append(measure(name, command, env, servers, concurrency(extra)[1]))
    return rows


def idle_sync(servers: Servers, state: Path, extra: dict[str, str]) -> int:
    """Jenkins requests of a `sync` with nothing new: after the backfill, one sync settles the
    jobs (their anchors), and the next is measured."""
    command = [sys.executable, "-m", "agent", "sync"]
    measure("sync", command, agent_env(servers, state, extra), servers)
    return measure("sync", command, agent_env(servers, state, extra), servers).counts["jenkins"]


@dataclass(frozen=True)
class Profile:
    jenkins_latency: float
    sei_latency: float
    data: Dataset
    floor_factor: float | None  # wall within floor_factor x floor + STARTUP, when given
    naive_ratio: float  # wall at most this share of the naive collector's


STARTUP = 0.5  # seconds: interpreter, imports, settings, state file (issue 21's target)
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
    rows: list[Measured] = []
    pairs: list[tuple[Measured | None, Measured]] = []
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
        idle = idle_sync(servers, state, extra)
    jenkins_at_once, sei_at_once = concurrency(extra)
    print(
        f"dataset: {data.builds} builds in {data.folders * data.jobs_per_folder} jobs; "
        f"{jenkins_latency * 1000:.0f} ms per Jenkins request, "
        f"{sei_latency * 1000:.0f} ms per SEI request; "
        f"JENKINS_CONCURRENCY {jenkins_at_once}, SEI_CONCURRENCY {sei_at_once}"
    )
    print(
        f"{'collector':22} {'exit':>4} {'wall s':>7} {'CPU s':>6} {'peak MB':>7} "
        f"{'Jenkins req':>11} {'SEI req':>7} {'delivered':>9} {'server CPU s':>12} "
        f"{'1st req s':>9} {'POSTs s':>11} {'in flight':>9}"
    )
    for m in rows:
        print(
            f"{m.name:22} {m.code:>4} {m.wall:7.2f} {m.cpu:6.2f} {m.rss:7.1f} "
            f"{m.counts['jenkins']:>11} {m.counts['sei']:>7} {m.counts['accepted']:>9} "
            f"{m.counts['cpu']:12.2f} {m.startup:9.2f} "
            f"{m.posting[0]:5.2f}-{m.posting[1]:5.2f} {m.in_flight:9.1f}"
        )
    agents = [agent for _, agent in pairs]
    floors = [
        max(
            a.counts["jenkins"] * jenkins_latency / jenkins_at_once,
            a.counts["sei"] * sei_latency / sei_at_once,
        )
        for a in agents
    ]
    walls = [a.wall for a in agents]
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
    print(
        f"agent start to first Jenkins request: {spread([a.startup for a in agents])}; "
        f"to first POST: {spread([a.posting[0] for a in agents])}; "
        f"last answer to exit: {spread([a.wall - a.posting[1] for a in agents])}"
    )
    print(
        f"POSTs in flight on average, first POST to last answer: "
        f"{spread([a.in_flight for a in agents], '', 1)} of {sei_at_once} "
        f"({spread([a.in_flight / sei_at_once for a in agents], 'x')} SEI_CONCURRENCY)"
    )
    print(
        f"POSTs in flight on average while builds are ready (from the first moment all "
        f"{sei_at_once} were in flight to the last): "
        f"{spread([a.steady for a in agents], '', 1)} "
        f"({spread([a.steady / sei_at_once for a in agents], 'x')} SEI_CONCURRENCY)"
    )
    print(
        f"Jenkins requests being answered on average: "
        f"{spread([a.jenkins_in_flight for a in agents], '', 1)} of {jenkins_at_once}"
    )
    cpu_ms = [a.cpu / max(a.counts["accepted"], 1) * 1000 for a in agents]
    print(f"agent CPU: {spread([a.cpu for a in agents])}, per build {spread(cpu_ms, 'ms')}")
    naive = [(n, a) for n, a in pairs if n is not None]
    if naive:
        ratios = [a.wall / n.wall for n, a in naive]
        print(f"naive wall: {spread([n.wall for n, _ in naive])}")
        verdict = "met" if statistics.median(ratios) <= profile.naive_ratio else "MISSED"
        print(
            f"agent wall / naive wall: {spread(ratios, 'x', 3)} "
            f"(target at most {profile.naive_ratio}: {verdict})"
        )
    print(
        f"agent state file: {state_bytes} bytes; an idle sync afterwards: {idle} Jenkins requests"
    )
    return 0 if all(m.code == 0 for m in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
