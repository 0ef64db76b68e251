"""Step 3 of the flow: map one Jenkins build, with what was read beside it, to the payload SEI
stores. Pure functions of Jenkins JSON: no I/O, no clock, no settings or HTTP library.

`map_build` (agent/mapping/build.py) is the heart of the agent; the other modules each map one
part of the payload: causes, parameters, scm, stages, artifacts, and the operator's rules.
"""

from agent.mapping.artifacts import parse_manifests
from agent.mapping.build import execution_id, map_build
from agent.mapping.context import MapContext, Unmappable
from agent.mapping.stages import map_job_run

__all__ = [
    "MapContext",
    "Unmappable",
    "execution_id",
    "map_build",
    "map_job_run",
    "parse_manifests",
]
