"""The chat-stream grammar: one legal and one illegal stream per rule, the summary it
returns, the coze-cloud captures, the profile loader and read_stream's stopping rule."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.oracle.grammar import (
    PROFILES_DIR,
    RULES,
    StreamRules,
    check_chat_stream,
    load_stream_rules,
    read_stream,
)
from conformance.oracle.sse import Event, SSEChecker

DOC = load_stream_rules("doc")
COZE = Path(__file__).parent / "data" / "sse" / "coze-cloud"
# The coze-cloud wire shape as data (message fields and usage at the top of the
# payload, coze's usage names), to show the grammar reads only its rules.
COZE_SHAPE = dataclasses.replace(DOC, message_key="", run_record_key="", usage_fields=("input_count", "output_count", "token_count"))

Spec = tuple[str, Any]  # (SSE event name, payload: a dict gets the "event" key added, a str is sent as is)


def ev(name: str, body: dict[str, Any] | str | None = None, *, event_key: bool = True) -> Spec:
    if isinstance(body, str):
        return name, body
    payload = dict(body or {})
    if event_key:
        payload = {"event": name, **payload}
    return name, payload


def events(specs: list[Spec], times: list[float] | None = None) -> list[Event]:
    out, offset = [], 0
    for i, (name, payload) in enumerate(specs):
        data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        raw = f"event: {name}\ndata: {data}\n".encode()
        out.append(Event(name, data, None, None, offset, times[i] if times else 0.0, raw))
        offset += len(raw) + 1
    return out


def msg(mid: object, content: object, role: object = "assistant") -> dict[str, Any]:
    return {"message_item": {"id": mid, "content": content, "role": role}}


def delta(mid: object, content: str, **kw: Any) -> Spec:
    return ev("conversation.message.delta", msg(mid, content), **kw)


def completed(mid: object, content: object, **kw: Any) -> Spec:
    return ev("conversation.message.completed", msg(mid, content), **kw)


def chat_completed(usage: object = None, conv: object = "conv_001") -> Spec:
    record: dict[str, Any] = {"conversation_id": conv}
    if usage is not None:
        record["usage"] = usage
    return ev("conversation.chat.completed", {"run_record_item": record})


USAGE = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
START = [ev("conversation.chat.created"), ev("conversation.chat.in_progress")]
DONE = ev("conversation.stream.done")
ERROR = ev("error", {"code": 400, "msg": "invalid bot_id"}, event_key=False)
# The spec's "SSE 数据格式" example, with the start events of its event table.
EXAMPLE = [
    *START,
    delta("msg_001", "你好"),
    delta("msg_001", "!我是"),
    delta("msg_001", "一个AI助手"),
    completed("msg_001", "你好!我是一个AI助手"),
    chat_completed(USAGE),
    DONE,
]


def chat(*middle: Spec, end: list[Spec] | None = None) -> list[Spec]:
    """A chat around ``middle``: start events, then middle, then chat.completed and done."""
    return [*START, *middle, *(end if end is not None else [chat_completed(USAGE), DONE])]


def found(specs: list[Spec], rules: StreamRules = DOC, times: list[float] | None = None) -> list[tuple[str, int | None]]:
    return [(f.rule, f.index) for f in check_chat_stream(events(specs, times), rules).findings]


LEGAL = [
    pytest.param(EXAMPLE, id="spec-example"),
    pytest.param(chat(completed("m1", "no deltas")), id="completed-without-deltas"),
    pytest.param(
        chat(
            delta("m1", "a"),
            delta("m2", "x"),
            delta("m1", "b"),
            completed("m1", "ab"),
            completed("m2", "x"),
            completed("m3", ""),
        ),
        id="several-interleaved-messages",
    ),
    pytest.param([ERROR], id="error-answer"),
    pytest.param([ev("conversation.error", {"code": 500, "msg": "boom"})], id="conversation-error-answer"),
    pytest.param(chat(delta("m1", "a"), ev("error", "{}"), end=[DONE]), id="error-mid-stream-then-terminal"),
    pytest.param(
        chat(
            ev("conversation.audio.delta", {"x": 1}),
            completed("m1", "a"),
            end=[chat_completed(), ev("ping", "not json"), DONE],
        ),
        id="unknown-events-anywhere-before-terminal",
    ),
    pytest.param(chat(delta(7382159494123470858, "a"), completed("7382159494123470858", "a")), id="int-and-string-id-same-text"),
    pytest.param(
        chat(
            delta(9007199254740993, "a"),
            delta(9007199254740992, "b"),
            completed(9007199254740993, "a"),
            completed(9007199254740992, "b"),
        ),
        id="ids-beyond-2-53-stay-distinct",
    ),
    pytest.param(chat(completed("m1", "a"), end=[chat_completed(None), DONE]), id="usage-absent"),
    pytest.param(chat(end=[ev("conversation.chat.failed"), DONE]), id="chat-failed"),
    pytest.param(
        [*START[1:], START[0], delta("m", "a"), completed("m", "a"), chat_completed(), DONE],
        id="start-events-any-order",
    ),
]


@pytest.mark.parametrize("specs", LEGAL)
def test_legal_streams_have_no_findings(specs: list[Spec]) -> None:
    assert found(specs) == []


# (stream, the findings expected: (rule, event index), exactly); the id starts with the rule.
ILLEGAL = [
    pytest.param(
        chat(end=[ev("conversation.chat.completed", "[1, 2]"), DONE]),
        [("grammar.payload_json", 2)],
        id="payload_json-array",
    ),
    pytest.param(
        chat(completed("m", "a"), ev("conversation.error", "oops")),
        [("grammar.payload_json", 3)],
        id="payload_json-not-json",
    ),
    pytest.param(
        chat(end=[ev("conversation.chat.completed", '{"usage": NaN}'), DONE]),
        [("grammar.payload_json", 2)],
        id="payload_json-nan",
    ),
    pytest.param(
        chat(
            ("conversation.message.delta", {"event": "conversation.message.completed", **msg("m", "a")}),
            completed("m", "a"),
        ),
        [("grammar.event_key_matches", 2)],
        id="event_key_matches",
    ),
    pytest.param(
        chat(delta("m", "a", event_key=False), delta("m", "b", event_key=False), completed("m", "ab")),
        [("grammar.event_key_present", 2)],
        id="event_key_present-once-per-type",
    ),
    pytest.param(
        [START[0], delta("m", "a"), START[1], completed("m", "a"), chat_completed(USAGE), DONE],
        [("grammar.start_before_messages", 2)],
        id="start_before_messages",
    ),
    pytest.param(EXAMPLE[2:], [("grammar.start_events_present", None)], id="start_events_present"),
    pytest.param(
        chat(ev("conversation.message.completed", msg("m", "a", None))),
        [("grammar.message_fields", 2)],
        id="message_fields-role",
    ),
    pytest.param(
        chat(ev("conversation.message.completed", msg("m", 5))),
        [("grammar.message_fields", 2)],
        id="message_fields-content",
    ),
    pytest.param(chat(completed(1.5, "a")), [("grammar.message_fields", 2)], id="message_fields-float-id"),
    pytest.param(chat(completed(True, "a")), [("grammar.message_fields", 2)], id="message_fields-bool-id"),
    pytest.param(chat(completed("", "a")), [("grammar.message_fields", 2)], id="message_fields-empty-id"),
    pytest.param(
        chat(ev("conversation.message.completed", {"message": {"id": "m", "content": "a", "role": "assistant"}})),
        [("grammar.message_fields", 2)],
        id="message_fields-elsewhere",
    ),
    pytest.param(
        chat(delta("m", "a"), completed("m", "a"), delta("m", "b")),
        [("grammar.deltas_before_completed", 4)],
        id="deltas_before_completed",
    ),
    pytest.param(
        chat(delta("m", "a"), delta("m", "b"), completed("m", "ba")),
        [("grammar.deltas_join_completed", 4)],
        id="deltas_join_completed",
    ),
    pytest.param(
        chat(completed("m", "a"), completed("m", "a")),
        [("grammar.duplicate_message_completed", 3)],
        id="duplicate_message_completed",
    ),
    pytest.param(chat(completed("m", "a"), end=[DONE]), [("grammar.chat_outcome", None)], id="chat_outcome-missing"),
    pytest.param(
        chat(completed("m", "a"), end=[chat_completed(USAGE), ev("conversation.chat.failed"), DONE]),
        [("grammar.chat_outcome", 4)],
        id="chat_outcome-twice",
    ),
    pytest.param(
        chat(completed("m", "a"), end=[chat_completed(USAGE), completed("m2", "late"), DONE]),
        [("grammar.chat_outcome", 4)],
        id="chat_outcome-before-a-message",
    ),
    pytest.param(
        chat(end=[chat_completed({**USAGE, "total_tokens": "30"}), DONE]),
        [("grammar.usage_integers", 2)],
        id="usage_integers-string",
    ),
    pytest.param(
        chat(end=[chat_completed({**USAGE, "prompt_tokens": -1}), DONE]),
        [("grammar.usage_integers", 2)],
        id="usage_integers-negative",
    ),
    pytest.param(
        chat(end=[chat_completed({**USAGE, "prompt_tokens": True}), DONE]),
        [("grammar.usage_integers", 2)],
        id="usage_integers-bool",
    ),
    pytest.param(
        chat(end=[chat_completed({**USAGE, "prompt_tokens": 10.0}), DONE]),
        [("grammar.usage_integers", 2)],
        id="usage_integers-float",
    ),
    pytest.param(
        chat(end=[chat_completed({"prompt_tokens": 1, "completion_tokens": 2}), DONE]),
        [("grammar.usage_integers", 2)],
        id="usage_integers-missing",
    ),
    pytest.param(chat(end=[chat_completed([10, 20, 30]), DONE]), [("grammar.usage_integers", 2)], id="usage_integers-not-object"),
    pytest.param(chat(end=[chat_completed({**USAGE, "total_tokens": 31}), DONE]), [("grammar.usage_total", 2)], id="usage_total"),
    pytest.param(chat(end=[chat_completed(USAGE)]), [("grammar.terminal_present", None)], id="terminal_present"),
    pytest.param(
        chat(end=[chat_completed(USAGE), DONE, ev("ping", "{}")]),
        [("grammar.terminal_last", 4)],
        id="terminal_last-stray",
    ),
    pytest.param(
        chat(end=[chat_completed(USAGE), DONE, ev("done", '"[DONE]"')]),
        [("grammar.terminal_last", 4)],
        id="terminal_last-second",
    ),
    pytest.param([ERROR, DONE, ERROR], [("grammar.terminal_last", 2)], id="terminal_last-after-error"),
    pytest.param(
        chat(end=[chat_completed(USAGE), ev("done", '"[DONE]"')]),
        [("grammar.preferred_terminal", 3)],
        id="preferred_terminal",
    ),
    pytest.param(
        chat(delta("m1", "a"), completed("m2", "a")),
        [("grammar.ids_consistent", None)],
        id="ids_consistent-delta-without-its-completed",
    ),
    pytest.param(
        [ev("conversation.chat.created", {"conversation_id": "c1"}), START[1], chat_completed(USAGE, conv="c2"), DONE],
        [("grammar.ids_consistent", 2)],
        id="ids_consistent-conversation",
    ),
]


@pytest.mark.parametrize(("specs", "expected"), ILLEGAL)
def test_illegal_streams_break_exactly_their_rule(specs: list[Spec], expected: list[tuple[str, int | None]]) -> None:
    assert found(specs) == expected


def test_every_rule_has_a_legal_and_an_illegal_stream() -> None:
    illegal = {str(p.id).split("-")[0] for p in ILLEGAL} | {str(p.id).split("-")[0] for p in COZE_ILLEGAL}
    illegal.add("closed_after_terminal")  # test_closed_after_terminal_is_judged_by_who_closed
    assert {r.removeprefix("grammar.") for r in RULES} - {"liveness"} == illegal
    # Every LEGAL stream is legal for every rule: test_legal_streams_have_no_findings.


# A 25-event chat: 20 deltas of one message.
LONG = chat(*[delta("m", "x")] * 20, completed("m", "x" * 20))
LIVE = [i / 10 for i in range(25)]  # one event every 0.1 s
HELD_BACK = [0.0] + [1.8 + i / 120 for i in range(24)]  # 24 of 25 in the last 0.2 s of 2 s


@pytest.mark.parametrize(
    ("times", "flagged"),
    [
        pytest.param(LIVE, False, id="live"),
        pytest.param([0.0] * 25, False, id="all-at-once"),
        pytest.param([t / 3 for t in HELD_BACK], False, id="held-back-but-short"),
        pytest.param(LIVE[:7] + HELD_BACK[7:], False, id="three-quarters-in-the-tail"),
        pytest.param(HELD_BACK, True, id="held-back"),
    ],
)
def test_liveness(times: list[float], flagged: bool) -> None:
    assert found(LONG, times=times) == ([("grammar.liveness", None)] if flagged else [])


def test_summary_of_a_stream() -> None:
    result = check_chat_stream(events(EXAMPLE), DOC)
    assert result.findings == []
    assert list(result.messages) == ["msg_001"]
    message = result.messages["msg_001"]
    assert (message.joined, message.completed, message.role) == (
        "你好!我是一个AI助手",
        "你好!我是一个AI助手",
        "assistant",
    )
    assert (result.outcome, result.usage, result.terminal) == ("completed", USAGE, "conversation.stream.done")
    assert (result.conversation_ids, result.errors) == (["conv_001"], [])
    assert len(result.payloads) == len(EXAMPLE)


@pytest.mark.parametrize(
    ("specs", "outcome", "errors"),
    [
        pytest.param([ERROR], "error", [{"code": 400, "msg": "invalid bot_id"}], id="error"),
        pytest.param(chat(end=[ev("conversation.chat.failed"), DONE]), "failed", [], id="failed"),
        pytest.param(chat(end=[]), None, [], id="none"),
        pytest.param([ev("error", "not json")], "error", ["not json"], id="error-raw-data"),
    ],
)
def test_outcome(specs: list[Spec], outcome: str | None, errors: list[Any]) -> None:
    result = check_chat_stream(events(specs), DOC)
    assert (result.outcome, result.errors) == (outcome, errors)


def test_a_finding_says_where_and_what() -> None:
    stream = events(chat(delta("m", "a"), completed("m", "b")))
    (finding,) = check_chat_stream(stream, DOC).findings
    assert (finding.offset, finding.raw, finding.severity) == (stream[3].offset, stream[3].raw, "violation")
    assert "event 3 (conversation.message.completed)" in finding.message
    assert "'a'" in finding.message and "'b'" in finding.message  # expected and actual


# -- the coze-cloud captures -----------------------------------------------------------


def coze_events(name: str) -> list[Event]:
    # The captures lack the final blank line (see test_sse): add it to see the terminal event.
    checker = SSEChecker("text/event-stream")
    checker.feed((COZE / name).read_bytes() + b"\n\n", 0.0)
    checker.close(0.0)
    assert checker.findings == []
    return checker.events


def rules_of(result_findings: list[Any]) -> set[str]:
    return {f.rule for f in result_findings}


def test_coze_text_stream_under_doc_rules() -> None:
    """Coze puts message fields at the top of the payload, not under message_item (a
    MUST of the doc page), and sends `done` and no event key (SHOULDs)."""
    result = check_chat_stream(coze_events("chat_text_stream_resp.txt"), DOC)
    assert rules_of(result.violations) == {"grammar.message_fields"}
    assert rules_of(result.findings) == {
        "grammar.message_fields",
        "grammar.event_key_present",
        "grammar.preferred_terminal",
    }
    assert result.outcome == "completed" and result.terminal == "done"
    assert result.payloads[-1] == "[DONE]"


def test_coze_text_stream_under_its_own_shape() -> None:
    """With coze's payload shape the only MUST finding is the fixture's own: its deltas
    do not join to the completed content (the SDK's test data was edited by hand)."""
    result = check_chat_stream(coze_events("chat_text_stream_resp.txt"), COZE_SHAPE)
    assert [(f.rule, f.index) for f in result.violations] == [("grammar.deltas_join_completed", 6)]
    message = result.messages["7382159494123470858"]
    assert (message.joined, message.completed) == ("20星期三。", "2024 年 10 月 1 日是星期三。")
    assert result.usage == {"token_count": 633, "output_count": 19, "input_count": 614}
    assert result.conversation_ids == ["7381473525342978089"]


@pytest.mark.parametrize(
    ("name", "violations", "outcome"),
    [
        pytest.param("chat_audio_stream_resp.txt", set(), "completed", id="audio"),
        pytest.param("chat_failed_resp.txt", {"grammar.terminal_present"}, "failed", id="failed"),
        pytest.param("chat_error_resp.txt", set(), "error", id="error"),
        pytest.param("chat_invalid_resp.txt", {"grammar.chat_outcome", "grammar.terminal_present"}, None, id="unknown-event-only"),
    ],
)
def test_other_coze_captures_under_its_own_shape(name: str, violations: set[str], outcome: str | None) -> None:
    result = check_chat_stream(coze_events(name), COZE_SHAPE)
    assert (rules_of(result.violations), result.outcome) == (violations, outcome)


# -- the coze profile's rules ------------------------------------------------------------

COZE_RULES = load_stream_rules("coze")


def coze_chat(status: str, *, usage: bool = True, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "9", "conversation_id": "c1", "bot_id": "7", "status": status, **extra}
    if usage:
        body["usage"] = {"token_count": 5, "output_count": 2, "input_count": 3}
    return body


def coze_msg(content: str, *, chat_id: str = "9", **extra: Any) -> dict[str, Any]:
    return {
        "id": "m1",
        "conversation_id": "c1",
        "bot_id": "7",
        "chat_id": chat_id,
        "role": "assistant",
        "type": "answer",
        "content": content,
        "content_type": "text",
        **extra,
    }


def coze_stream(*middle: Spec, end: list[Spec] | None = None) -> list[Spec]:
    start = [
        ev("conversation.chat.created", coze_chat("created"), event_key=False),
        ev("conversation.chat.in_progress", coze_chat("in_progress"), event_key=False),
    ]
    body = list(middle) or [
        ev("conversation.message.delta", coze_msg("he"), event_key=False),
        ev("conversation.message.delta", coze_msg("llo"), event_key=False),
        ev("conversation.message.completed", coze_msg("hello"), event_key=False),
    ]
    done = end if end is not None else [ev("conversation.chat.completed", coze_chat("completed"), event_key=False), ev("done", '"[DONE]"')]
    return start + body + done


def test_a_legal_coze_stream_has_no_findings() -> None:
    result = check_chat_stream(events(coze_stream()), COZE_RULES, "server")
    assert result.findings == [] and result.outcome == "completed" and result.chat_id == "9"


COZE_ILLEGAL = [
    pytest.param(
        coze_stream(
            end=[
                ev(
                    "conversation.chat.completed",
                    {
                        "id": 9,
                        "conversation_id": "c1",
                        "status": "completed",
                        "usage": {"token_count": 0, "output_count": 0, "input_count": 0},
                    },
                    event_key=False,
                ),
                ev("done", '"[DONE]"'),
            ]
        ),
        [("grammar.chat_fields", 5), ("grammar.payload_schema", 5)],
        id="chat_fields",
    ),
    pytest.param(
        coze_stream(end=[ev("conversation.chat.completed", coze_chat("completed", usage=False), event_key=False), ev("done", '"[DONE]"')]),
        [("grammar.usage_present", 5)],
        id="usage_present",
    ),
    pytest.param(
        coze_stream(end=[ev("conversation.chat.completed", coze_chat("completed"), event_key=False), ev("done", "")]),
        [("grammar.terminal_data", 6)],
        id="terminal_data",
    ),
    pytest.param(
        coze_stream(
            ev("conversation.message.delta", coze_msg("a"), event_key=False),
            ev("conversation.ack", "{}"),
            ev("conversation.message.completed", coze_msg("a"), event_key=False),
        ),
        [("grammar.known_events", 3)],
        id="known_events",
    ),
    pytest.param(
        coze_stream(ev("conversation.message.completed", coze_msg("a", chat_id="8"), event_key=False)),
        [("grammar.ids_consistent", 2)],
        id="ids_consistent-chat-id",
    ),
    pytest.param(
        coze_stream(ev("conversation.message.completed", {**coze_msg("a"), "content_type": None}, event_key=False)),
        [("grammar.message_fields", 2), ("grammar.payload_schema", 2)],
        id="message_fields-content-type",
    ),
    pytest.param(
        coze_stream(ev("conversation.message.completed", {**coze_msg("a"), "created_at": 1500000000.5}, event_key=False)),
        [("grammar.payload_schema", 2)],
        id="payload_schema-float-timestamp",
    ),
]


@pytest.mark.parametrize(("specs", "expected"), COZE_ILLEGAL)
def test_illegal_coze_streams_break_exactly_their_rule(specs: list[Spec], expected: list[tuple[str, int | None]]) -> None:
    result = check_chat_stream(events(specs), COZE_RULES, "server")
    assert [(f.rule, f.index) for f in result.findings] == expected


def test_closed_after_terminal_is_judged_by_who_closed() -> None:
    stream = events(coze_stream())
    assert check_chat_stream(stream, COZE_RULES, "server").findings == []
    (finding,) = check_chat_stream(stream, COZE_RULES, "client").findings
    assert (finding.rule, finding.index) == ("grammar.closed_after_terminal", 6)
    # A stream the client left before its terminal event was not held open by the server.
    assert check_chat_stream(stream[:3], COZE_RULES, "client").findings[0].rule != "grammar.closed_after_terminal"
    # doc streams may stay open (READING "After the terminal event").
    assert "grammar.closed_after_terminal" not in rules_of(check_chat_stream(stream, DOC, "client").findings)


def test_coze_captures_under_the_coze_profile() -> None:
    """The cloud's own streams under the profile: the text stream's only finding is the
    fixture's hand-edited deltas; the invalid one's unknown event is a SHOULD."""
    text = check_chat_stream(coze_events("chat_text_stream_resp.txt"), COZE_RULES, "server")
    assert [(f.rule, f.index) for f in text.findings] == [("grammar.deltas_join_completed", 6)]
    audio = check_chat_stream(coze_events("chat_audio_stream_resp.txt"), COZE_RULES, "server")
    assert audio.findings == []
    invalid = check_chat_stream(coze_events("chat_invalid_resp.txt"), COZE_RULES, "server")
    assert rules_of(invalid.findings) == {
        "grammar.known_events",
        "grammar.start_events_present",
        "grammar.chat_outcome",
        "grammar.terminal_present",
    }


# -- profile rules ---------------------------------------------------------------------


def test_doc_rules_are_the_doc_profile_table() -> None:
    with (PROFILES_DIR / "doc.toml").open("rb") as fh:
        table = tomllib.load(fh)["stream"]
    assert StreamRules.from_mapping(table) == DOC
    assert DOC.terminal_events == tuple(table["terminal_events"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"terminal_event": ["done"]}, "unknown keys \\['terminal_event'\\]", id="unknown-key"),
        pytest.param({"terminal_events": None}, "missing key 'terminal_events'", id="missing-key"),
        pytest.param({"error_events": "error"}, "error_events: expected a list of strings", id="not-a-list"),
        pytest.param({"usage_fields": ["a", "b"]}, "usage_fields: expected 3 names", id="usage-fields-count"),
        pytest.param({"liveness_tail_share": "0.9"}, "liveness_tail_share: expected a non-negative number", id="not-a-number"),
        pytest.param({"message_key": 1}, "message_key: expected a string", id="not-a-string"),
    ],
)
def test_bad_rules_are_a_clear_error(change: dict[str, Any], message: str) -> None:
    table = {**dataclasses.asdict(DOC), **change}
    table = {k: list(v) if isinstance(v, tuple) else v for k, v in table.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        StreamRules.from_mapping(table)


def test_unknown_profile_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"no profile file 'nonesuch.toml'.*'doc'"):
        load_stream_rules("nonesuch")


