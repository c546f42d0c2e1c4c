"""POST /v3/chat with ``stream: true``: the event stream, byte by byte and event by event.

One well-read happy-path stream judges every requirement the byte-level checker
(conformance/oracle/sse.py) and the chat-stream grammar (conformance/oracle/grammar.py) are
attributed to: each rule that has a requirement in the catalogue (its ``rule`` field)
gets a verdict from that one stream, PASS when the rule has no finding. The verdicts
are soft, so one broken rule does not hide the others.

A streaming request with a parameter error (spec "SSE 错误事件": 流式响应中的错误通过
error 事件返回) judges ERR-SSE-002, and ERR-SSE-001 when the answer carries an error
event; READING "Errors on a streaming request" lets a server answer the error envelope
instead, and then there is no error event to judge.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from conformance.oracle import grammar, sse
from conformance.oracle.catalogue import Catalogue, load_catalogue
from conformance.oracle.grammar import StreamReading, StreamRules, read_stream
from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Profile
from conformance.oracle.sse import Finding
from conformance.oracle.witness import disagreements, read_with
from conformance.suite.helpers import (
    LONG_ANSWER,
    Bot,
    StreamResult,
    chat_body,
    chat_path,
    id_text,
    is_integer,
    read_chat_stream,
    stream_rules,
)
from conformance.transport.client import ApiClient, parse_json

RULE_TEXTS: dict[str, str] = {rule: text for rule, (_, text) in {**sse.RULES, **grammar.RULES}.items()}
# Every requirement, of any profile, a checker or grammar rule is attributed to
# (catalogue `rule`): the happy-path test judges those of the run's profile.
STREAM_REQUIREMENTS = tuple(
    r.id for r in load_catalogue().values() if any(rule in RULE_TEXTS for rule in r.rules) and not r.retired
)

FINDINGS_SHOWN = 3


# --------------------------------------------------------------------------- reading


def reading_of(result: StreamResult, rules: StreamRules) -> StreamReading:
    """The stream as the checker and grammar read it. An answer whose Content-Type
    is not text/event-stream was read whole as a body (``read_chat_stream``); it is
    parsed as an event stream anyway, so that a server with only a wrong header is
    judged on everything else too."""
    if result.reading is not None:
        return result.reading
    checker = rules.checker(result.content_type)
    return read_stream([(result.body, time.monotonic())], checker, rules)


def describe(result: StreamResult) -> str:
    text = result.body.decode("utf-8", "replace")
    shown = text[:300] + ("..." if len(text) > 300 else "")
    return f"HTTP {result.status}, Content-Type {result.content_type!r}: {shown}"


def summary(problems: list[str]) -> str:
    if not problems:
        return "no finding"
    more = len(problems) - FINDINGS_SHOWN
    return "; ".join(problems[:FINDINGS_SHOWN]) + (f" (+{more} more)" if more > 0 else "")


def show_finding(finding: Finding) -> str:
    where = f" at byte {finding.offset}" if finding.offset is not None else ""
    raw = f" {finding.raw!r}" if finding.raw else ""
    return f"{finding.message}{where}{raw}"


# --------------------------------------------------------------------------- consistency


def conversation_ids(reading: StreamReading, rules: StreamRules) -> Iterator[tuple[int, str]]:
    """Every conversation id the stream states: in a payload of a known event and in
    any object one level down (message_item, run_record_item, and the undocumented
    objects of chat.created & co.). The grammar looks in the documented places only;
    the gloss of CHAT-SSE-020 says every conversation_id."""
    key = rules.conversation_id_key
    for index, (event, payload) in enumerate(zip(reading.events, reading.grammar.payloads, strict=True)):
        if rules.kind(event.type) is None or not isinstance(payload, dict):
            continue
        for part in (payload, *(v for v in payload.values() if isinstance(v, dict))):
            text = id_text(part.get(key))
            if text is not None:
                yield index, text


def inconsistent_conversations(reading: StreamReading, rules: StreamRules) -> list[str]:
    """CHAT-SSE-020 beyond the grammar: the stream names one conversation throughout
    (the chat.completed's run_record_item included, as the spec's example shows it)."""
    seen = list(conversation_ids(reading, rules))
    if not seen:
        return []
    first = seen[0][1]
    return [
        f"event {index} ({reading.events[index].type}): {rules.conversation_id_key} {cid!r}, "
        f"while event {seen[0][0]} said {first!r}"
        for index, cid in seen
        if cid != first
    ]


def missing_usage(reading: StreamReading, rules: StreamRules) -> list[str]:
    """CHAT-SSE-018 beyond the grammar (which judges usage only when it is carried):
    a chat.completed carries run_record_item.usage, as the spec's example does."""
    problems = []
    for index, (event, payload) in enumerate(zip(reading.events, reading.grammar.payloads, strict=True)):
        if rules.kind(event.type) != "chat_completed" or not isinstance(payload, dict):
            continue
        record = payload.get(rules.run_record_key) if rules.run_record_key else payload
        if not isinstance(record, dict) or rules.usage_key not in record:
            where = f"{rules.run_record_key}.{rules.usage_key}" if rules.run_record_key else rules.usage_key
            problems.append(f"event {index} ({event.type}): no {where}")
    return problems


