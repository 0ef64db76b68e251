"""pipeline-stage-view (wfapi) answers: which flow nodes of a stage are parallel branches.

Needed both to read a run (each branch is asked for its own steps) and to map it.
"""

from __future__ import annotations

from typing import Any

from agent.jenkins.reading import as_list, dicts


def chain_roots(describe: dict[str, Any]) -> dict[str, str]:
    """Flow node id -> the node its chain of steps leads back to (outside the node list)."""
    nodes = dicts(describe.get("stageFlowNodes"))
    parent = {str(n.get("id")): str((as_list(n.get("parentNodes")) or [""])[0]) for n in nodes}
    roots = {}
    for start in parent:
        node, seen = start, {start}
        while parent[node] in parent and parent[node] not in seen:
            node = parent[node]
            seen.add(node)
        roots[start] = parent[node]
    return roots


def wfapi_branches(stage_describe: dict[str, Any]) -> list[str]:
    """Ids of the parallel branches inside a stage, from its flow nodes' parents.

    Each chain of steps leads back to the node that opened it: the stage itself (or its body)
    for ordinary steps, one branch node per branch in a parallel stage. One root: no branches.
    """
    roots = list(dict.fromkeys(r for r in chain_roots(stage_describe).values() if r))
    return roots if len(roots) > 1 else []
