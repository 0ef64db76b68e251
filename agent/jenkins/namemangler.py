"""Port of the Jenkins branch-api plugin's ``NameMangler``.

The Harness SEI Jenkins plugin keys jobs on their on-disk directory under
``$JENKINS_HOME/jobs``.  For multibranch branches and organization-folder
repositories that directory is not the item's name but ``NameMangler.apply(name)``,
so the agent must compute exactly the same string to name jobs the way SEI does.

Ported from ``src/main/java/jenkins/branch/NameMangler.java`` in
https://github.com/jenkinsci/branch-api-plugin at commit
e73a56d397882c63ae06483ba81742c2e39d25d5 (file last changed in
04e86c7ce54c66885dffb929bd72a14a12650c9f).  Copyright (c) 2017, CloudBees, Inc.;
MIT licence.

Java works on UTF-16 code units, so this port does too: a character outside the
Basic Multilingual Plane is two surrogate code units, each written as ``_hh_ll``
(high byte first).  A Python ``str`` is mapped to the Java ``String`` it would
become, so adjacent surrogate code points form a pair and a lone surrogate stays
a lone code unit (hashed as ``?``, as ``String.getBytes(UTF_8)`` does).
"""

from __future__ import annotations

import hashlib

__all__ = ["MAX_SAFE_LENGTH", "mangle"]

MAX_SAFE_LENGTH = 32
_MIN_HASH_LENGTH = 6
_MAX_HASH_LENGTH = 12

# https://msdn.microsoft.com/en-us/library/aa365247: reserved on every OS alike.
# "." and ".." can never reach the check ('.' is not a safe character); kept to
# mirror the Java switch.
_RESERVED = frozenset(
    [".", "..", "con", "prn", "aux", "nul"]
    + [f"com{i}" for i in range(1, 10)]
    + [f"lpt{i}" for i in range(1, 10)]
)

# Separators that keep their meaning as '-'.
_SEPARATORS = frozenset(map(ord, "/\\ ._"))


def _is_safe(unit: int) -> bool:
    return (
        0x61 <= unit <= 0x7A  # a-z
        or 0x41 <= unit <= 0x5A  # A-Z
        or 0x30 <= unit <= 0x39  # 0-9
        or unit == 0x2D  # -
    )


def _utf16_units(name: str) -> list[int]:
    data = name.encode("utf-16-be", "surrogatepass")
    return [(data[i] << 8) | data[i + 1] for i in range(0, len(data), 2)]


def _java_utf8(name: str) -> bytes:
    """``name.getBytes(StandardCharsets.UTF_8)`` for the Java string ``name`` maps to."""
    # Round-tripping through UTF-16 joins surrogate code points that form a pair;
    # Java (and Python's "replace") then write each remaining lone surrogate as '?'.
    java = name.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "surrogatepass")
    return java.encode("utf-8", "replace")


def _digest(name: str) -> str:
    """SHA-1 of the UTF-8 name, in NameMangler's little-endian base-32 (0-9a-v)."""
    bits = 0
    data = 0
    out: list[str] = []
    for b in hashlib.sha1(_java_utf8(name)).digest():
        while bits >= 5:
            out.append("0123456789abcdefghijklmnopqrstuv"[data & 0x1F])
            bits -= 5
            data >>= 5
        data |= b << bits
        bits += 8
    # As in Java, the bits left after the last byte are never written out.
    return "".join(out)


def _keeps_name(name: str, units: list[int]) -> bool:
    if len(units) > MAX_SAFE_LENGTH:
        return False
    if units and units[0] == 0x2D:  # no leading dash
        return False
    if not all(_is_safe(u) for u in units):
        return False
    # Only US-ASCII gets here, so str.lower() is toLowerCase(Locale.ENGLISH).
    return name.lower() not in _RESERVED and not name.endswith(".")


def mangle(name: str) -> str:
    """Return exactly what ``jenkins.branch.NameMangler.apply(name)`` returns."""
    units = _utf16_units(name)
    if _keeps_name(name, units):
        return name

    buf: list[str] = []
    for c in units:
        if _is_safe(c):
            buf.append(chr(c))
        elif c in _SEPARATORS:
            buf.append("-" if buf else "0-")
        elif c <= 0xFF:
            buf.append(f"_{c:02x}" if buf else f"0_{c:02x}")
        else:
            hi, lo = c >> 8, c & 0xFF
            buf.append(f"_{hi:02x}_{lo:02x}" if buf else f"0_{hi:02x}_{lo:02x}")
    mangled = "".join(buf)

    digest = _digest(name)
    if len(mangled) <= MAX_SAFE_LENGTH - _MIN_HASH_LENGTH - 1:
        # Room to append the minimum hash.
        return f"{mangled}.{digest[-_MIN_HASH_LENGTH:]}"

    # Rip the middle out and put some of the digest there; the result is always
    # MAX_SAFE_LENGTH long.  overage may be negative (mangled is 26..32 long).
    overage = len(mangled) - MAX_SAFE_LENGTH
    hash_length = min(max(overage, _MIN_HASH_LENGTH), _MAX_HASH_LENGTH)
    hash_part = f".{digest[-hash_length:]}."
    start = (MAX_SAFE_LENGTH - len(hash_part)) // 2
    return mangled[:start] + hash_part + mangled[start + len(hash_part) + overage :]