# -- read_stream -----------------------------------------------------------------------


class Wire:
    """Chunks with arrival times, a clock that reads the last one, and a record of
    whether the reader closed the iterator. Pulling past the script is an error:
    that is a reader that would hang on a server that keeps the connection open."""

    def __init__(self, script: list[tuple[bytes, float]], *, server_closes: bool = False) -> None:
        self.script, self.server_closes = script, server_closes
        self.now, self.closed, self.pulled = 0.0, False, 0

    def clock(self) -> float:
        return self.now

    def chunks(self) -> Iterator[tuple[bytes, float]]:
        try:
            for chunk, t in self.script:
                self.now = t
                self.pulled += 1
                yield chunk, t
            if not self.server_closes:
                raise AssertionError("read past the grace period: the reader would hang")
        finally:
            self.closed = True


def sse(*specs: Spec) -> bytes:
    return b"".join(e.raw + b"\n" for e in events(list(specs)))


def test_read_stream_stops_after_the_grace_and_closes() -> None:
    wire = Wire(
        [
            (sse(*EXAMPLE[:-1]), 0.5),
            (sse(DONE), 1.0),
            (b": keep-alive\n\n", 1.5),
            (sse(ev("ping", "{}")), 1.9),  # stray, within the 1 s grace
            (b"", 2.0),  # a read timeout: the grace is over
            (sse(ev("late", "{}")), 2.5),
        ]
    )
    reading = read_stream(wire.chunks(), SSEChecker("text/event-stream"), DOC, clock=wire.clock)
    assert reading.closed_by == "client" and wire.closed and wire.pulled == 5
    assert [e.type for e in reading.events][-2:] == ["conversation.stream.done", "ping"]
    assert [(f.rule, f.index) for f in reading.findings] == [("grammar.terminal_last", 8)]


