"""The client witness (conformance/oracle/witness.py): cozepy's own parser and httpx-sse
read the same bytes as the checker, the cloud captures are judged as cozepy judges
them, and a cozepy release that moves what the witness uses fails here, loudly."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import pytest

from conformance.oracle.grammar import StreamRules, read_stream
from conformance.oracle.profile import load_profile
from conformance.oracle.witness import COZEPY_VERSIONS, cozepy_internals, disagreements, read_with

DATA = Path(__file__).parent / "data" / "sse"
CAPTURES = sorted((DATA / "coze-cloud").glob("*.txt"))
COZE = StreamRules.from_mapping(load_profile("coze").stream)
DOC = StreamRules.from_mapping(load_profile("doc").stream)


def judged(body: bytes, rules: StreamRules):  # type: ignore[no-untyped-def]
    return read_stream([(body, time.monotonic())], rules.checker("text/event-stream"), rules)


def test_the_cozepy_internals_the_witness_uses_are_there() -> None:
    parts = cozepy_internals()
    assert parts["version"].startswith(COZEPY_VERSIONS), f"cozepy {parts['version']}: re-check witness.py against it"
    assert list(inspect.signature(parts["Stream"].__init__).parameters) == ["self", "raw_response", "iters", "fields", "handler"]
    assert list(inspect.signature(parts["handler"]).parameters) == ["data", "raw_response"]
    assert issubclass(parts["CozeInvalidEventError"], Exception)


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_cloud_captures_are_read_and_judged_as_cozepy_does(path: Path) -> None:
    body = path.read_bytes()
    reading = judged(body, COZE)
    witness = read_with("cozepy", body)
    # The same events (cozepy also reads the capture's unterminated last event, which the
    # checker reports as sse.unterminated_event -- the one expected difference).
    assert disagreements(witness, reading.events, reading.sse_findings, grammar_findings=reading.grammar.findings) == []
    assert witness.error is None
    assert [f.rule for f in reading.sse_findings] == ["sse.unterminated_event"]
    terminated = judged(body + b"\n\n", COZE)
    # What cozepy's chat handler makes of each event, and what the grammar makes of it.
    for index, outcome in enumerate(witness.handled):
        event_rules = {f.rule for f in terminated.grammar.findings if f.index == index}
        if outcome == "error event":  # cozepy raises; the grammar: the chat ended in an error
            assert COZE.kind(terminated.events[index].type) == "error" and terminated.grammar.outcome == "error"
        elif outcome == "unknown":  # cozepy: UNKNOWN; the grammar: the SHOULD of known events
            assert event_rules == {"grammar.known_events"}
        elif outcome == "ok":  # cozepy's models validate it; so do the profile's fields and schemas
            assert not event_rules & {"grammar.message_fields", "grammar.chat_fields", "grammar.payload_schema", "grammar.payload_json"}
        else:
            assert outcome == "done" and terminated.events[index].type == "done"


def test_cozepy_refuses_what_the_checker_notes_as_sdk_framing() -> None:
    body = (DATA / "sdk_framing.illegal.sse").read_bytes()
    reading = judged(body, COZE)
    witness = read_with("cozepy", body)
    assert witness.error is not None and witness.error.startswith("CozeInvalidEventError")
    assert reading.sse_findings[0].rule == "sse.sdk_framing" and reading.sse_findings[0].offset == 0
    assert disagreements(witness, reading.events, reading.sse_findings) == []


def test_a_disagreement_names_its_byte_offset() -> None:
    # cozepy strips every space after the colon; WHATWG (and the checker) one.
    body = b'event:a\ndata:  {"x":1}\n\nevent:b\ndata:{}\n\n'
    reading = judged(body, COZE)
    (found,) = disagreements(read_with("cozepy", body), reading.events, reading.sse_findings)
    assert found.offset == 0 and "cozepy read" in found.message and "' {\"x\":1}'" in found.message


def test_httpx_sse_reads_the_legal_vectors_as_the_checker() -> None:
    for path in sorted(DATA.glob("*.legal.sse")):
        body = path.read_bytes()
        reading = judged(body, DOC)
        assert disagreements(read_with("httpx-sse", body), reading.events, reading.sse_findings) == [], path.name


def test_unknown_witness_client() -> None:
    with pytest.raises(ValueError, match="unknown witness client 'curl'"):
        read_with("curl", b"")
