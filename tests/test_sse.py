"""The byte-level SSE checker against vectors, chunk splits, httpx-sse and its limits.

Vectors and what WHATWG HTML §9.2.6 makes of them: tests/data/sse/expected.toml.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.oracle.sse import (
    MAX_LINE_BYTES,
    RULES,
    Event,
    Finding,
    SSEChecker,
    media_type_matches,
)

DATA = Path(__file__).parent / "data" / "sse"
COZE = DATA / "coze-cloud"
VECTORS: list[dict[str, Any]] = tomllib.loads((DATA / "expected.toml").read_text("utf-8"))["vector"]


def checker_for(vector: dict[str, Any]) -> SSEChecker:
    content_type = None if vector.get("content_type_missing") else vector.get("content_type", "text/event-stream")
    limits = {k: vector[k] for k in ("max_line_bytes", "max_stream_bytes") if k in vector}
    return SSEChecker(content_type, **limits, sdk_framing=vector.get("sdk_framing", False))


def run(checker: SSEChecker, chunks: Iterable[bytes]) -> SSEChecker:
    for t, chunk in enumerate(chunks):
        checker.feed(chunk, float(t))
    checker.close(-1.0)
    return checker


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def outcome(checker: SSEChecker) -> tuple[list[tuple[str, str, str | None, int | None, int, bytes]], list[Finding]]:
    """What must not depend on chunking: every event field but the arrival time, and the findings."""
    events = [(e.type, e.data, e.id, e.retry, e.offset, e.raw) for e in checker.events]
    return events, checker.findings


def vector_param(v: dict[str, Any]) -> Any:
    tag = v.get("covers", "format").removeprefix("sse.")
    return pytest.param(v, id=f"{tag}-{v['file']}")


ALL_VECTORS = [vector_param(v) for v in VECTORS]
DISTINCT_FILES = sorted({v["file"]: v for v in VECTORS}.values(), key=lambda v: str(v["file"]))


@pytest.mark.parametrize("vector", ALL_VECTORS)
def test_vector_events_and_findings(vector: dict[str, Any]) -> None:
    checker = run(checker_for(vector), [(DATA / vector["file"]).read_bytes()])
    expected_events = [(e["type"], e["data"], e.get("id"), e.get("retry")) for e in vector["events"]]
    assert [(e.type, e.data, e.id, e.retry) for e in checker.events] == expected_events
    assert [(f.rule, f.offset) for f in checker.findings] == [(f["rule"], f.get("offset")) for f in vector["findings"]]
    for f in checker.findings:
        assert f.severity == RULES[f.rule][0]
        assert f.message


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_rule_has_a_legal_and_an_illegal_vector(rule: str) -> None:
    covering = [v for v in VECTORS if v.get("covers") == rule]
    assert any(v["legal"] and rule not in {f["rule"] for f in v["findings"]} for v in covering), "no legal vector"
    assert any(not v["legal"] and rule in {f["rule"] for f in v["findings"]} for v in covering), "no illegal vector"


def test_every_vector_file_is_listed() -> None:
    assert sorted(p.name for p in DATA.glob("*.sse")) == sorted({v["file"] for v in VECTORS})


@pytest.mark.parametrize("vector", [vector_param(v) for v in DISTINCT_FILES])
def test_any_single_split_and_byte_by_byte_give_the_same_result(vector: dict[str, Any]) -> None:
    data = (DATA / vector["file"]).read_bytes()
    whole = outcome(run(checker_for(vector), [data]))
    for cut in range(1, len(data)):
        assert outcome(run(checker_for(vector), split(data, [cut]))) == whole, f"split at {cut}"
    assert outcome(run(checker_for(vector), [data[i : i + 1] for i in range(len(data))])) == whole


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        pytest.param([b"data: \xe4", b"\xb8\xad\n\n"], "中", id="inside-a-3-byte-character"),
        pytest.param([b"data: \xf0\x9f", b"\x98", b"\x80\n\n"], "😀", id="inside-a-4-byte-character"),
        pytest.param([b"data: a\r", b"\n\r\n"], "a", id="between-cr-and-lf"),
        pytest.param([b"data: a\r\n\r", b"\n"], "a", id="between-the-blank-lines-cr-and-lf"),
        pytest.param([b"\xef", b"\xbb", b"\xbfdata: a\n\n"], "a", id="inside-the-bom"),
    ],
)
def test_named_split_points(chunks: list[bytes], expected: str) -> None:
    checker = run(SSEChecker("text/event-stream"), chunks)
    assert [e.data for e in checker.events] == [expected]
    assert {f.rule for f in checker.findings} <= {"sse.bom"}


# -- a hypothesis property over vectors and generated streams ---------------------------

_EOL = st.sampled_from([b"\n", b"\r\n", b"\r"])
_VALUE = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=8)
_NAME = st.sampled_from(["data", "event", "id", "retry", "Data", "foo", ""])


@st.composite
def _lines(draw: st.DrawFn) -> bytes:
    """Streams of WHATWG lines -- fields, comments, blank lines, bad retries, NULs,
    stray bytes -- with any mix of line ends, so the splits hit every parser state."""
    parts: list[bytes] = [draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))]
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["field", "field", "blank", "comment", "raw"]))
        if kind == "field":
            line = f"{draw(_NAME)}{draw(st.sampled_from(['', ':', ': ']))}{draw(_VALUE)}".encode()
        elif kind == "comment":
            line = b":" + draw(_VALUE).encode()
        elif kind == "raw":
            line = draw(st.binary(max_size=6)).replace(b"\r", b"").replace(b"\n", b"")
        else:
            line = b""
        parts.append(line + draw(_EOL))
    return b"".join(parts) + draw(st.sampled_from([b"", b"\n", b"data: tail"]))


_STREAMS = st.one_of(
    st.sampled_from([(DATA / v["file"]).read_bytes() for v in DISTINCT_FILES]),
    st.sampled_from([p.read_bytes() for p in sorted(COZE.glob("*.txt"))]),
    _lines(),
    st.binary(max_size=64),
)


@settings(max_examples=300, deadline=None)
@given(
    data=_STREAMS,
    limits=st.sampled_from([(MAX_LINE_BYTES, 16 << 20), (8, 16 << 20), (MAX_LINE_BYTES, 40)]),
    draw=st.data(),
)
def test_rechunking_never_changes_events_or_findings(data: bytes, limits: tuple[int, int], draw: st.DataObject) -> None:
    cuts = draw.draw(st.lists(st.integers(0, len(data)), max_size=12), label="cuts")

    def checker() -> SSEChecker:
        return SSEChecker("text/event-stream", max_line_bytes=limits[0], max_stream_bytes=limits[1])

    assert outcome(run(checker(), split(data, cuts))) == outcome(run(checker(), [data]))


# -- cross-check with httpx-sse on legal input -------------------------------------------


def httpx_sse_events(data: bytes) -> list[tuple[str, str, str | None]]:
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=data)
    return [(e.event, e.data, e.id or None) for e in EventSource(response).iter_sse()]


# httpx-sse parses these differently by design: it dispatches data-less blocks,
# reads retry with int(), keeps a BOM, and has no limits.
_HTTPX_SSE_DIFFERS = {"sse.no_data", "sse.bad_retry", "sse.bom", "sse.line_too_long", "sse.stream_too_large"}


@pytest.mark.parametrize(
    "vector",
    [vector_param(v) for v in DISTINCT_FILES if not {f["rule"] for f in v["findings"]} & _HTTPX_SSE_DIFFERS],
)
def test_events_equal_httpx_sse_on_vectors(vector: dict[str, Any]) -> None:
    data = (DATA / vector["file"]).read_bytes()
    checker = run(checker_for(vector), [data])
    assert [(e.type, e.data, e.id) for e in checker.events] == httpx_sse_events(data)


@st.composite
def _legal_streams(draw: st.DrawFn) -> bytes:
    """Legal streams where httpx-sse and WHATWG agree: every block has data."""
    blocks = []
    for _ in range(draw(st.integers(0, 5))):
        sep = draw(st.sampled_from(["", ":", ": "]))
        lines = [f"data{sep}{draw(_VALUE) if sep else ''}"]  # "data" alone is data with an empty value
        for _ in range(draw(st.integers(0, 3))):
            name = draw(st.sampled_from(["data", "event", "id", "retry", ":", "x-unknown"]))
            value = str(draw(st.integers(0, 10**6))) if name == "retry" else draw(_VALUE)
            lines.insert(draw(st.integers(0, len(lines))), f"{name}: {value}")
        eol = draw(_EOL)
        blocks.append(eol.join(line.encode() for line in lines) + eol + eol)
    return b"".join(blocks)


@settings(max_examples=200, deadline=None)
@given(data=_legal_streams())
def test_events_equal_httpx_sse_on_generated_legal_streams(data: bytes) -> None:
    checker = run(SSEChecker("text/event-stream"), [data])
    assert [(e.type, e.data, e.id) for e in checker.events] == httpx_sse_events(data)
    assert {f.rule for f in checker.findings} <= {"sse.unknown_field", "sse.id_nul"}


def test_coze_captures_lack_the_final_blank_line() -> None:
    """The SDK's fixtures end without the blank line that dispatches their last event:
    a WHATWG client never sees it (cozepy's own parser flushes it at EOF)."""
    for path in sorted(COZE.glob("*.txt")):
        data = path.read_bytes()
        blocks = data.count(b"event:")
        checker = run(SSEChecker("text/event-stream"), [data])
        assert [f.rule for f in checker.findings] == ["sse.unterminated_event"], path.name
        assert len(checker.events) == blocks - 1, path.name
        terminated = run(SSEChecker("text/event-stream"), [data + b"\n\n"])
        assert terminated.findings == [], path.name
        assert len(terminated.events) == blocks, path.name


# -- event metadata, media type, limits, API edges ----------------------------------------


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        pytest.param(
            [b"data: a\n", b"\n"],
            [Event("message", "a", None, None, 0, 1.0, b"data: a\n")],
            id="arrival-is-the-chunk-with-the-blank-line",
        ),
        pytest.param(
            [b": hi\nid: 9\nevent: e\nretry: 5\r", b"\ndata: b\r\r"],
            [Event("e", "b", "9", 5, 0, 1.0, b": hi\nid: 9\nevent: e\nretry: 5\r\ndata: b\r")],
            id="raw-spans-the-lines-without-the-blank-line",
        ),
        pytest.param(
            [b"data: a\r\r", b"\ndata: b\n\n"],
            [
                Event("message", "a", None, None, 0, 0.0, b"data: a\r"),
                Event("message", "b", None, None, 10, 1.0, b"data: b\n"),
            ],
            id="lone-cr-dispatches-at-once",
        ),
    ],
)
def test_event_fields(chunks: Sequence[bytes], expected: list[Event]) -> None:
    checker = SSEChecker("text/event-stream")
    returned = [e for t, chunk in enumerate(chunks) for e in checker.feed(chunk, float(t))]
    assert checker.close(9.0) == []
    assert returned == checker.events == expected


