"""/v3/chat and /v3/chat/cancel of a Coze Studio deployment (profile ``studio``).

The stream's framing and grammar are judged by test_chat_stream (STUDIO-CHAT-001..004,
006 map its rules); this module judges what Studio's chat does beyond them, each
requirement quoting coze-wire.md: token counts in the answer's meta_data, bind errors,
refusals (which Studio sends as one ``error`` event in an HTTP 200 stream, or a JSON
error: both are refusals, coze-wire §5 #23), conversations by ``?conversation_id=``,
the capabilities ``nonstream``, ``retrieve`` and ``section_id`` (probed: studio.py),
and cancel (which does not stop Studio's stream: coze-wire §2.3).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conformance.oracle.outcomes import Checks
from conformance.oracle.profile import Profile
from conformance.run.shared_state import SharedState
from conformance.suite.helpers import (
    LONG_ANSWER,
    Bot,
    chat_body,
    envelope,
    id_text,
    is_integer,
    read_chat_stream,
    send,
    stream_rules,
    unknown_id,
)
from conformance.suite.studio import (
    CANCELLED,
    capability,
    chat_ids,
    digits,
    events_of,
    object_at,
    stream_chat,
    stream_refused,
    succeeded,
)
from conformance.suite.test_cancel import JOIN_MARGIN_SECONDS, StreamReader, cancel_came_late
from conformance.transport.client import ApiClient

TOKEN_KEYS = ("input_tokens", "output_tokens", "token")


def answer_completed(events: list[tuple[str, Any]], profile: Profile) -> list[dict[str, Any]]:
    rules = stream_rules(profile)
    return [
        p
        for name, p in events
        if rules.kind(name) == "completed" and isinstance(p, dict) and p.get("type") == profile.chat.answer_type
    ]


@pytest.mark.requirement("STUDIO-CHAT-005", "STUDIO-CHAT-006")
def test_answer_counts_tokens_and_the_chat_completes(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str
) -> None:
    result = stream_chat(api, profile, published_bot, user_id)
    events = events_of(result)
    answers = answer_completed(events, profile)
    meta = answers[0].get("meta_data") if answers else None
    counts = {k: meta.get(k) for k in TOKEN_KEYS} if isinstance(meta, dict) else {}
    check(
        "STUDIO-CHAT-005",
        all(digits(v) for v in counts.values())
        and len(counts) == 3
        and int(str(counts["token"])) == int(str(counts["input_tokens"])) + int(str(counts["output_tokens"])),
        expected="the answer's message.completed meta_data with input_tokens, output_tokens, token as digit strings, token = input + output",
        actual=f"meta_data {meta!r}" if answers else f"no answer message.completed in {[n for n, _ in events]}",
        soft=True,
    )
    rules = stream_rules(profile)
    done = [p for name, p in events if rules.kind(name) == "chat_completed"]
    chat = done[0] if done and isinstance(done[0], dict) else {}
    check(
        "STUDIO-CHAT-006",
        chat.get("status") == "completed" and profile.timestamps.plausible(chat.get("completed_at")),
        expected="conversation.chat.completed with status completed and completed_at a time in seconds",
        actual=repr(chat)[:300] if done else f"no chat.completed in {[n for n, _ in events]}",
    )


BIND_ERRORS = [
    pytest.param(lambda b: {k: v for k, v in b.items() if k != "bot_id"}, id="missing-bot_id"),
    pytest.param(lambda b: {k: v for k, v in b.items() if k != "user_id"}, id="missing-user_id"),
    pytest.param(lambda b: {**b, "bot_id": int(b["bot_id"])}, id="numeric-bot_id"),
]


@pytest.mark.parametrize("change", BIND_ERRORS)
@pytest.mark.requirement("STUDIO-CHAT-007")
def test_bind_errors_answer_400(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    body = change(chat_body(published_bot, user_id, stream=True))
    result = read_chat_stream(api, profile.endpoint("chat").path, body, profile)
    check(
        "STUDIO-CHAT-007",
        result.status == 400 and result.reading is None,
        expected="HTTP 400 with a JSON error body, not a stream",
        actual=f"HTTP {result.status} {result.media_type}: {result.body[:200].decode('utf-8', 'replace')}",
    )


@pytest.mark.parametrize("which", ["unknown", "unpublished"])
@pytest.mark.requirement("STUDIO-CHAT-008")
def test_chat_with_a_bot_not_published_is_refused(
    api: ApiClient, check: Checks, profile: Profile, user_id: str, request: pytest.FixtureRequest, which: str
) -> None:
    bot = Bot(unknown_id(), "unknown") if which == "unknown" else request.getfixturevalue("draft_bot")
    result = stream_chat(api, profile, bot, user_id)
    refused, seen = stream_refused(result, profile)
    check(
        "STUDIO-CHAT-008",
        refused,
        expected="a JSON error, or an event stream with an error event (non-zero code) and no chat started",
        actual=seen,
    )


@pytest.mark.requirement("STUDIO-CHAT-009")
def test_conversation_id_continues_the_conversation(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str
) -> None:
    first = chat_ids(stream_chat(api, profile, published_bot, user_id), profile)
    if first is None:
        pytest.skip("blocked by STUDIO-CHAT-002: the first chat's stream named no conversation")
    second = stream_chat(api, profile, published_bot, user_id, "再说一次", conversation=first["conversation_id"])
    named = {id_text(p.get("conversation_id")) for _, p in events_of(second) if isinstance(p, dict) and "conversation_id" in p}
    check(
        "STUDIO-CHAT-009",
        named == {first["conversation_id"]},
        expected=f"every event of the second chat names conversation {first['conversation_id']}",
        actual=f"conversations named {sorted(map(str, named))}",
    )


@pytest.mark.requirement("STUDIO-CHAT-010")
def test_unknown_conversation_is_answered(api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str) -> None:
    result = stream_chat(api, profile, published_bot, user_id, conversation=unknown_id())
    ids = chat_ids(result, profile)
    check(
        "STUDIO-CHAT-010",
        ids is not None and result.reading is not None and result.reading.grammar.outcome is not None,
        expected="an answered chat (a new conversation)",
        actual=f"events {[n for n, _ in events_of(result)]}" if result.reading else f"HTTP {result.status}: {result.body[:200]!r}",
    )


@pytest.mark.requirement("STUDIO-CHAT-011")
def test_another_principals_conversation_is_refused(
    api: ApiClient, api2: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str,
    second_published_bot: Bot,
) -> None:
    mine = chat_ids(stream_chat(api, profile, published_bot, user_id), profile)
    if mine is None:
        pytest.skip("blocked by STUDIO-CHAT-002: the chat's stream named no conversation")
    # The second principal with its own published bot: the conversation is all that is
    # not its own (with the first principal's bot it could be refused for the bot).
    result = stream_chat(api2, profile, second_published_bot, user_id, conversation=mine["conversation_id"])
    refused, seen = stream_refused(result, profile)
    check("STUDIO-CHAT-011", refused, expected="a refusal (error event or JSON error)", actual=seen)


@pytest.mark.requirement("STUDIO-CHAT-012")
def test_messages_carry_section_id(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str, shared_state: SharedState,
    request: pytest.FixtureRequest,
) -> None:
    result = stream_chat(api, profile, published_bot, user_id)
    rules = stream_rules(profile)
    messages = [p for n, p in events_of(result) if rules.kind(n) in ("delta", "completed") and isinstance(p, dict)]
    if not messages:
        pytest.skip("blocked by STUDIO-CHAT-002: the stream carried no message")
    carrying = [m for m in messages if isinstance(m.get("section_id"), str) and m["section_id"]]

    def probe() -> tuple[bool, str]:
        return bool(carrying), f"{len(carrying)} of {len(messages)} message events carry section_id"

    capability(shared_state, "section_id", probe).require(request, check, "STUDIO-CHAT-012")
    check(
        "STUDIO-CHAT-012",
        len(carrying) == len(messages),
        expected="section_id on every message event",
        actual=f"{len(carrying)} of {len(messages)}",
    )


def nonstream(api: ApiClient, profile: Profile, bot: Bot, user_id: str) -> tuple[bool, str, Any]:
    """(present, evidence, answer) of /v3/chat with stream false."""
    chat = profile.endpoint("chat")
    response = api.request(chat.method, chat.path, json=chat_body(bot, user_id, stream=False))
    media = response.media_type
    if media == profile.stream["media_type"]:
        return False, f"POST /v3/chat with stream false answered HTTP {response.status} {media}", None
    return True, f"POST /v3/chat with stream false answered HTTP {response.status} {media or 'no Content-Type'}", envelope(response)


@pytest.mark.requirement("STUDIO-CHAT-013")
def test_nonstream_chat_answers_a_chat_object(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str, shared_state: SharedState,
    request: pytest.FixtureRequest,
) -> None:
    present, evidence, answer = nonstream(api, profile, published_bot, user_id)
    capability(shared_state, "nonstream", lambda: (present, evidence)).require(request, check, "STUDIO-CHAT-013")
    if answer is None:  # the run's probe found it present, this answer is a stream
        check.fail("STUDIO-CHAT-013", expected="a JSON answer", actual=evidence)
        return
    data = answer.data if answer.ok else None
    check(
        "STUDIO-CHAT-013",
        isinstance(data, dict) and all(digits(data.get(k)) for k in ("id", "conversation_id")) and isinstance(data.get("status"), str),
        expected="code 0 and data a chat object {id, conversation_id (digit strings), status}",
        actual=answer.describe(),
    )


@pytest.mark.requirement("STUDIO-CHAT-014")
def test_retrieve_and_message_list(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str, shared_state: SharedState,
    request: pytest.FixtureRequest,
) -> None:
    ids = chat_ids(stream_chat(api, profile, published_bot, user_id), profile)
    if ids is None:
        pytest.skip("blocked by STUDIO-CHAT-002: the chat's stream named no chat")
    retrieved = send(api, profile.endpoint("retrieve"), ids)

    def probe() -> tuple[bool, str]:
        return retrieved.status != 404, f"GET {profile.endpoint('retrieve').path} answered HTTP {retrieved.status}"

    capability(shared_state, "retrieve", probe).require(request, check, "STUDIO-CHAT-014")
    chat = object_at(retrieved, profile, "retrieve") if succeeded(retrieved, profile) else None
    check(
        "STUDIO-CHAT-014",
        isinstance(chat, dict) and id_text(chat.get("id")) == ids["chat_id"] and chat.get("status") == "completed",
        expected=f"code 0, data the chat {ids['chat_id']} with status completed (its stream has ended)",
        actual=retrieved.describe(),
        soft=True,
    )
    listed = send(api, profile.endpoint("message_list"), ids)
    body = listed.body if isinstance(listed.body, dict) else {}
    messages = body.get("data") if isinstance(body.get("data"), list) else body.get("Messages")
    answers = [
        m for m in messages or [] if isinstance(m, dict) and m.get("role") == profile.chat.answer_role and m.get("type") == profile.chat.answer_type
    ]
    check(
        "STUDIO-CHAT-014",
        succeeded(listed, profile) and bool(answers),
        expected="code 0 and the chat's messages (data or Messages) with the answer among them",
        actual=listed.describe(),
    )


# --------------------------------------------------------------------------- cancel


CANCEL_MISSING = [pytest.param("chat_id", id="no-chat_id"), pytest.param("conversation_id", id="no-conversation_id")]


@pytest.mark.parametrize("missing", CANCEL_MISSING)
@pytest.mark.requirement("STUDIO-CANCEL-001")
def test_cancel_needs_both_ids(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str, missing: str
) -> None:
    # The ids of a chat in progress, so that the missing one is all that is wrong (a
    # server guessing the chat from the conversation would cancel it).
    with in_progress(api, profile, published_bot, user_id) as (reader, ids):
        answer = send(api, profile.endpoint("cancel"), {k: v for k, v in ids.items() if k != missing})
    check("STUDIO-CANCEL-001", answer.status == 400, expected="HTTP 400", actual=answer.describe())


@contextlib.contextmanager
def in_progress(api: ApiClient, profile: Profile, bot: Bot, user_id: str) -> Iterator[tuple[StreamReader, dict[str, str]]]:
    """A chat streaming a long answer, read by a thread; yields once its first delta has
    come, with its ids, and reads it to its end afterwards. SKIPs when it ends first."""
    rules = stream_rules(profile)
    chat = profile.endpoint("chat")
    # One quiet rate window first: the pacer then holds neither the chat nor its cancel,
    # which must reach the chat while it still streams.
    time.sleep(profile.ratelimits.window_seconds)
    with api.stream("POST", chat.path, json=chat_body(bot, user_id, LONG_ANSWER, stream=True)) as answer:
        if answer.media_type != rules.media_type:
            pytest.skip(f"blocked by STUDIO-CHAT-001: the chat answered HTTP {answer.status} {answer.media_type}")
        reader = StreamReader(answer, rules)
        reader.start()
        reader.first_delta.wait(reader.seconds_left() + JOIN_MARGIN_SECONDS)
        ids = _ids_so_far(answer.received, rules) if reader.reading is None else None
        if ids is None:
            reader.join(reader.seconds_left() + JOIN_MARGIN_SECONDS)
            pytest.skip("the stream ended (or named no chat) before a delta: no chat in progress")
        try:
            yield reader, ids
        finally:
            reader.join(reader.seconds_left() + rules.after_terminal_grace_seconds + JOIN_MARGIN_SECONDS)


@pytest.mark.requirement("STUDIO-CANCEL-002", "STUDIO-CANCEL-003")
def test_cancel_a_chat_in_progress(api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str) -> None:
    rules = stream_rules(profile)
    with in_progress(api, profile, published_bot, user_id) as (reader, ids):
        sent = time.monotonic()
        cancel = send(api, profile.endpoint("cancel"), ids)
        answered = time.monotonic()
    cancelled = object_at(cancel, profile, "cancel") if succeeded(cancel, profile) else None
    status = cancelled.get("status") if isinstance(cancelled, dict) else None
    late = cancel_came_late(reader, rules, sent, answered)
    if late is not None and not succeeded(cancel, profile):
        # The chat completed before the cancel reached it (the pacer may hold a request).
        check.skip("STUDIO-CANCEL-002", f"the cancel came late: {late}")
    else:
        check(
            "STUDIO-CANCEL-002",
            status in CANCELLED,
            expected=f"HTTP 200, no non-zero code, the chat with status in {list(CANCELLED)}",
            actual=cancel.describe(),
            soft=True,
        )
    reading = reader.reading
    problems = [] if reading is None else [f.message for f in reading.sse_findings]
    server_errors = [
        p for p in (reading.grammar.errors if reading else []) if isinstance(p, dict) and is_integer(p.get("code")) and 500 <= p["code"] < 600
    ]
    check(
        "STUDIO-CANCEL-003",
        reading is not None and reader.error is None and not problems and not server_errors,
        expected="the stream ends well-formed (completed or early), no malformed or server-error event",
        actual=(
            f"{reader.error}" if reader.error else
            "the stream did not end" if reading is None else
            f"events {[e.type for e in reading.events][-6:]}, findings {problems[:3]}, server errors {server_errors[:2]}"
        ),
    )


def _ids_so_far(received: bytes, rules: Any) -> dict[str, str] | None:
    checker = rules.checker("text/event-stream")
    checker.feed(received, time.monotonic())
    import json

    for event in checker.events:
        if rules.kind(event.type) == "start":
            try:
                payload = json.loads(event.data)
            except ValueError:
                continue
            if isinstance(payload, dict) and id_text(payload.get("id")) and id_text(payload.get("conversation_id")):
                return {"chat_id": str(id_text(payload["id"])), "conversation_id": str(id_text(payload["conversation_id"]))}
    return None


@pytest.mark.parametrize("which", ["finished", "unknown", "another-principal"])
@pytest.mark.requirement("STUDIO-CANCEL-004")
def test_cancel_refusals(
    api: ApiClient, api2: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str, which: str
) -> None:
    found = (
        {"chat_id": unknown_id(), "conversation_id": unknown_id()}
        if which == "unknown"
        else chat_ids(stream_chat(api, profile, published_bot, user_id), profile)
    )
    if found is None:
        pytest.skip("blocked by STUDIO-CHAT-002: the chat's stream named no chat")
    ids: dict[str, str] = found
    answer = send(api2 if which == "another-principal" else api, profile.endpoint("cancel"), ids)
    check(
        "STUDIO-CANCEL-004",
        not succeeded(answer, profile),
        expected="an error: HTTP 4xx or a non-zero code",
        actual=answer.describe(),
    )


@pytest.mark.requirement("STUDIO-CANCEL-005")
def test_cancel_with_a_mismatched_conversation(
    api: ApiClient, check: Checks, profile: Profile, published_bot: Bot, user_id: str
) -> None:
    ids = chat_ids(stream_chat(api, profile, published_bot, user_id), profile)
    if ids is None:
        pytest.skip("blocked by STUDIO-CHAT-002: the chat's stream named no chat")
    answer = send(api, profile.endpoint("cancel"), {**ids, "conversation_id": unknown_id(ids["conversation_id"])})
    check(
        "STUDIO-CANCEL-005",
        400 <= answer.status < 500 or (answer.status < 400 and not succeeded(answer, profile)),
        expected="an error answer below HTTP 500",
        actual=answer.describe(),
    )
