"""An answer as the clients judge it: its status, headers and body, read within the caps."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

# No answer of Jenkins or SEI nests more than a few dozen levels. A deeper one is refused
# before it is parsed: near Python's recursion limit the garbage collector, running inside the
# parser, cannot call finalizers, and CPython prints their RecursionError tracebacks.
MAX_NESTING = 200
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nested_within(body: bytes, levels: int) -> bool:
    """Whether the brackets of `body` nest at most `levels` deep (up to twice that where [ and
    { alternate, one pass removing both). Brackets inside strings count too: a text of balanced
    brackets nested 200 deep costs its answer, and the check costs a tenth of a parse."""
    brackets = body.translate(None, _NOT_BRACKETS)
    for _ in range(levels):
        inner = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if len(inner) == len(brackets):
            return True
        brackets = inner
    return not brackets


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes
    redirects: int = 0  # redirects followed to get here, each one request more
    elsewhere: str | None = None  # the other host a redirect led to, which answered this

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not, or is nested deeper than any answer
        of Jenkins or SEI (see MAX_NESTING), or than the parser goes."""
        if not nested_within(self.body, MAX_NESTING):
            raise ValueError("JSON nested too deep")
        try:
            return json.loads(self.body)
        except RecursionError:
            problem = "JSON nested too deep"
        except ValueError as exc:
            problem = str(exc)
        # raised out here: a JSONDecodeError keeps the whole document, decoded (`doc`), and as
        # the context of what is raised from it, it outlived the read
        raise ValueError(problem)

    def header(self, name: str) -> str | None:
        value: str | None = self.headers.get(name)
        return value
