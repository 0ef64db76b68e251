"""Byte caps: an answer is read raw and inflated here, a bounded step at a time, so that the cap
bounds the compressed size and what it inflates to alike (httpx inflates a whole chunk at once:
590 bytes of gzip-of-gzip took 561 MB). One content coding at most, gzip, the one asked for.
What the answers one client is reading hold together is bounded too (`Held`)."""

from __future__ import annotations

import threading
import traceback
import zlib
from collections.abc import Iterator

import httpx

from agent.http.errors import TooLarge, Undecodable

INFLATE_STEP = 1 << 20  # the most inflated at once (zlib's buffer is briefly twice that)
NO_LIMIT = 1 << 62  # a request without a byte cap (tests only: both clients give one)
HELD_MIB = 48  # what all answers one client is reading may hold at once
REDIRECT_MAX = 64 << 10  # the most of a redirect's body read (and dropped) before following it


class Held:
    """The bytes of the answers one client is reading, all its threads together, kept within
    `budget`: each read may hold its own cap, not every worker at once (8 Jenkins workers each
    inflating a bomb to a 64 MiB cap held 1.2 GB; the shipped pod has 256 Mi). One per client,
    so that a hostile controller's answers never fail another controller's reads."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.held = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> None:
        with self._lock:
            if self.held + size > self.budget:
                raise TooLarge(self.budget, together=True)
            self.held += size

    def give(self, size: int) -> None:
        with self._lock:
            self.held -= size


def read_capped(response: httpx.Response, limit: int, held: Held) -> bytes:
    """The body of a streamed answer, inflated here from gzip if it is in gzip: TooLarge once
    its compressed size or any inflated step would pass `limit` bytes, or what the answers its
    client is reading hold together would pass `held`'s budget; Undecodable when it is in a
    coding other than gzip, or several (gzip-of-gzip inflates a thousandfold per layer). The
    body grows in one buffer: what is held is the body and one inflated step (INFLATE_STEP)."""
    codings = [
        c.strip().lower()
        for c in response.headers.get("content-encoding", "").split(",")
        if c.strip().lower() not in ("", "identity")
    ]
    if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip")):
        raise Undecodable(f"the answer is in {', '.join(codings)}; only gzip alone is read")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(limit)  # known before a byte of it is read
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if codings else None
    body = bytearray()
    raw = 0
    read = False
    try:
        for chunk in response.iter_raw():
            raw += len(chunk)
            if raw > limit:
                raise TooLarge(limit)
            while chunk:
                if inflater is None:
                    piece, chunk = chunk, b""
                else:  # a step at a time: 64 KiB of gzip can inflate to 64 MiB
                    # at most one byte past what is left: that byte means too large
                    piece = inflater.decompress(chunk, min(INFLATE_STEP, limit - len(body) + 1))
                    chunk = inflater.unconsumed_tail
                if len(body) + len(piece) > limit:
                    raise TooLarge(limit)
                held.take(len(piece))
                body += piece
        if inflater is not None and not inflater.eof and raw:
            raise zlib.error("the gzip stream is cut short")
        read = True
    finally:
        held.give(len(body))
        if not read:  # the failure's traceback keeps this frame: not the bytes read
            body.clear()
    return bytes(body)


class RedirectBody(httpx.SyncByteStream):
    """A redirect's body as httpx reads it before following: raw (the response's coding is
    dropped, nothing is inflated) and at most REDIRECT_MAX bytes; the agent never reads it."""

    def __init__(self, stream: httpx.SyncByteStream) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self._stream:
            seen += len(chunk)
            if seen > REDIRECT_MAX:
                raise TooLarge(REDIRECT_MAX)
        yield b""

    def close(self) -> None:
        self._stream.close()


def let_go(failure: BaseException) -> None:
    """Clear the finished frames a failure's traceback keeps, and those of the failures it was
    raised from, so that what they held (an answer's body) is freed now rather than when the
    cyclic collector runs."""
    seen: set[int] = set()
    while failure is not None and id(failure) not in seen:
        seen.add(id(failure))
        traceback.clear_frames(failure.__traceback__)
        failure = failure.__cause__ or failure.__context__  # type: ignore[assignment]
