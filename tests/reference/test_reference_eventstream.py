"""The SSE writer: exact bytes of the documented form, and every framing variant decodes alike.

Each variant is a legal reading of READING "SSE line format"; the proof that it is
legal is that a WHATWG decoder (httpx-sse, not the suite's checker) reads the same
events from it as from the documented form.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.reference import ServerConfig
from conformance.reference.eventstream import (
    RETRY_MILLISECONDS,
    Chunker,
    SseEvent,
    SseFormat,
    StreamWriter,
    encode_event,
    encode_stream,
)

if TYPE_CHECKING:
    from conftest import Event

EVENTS = [
    SseEvent("conversation.message.delta", {"event": "conversation.message.delta", "message_item": {"content": "你好"}}),
    SseEvent(
        "conversation.message.completed",
        # Characters a careless writer would break a line at: \n (escaped by JSON), U+2028, U+0085.
        {"event": "conversation.message.completed", "message_item": {"content": "a\nb\u2028c\x85d 🙂", "n": 7493710240598375123}},
    ),
    SseEvent("conversation.stream.done", {"event": "conversation.stream.done"}),
]

VARIANTS = [
    pytest.param(SseFormat(), id="documented"),
    pytest.param(SseFormat(line_ending="\r\n"), id="crlf"),
    pytest.param(SseFormat(line_ending="\r"), id="cr"),
    pytest.param(SseFormat(space_after_colon=False), id="no-space"),
    pytest.param(SseFormat(extras=True), id="extras"),
    pytest.param(SseFormat(multiline_data=True), id="multiline"),
    pytest.param(SseFormat(bom=True), id="bom"),
    pytest.param(
        SseFormat(line_ending="\r", space_after_colon=False, extras=True, multiline_data=True, bom=True), id="all"
    ),
]


def test_the_documented_form_is_byte_exact() -> None:
    """As in the spec's example: ``event: name``, ``data: {compact JSON}``, blank line."""
    payload = {"event": "conversation.message.delta", "message_item": {"id": "msg_001", "content": "你好"}}
    expected = (
        'event: conversation.message.delta\ndata: {"event":"conversation.message.delta",'
        '"message_item":{"id":"msg_001","content":"你好"}}\n\n'
    )
    assert encode_event(SseEvent(payload["event"], payload), SseFormat(), 1) == expected.encode("utf-8")  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", VARIANTS)
def test_every_variant_decodes_to_the_same_events(fmt: SseFormat, decode: Any) -> None:
    events: list[Event] = decode(encode_stream(EVENTS, fmt))
    assert [(e.name, e.payload) for e in events] == [(e.name, dict(e.payload)) for e in EVENTS]


@pytest.mark.parametrize(
    ("fmt", "present", "absent"),
    [
        pytest.param(SseFormat(line_ending="\r\n"), [b"\r\n\r\n"], [b"\n\n"], id="crlf"),
        pytest.param(SseFormat(line_ending="\r"), [b"\r\r"], [b"\n"], id="cr"),
        pytest.param(SseFormat(space_after_colon=False), [b"event:conv", b"data:{"], [b": "], id="no-space"),
        pytest.param(
            SseFormat(extras=True),
            [b"\n: ", f"retry: {RETRY_MILLISECONDS}\n\n".encode(), b"id: 1\n", b"id: 3\n"],
            [],
            id="extras",
        ),
        pytest.param(SseFormat(bom=True), [], [], id="bom"),
    ],
)
def test_each_variant_is_really_on_the_wire(fmt: SseFormat, present: list[bytes], absent: list[bytes]) -> None:
    raw = encode_stream(EVENTS, fmt)
    assert raw.startswith(b"\xef\xbb\xbf") == fmt.bom
    for needle in present:
        assert needle in raw
    for needle in absent:
        assert needle not in raw


def test_multiline_data_really_spans_several_lines() -> None:
    raw = encode_event(EVENTS[1], SseFormat(multiline_data=True), 1).decode("utf-8")
    data_lines = [line for line in raw.split("\n") if line.startswith("data:")]
    assert len(data_lines) > 3
    joined = "\n".join(line.removeprefix("data: ") for line in data_lines)
    assert json.loads(joined) == EVENTS[1].payload


def test_big_integers_are_written_as_exact_digits() -> None:
    assert b"7493710240598375123" in encode_event(EVENTS[1], SseFormat(), 1)


@given(
    data=st.binary(min_size=0, max_size=400),
    sizes=st.tuples(st.integers(1, 7), st.integers(0, 9)).map(lambda t: (t[0], t[0] + t[1])),
    cuts=st.lists(st.integers(0, 400), max_size=5),
    seed=st.integers(0, 2**32),
)
@settings(max_examples=150, deadline=None, database=None)
def test_chunker_keeps_the_bytes_and_the_sizes(
    data: bytes, sizes: tuple[int, int], cuts: list[int], seed: int
) -> None:
    """Any way the input is fed, the output is the same bytes in pieces within the range."""
    chunker = Chunker(sizes, seed)
    pieces: list[bytes] = []
    start = 0
    for cut in sorted(cuts) + [len(data)]:
        pieces += chunker.feed(data[start : max(start, cut)])
        start = max(start, cut)
    flushed = chunker.flush()
    assert b"".join(pieces + flushed) == data
    assert all(sizes[0] <= len(piece) <= sizes[1] for piece in pieces)
    assert len(flushed) <= 1 and all(0 < len(piece) <= sizes[1] for piece in flushed)


def test_chunker_splits_utf8_characters_and_is_reproducible() -> None:
    data = ("你好" * 50).encode("utf-8")
    first = Chunker((1, 4), seed=7).feed(data)
    assert first == Chunker((1, 4), seed=7).feed(data)
    undecodable = 0
    for piece in first:
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable > 0  # some write ends inside a character


def test_stream_writer_numbers_events_and_flushes_the_rest() -> None:
    config = ServerConfig(sse_extras=True, chunk_sizes=(5, 11), chunk_seed=3)
    writer = StreamWriter(config)
    out = writer.preamble()
    for event in EVENTS:
        out += writer.event(event.name, event.payload)
    out += writer.flush()
    assert b"".join(out) == encode_stream(EVENTS, SseFormat(extras=True))
    assert all(5 <= len(piece) <= 11 for piece in out[:-1])
