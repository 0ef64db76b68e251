"""Memory and state size of a long backfill: one job with 100,000 builds.

The agent streams a job's history page by page and keeps at most `sei.concurrency` builds in
flight, so its peak memory must not grow with the history. Prints the agent's peak RSS, the
state file's size and the wall time.

Usage: python bench/memory.py [--builds 100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import agent_env, measure  # noqa: E402
from servers import Dataset, Servers  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=100_000)
    args = parser.parse_args()
    data = Dataset(folders=1, jobs_per_folder=1, builds_per_job=args.builds, pipelines=False)
    with Servers(data, 0.0, 0.0) as servers, tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.json"
        m = measure(
            "jenkins-sei-agent",
            [sys.executable, "-m", "agent", "backfill", "--since", "2000-01-01"],
            agent_env(servers, state, {"JENKINS_PAGE_SIZE": "100"}),
            servers,
        )
        size = state.stat().st_size
    print(
        f"{args.builds} builds: exit {m.code}, {m.wall:.1f} s wall, {m.cpu:.1f} s CPU, "
        f"peak RSS {m.rss:.1f} MB, state file {size} bytes, "
        f"{m.counts['jenkins']} Jenkins requests, {m.counts['accepted']} delivered"
    )
    return m.code


if __name__ == "__main__":
    sys.exit(main())
