"""The command line: it parses, loads the settings, wires the parts for one command and turns
failures into exit codes. It holds no logic of the flow itself."""

from agent.cli.main import main

__all__ = ["main"]