# --------------------------------------------------------------------------- verdicts


def problems_by_requirement(
    reading: StreamReading, rules: StreamRules, catalogue: Catalogue, witnessed: list[Finding] | None = None
) -> tuple[dict[str, list[str]], list[str]]:
    """Findings by the requirement their rule is attributed to (``catalogue`` is the
    run profile's), plus the consistency problems above and the client witness's
    disagreements; second, the findings of rules with no requirement (notes such as a
    skipped BOM, and the checker's own size limits)."""
    problems: dict[str, list[str]] = {}
    unattributed = []
    for finding in [*reading.findings, *(witnessed or [])]:
        requirement = catalogue.by_rule(finding.rule)
        if requirement is None:
            unattributed.append(f"{finding.rule}: {show_finding(finding)}")
        else:
            problems.setdefault(requirement.id, []).append(f"{finding.rule}: {show_finding(finding)}" if len(requirement.rules) > 1 else show_finding(finding))
    extras = [("grammar.ids_consistent", inconsistent_conversations(reading, rules))]
    if not rules.usage_required:  # else the grammar judges it (grammar.usage_present)
        extras.append(("grammar.usage_integers", missing_usage(reading, rules)))
    for rule, extra in extras:
        requirement = catalogue.by_rule(rule)
        if requirement is not None:
            problems.setdefault(requirement.id, []).extend(extra)
    return problems, unattributed


def witness_findings(result: StreamResult, reading: StreamReading, rules: StreamRules) -> tuple[list[Finding], str]:
    """The stream's bytes read again by the profile's real client parser
    (oracle/witness.py): each disagreement with the checker as a finding of
    ``sse.sdk_framing`` (judged where the profile maps it), and a summary line."""
    if not rules.witness or not result.body:
        return [], ""
    # The parsers are compared, not the header (sse.media_type judges that; httpx-sse
    # would refuse to parse a body whose Content-Type is not text/event-stream).
    witness = read_with(rules.witness, result.body, rules.media_type)
    found = disagreements(witness, reading.events, reading.sse_findings, grammar_findings=reading.grammar.findings)
    summary = f"{witness.client} read {len(witness.events)} events" + (f", then {witness.error}" if witness.error else "")
    if found:
        summary += "; disagreements: " + "; ".join(map(str, found[:FINDINGS_SHOWN]))
    return [Finding("sse.sdk_framing", f"{witness.client} disagrees: {d.message}", d.offset) for d in found], summary


def rules_with_requirements(catalogue: Catalogue) -> dict[str, list[str]]:
    """requirement id -> its rules, for every checker and grammar rule the catalogue maps
    (a profile may have one requirement judge several rules)."""
    mapped: dict[str, list[str]] = {}
    for rule in RULE_TEXTS:
        requirement = catalogue.by_rule(rule)
        if requirement is not None:
            mapped.setdefault(requirement.id, []).append(rule)
    return mapped


