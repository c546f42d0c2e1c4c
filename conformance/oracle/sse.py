"""A byte-level Server-Sent Events checker (WHATWG HTML §9.2.5-9.2.6).

It parses exactly as the standard's event-stream interpretation does -- so it
rejects nothing the standard allows -- and records a :class:`Finding` (rule,
byte offset, raw line) wherever a lenient parser would silently paper over
something a server got wrong, or a conforming client would silently drop it.

Why own code rather than httpx-sse: httpx-sse decodes bytes to text before it
splits lines, so byte offsets and invalid UTF-8 are gone by the time it sees a
line; it buffers a line without bound; it dispatches data-less blocks and
accepts ``retry: -5``/``retry: +5`` through ``int()``; and it drops a bad
``retry``, an ``id`` with NUL, an unknown field and an unterminated last event
without a trace. The checker must see each of those, so it keeps its own two
small layers (bytes -> lines, lines -> events) in httpx-sse's shape. The tests
cross-check its events against httpx-sse's ``SSEDecoder`` on legal input.

Line ends: a CR ends a line at once (so an event closed by ``\\r\\r`` is
dispatched on arrival); an LF that follows it, in the same chunk or the next,
is part of that line end. A line can never end inside a multi-byte UTF-8
character (CR and LF are ASCII), so each line is decoded on its own and the
result does not depend on how the bytes were chunked.

Speed (``python -m benchmarks.checker``): lines are found with ``bytes.find`` (or
one regex search when the buffer holds a CR) from a moving position, and the
buffer is trimmed once per chunk. A chunk without a line end is only appended.
The usual event -- ``event:``, ``data:``, blank line, LF-ended, valid UTF-8 --
is taken whole, up to 64 back to back per regex call, giving exactly the event
the line-by-line path gives; anything else (a comment, an id, a CR, a bad byte,
a line near the limit) goes line by line, which reports every rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "BOM",
    "MAX_LINE_BYTES",
    "MAX_STREAM_BYTES",
    "RULES",
    "Event",
    "Finding",
    "SSEChecker",
    "Severity",
    "media_type_matches",
]

BOM = b"\xef\xbb\xbf"
MAX_LINE_BYTES = 1 << 20  # 1 MiB: a longer line is a finding, and is not buffered
MAX_STREAM_BYTES = 16 << 20  # 16 MiB: the checker stops reading after this
RAW_EXCERPT_BYTES = 256  # how much of a line a finding keeps

# "should": a SHOULD-level rule is broken (a WARN outcome); "note": nothing is
# broken, the finding only explains what a conforming client ignored.
Severity = Literal["violation", "should", "note"]

# Stable rule names -> (severity, what the rule says). The catalogue maps them
# to requirement ids; tests check every rule has a legal and an illegal vector.
RULES: dict[str, tuple[Severity, str]] = {
    "sse.media_type": ("violation", "Content-Type is text/event-stream (type/subtype, any case, any parameters)"),
    "sse.invalid_utf8": ("violation", "the stream is UTF-8 (§9.2.5); invalid bytes were decoded as U+FFFD"),
    "sse.unterminated_event": ("violation", "every event ends with a blank line; a client discards one that does not"),
    "sse.line_too_long": ("violation", "a line is at most the checker's line limit (1 MiB)"),
    "sse.stream_too_large": ("violation", "the stream is at most the checker's size limit (16 MiB)"),
    "sse.bad_retry": ("note", "a retry value that is not all ASCII digits is ignored"),
    "sse.id_nul": ("note", "an id containing U+0000 is ignored"),
    "sse.unknown_field": ("note", "a field other than event/data/id/retry is ignored (names are case-sensitive)"),
    "sse.bom": ("note", "one leading UTF-8 BOM is skipped"),
    "sse.no_data": ("note", "a block without a data line dispatches no event"),
    # Legal SSE that the official Python SDK (cozepy's Stream) refuses: it reads exactly
    # one event: and one data: line per event and raises on any other line.
    "sse.sdk_framing": (
        "note",
        "every event is one event: line and one data: line; no comment, id:, retry: or other line, no second data line",
    ),
}

_EOL = re.compile(rb"[\r\n]")
# The common event, whole: an event: line, a data: line (one optional space after each
# colon), LF line ends, then the blank line. Groups: raw (without the blank line), type, data.
_SIMPLE_EVENT = re.compile(rb"(event: ?([^\r\n]*)\ndata: ?([^\r\n]*)\n)\n")
# A run of 1 to 64 of them back to back. The bound caps what is matched again when
# an event in the run must go line by line (else one huge chunk could go quadratic).
_SIMPLE_RUN = re.compile(rb"(?:event: ?[^\r\n]*\ndata: ?[^\r\n]*\n\n){1,64}")
# The same two, on a buffer without CR (a faster character loop).
_SIMPLE_EVENT_LF = re.compile(rb"(event: ?([^\n]*)\ndata: ?([^\n]*)\n)\n")
_SIMPLE_RUN_LF = re.compile(rb"(?:event: ?[^\n]*\ndata: ?[^\n]*\n\n){1,64}")
_DIGITS = re.compile(r"[0-9]+")  # ASCII digits only; str.isdigit() accepts other scripts
_KNOWN_FIELDS = frozenset({"event", "data", "id", "retry"})


@dataclass(frozen=True)
class Finding:
    """One thing the checker (or the grammar) saw, attributed to a rule.

    ``offset`` is a byte offset in the stream; ``index`` the position of the
    offending event in the dispatched events (grammar findings).
    """

    rule: str
    message: str
    offset: int | None = None
    raw: bytes | None = None
    severity: Severity = "violation"
    index: int | None = None


@dataclass(frozen=True)
class Event:
    """A dispatched event.

    ``id`` is the stream's last event id at dispatch (sticky, §9.2.6), None when
    empty. ``raw`` holds the event's lines as sent, without the blank line that
    dispatched it; ``offset`` is the byte offset of its first line; ``arrived``
    the timestamp of the chunk that completed it.
    """

    type: str
    data: str
    id: str | None
    retry: int | None
    offset: int
    arrived: float
    raw: bytes


def media_type_matches(content_type: str | None, media_type: str) -> bool:
    """Compare type/subtype only, case-insensitively; parameters are ignored."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == media_type.strip().lower()


