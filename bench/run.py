"""Backfill benchmark: the agent against a naive python-jenkins collector, side by side.

Both read the same simulated controller (10 folders x 10 jobs x 20 builds, half of them
pipelines with 3 stages x 2 steps) and send the same payloads to the SEI stand-in, with the
same latency on every Jenkins and SEI request. With --graphview the controller also has
pipeline-graph-view, which the agent reads instead of stage view; the naive collector knows
only stage view. Each runs as a process of its own; the servers
run in a third. Prints requests, wall time, peak memory and the speed ratio.

Usage: python bench/run.py [--latency 0.002] [--folders 10 --jobs 10 --builds 20] [--skip-naive]
                           [--repeat N] [--set NAME=VALUE] [--graphview]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.002)
    parser.add_argument("--folders", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--builds", type=int, default=20)
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
    data = Dataset(args.folders, args.jobs, args.builds, graphview=args.graphview)
    extra = dict(item.split("=", 1) for item in args.set)
    rows: list[Row] = []
    ratios = []
    with Servers(data, args.latency) as servers, tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.json"
        for _ in range(args.repeat):
            pair = run_once(servers, state, not args.skip_naive, extra)
            rows.extend(pair)
            if len(pair) == 2:
                ratios.append(pair[0][2] / pair[1][2])
        state_bytes = state.stat().st_size
    print(
        f"dataset: {data.builds} builds in {data.folders * data.jobs_per_folder} jobs, "
        f"latency {args.latency * 1000:.1f} ms per request"
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
    if ratios:
        print("speed-up: " + ", ".join(f"{r:.1f}x" for r in ratios), end="")
        print(f" (median {statistics.median(ratios):.1f}x)" if len(ratios) > 1 else "")
    print(f"agent state file: {state_bytes} bytes")
    return 0 if all(row[1] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
