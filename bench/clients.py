"""CPU per request of HTTP clients, counted in instructions with valgrind's callgrind.

Timings on shared machines drift by a third from one minute to the next; instruction counts
repeat. Each client makes keep-alive GETs of the same 1 KB wfapi answer from the simulator in a
process of its own under callgrind, once with 0 and once with N requests; the difference over
N is the cost of one request.

Usage: python bench/clients.py [--requests 200] [--only httpx,agent-http]   (needs valgrind)
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from servers import TOKEN, USER, Dataset, Servers  # noqa: E402

CLIENTS = {
    "httpx": "httpx 0.28 (Client, base_url, keep-alive)",
    "urllib3": "urllib3 2.x (HTTPConnectionPool)",
    "http.client": "http.client as it comes",
    "agent-http": "agent Http (httpx, whole URL given)",
    "agent-jenkins": "agent JenkinsClient.get_json (+ retries, checks, JSON)",
}


def requester(name: str, url: str) -> Callable[[], object]:
    """A function making one GET of the benchmark path with the named client."""
    from agent.config import JenkinsSettings
    from agent.jenkins.client import JenkinsClient
    from agent.jenkins.endpoints import wfapi_run

    jenkins = JenkinsClient(JenkinsSettings(url=url, user=USER, api_token=TOKEN))
    path = wfapi_run(("folder0", "job0"), 3)
    credentials = base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
    headers = {"Accept": "application/json", "Authorization": f"Basic {credentials}"}
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    if name == "httpx":
        import httpx

        client = httpx.Client(base_url=url.rstrip("/"), headers=headers)
        return lambda: client.get("/" + path).content
    if name == "urllib3":
        import urllib3

        pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1)
        return lambda: pool.request("GET", "/" + path, headers=headers).data
    if name == "http.client":
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", port)

        def get() -> bytes:
            connection.request("GET", "/" + path, headers=headers)
            return connection.getresponse().read()

        return get
    if name == "agent-http":
        http = jenkins._http  # the layer under JenkinsClient
        return lambda: http.request("GET", path).body
    return lambda: jenkins.get_json(path, kind="bench")


def child(name: str, url: str, count: int) -> None:
    get = requester(name, url)
    get()  # connect and warm up outside the count
    for _ in range(count):
        get()


def instructions(name: str, url: str, count: int, out: Path) -> int:
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            name,
            url,
            str(count),
        ],
        check=True,
        capture_output=True,
    )
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    assert match, f"no total in {out}"
    return int(match.group(1))


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--only", default=",".join(CLIENTS))
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("bench/clients.py needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    with Servers(Dataset(1, 2, 5), 0.0, 0.0) as servers, tempfile.TemporaryDirectory() as tmp:
        print(f"{'client':58} instructions per request")
        for name in args.only.split(","):
            base = instructions(name, servers.jenkins_url, 0, Path(tmp) / f"{name}.0")
            more = instructions(name, servers.jenkins_url, args.requests, Path(tmp) / f"{name}.n")
            print(f"{CLIENTS[name]:58} {(more - base) / args.requests / 1000:,.0f}k")
    return 0


if __name__ == "__main__":
    sys.exit(main())