@pytest.mark.requirement(*STREAM_REQUIREMENTS)
def test_stream_follows_the_sse_format_and_grammar(
    api: ApiClient,
    check: Checks,
    profile: Profile,
    catalogue: Catalogue,
    published_bot: Bot,
    user_id: str,
    request: pytest.FixtureRequest,
) -> None:
    rules = stream_rules(profile)
    judged = rules_with_requirements(catalogue)
    assert set(judged) <= set(STREAM_REQUIREMENTS), f"suite bug: the catalogue maps rules to {sorted(judged)}"

    body = chat_body(published_bot, user_id, LONG_ANSWER, stream=True)
    result = read_chat_stream(api, chat_path(profile), body, profile)
    reading = reading_of(result, rules)
    media_type = catalogue.by_rule("sse.media_type")
    if result.reading is None and not reading.events and media_type is not None:
        # Not an event stream at all (an error envelope, say): nothing else to judge.
        check(
            media_type.id,
            False,
            expected=f"an event stream with Content-Type {rules.media_type}",
            actual=describe(result),
        )

    witnessed, witness_summary = witness_findings(result, reading, rules)
    if witness_summary:
        request.node.add_report_section("call", f"client witness ({rules.witness})", witness_summary)
    problems, unattributed = problems_by_requirement(reading, rules, catalogue, witnessed)
    events = reading.events
    duration = events[-1].arrived - events[0].arrived if events else 0.0
    context = (
        f"{len(events)} events over {duration:.2f} s, closed by the {reading.closed_by}"
        + (f" ({result.extra['stopped']}, {len(result.body)} bytes received)" if "stopped" in result.extra else "")
        + (f"; outcome {reading.grammar.outcome}" if reading.grammar.outcome else "")
        + (f"; {witness_summary}" if witness_summary else "")
        + (f"; other findings: {'; '.join(unattributed[:FINDINGS_SHOWN])}" if unattributed else "")
    )
    for requirement_id in judged:
        found = problems.get(requirement_id, [])
        detail = context
        if "grammar.liveness" in judged[requirement_id]:
            # grammar.liveness flags only a stream lasting >= liveness_min_seconds: a
            # short stream (the reference server's, at 20 ms a token) passes honestly,
            # as there was no time in which to hold events back.
            detail += f"; liveness is judged on streams of >= {rules.liveness_min_seconds:g} s"
        check(
            requirement_id,
            not found,
            expected="; ".join(RULE_TEXTS[rule] for rule in judged[requirement_id]),
            actual=summary(found),
            detail=detail,
            soft=True,
        )


# --------------------------------------------------------------------------- errors on a streaming request


def error_codes(payload: Any) -> list[Any]:
    """The code an error event carries, at ``code`` or ``error.code`` (ERR-SSE-001's
    note: the error section shows the first, the client examples read data.error)."""
    if not isinstance(payload, dict):
        return []
    nested = payload.get("error")
    return [payload.get("code"), nested.get("code") if isinstance(nested, dict) else None]


def carries(payload: Any, code: int) -> bool:
    return any(is_integer(c) and c == code for c in error_codes(payload))


# Parameter errors of the request table (必填 是): each a fresh chance for the server
# to answer with an error event rather than the envelope.
PARAMETER_ERRORS = [
    pytest.param("user_id", id="missing-user_id"),
    pytest.param("bot_id", id="missing-bot_id"),
]


@pytest.mark.parametrize("missing", PARAMETER_ERRORS)
@pytest.mark.requirement("ERR-SSE-001", "ERR-SSE-002")
def test_streaming_request_with_a_parameter_error(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str, missing: str
) -> None:
    assert missing in profile.endpoint("chat").required, f"suite bug: {missing} is not a required chat parameter"
    parameter_error = profile.envelope.parameter_error_code
    rules = stream_rules(profile)
    body = {k: v for k, v in chat_body(published_bot, user_id, stream=True).items() if k != missing}
    result = read_chat_stream(api, chat_path(profile), body, profile)
    expected = (
        f"the error envelope with code {parameter_error}, or an event stream whose first event "
        f"is an error event {list(rules.error_events)} carrying code {parameter_error}"
    )

    if result.reading is None:
        try:
            answer = parse_json(result.body)
        except ValueError:
            answer = None
        code = answer.get(profile.envelope.code_key) if isinstance(answer, dict) else None
        check.skip(
            "ERR-SSE-001",
            "the server answered the error envelope, not an event stream (READING 'Errors on a "
            "streaming request' allows it), so there is no error event to judge",
        )
        check("ERR-SSE-002", is_integer(code) and code == parameter_error, expected=expected, actual=describe(result))
        return

    reading = result.reading
    errors = [
        (index, event, payload)
        for index, (event, payload) in enumerate(zip(reading.events, reading.grammar.payloads, strict=True))
        if rules.kind(event.type) == "error"
    ]
    for index, event, payload in errors:
        check(
            "ERR-SSE-001",
            any(is_integer(code) for code in error_codes(payload)),
            expected="an integer code at `code` or at `error.code`",
            actual=event.data[:300],
            detail=f"event {index} ({event.type}) at byte {event.offset}",
            soft=True,
        )
    if not errors:
        check.skip("ERR-SSE-001", "the event stream carried no error event to judge")
    first = reading.events[0] if reading.events else None
    first_payload = reading.grammar.payloads[0] if reading.events else None
    check(
        "ERR-SSE-002",
        first is not None and rules.kind(first.type) == "error" and carries(first_payload, parameter_error),
        expected=expected,
        actual=f"first event {first.type}: {first.data[:300]}" if first is not None else describe(result),
        detail=f"HTTP {result.status}, {len(reading.events)} events",
    )