@dataclass
class _Block:
    """The event being assembled: the lines since the last blank line."""

    offset: int
    raw: bytearray = field(default_factory=bytearray)
    type: str = ""
    data: list[str] = field(default_factory=list)
    retry: int | None = None
    has_field: bool = False  # any non-comment line
    has_event: bool = False  # an event: line
    broken: bool = False  # a field line was too long to keep: do not dispatch


class SSEChecker:
    """Incremental checker: ``feed`` raw chunks as they arrive, then ``close``.

    ``max_line_bytes`` and ``max_stream_bytes`` bound memory: an over-long line
    is skipped (and its event not dispatched, its data being incomplete), and
    after ``max_stream_bytes`` the checker stops reading (``stopped``).
    """

    def __init__(
        self,
        content_type: str | None,
        media_type: str = "text/event-stream",
        *,
        max_line_bytes: int = MAX_LINE_BYTES,
        max_stream_bytes: int = MAX_STREAM_BYTES,
        sdk_framing: bool = False,
    ) -> None:
        self.events: list[Event] = []
        #: Note what cozepy's Stream refuses (``sse.sdk_framing``): off, legal SSE is quiet.
        self.sdk_framing = sdk_framing
        self.findings: list[Finding] = []
        self.max_line_bytes = max_line_bytes
        self.max_stream_bytes = max_stream_bytes
        # An over-long line's excerpt: no longer than what is buffered when it is
        # found, so that it does not depend on where the chunks were split.
        self._head = min(RAW_EXCERPT_BYTES, max_line_bytes + 1)
        self.stopped = False
        self.closed = False
        self._buf = bytearray()  # the unterminated line so far
        self._offset = 0  # stream offset of _buf[0]
        self._received = 0
        self._bom_checked = False
        self._skip_lf = False  # the last line ended with a CR at a chunk end
        self._lf_to_block = False  # ... and that line belongs to the event being assembled
        self._skipping_line = False  # discarding the rest of an over-long line
        self._clean = 0
        self._last_id = ""
        self._block: _Block | None = None
        self._dispatched: list[Event] = []
        if not media_type_matches(content_type, media_type):
            actual = "missing" if content_type is None else repr(content_type)
            self._find("sse.media_type", f"Content-Type is {actual}, expected {media_type}")

    @property
    def pending_bytes(self) -> int:
        """Bytes held for an unterminated line (bounded by ``max_line_bytes``)."""
        return len(self._buf)

    def feed(self, chunk: bytes, t: float) -> list[Event]:
        """Parse one chunk that arrived at ``t``; return the events it dispatched."""
        if self.closed:
            raise ValueError("feed() after close()")
        if self.stopped or not chunk:
            return []
        room = self.max_stream_bytes - self._received
        self._received += len(chunk)
        buf = self._buf
        if (
            self._bom_checked
            and not self._skipping_line
            and len(chunk) <= room
            and len(buf) + len(chunk) <= self.max_line_bytes
            and _EOL.search(chunk) is None
        ):
            # No line ends, within every limit: the line only grows (what _parse would
            # do, without scanning the buffer again). Common with tiny chunks.
            buf += chunk
            self._skip_lf = False
            self._clean = len(buf)
            return []
        buf += chunk[:room]
        self._parse(t, at_end=False)
        if len(chunk) > room:
            self._find(
                "sse.stream_too_large",
                f"stream exceeds {self.max_stream_bytes} bytes; stopped reading",
                offset=self.max_stream_bytes,
            )
            self.stopped = True
            self._buf.clear()
            self._block = None
        return self._take()

    def close(self, t: float) -> list[Event]:
        """End of stream (the server closed it). WHATWG discards a pending event,
        so this never dispatches; it records what was discarded."""
        if self.closed:
            return []
        self.closed = True
        if self.stopped:
            return []
        self._parse(t, at_end=True)
        partial = bytes(self._buf)
        if partial and not self._skipping_line:
            self._decode(partial, self._offset)  # an invalid tail is still a finding
            if not partial.startswith(b":"):
                self._start_block(self._offset).has_field = True
        block = self._block
        if block is not None and block.has_field:
            self._find(
                "sse.unterminated_event",
                "stream ended without the blank line that dispatches this event; a client discards it",
                offset=block.offset,
                raw=(bytes(block.raw) + partial)[:RAW_EXCERPT_BYTES],
            )
        self._buf.clear()
        self._block = None
        return self._take()

    # -- bytes -> lines ---------------------------------------------------------

    def _parse(self, t: float, *, at_end: bool) -> None:
        buf = self._buf
        if not self._bom_checked:
            if not at_end and len(buf) < len(BOM) and BOM.startswith(buf):
                return  # a BOM may be split across chunks
            self._bom_checked = True
            if buf.startswith(BOM):
                self._find("sse.bom", "leading UTF-8 BOM skipped", offset=0, raw=BOM)
                self._consume(len(BOM))
        pos = 0
        if self._skip_lf and buf[:1] == b"\n":
            pos = 1
            if self._lf_to_block and self._block is not None:
                self._block.raw += b"\n"
        if buf:
            self._skip_lf = False
        # _clean bytes at the front of _buf are known to hold no line end.
        clean = self._clean
        max_line = self.max_line_bytes
        # Without a CR in the buffer every line ends at an LF: bytes.find (memchr)
        # finds it, and the fast path's pattern needs no CR test.
        lf_only = buf.find(b"\r", pos) < 0
        simple_run, simple_event = (_SIMPLE_RUN_LF, _SIMPLE_EVENT_LF) if lf_only else (_SIMPLE_RUN, _SIMPLE_EVENT)
        dispatched = self._dispatched
        new_object = object.__new__
        fast = True
        while True:
            # Fast path: a run of whole `event:`/`data:` pairs, each with its blank line,
            # LF-ended and valid UTF-8, starting at a block boundary -- what `_line` and
            # `_dispatch` make of their lines, at once. Anything else goes line by line.
            if fast and self._block is None and not self._skipping_line:
                run = simple_run.match(buf, pos)
                if run is not None:
                    offset = self._offset
                    last_id = self._last_id or None
                    for raw, type_b, data_b in simple_event.findall(buf, pos, run.end()):
                        if len(raw) >= max_line:  # its two lines might be too long: line by line
                            break
                        try:
                            type_, data = type_b.decode("utf-8"), data_b.decode("utf-8")
                        except UnicodeDecodeError:
                            break
                        # Event(...), without the frozen dataclass's seven object.__setattr__
                        # calls (half the time of this loop): the same instance dict.
                        event = new_object(Event)
                        event.__dict__.update(
                            type=type_ or "message", data=data, id=last_id, retry=None, offset=offset + pos, arrived=t, raw=raw
                        )
                        dispatched.append(event)
                        pos += len(raw) + 1
                    else:
                        continue
                    fast = False  # this event goes line by line; the fast path resumes after it
            if lf_only:
                end = buf.find(b"\n", pos if pos > clean else clean)
                if end < 0:
                    break
            else:
                m = _EOL.search(buf, pos if pos > clean else clean)
                if m is None:
                    break
                end = m.start()
            clean = 0
            fast = True
            eol = 2 if buf[end : end + 2] == b"\r\n" else 1
            kept = not self._skipping_line and end - pos <= max_line
            if buf[end] == 13 and end + 1 == len(buf):
                self._skip_lf = True  # its LF, if any, comes in the next chunk
                self._lf_to_block = kept  # and belongs to the raw line, if the line was kept
            if kept:
                self._line(bytes(buf[pos:end]), bytes(buf[pos : end + eol]), self._offset + pos, t)
            elif not self._skipping_line:
                self._too_long(self._offset + pos, bytes(buf[pos : pos + self._head]))
            self._skipping_line = False
            pos = end + eol
        if self._skipping_line:
            pos = len(buf)
        elif len(buf) - pos > self.max_line_bytes:
            self._too_long(self._offset + pos, bytes(buf[pos : pos + self._head]))
            pos = len(buf)
        self._consume(pos)
        self._clean = len(buf)

    def _consume(self, n: int) -> None:
        del self._buf[:n]
        self._offset += n

    def _too_long(self, offset: int, head: bytes) -> None:
        """Skip a line over the limit without buffering it (the rest of it is
        discarded as it arrives: ``_skipping_line``)."""
        comment = head.startswith(b":")  # a long comment loses nothing
        self._find(
            "sse.line_too_long",
            f"line longer than {self.max_line_bytes} bytes; skipped"
            + ("" if comment else ", and its event not dispatched"),
            offset=offset,
            raw=head,
        )
        if not comment:
            block = self._start_block(offset)
            block.broken = block.has_field = True
        self._skipping_line = True

    # -- lines -> events (§9.2.6 "Interpreting an event stream") ------------------

    def _line(self, line: bytes, raw: bytes, offset: int, t: float) -> None:
        if not line:
            self._dispatch(t)
            return
        block = self._start_block(offset)
        block.raw += raw
        text = self._decode(line, offset)
        excerpt = line[:RAW_EXCERPT_BYTES]
        if text.startswith(":"):
            self._framing("a comment line", offset, excerpt)
            return
        block.has_field = True
        name, colon, value = text.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name not in ("event", "data") or (name == "data" and block.data) or (name == "event" and block.has_event):
            what = f"a second {name}: line in one event" if name in ("event", "data") else f"a {name!r} line"
            self._framing(what, offset, excerpt)
        if name == "event":
            block.type = value
            block.has_event = True
        elif name == "data":
            block.data.append(value)
        elif name == "id":
            if "\0" in value:
                self._find("sse.id_nul", "id contains U+0000; ignored", offset=offset, raw=excerpt)
            else:
                self._last_id = value
        elif name == "retry":
            if _DIGITS.fullmatch(value):
                block.retry = int(value)
            else:
                self._find(
                    "sse.bad_retry", f"retry {value!r} is not all ASCII digits; ignored", offset=offset, raw=excerpt
                )
        else:
            self._find("sse.unknown_field", f"unknown field {name!r} ignored", offset=offset, raw=excerpt)

    def _dispatch(self, t: float) -> None:
        block, self._block = self._block, None
        if block is None or block.broken or not block.has_field:
            return
        if not block.data:
            self._find(
                "sse.no_data",
                "block has no data line; no event is dispatched",
                offset=block.offset,
                raw=bytes(block.raw[:RAW_EXCERPT_BYTES]),
            )
            return
        if not block.has_event:
            self._framing("an event without an event: line", block.offset, bytes(block.raw[:RAW_EXCERPT_BYTES]))
        self._dispatched.append(
            Event(
                type=block.type or "message",
                data="\n".join(block.data),
                id=self._last_id or None,
                retry=block.retry,
                offset=block.offset,
                arrived=t,
                raw=bytes(block.raw),
            )
        )

    def _start_block(self, offset: int) -> _Block:
        if self._block is None:
            self._block = _Block(offset=offset)
        return self._block

    def _decode(self, line: bytes, offset: int) -> str:
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._find(
                "sse.invalid_utf8",
                f"invalid UTF-8 {line[exc.start : exc.end]!r}; decoded as U+FFFD",
                offset=offset + exc.start,
                raw=line[:RAW_EXCERPT_BYTES],
            )
            return line.decode("utf-8", errors="replace")

    def _framing(self, message: str, offset: int, raw: bytes) -> None:
        if self.sdk_framing:
            self._find("sse.sdk_framing", message, offset=offset, raw=raw)

    def _find(self, rule: str, message: str, *, offset: int | None = None, raw: bytes | None = None) -> None:
        self.findings.append(Finding(rule, message, offset, raw, RULES[rule][0]))

    def _take(self) -> list[Event]:
        out, self._dispatched = self._dispatched, []
        self.events.extend(out)
        return out