@pytest.mark.parametrize(
    ("content_type", "matches"),
    [
        pytest.param("text/event-stream", True, id="exact"),
        pytest.param("TEXT/Event-Stream", True, id="case"),
        pytest.param("text/event-stream; charset=utf-8", True, id="charset"),
        pytest.param(" text/event-stream ;charset=windows-1252", True, id="spaces-any-charset"),
        pytest.param(None, False, id="missing"),
        pytest.param("", False, id="empty"),
        pytest.param("application/json", False, id="json"),
        pytest.param("text/plain; x=text/event-stream", False, id="in-a-parameter"),
        pytest.param("text/event-streams", False, id="longer-subtype"),
    ],
)
def test_media_type(content_type: str | None, matches: bool) -> None:
    assert media_type_matches(content_type, "text/event-stream") is matches
    findings = SSEChecker(content_type).findings
    assert [f.rule for f in findings] == ([] if matches else ["sse.media_type"])


def test_an_endless_line_is_not_buffered_and_the_stream_is_cut_at_the_limit() -> None:
    checker = SSEChecker("text/event-stream")
    chunk = b"data: " + b"a" * (256 * 1024 - 6)
    for t in range(80):  # 20 MiB without a line end
        checker.feed(chunk if t == 0 else b"a" * len(chunk), float(t))
        assert checker.pending_bytes <= MAX_LINE_BYTES
    checker.close(99.0)
    assert [(f.rule, f.offset) for f in checker.findings] == [
        ("sse.line_too_long", 0),
        ("sse.stream_too_large", 16 << 20),
    ]
    assert checker.stopped and checker.events == []


def test_a_line_of_exactly_the_limit_is_kept() -> None:
    line = b"data: " + b"x" * (MAX_LINE_BYTES - 6)
    checker = run(SSEChecker("text/event-stream"), [line[: 1 << 19], line[1 << 19 :] + b"\n\n"])
    assert checker.findings == []
    assert len(checker.events[0].data) == MAX_LINE_BYTES - 6


def test_feed_after_close_is_an_error() -> None:
    checker = run(SSEChecker("text/event-stream"), [b"data: a\n\n"])
    with pytest.raises(ValueError, match="after close"):
        checker.feed(b"data: b\n\n", 1.0)
    assert checker.close(2.0) == []
