"""The SSE writer: events to bytes, as pure functions of the event and a format.

The default format is the one the spec's example shows (spec "SSE 数据格式"):
``event: <name>\\n``, ``data: <compact JSON>\\n``, a blank line. Every other format
is a legal reading of the stream (READING "SSE line format"): CRLF or CR line ends, no
space after the colon, comments and ``id:``/``retry:`` fields, a payload split over
several ``data:`` lines, a leading BOM, and writes of arbitrary size that split UTF-8
characters. Keeping the writer pure (no I/O, no clock) keeps each variant a few lines
and lets tests compare exact bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .config import LineEnding, ServerConfig
from .wireforms import reshape_payload, reshapes

BOM = "\ufeff"
#: The reconnection delay advertised by ``retry:`` when extras are on (a field a
#: client must accept and may ignore; this server does not support resuming).
RETRY_MILLISECONDS = 3000


@dataclass(frozen=True)
class SseEvent:
    """One event: its SSE name and its JSON payload.

    A ``str`` payload is sent as the data text verbatim: only the fault that sends an
    event whose data is not JSON (faults/stream.py, ``stream_invalid_json``) and the
    ``ping`` of ``unknown_events`` (an event the page does not list) use it.
    """

    name: str
    payload: Mapping[str, object] | str


@dataclass(frozen=True)
class SseFormat:
    line_ending: LineEnding = "\n"
    space_after_colon: bool = True
    extras: bool = False
    multiline_data: bool = False
    bom: bool = False

    @classmethod
    def from_config(cls, config: ServerConfig) -> SseFormat:
        return cls(
            line_ending=config.line_ending,
            space_after_colon=config.space_after_colon,
            extras=config.sse_extras,
            multiline_data=config.multiline_data,
            bom=config.bom,
        )

    def line(self, field: str, value: str) -> str:
        return f"{field}:{' ' if self.space_after_colon else ''}{value}{self.line_ending}"


def payload_lines(payload: Mapping[str, object] | str, multiline: bool) -> list[str]:
    """The JSON text of a payload as ``data:`` line values.

    Multi-line: the indented dump breaks only between JSON tokens (strings never hold
    a raw newline), so the lines joined by "\\n", as an SSE parser joins them, parse
    to the same object. Split on "\\n" only: ``str.splitlines`` would also split at
    U+2028 or U+0085 inside a string.
    """
    if isinstance(payload, str):
        return payload.split("\n")
    if multiline:
        return json.dumps(payload, ensure_ascii=False, indent=1).split("\n")
    return [json.dumps(payload, ensure_ascii=False, separators=(",", ":"))]


def encode_preamble(fmt: SseFormat) -> bytes:
    """What precedes the first event: the BOM, and with extras a comment and a retry field."""
    text = BOM if fmt.bom else ""
    if fmt.extras:
        text += f": coze-plus reference server{fmt.line_ending}"
        text += fmt.line("retry", str(RETRY_MILLISECONDS)) + fmt.line_ending
    return text.encode("utf-8")


def encode_event(event: SseEvent, fmt: SseFormat, sequence: int) -> bytes:
    """One event block; ``sequence`` numbers the ``id:`` field when extras are on."""
    text = ""
    if fmt.extras:
        text += f": event {sequence}{fmt.line_ending}"
    text += fmt.line("event", event.name)
    for value in payload_lines(event.payload, fmt.multiline_data):
        text += fmt.line("data", value)
    if fmt.extras:
        text += fmt.line("id", str(sequence))
    text += fmt.line_ending
    return text.encode("utf-8")


def encode_stream(events: Iterable[SseEvent], fmt: SseFormat) -> bytes:
    """A whole stream at once: what a client receives, however it was chunked."""
    return encode_preamble(fmt) + b"".join(encode_event(e, fmt, n) for n, e in enumerate(events, 1))


class Chunker:
    """Re-cuts a byte stream into writes of a random size in ``[low, high]``.

    Sizes come from a seeded generator, so a run is reproducible. Bytes that do not
    fill the next write wait for more input (or :meth:`flush`), which means an
    event's tail can arrive together with the next event -- as on a real network.
    """

    def __init__(self, sizes: tuple[int, int], seed: int) -> None:
        self._low, self._high = sizes
        self._random = random.Random(seed)
        self._buffer = b""
        self._next = self._draw()

    def _draw(self) -> int:
        return self._random.randint(self._low, self._high)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        pieces: list[bytes] = []
        while len(self._buffer) >= self._next:
            pieces.append(self._buffer[: self._next])
            self._buffer = self._buffer[self._next :]
            self._next = self._draw()
        return pieces

    def flush(self) -> list[bytes]:
        rest, self._buffer = self._buffer, b""
        return [rest] if rest else []


class StreamWriter:
    """The bytes of one stream, event by event: numbering, preamble and chunking.

    Still free of I/O: each call returns the pieces to write, in order.
    """

    def __init__(self, config: ServerConfig, fmt: SseFormat | None = None) -> None:
        self.config = config
        self.format = fmt or SseFormat.from_config(config)
        self._chunker = Chunker(config.chunk_sizes, config.chunk_seed) if config.chunk_sizes else None
        self._sequence = 0

    def _out(self, data: bytes) -> list[bytes]:
        return self._chunker.feed(data) if self._chunker else [data]

    def preamble(self) -> list[bytes]:
        data = encode_preamble(self.format)
        return self._out(data) if data else []

    def event(self, name: str, payload: Mapping[str, object] | str) -> list[bytes]:
        self._sequence += 1
        if not isinstance(payload, str) and reshapes(self.config):  # JSON wire forms (wireforms.py)
            payload = reshape_payload(self.config, payload, name)
        return self._out(encode_event(SseEvent(name, payload), self.format, self._sequence))

    def write(self, item: SseEvent | bytes) -> list[bytes]:
        """An event, or bytes written as they are (the byte-level stream faults)."""
        return self._out(item) if isinstance(item, bytes) else self.event(item.name, item.payload)

    def flush(self) -> list[bytes]:
        """Whatever the chunker still holds; call after the last event."""
        return self._chunker.flush() if self._chunker else []
