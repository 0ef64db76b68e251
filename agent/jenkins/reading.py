"""Readers of Jenkins JSON that take junk for absent: the answers come from many plugins and
versions, and a field of an unexpected type must never stop a build from being mapped."""

from __future__ import annotations

import re
from typing import Any, TypeGuard


def dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def opt_text(value: Any) -> str | None:
    """A non-empty string, or None: junk in an optional text field is left out."""
    return value if isinstance(value, str) and value else None


def simple_class(obj: dict[str, Any]) -> str:
    cls = obj.get("_class")
    if isinstance(cls, str) and cls:
        return re.split(r"[.$]", cls)[-1]
    return ""
