"""Freshness benchmark: how long after a build ends is it in SEI, with `run` as shipped.

A live controller (tests/live_controller.py, the one the tests step by hand, here driven by the
wall clock; the simulator answers in 10 ms a request) runs builds: 20 jobs, half of them
pipelines, each starting a new build a moment after the last one ended, most 15-60 s long and a
few (4 %) of a few seconds; SEI answers each POST in 60 ms. The agent runs `run` with its
default settings (AGENT_INTERVAL 300 s, AGENT_WATCH_INTERVAL 10 s) as a process of its own. The
delay of each build is the time SEI accepted it (seen by polling the stand-in every 0.1 s) minus
its end (start + duration). Afterwards the controller stays idle for a minute and the requests
it receives are counted.

Usage: python bench/freshness.py [--minutes 4] [--idle-seconds 60] [--repeat 1]
(each run takes its minutes, up to a minute more while the last builds end, and the idle time)
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from jenkins_sim import JenkinsSim  # noqa: E402
from live_controller import LiveController, WallClock  # noqa: E402
from sei_standin import SeiStandIn  # noqa: E402

USER, TOKEN, SEI_KEY = "bench", "bench-token", "bench-key"
GUID = "4b1f6c1e-8d0a-4c57-9a1e-2f1d3c4b5a69"
JOBS = 20


def now_ms() -> int:
    return int(time.time() * 1000)


def one_run(minutes: float, idle_seconds: float, seed: int) -> dict[str, float]:
    with (
        JenkinsSim(user=USER, token=TOKEN, latency=0.01, clock_ms=now_ms()) as sim,
        SeiStandIn(api_key=SEI_KEY, latency=0.06) as sei,
        tempfile.TemporaryDirectory() as folder,
    ):
        live = LiveController(sim, jobs=JOBS, seed=seed, start_ms=now_ms())
        driver = WallClock(live)
        driver.start()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "JENKINS_URL": sim.url,
            "JENKINS_USER": USER,
            "JENKINS_API_TOKEN": TOKEN,
            "SEI_BASE_URL": sei.url,
            "SEI_API_KEY": SEI_KEY,
            "SEI_INSTANCE_GUID": GUID,
            "SEI_INSTANCE_NAME": "bench",
            "AGENT_STATE_FILE": str(Path(folder) / "state.json"),
            "AGENT_HTTP_PORT": "0",
        }
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "run"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL
        )
        seen: dict[tuple[str, int], float] = {}
        polling = threading.Event()

        def poll() -> None:  # when SEI accepted each build, to 0.1 s
            while not polling.wait(0.1):
                for payload in list(sei.accepted):
                    seen.setdefault(
                        (payload["job_full_name"], payload["build_number"]), time.time()
                    )

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        time.sleep(minutes * 60)
        live.stop_starting()  # what runs ends; then the controller idles
        while not live.idle():
            time.sleep(0.2)
        time.sleep(15)
        sim.reset_requests()
        time.sleep(idle_seconds)
        idle = sim.requests[:]
        polling.set()
        driver.stop()
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
        posts = Counter((p["job_full_name"], p["build_number"]) for p in sei.accepted)
    names = {job: job.replace("team/", "team/jobs/") for job in live.jobs}
    ended = {(names[b.job], b.number): b.end_ms for b in live.finished}
    # a build not delivered yet (one that started and ended between two looks waits for the
    # next cycle, up to AGENT_INTERVAL) counts as never: the p95 is over every build that ended
    delays = sorted(
        seen[key] - end / 1000 if key in seen else float("inf") for key, end in ended.items()
    )
    minute = 60 / idle_seconds
    return {
        "finished": len(ended),
        "delivered": sum(1 for key in ended if key in seen),
        "twice": sum(count - 1 for count in posts.values()),
        "p50": delays[len(delays) // 2],
        "p95": delays[int(0.95 * (len(delays) - 1))],
        "max": delays[-1],
        "idle_requests_a_minute": len(idle) * minute,
        "idle_listings": sum(1 for _, path, _ in idle if path == "/api/json"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4)
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    runs = []
    for seed in range(args.repeat):
        figures = one_run(args.minutes, args.idle_seconds, seed)
        runs.append(figures)
        print(
            f"run {seed + 1}: {figures['delivered']}/{figures['finished']} builds delivered "
            "(the rest wait for the next cycle), "
            f"{figures['twice']} twice; delay p50 {figures['p50']:.1f} s, p95 "
            f"{figures['p95']:.1f} s, max {figures['max']:.1f} s; idle: "
            f"{figures['idle_requests_a_minute']:.0f} requests a minute, "
            f"{figures['idle_listings']} full listings",
            flush=True,
        )
    if len(runs) > 1:
        for name in ("p50", "p95", "idle_requests_a_minute"):
            values = [r[name] for r in runs]
            print(
                f"{name}: median {statistics.median(values):.1f} "
                f"({min(values):.1f}-{max(values):.1f})"
            )
    worst = max(r["p95"] for r in runs)
    print(f"target p95 <= 15 s: {'met' if worst <= 15 else 'MISSED'} (worst run {worst:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
