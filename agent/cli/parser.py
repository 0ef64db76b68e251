"""The command line's arguments, every command's flags and help: all that `--help`, `--version`
and a usage error need, without the settings, clients or pipeline (agent/cli/__init__.py imports
those only once the arguments parsed)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from agent import __version__

EXAMPLES = """\
examples:
  jenkins-sei-agent sync                         send what finished since the last run
  jenkins-sei-agent sync --dry-run --output -    print the payloads, send nothing
  jenkins-sei-agent backfill --since 2024-01-01 --jobs 'team-a/*'
  jenkins-sei-agent --config agent.yaml sync
  jenkins-sei-agent --config satellite.yml check   every Jenkins integration in the file
  jenkins-sei-agent jobs --jobs 'team-a/*'        the jobs read, their names in SEI
  jenkins-sei-agent state show
"""


Command = Callable[[str, str, str], argparse.ArgumentParser]


def _subcommands(
    parser: argparse.ArgumentParser, common: argparse.ArgumentParser, dest: str, metavar: str
) -> Command:
    """What adds a subcommand to `parser`: the common flags, its summary as help and
    description, and an example."""
    subs = parser.add_subparsers(dest=dest, metavar=metavar, required=True)

    def command(name: str, summary: str, example: str) -> argparse.ArgumentParser:
        return subs.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    return command


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, help="YAML settings file (AGENT_CONFIG)"
    )
    common.add_argument(
        "--state-file", type=Path, default=argparse.SUPPRESS, help="state file (AGENT_STATE_FILE)"
    )
    common.add_argument(
        "--log-level", default=argparse.SUPPRESS, help="DEBUG, INFO, WARNING, ERROR"
    )
    common.add_argument("--log-format", default=argparse.SUPPRESS, help="text or json")

    parser = argparse.ArgumentParser(
        prog="jenkins-sei-agent",
        description="Deliver every finished Jenkins build to Harness SEI, at least once: a crash "
        "may send a few builds again, never lose one, and SEI keeps the first write of each.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    command = _subcommands(parser, common, "command", "COMMAND")

    def delivery_flags(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--jobs", action="append", metavar="GLOB", help="only jobs whose full name matches"
        )
        sub.add_argument(
            "--dry-run", action="store_true", help="map and print payloads; send nothing"
        )
        sub.add_argument(
            "--output", metavar="FILE", help="also write each payload as a JSON line ('-': stdout)"
        )

    sync = command(
        "sync",
        "Send every finished build not sent yet (jobs never seen: within AGENT_LOOKBACK).",
        "jenkins-sei-agent sync --jobs 'team-a/*'",
    )
    sync.add_argument("--lookback", default=argparse.SUPPRESS, help="e.g. 24h, 7d (AGENT_LOOKBACK)")
    delivery_flags(sync)

    backfill = command(
        "backfill",
        "Send the history between two dates, skipping what was already sent.",
        "jenkins-sei-agent backfill --since 2024-01-01 --until 2024-06-30",
    )
    backfill.add_argument("--since", required=True, help="YYYY-MM-DD (UTC) or ISO 8601")
    backfill.add_argument("--until", help="YYYY-MM-DD (that whole day) or ISO 8601; default now")
    delivery_flags(backfill)

    command(
        "run",
        "Run as a service: a sync every AGENT_INTERVAL seconds (or on AGENT_CRON), "
        "/healthz, /metrics and /status on AGENT_HTTP_PORT; SIGTERM stops it cleanly.",
        "AGENT_INTERVAL=300 AGENT_LOG_FORMAT=json jenkins-sei-agent run",
    )
    _check(command)
    _jobs(command)
    _register(command)
    _state(command, common)
    return parser


def _check(command: Command) -> None:
    sub = command(
        "check",
        "Pre-flight checks of the settings, Jenkins and SEI; sends no build.",
        "jenkins-sei-agent --config satellite.yml check",
    )
    sub.description = (
        "Check the settings, each Jenkins controller (reachable, version, credentials, stage "
        "source, job count) and SEI (reachable, API key) without sending any build, and print "
        "a table with a hint for each failure. Exit 0 when all pass (warnings allowed), 2 when "
        "a setting is missing, 3 when Jenkins or SEI cannot be reached or refuse the credentials."
    )


def _jobs(command: Command) -> None:
    sub = command(
        "jobs",
        "List the jobs the settings select, their names in SEI and what was sent of them.",
        "jenkins-sei-agent jobs --jobs 'team-a/*' --output json",
    )
    sub.add_argument(
        "--jobs", action="append", metavar="GLOB", help="only jobs whose full name matches"
    )
    sub.add_argument(
        "--output", choices=("text", "json"), default="text", help="a table (text) or JSON"
    )


def _register(command: Command) -> None:
    sub = command(
        "register",
        "Create the SEI CI/CD instance of a controller and print its GUID.",
        "jenkins-sei-agent --config agent.yaml register --integration-id 4711 "
        "--name jenkins-main --write-config",
    )
    sub.description = (
        "Create an SEI CI/CD instance for a Jenkins controller (POST /v1/cicd/instances) and "
        "print its GUID on stdout. --write-config also writes it, with the name and the "
        "integration, into the --config file: under `sei:` of an agent.yaml, or into the "
        "integration's `metadata` in a satellite.yml; the rest of the file is kept as it is."
    )
    sub.add_argument(
        "--integration-id",
        metavar="ID",
        help="the SEI integration (default: SEI_INTEGRATION_ID, or the integration's id in a "
        "satellite.yml with one Jenkins integration)",
    )
    sub.add_argument("--name", help="the instance's name in SEI (default: SEI_INSTANCE_NAME)")
    sub.add_argument("--url", help="the controller's URL (default: JENKINS_URL)")
    sub.add_argument(
        "--write-config", action="store_true", help="write the new GUID into the --config file"
    )
    sub.add_argument(
        "--force",
        action="store_true",
        help="with --write-config: replace an instance GUID the file already holds (the "
        "examples' all-zero placeholder is replaced without it)",
    )


def _state(command: Command, common: argparse.ArgumentParser) -> None:
    state = command(
        "state",
        "Show, repair, export or import what the state file says was sent.",
        "jenkins-sei-agent state show\n  jenkins-sei-agent state forget team-a/api --build 42",
    )
    sub = _subcommands(state, common, "state_command", "SUBCOMMAND")

    def instance(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--instance", metavar="GUID", help="only this controller's section (its instance GUID)"
        )

    show = sub(
        "show",
        "A table per controller: per job the builds sent, the newest sent, the builds pending "
        "(running, or not delivered yet) and the dead letters (refused by SEI) with SEI's reason.",
        "jenkins-sei-agent state show --json",
    )
    show.add_argument("--json", action="store_true", help="the same as JSON")
    instance(show)

    forget = sub(
        "forget",
        "Forget a job, or some of its builds, so that the next sync sends them again. A whole "
        "job is then new to sync: it sends its builds of the lookback (older ones: backfill).",
        "jenkins-sei-agent state forget team-a/api --build 41 --build 42",
    )
    forget.add_argument("job", metavar="JOB", help="the job's full name, as `state show` lists it")
    forget.add_argument(
        "--build", type=int, action="append", metavar="N", help="only this build (repeatable)"
    )
    instance(forget)

    retry = sub(
        "retry-dead",
        "Send the dead letters again on the next sync, e.g. after fixing what SEI refused.",
        "jenkins-sei-agent state retry-dead 'team-a/*'",
    )
    retry.add_argument("job", metavar="JOB", nargs="?", help="only jobs matching this glob")
    instance(retry)

    reset = sub(
        "reset",
        "Forget everything (or one controller's section): the next sync starts afresh. Asks "
        "first on a terminal; elsewhere it needs --yes.",
        "jenkins-sei-agent state reset --yes",
    )
    reset.add_argument("--yes", action="store_true", help="do not ask")
    instance(reset)

    export = sub(
        "export",
        "Write the whole state as JSON (the state file's own format) to FILE or stdout.",
        "jenkins-sei-agent state export backup.json",
    )
    export.add_argument("file", metavar="FILE", nargs="?", default="-", help="'-' is stdout")

    load = sub(
        "import",
        "Replace the state with an export. Asks first on a terminal when the state is not "
        "empty; elsewhere that needs --yes.",
        "jenkins-sei-agent state import backup.json --yes",
    )
    load.add_argument("file", metavar="FILE", help="an export ('-' is stdin)")
    load.add_argument("--yes", action="store_true", help="do not ask")