def test_read_stream_does_not_feed_a_chunk_that_came_after_the_grace() -> None:
    wire = Wire([(sse(*EXAMPLE), 1.0), (sse(ev("late", "{}")), 2.01)])
    reading = read_stream(wire.chunks(), SSEChecker("text/event-stream"), DOC, clock=wire.clock)
    assert reading.closed_by == "client" and reading.findings == []
    assert reading.events[-1].type == "conversation.stream.done"


def test_read_stream_when_the_server_closes() -> None:
    wire = Wire([(sse(*EXAMPLE[:-1]), 0.1), (b"event: conversation.stream.done\ndata: {}\n", 0.2)], server_closes=True)
    reading = read_stream(wire.chunks(), SSEChecker("text/event-stream"), DOC, clock=wire.clock)
    assert reading.closed_by == "server"
    assert [(f.rule, f.index) for f in reading.findings] == [
        ("sse.unterminated_event", None),
        ("grammar.terminal_present", None),
    ]


def test_read_stream_grace_also_follows_an_error_event() -> None:
    wire = Wire([(sse(ERROR), 0.0), (b"", 0.5), (b"", 1.0)])
    reading = read_stream(wire.chunks(), SSEChecker("text/event-stream"), DOC, clock=wire.clock)
    assert reading.closed_by == "client" and wire.pulled == 3
    assert reading.grammar.outcome == "error" and reading.findings == []


def test_read_stream_stops_at_the_size_limit() -> None:
    wire = Wire([(b"data: " + b"x" * 100, 0.0), (b"never read", 0.1)])
    reading = read_stream(wire.chunks(), SSEChecker("text/event-stream", max_stream_bytes=50), DOC, clock=wire.clock)
    assert reading.closed_by == "client" and wire.pulled == 1
    assert [(f.rule, f.offset) for f in reading.sse_findings] == [("sse.stream_too_large", 50)]
