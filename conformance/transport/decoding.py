"""Content-Encoding, decoded in bounded pieces, so that the size cap counts decoded bytes
before they exist.

httpx decodes a body's Content-Encoding as it iterates, with one zlib call per network
read and no bound on its output: 64 KB of a gzip bomb decode to 64 MB at once, and a
body gzipped twice (``Content-Encoding: gzip, gzip``) turns a few KB into gigabytes
before any cap can count them. So the client reads the raw bytes and decodes them here:
every stage yields pieces of at most :data:`PIECE` bytes, and the next piece is made
only when the caller asks for it. A caller that stops at its cap has decoded at most
the cap plus one piece per stage, however the body was compressed.

The codings are the ones the client asks for (:data:`ACCEPT_ENCODING`); a coding it
does not know leaves the bytes as they are (httpx does the same), so the test judges
what the server sent. Trailing bytes after a gzip or deflate stream's end are ignored,
as httpx and zlib-based clients do.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence

import httpx

__all__ = ["ACCEPT_ENCODING", "PIECE", "BodyDecoder", "content_codings"]

#: What the client sends as ``Accept-Encoding``: the codings it decodes with a bound.
#: httpx would also offer br and zstd when their packages happen to be installed.
ACCEPT_ENCODING = "gzip, deflate"
#: The most one stage hands on at once.
PIECE = 64 * 1024

_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


def content_codings(values: Sequence[str]) -> list[str]:
    """The codings of ``Content-Encoding`` header values, in the order applied."""
    return [c.strip().lower() for value in values for c in value.split(",") if c.strip()]


class _Stage:
    """One zlib coding, decoded with a bound on every output."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._z = zlib.decompressobj(_WBITS[coding])
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        going = bool(data)
        while going and not self._z.eof:
            try:
                out = self._z.decompress(data, PIECE)
            except zlib.error as exc:
                if self.coding == "deflate" and not self._started:
                    # RFC 9110 says zlib-wrapped; servers send raw deflate too (httpx
                    # and browsers read both): try again as raw deflate, once.
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._started = True
                    continue
                raise httpx.DecodingError(f"body is not valid {self.coding} (Content-Encoding: {self.coding}): {exc}") from None
            self._started = True
            data = self._z.unconsumed_tail
            if out:
                yield out
            # On while input is left, or while a full piece may have left output
            # pending inside zlib.
            going = bool(data) or len(out) == PIECE


class BodyDecoder:
    """Decodes a body's ``Content-Encoding`` (header values as given) chunk by chunk:
    :meth:`decode` of each raw chunk yields pieces of at most :data:`PIECE` bytes per
    coding; with no coding to undo, each raw chunk passes through unchanged."""

    def __init__(self, content_encoding: Sequence[str]) -> None:
        # The last coding applied is undone first (RFC 9110 8.4).
        self._stages = [_Stage(c) for c in reversed(content_codings(content_encoding)) if c in _WBITS]

    def decode(self, raw: bytes) -> Iterator[bytes]:
        pieces: Iterable[bytes] = (raw,)
        for stage in self._stages:
            pieces = _through(stage, pieces)
        for piece in pieces:
            if piece:
                yield piece


def _through(stage: _Stage, pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield from stage.feed(piece)
