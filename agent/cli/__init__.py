"""The command line: it parses, loads the settings, wires the parts for one command and turns
failures into exit codes. It holds no logic of the flow itself."""

from __future__ import annotations

from agent.cli.parser import build_parser

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # imported once parsed: --help, --version and a usage error need none of its ~0.4 s of imports
    from agent.cli.commands import run

    return run(args)
