"""Seeded mutation of JSON answers, for tests/test_fuzz.py.

A mutation takes a real answer (from the Jenkins simulator or a recorded fixture) and breaks it
the ways answers from odd plugins, old controllers and broken proxies break: a value of another
type, a number too large for any clock, NaN, a key deleted, nesting deeper than a parser goes,
lone surrogates (escaped, as Jenkins' JSON writer escapes them), very long strings, a body cut
short. Every choice comes from a `random.Random` seeded by the caller, so a failure names a seed
that reproduces it. Standard library only.
"""

from __future__ import annotations

import copy
import json
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Fields the agent reads somewhere: a mutation aimed at one of them is likelier to matter than
# one that lands on `_links` or a field nobody asked for.
READ_FIELDS = frozenset(
    {
        "_class",
        "actions",
        "active",
        "allBuilds",
        "artifact",
        "artifacts",
        "branch",
        "building",
        "builds",
        "causes",
        "changeSet",
        "changeSets",
        "children",
        "commitId",
        "data",
        "displayDescription",
        "displayName",
        "duration",
        "durationInMillis",
        "durationMillis",
        "environment",
        "fileName",
        "id",
        "input",
        "items",
        "jobs",
        "lastBuild",
        "lastBuiltRevision",
        "location",
        "metadata",
        "modules",
        "name",
        "nextBuildNumber",
        "nextSibling",
        "number",
        "parameterDescription",
        "parameters",
        "parentNodes",
        "placeholder",
        "plugins",
        "qualifier",
        "relativePath",
        "remoteUrls",
        "result",
        "revision",
        "SEI_SCM_COMMIT_IDS",
        "SHA1",
        "shortDescription",
        "shortName",
        "stageFlowNodes",
        "stageId",
        "stages",
        "startTime",
        "startTimeMillis",
        "state",
        "status",
        "steps",
        "synthetic",
        "timestamp",
        "title",
        "totalDurationMillis",
        "type",
        "upstreamBuild",
        "upstreamProject",
        "url",
        "userId",
        "userName",
        "value",
        "version",
    }
)


@dataclass(frozen=True)
class Raw:
    """JSON text put into a document as it is: nesting deeper than `json.dumps` would write."""

    text: str


def _deep(depth: int) -> Raw:
    return Raw("[" * depth + "1" + "]" * depth)


# Values a field may be swapped for, given the value it held.
_JUNK: tuple[Callable[[Any], Any], ...] = (
    lambda old: json.dumps(old, default=str)[:40] if isinstance(old, dict | list) else str(old),
    lambda old: [old],
    lambda old: {"value": old},
    lambda old: None,
    lambda old: True,
    lambda old: 0,
    lambda old: -1,
    lambda old: 10**20,
    lambda old: -(10**20),
    lambda old: 2**63,
    lambda old: 1.5,
    lambda old: float("nan"),
    lambda old: float("inf"),
    lambda old: "NaN",
    lambda old: "-Infinity",
    lambda old: "1e999",
    lambda old: "",
    lambda old: " \t",
    lambda old: "\ud800",
    lambda old: "a\udfffb",
    lambda old: "\u202e名前💥\x00",
    lambda old: "x" * 100_000,
    lambda old: [],
    lambda old: {},
    lambda old: 5,
    lambda old: "oops",
    lambda old: _deep(50),
    lambda old: _deep(900),
    lambda old: _deep(20_000),
)

# Whole bodies an answer may be replaced with, or made into: what a broken proxy, a crashed
# plugin or a cut connection sends.
_BODIES: tuple[Callable[[bytes], bytes], ...] = (
    lambda body: body[: len(body) // 2],
    lambda body: b"",
    lambda body: b"null",
    lambda body: b"[]",
    lambda body: b"{}",
    lambda body: b"5",
    lambda body: b'"oops"',
    lambda body: b"\xef\xbb\xbf" + body,  # a byte-order mark
    lambda body: body[:10] + b"\xff\xfe" + body[10:],  # not UTF-8
    lambda body: body + b"}{",
    lambda body: b"[" * 100_000 + b"]" * 100_000,
)


def serialize(doc: Any) -> bytes:
    """JSON as a Java writer sends it: non-ASCII escaped (so lone surrogates travel as
    `\\ud800`), NaN as the bare word, `Raw` fragments spliced in."""
    raws: list[str] = []

    def prepare(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value.text)
            return f"\x00raw{len(raws) - 1}\x00"
        if isinstance(value, dict):
            return {key: prepare(item) for key, item in value.items()}
        if isinstance(value, list):
            return [prepare(item) for item in value]
        return value

    text = json.dumps(prepare(doc), ensure_ascii=True)
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00raw{index}\x00"), raw, 1)
    return text.encode("ascii")


# A build missing from a listing is a build that was deleted: removing one is no mutation of
# an answer but another Jenkins, so list entries under these keys are never removed.
_NOT_REMOVED = frozenset({"builds", "allBuilds"})


def _slots(doc: Any, limit: int = 20_000) -> list[tuple[Any, Any, Any]]:
    """(container, key, the container's own key) of every value below the root, breadth
    first, at most `limit`."""
    found: list[tuple[Any, Any, Any]] = []
    pending: deque[tuple[Any, Any]] = deque([(doc, None)])
    while pending and len(found) < limit:
        node, owner = pending.popleft()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            found.append((node, key, owner))
            if isinstance(value, dict | list):
                pending.append((value, key if isinstance(node, dict) else owner))
    return found


class Mutator:
    """Applies seeded mutations to JSON documents; `said` lists what each one did."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.said: list[str] = []

    def junk(self, old: Any) -> Any:
        return self.rng.choice(_JUNK)(old)

    def document(self, doc: Any, count: int | None = None) -> Any:
        """A mutated deep copy of `doc`: `count` mutations (1 to 4 when not given)."""
        doc = _copy(doc)
        count = count if count is not None else self.rng.choice((1, 1, 1, 2, 2, 3, 4))
        for _ in range(count):
            doc = self._once(doc)
        return doc

    def body(self, body: bytes) -> bytes:
        """A mutated JSON answer: mostly its document mutated, now and then the body itself."""
        if self.rng.random() < 0.1:
            made = self.rng.choice(_BODIES)(body)
            self.said.append(f"body -> {made[:30]!r}")
            return made
        try:
            doc = json.loads(body)
        except ValueError:
            return body
        return serialize(self.document(doc))

    def _once(self, doc: Any) -> Any:
        slots = _slots(doc) if isinstance(doc, dict | list) else []
        if not slots:
            new = self.junk(doc)
            self.said.append(f"root -> {_shown(new)}")
            return new
        aimed = [s for s in slots if isinstance(s[0], dict) and s[1] in READ_FIELDS]
        roll = self.rng.random()
        container, key, owner = self.rng.choice(aimed if aimed and roll < 0.6 else slots)
        removable = not (isinstance(container, list) and owner in _NOT_REMOVED)
        if roll < 0.75:
            new = self.junk(container[key])
            self.said.append(f"{key} -> {_shown(new)}")
            container[key] = new
        elif roll < 0.88 and removable:
            self.said.append(f"del {key}")
            del container[key]
        elif isinstance(container, list):
            self.said.append(f"dup [{key}]")
            container.insert(key, copy.deepcopy(container[key]))
        else:
            name = self.rng.choice(sorted(READ_FIELDS))
            new = self.junk(container.get(name))
            self.said.append(f"+{name} -> {_shown(new)}")
            container[name] = new
        return doc


def _copy(doc: Any) -> Any:
    """A deep copy, through JSON where it can (ten times faster than copy.deepcopy)."""
    try:
        return json.loads(json.dumps(doc))
    except (TypeError, ValueError, RecursionError):
        return copy.deepcopy(doc)


def _shown(value: Any) -> str:
    text = value.text if isinstance(value, Raw) else repr(value)
    return text if len(text) <= 30 else f"{text[:27]}..."
